"""Animation backends (notebooks 06-07): SVD chaining maths, LTX size rules, the LTX twin, the CLI.

The backbone contract of `animate IMAGE --out OUT.mp4` lives in test_animate.py; this file covers
what notebooks 06 and 07 add: long videos (colour matching, crossfades, chained segments),
LTX-Video keyframes and size rules, and the new command-line options.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from helpers import animate
from helpers.core import blend
from helpers.core.profiles import get_profile

TINY = get_profile("tiny")


def solid(rgb, size=(16, 8)) -> Image.Image:
    return Image.new("RGB", size, tuple(int(c) for c in rgb))


# ---------------------------------------------------------------- crossfade and colour matching

def test_crossfade_frame_math_is_exact():
    rng = np.random.default_rng(0)
    first = [rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(5)]
    second = [rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(4)]
    out = blend.crossfade(first, second, overlap=3)
    assert len(out) == 5 + 4 - 3
    weights = [0.25, 0.5, 0.75]
    assert np.allclose(blend.crossfade_weights(3), weights)
    for i, frame in enumerate(out):
        got = np.asarray(frame).astype(np.float64)
        if i < 2:
            want = first[i].astype(np.float64)
        elif i < 5:
            w = weights[i - 2]
            want = np.rint((1 - w) * first[i].astype(np.float64) + w * second[i - 2].astype(np.float64))
        else:
            want = second[i - 2].astype(np.float64)
        assert np.array_equal(got, want), f"frame {i}"


def test_crossfade_of_two_constant_clips_ramps_evenly():
    out = blend.crossfade([solid((0, 0, 0))] * 5, [solid((200, 100, 40))] * 5, overlap=4)
    reds = [int(np.asarray(f)[0, 0, 0]) for f in out]
    assert reds == [0, 40, 80, 120, 160, 200]  # weights 1/5 .. 4/5: neither end frame repeated
    with pytest.raises(ValueError, match="overlap"):
        blend.crossfade([solid((0, 0, 0))] * 2, [solid((0, 0, 0))] * 5, overlap=3)


def drifting_clip(n=12):
    """A keyframe with structure, then frames that drift warmer and brighter, like chained segments do."""
    rng = np.random.default_rng(1)
    key = rng.uniform(0.2, 0.7, (16, 24, 3))
    frames = []
    for t in range(n):
        drift = key * (1 + 0.03 * t) + np.array([0.02, 0.0, -0.015]) * t
        frames.append(Image.fromarray(np.clip(np.rint(drift * 255), 0, 255).astype(np.uint8)))
    return Image.fromarray(np.rint(key * 255).astype(np.uint8)), frames


def test_match_colors_pulls_a_drifting_clip_back_to_the_keyframe():
    key, frames = drifting_clip()
    before = blend.mean_color_distance(frames, key)
    after = blend.match_colors(frames, key)
    half = blend.match_colors(frames, key, strength=0.5)
    assert blend.mean_color_distance(after, key) < 0.1 * before
    assert blend.mean_color_distance(after, key) < blend.mean_color_distance(half, key) < before
    # the keyframe itself is (to the 8-bit grid) left alone, and structure survives
    same = np.asarray(blend.match_colors([key], key)[0]).astype(int)
    assert np.abs(same - np.asarray(key).astype(int)).max() <= 1
    with pytest.raises(ValueError, match="strength"):
        blend.match_colors(frames, key, strength=1.5)


def test_motion_score_is_zero_for_a_still_clip_and_grows_with_change():
    still = [solid((90, 90, 90))] * 4
    moving = [solid((90 + 20 * t, 90, 90)) for t in range(4)]
    assert blend.motion_score(still) == 0.0
    assert blend.motion_score(moving) == pytest.approx(20 / 255 / 3)


def test_guidance_ramp_matches_the_svd_pipeline():
    import torch

    ramp = animate.guidance_ramp(1.0, 3.0, 5)
    assert torch.allclose(ramp, torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0]))


# ---------------------------------------------------------------- chaining SVD segments

class FakeSVD:
    """Stands in for the SVD pipeline: each frame is the input image, brighter by 8 per frame."""

    def __init__(self):
        self.inputs = []

    def __call__(self, image, num_frames, **kwargs):
        self.inputs.append(np.asarray(image).copy())
        base = np.asarray(image).astype(int)
        return SimpleNamespace(frames=[[Image.fromarray(np.clip(base + 8 * k, 0, 255).astype(np.uint8))
                                        for k in range(num_frames)]])


@pytest.mark.parametrize("total, overlap", [(50, 2), (8, 2), (9, 1), (23, 0)])
def test_segments_needed_reach_the_total(total, overlap):
    n = animate.segments_needed(total, 8, overlap)
    assert 8 + (n - 1) * (8 - overlap) >= total
    assert n == 1 or 8 + (n - 2) * (8 - overlap) < total  # and not one segment more than needed


def test_chain_starts_each_segment_from_the_frame_where_the_join_begins():
    fake = FakeSVD()
    settings = dict(TINY.settings("svd"), num_frames=6, overlap=2, color_match=0.0)
    key = solid((40, 40, 40))
    frames = animate.svd._chain(fake, key, 15, settings, seed=0, progress=False)
    assert len(frames) == 15
    assert len(fake.inputs) == animate.segments_needed(15, 6, 2) == 4
    # segment 2 was started from frame 4 of the video so far: the first frame of the overlap window
    assert fake.inputs[1][0, 0, 0] == 40 + 8 * 4


def test_animate_long_with_the_tiny_twin_gives_at_least_the_frames_asked_for():
    from helpers.core.demo_images import demo_image

    image = demo_image("planet")
    frames = animate.animate_long(image, 7, TINY, seed=0, progress=False, num_frames=4,
                                  num_inference_steps=1, overlap=1, width=64, height=32)
    assert len(frames) >= 7  # two chained segments: 4 + (4 - 1)
    assert all(f.size == (128, 64) for f in frames)  # the trained twin's frames, enlarged 2x to carry its label


# ---------------------------------------------------------------- LTX-Video rules

def test_ltx_check_size_accepts_valid_sizes():
    for width, height, frames in [(64, 64, 9), (704, 480, 97), (1216, 704, 121), (32, 32, 17)]:
        animate.ltx_check_size(width, height, frames)


@pytest.mark.parametrize("size, expected", [
    ((100, 64, 9), ["width=100", "96", "128"]),
    ((64, 70, 9), ["height=70", "64", "96"]),
    ((64, 64, 50), ["num_frames=50", "49", "57"]),
    ((64, 64, 4), ["num_frames=4", "9"]),
    ((20, 64, 9), ["width=20", "32"]),
])
def test_ltx_check_size_names_the_nearest_valid_values(size, expected):
    with pytest.raises(ValueError) as err:
        animate.ltx_check_size(*size)
    message = str(err.value)
    assert "\n" not in message
    for text in expected:
        assert text in message


def test_duration_to_ltx_frames():
    assert animate.ltx_frames_for(4, 24) == 97           # 96 asked -> nearest 8k+1
    assert animate.ltx_frames_for(5, 24) == 121
    assert animate.ltx_frames_for(0.1, 24) == 9          # never below 9
    assert animate.ltx_frames_at_least(50) == 57 and animate.ltx_frames_at_least(57) == 57
    assert animate.evenly_spaced(3, 97) == [0, 48, 96]


def test_parse_keyframe():
    assert animate.parse_keyframe("a@b.png@12") == ("a@b.png", 12)
    assert animate.parse_keyframe("k.png@end") == ("k.png", -1)
    assert animate.resolve_frame_index(-1, 9) == 8
    for bad in ("k.png", "k.png@x", "@3"):
        with pytest.raises(ValueError, match="keyframe"):
            animate.parse_keyframe(bad)
    with pytest.raises(ValueError, match="outside"):
        animate.resolve_frame_index(9, 9)


# ---------------------------------------------------------------- the LTX twin

def test_ltx_twin_round_trips_and_keeps_the_real_size_rules(monkeypatch):
    from helpers.core.registry import load_pipeline

    monkeypatch.setenv("COURSE_TWIN", "random")  # the random-weight twin (tiny's default is the trained one)
    pipe = load_pipeline("ltx-video", TINY)  # built, save_pretrained, from_pretrained
    assert type(pipe).__name__ == "LTXConditionPipeline"
    assert pipe.vae_spatial_compression_ratio == 32 and pipe.vae_temporal_compression_ratio == 8
    ids = pipe.tokenizer("slow dolly-in, soft lighting").input_ids
    assert ids[-1] == pipe.tokenizer.eos_token_id and pipe.tokenizer.unk_token_id not in ids


def test_ltx_keyframes_condition_the_video():
    from helpers.core.demo_images import demo_image

    pipe = animate.load_ltx(TINY, animate.ltx_settings(TINY))
    a, b = demo_image("sunset"), demo_image("planet")
    frames, settings = animate.animate_ltx([(a, 0), (b, -1)], "slow dolly-in", TINY, seed=0, pipe=pipe)
    again, _ = animate.animate_ltx([(a, 0), (b, -1)], "slow dolly-in", TINY, seed=0, pipe=pipe)
    other, _ = animate.animate_ltx([(b, 0), (b, -1)], "slow dolly-in", TINY, seed=0, pipe=pipe)
    assert len(frames) == settings["num_frames"] == 9 and frames[0].size == (64, 64)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(frames, again))  # same seed
    assert not np.array_equal(np.asarray(frames[0]), np.asarray(other[0]))  # keyframe reaches the output
    with pytest.raises(ValueError, match="8k\\+1"):
        animate.animate_ltx([a], None, TINY, pipe=pipe, num_frames=10)


# ---------------------------------------------------------------- command line

def cli(capsys, *args):
    from helpers.core.cli import main

    code = main(["animate", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_ltx_with_keyframes_and_prompt(tmp_path, outputs, capsys):
    from helpers.core.demo_images import demo_image
    from helpers.core.video import probe

    demo_image("sunset").save(tmp_path / "a.png")
    demo_image("shapes").save(tmp_path / "b.png")
    out = tmp_path / "ltx.mp4"
    code, stdout, err = cli(capsys, "--backend", "ltx", "--keyframe", f"{tmp_path / 'a.png'}@0",
                            "--keyframe", f"{tmp_path / 'b.png'}@end", "--prompt", "slow dolly-in", "--out", out)
    assert code == 0, err
    info = probe(out)
    assert info["frames"] == 9 and (info["width"], info["height"]) == (64, 64) and info["fps"] == 24
    assert "random weights" in stdout.lower()


@pytest.mark.parametrize("args, needle", [
    (["--prompt", "dolly-in"], "--backend ltx"),
    (["--backend", "ltx", "--width", "100"], "96"),
    (["--backend", "ltx", "--frames", "12"], "9 (or 17)"),
    (["--backend", "ltx", "--keyframe", "{missing}@3"], "no such file"),
    (["--backend", "ltx", "--keyframe", "{image}@99"], "outside the video"),
    (["--backend", "ltx", "--motion-bucket-id", "100"], "SVD options"),
])
def test_cli_refuses_bad_combinations_in_one_line(tmp_path, outputs, capsys, args, needle):
    Image.new("RGB", (32, 32), (10, 20, 30)).save(tmp_path / "ok.png")
    args = [a.format(missing=tmp_path / "nope.png", image=tmp_path / "ok.png") for a in args]
    out = tmp_path / "out" / "v.mp4"
    code, _, err = cli(capsys, *args, "--out", out)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_cli_without_an_image_animates_the_keyframes_into_a_long_video(outputs, capsys):
    from helpers.core.demo_images import demo_image
    from helpers.core.video import probe

    (outputs / "keyframes").mkdir(parents=True)
    demo_image("planet").save(outputs / "keyframes" / "frame_0001.png")
    code, stdout, err = cli(capsys, "--long", "6", "--num-frames", "4", "--steps", "1",
                            "--width", "64", "--height", "32")
    assert code == 0, err
    info = probe(outputs / "videos" / "animation.mp4")
    assert info["frames"] >= 6 and (info["width"], info["height"]) == (128, 64)  # 2 segments, enlarged 2x with the label
    assert "1 keyframe(s)" in stdout
