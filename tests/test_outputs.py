from pathlib import Path

import pytest
from PIL import Image

from helpers.core.outputs import atomic_dir, atomic_path, outputs_dir, save_image, stage_dir, write_json


def test_outputs_dir_follows_environment(outputs):
    assert outputs_dir() == outputs
    assert stage_dir("keyframes") == outputs / "keyframes" and (outputs / "keyframes").is_dir()
    with pytest.raises(ValueError, match="unknown outputs folder"):
        stage_dir("elsewhere")


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "clip.mp4"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.suffix == ".mp4" and tmp.parent == tmp_path
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_atomic_path_replaces_on_success(tmp_path):
    target = tmp_path / "a" / "b.json"
    write_json(target, {"x": 1})
    assert target.read_text().strip().startswith("{") and '"x": 1' in target.read_text()
    assert list(target.parent.iterdir()) == [target]


def test_atomic_dir(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "w.bin").write_bytes(b"1")
    assert (target / "w.bin").read_bytes() == b"1"
    with pytest.raises(KeyError):
        with atomic_dir(target) as tmp:
            (tmp / "w.bin").write_bytes(b"2")
            raise KeyError
    assert (target / "w.bin").read_bytes() == b"1"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_save_image_round_trip(tmp_path):
    image = Image.new("RGB", (10, 6), (1, 2, 3))
    path = save_image(image, tmp_path / "x.png")
    assert Image.open(path).getpixel((0, 0)) == (1, 2, 3)


def test_atomic_writes_get_the_usual_permissions_not_private_ones(tmp_path):
    import os
    import stat

    from helpers.core.outputs import atomic_dir, atomic_path

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "f").write_text("y")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755


def test_a_file_set_changes_whole_and_a_killed_swap_is_finished_by_the_next_start(tmp_path):
    import json
    import subprocess
    import sys

    from helpers.core.outputs import SET_COMPLETE, atomic_set, clean_stale, owner_tag

    def visible():
        return {p.name: p.read_text() for p in tmp_path.iterdir() if not p.name.startswith(".")}

    with atomic_set(tmp_path, "final") as staging:  # the old set, written by the set's owner
        for name in ("final.mp4", "final.gif", "final.json"):
            (staging / name).write_text("old")
    with pytest.raises(KeyError):  # an error while the new set is made: the old one stays whole
        with atomic_set(tmp_path, "final") as staging:
            (staging / "final.mp4").write_text("new")
            raise KeyError
    assert visible() == {"final.mp4": "old", "final.gif": "old", "final.json": "old"}
    # A writer SIGKILLed in the middle of its swap: the mp4 already moved, the json not yet.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    staging = tmp_path / f".final.{owner_tag(int(dead.stdout))}.x.set.partial"
    staging.mkdir()
    (staging / "final.json").write_text("new")
    (staging / SET_COMPLETE).write_text(json.dumps({"folder": str(tmp_path), "owner": "final",
                                                    "files": ["final.json", "final.mp4"]}))
    (tmp_path / "final.mp4").write_text("new")
    assert clean_stale(tmp_path) == 1
    assert visible() == {"final.mp4": "new", "final.json": "new"}
