import pytest

from helpers.core import profiles
from helpers.core.profiles import PROFILES, STAGE_SETTINGS, get_profile


def test_env_variable_picks_profile(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "tiny")
    profile = get_profile()
    assert profile.name == "tiny" and profile.device == "cpu"
    assert "COURSE_PROFILE" in profile.reason


def test_flag_beats_environment(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    assert get_profile("tiny").name == "tiny"


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    with pytest.raises(ValueError, match="choose one of tiny, colab, full"):
        get_profile("huge")


@pytest.mark.parametrize("gb, expected", [(None, "tiny"), (15.0, "colab"), (23.9, "colab"), (24.0, "full"), (80.0, "full")])
def test_detection_thresholds(monkeypatch, gb, expected):
    monkeypatch.setattr(profiles, "_gpu_memory_gb", lambda: gb)
    assert profiles.detect_profile_name()[0] == expected


def test_gpu_profile_without_gpu_says_what_to_do(monkeypatch):
    monkeypatch.setattr(profiles, "_gpu_memory_gb", lambda: None)
    with pytest.raises(ValueError, match="COURSE_PROFILE=tiny"):
        get_profile("colab")


def test_tiny_banner_says_random_weights():
    assert "RANDOM WEIGHTS" in get_profile("tiny").banner()


def test_every_stage_has_the_same_knobs_in_every_profile():
    for stage, blocks in STAGE_SETTINGS.items():
        assert set(blocks) == set(PROFILES), stage
        keys = {name: set(block) for name, block in blocks.items()}
        assert keys["tiny"] == keys["colab"] == keys["full"], stage


def test_settings_are_copies():
    profile = get_profile("tiny")
    first = profile.settings("svd")
    first["num_frames"] = -1
    assert profile.settings("svd")["num_frames"] != -1
    with pytest.raises(KeyError, match="unknown stage"):
        profile.settings("nope")


def test_svd_exports_at_the_rate_it_conditions_on_in_every_profile():
    """Notebook 06's lesson: frames conditioned at fps 6 play at their intended speed only when exported at 6
    (at 8 they play 1.33x fast); the defaults follow it."""
    from helpers.core.profiles import STAGE_SETTINGS

    for name, block in STAGE_SETTINGS["svd"].items():
        assert block["export_fps"] == block["fps"], f"svd/{name}: conditioned at {block['fps']}, exported at {block['export_fps']}"
