"""Every stage refuses bad input the same way: exit code 2, one line on stderr naming the file or the
flag and the problem, no traceback, and no new file or folder left behind (one table per stage)."""

import json

import numpy as np
import pytest

from helpers.core.cli import main


@pytest.fixture
def files(tmp_path):
    """Awkward inputs: an ordinary file where a folder is expected, a truncated video, a checkpoint with
    truncated weights, a storyboard with a slide of 1e7 s."""
    from helpers.core.video import write_mp4

    made = tmp_path / "inputs"
    made.mkdir()
    (made / "notes.txt").write_text("not a folder, not a picture")
    rng = np.random.default_rng(0)
    write_mp4([rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(50)], made / "whole.mp4", fps=10)
    data = (made / "whole.mp4").read_bytes()
    (made / "cut.mp4").write_bytes(data[: len(data) // 2])
    checkpoint = made / "step_0000010"
    checkpoint.mkdir()
    config = dict(in_channels=1, nr_resnet=1, nr_filters=4, nr_logistic_mix=2, dropout=0.0, seed=0)
    (checkpoint / "meta.json").write_text(json.dumps({"step": 10, "config": config, "image_shape": [1, 4, 4]}))
    (checkpoint / "ema.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    slide = dict(prompt="a planet", caption="hello", duration=1e7, transition="cut")
    (made / "long.json").write_text(json.dumps({"title": "t", "slides": [slide]}))
    return made


def tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def refused(argv, fragment, files, capsys):
    root = files.parent
    before = tree(root)
    capsys.readouterr()
    code = main([part.replace("INPUTS", str(files)) for part in argv])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err
    assert tree(root) == before, "a refused run left files or folders behind"


TABLE = [
    # train
    (["train", "--out-dir", "INPUTS/notes.txt", "--steps", "1"], "notes.txt: is a file, not a folder"),
    (["train", "--set", "nr_filters=abc"], "setting nr_filters: expected an integer"),
    (["train", "--steps", "0"], "argument --steps: must be >= 1"),
    (["train", "--lr", "5"], "argument --lr: must be > 0 and <= 1"),
    # sample
    (["sample", "--n", "0"], "argument --n: must be >= 1"),
    (["sample", "--temperature", "0"], "argument --temperature: must be > 0"),
    (["sample", "--checkpoint", "INPUTS/step_0000010"], "ema.safetensors: cannot be read"),
    # curate
    (["curate", "--out", "INPUTS/notes.txt"], "notes.txt: is a file, not a folder"),
    (["curate", "--keep", "0"], "argument --keep: must be >= 1"),
    (["curate", "--duplicate-bits", "1000"], "argument --duplicate-bits: must be >= 0 and <= 128"),
    (["curate", "--samples", "INPUTS/missing"], "missing: no such folder of samples"),
    # keyframes
    (["keyframes", "--width", "16000", "--height", "16000"], "argument --width: must be >= 64 and <= 2048"),
    (["keyframes", "-n", "9"], "argument -n/--n-keyframes: must be >= 1 and <= 5"),
    (["keyframes", "--colour-strength", "2"], "argument --colour-strength"),
    # refine
    (["refine", "--keyframes", "INPUTS/notes.txt"], "notes.txt: not a folder of keyframes"),
    (["refine", "--strength", "1.5"], "argument --strength: must be >= 0 and <= 1"),
    (["refine", "--steps", "0"], "argument --steps: must be >= 1"),
    # animate
    (["animate", "--num-frames", "100000"], "argument --num-frames/--frames: must be >= 2 and <= 257"),
    (["animate", "--fps", "0"], "argument --fps: must be >= 1 and <= 60"),
    (["animate", "--motion-bucket-id", "1000"], "argument --motion-bucket-id: must be >= 1 and <= 255"),
    (["animate", "--export-fps", "0"], "argument --export-fps: must be > 0"),
    (["animate", "INPUTS/notes.txt"], "notes.txt"),
    # post
    (["post", "INPUTS/cut.mp4"], "cut.mp4: truncated: only 24 of the 50 frames"),
    (["post", "--fps", "100000"], "argument --fps: must be > 0 and <= 120"),
    (["post", "--interpolate", "1000"], "argument --interpolate: must be >= 1 and <= 8"),
    # slides
    (["slides", "INPUTS/long.json"], "duration must be more than 0 and at most 600 seconds"),
    (["slides", "--fps", "0"], "argument --fps: must be > 0"),
    (["slides", "--stills", "INPUTS/notes.txt"], "notes.txt: --stills is a file"),
]


@pytest.mark.parametrize("argv, fragment", TABLE, ids=[" ".join(a) for a, _ in TABLE])
def test_bad_input_is_one_line_and_leaves_nothing(argv, fragment, files, outputs, capsys):
    refused(argv, fragment, files, capsys)


def test_app_engine_refuses_zero_steps_and_too_many_frames(outputs):
    from PIL import Image

    from helpers.app import Studio

    studio = Studio()
    picture = Image.new("RGB", (64, 64), (10, 20, 30))
    with pytest.raises(ValueError, match="steps must be between 1"):
        studio.make_video(picture, "svd", num_frames=3, steps=0)
    with pytest.raises(ValueError, match="frames must be between 2"):
        studio.make_video(picture, "svd", num_frames=100_000, steps=1)
    assert not (outputs / "final").exists() or not any((outputs / "final").iterdir())


def test_a_long_title_and_an_unbroken_caption_still_make_a_video(outputs, files):
    """A 2,000-character title and a 2,000-character caption with no spaces: laid out, cut with "..."."""
    from helpers.post import title_card
    from helpers.slides import caption_layer

    layer = caption_layer("x" * 2000, (256, 144))
    assert layer.shortened and len(layer.lines) <= 3 and layer.lines[-1].endswith("...")
    card = title_card("word " * 400, (256, 144), 2)
    assert len(card) == 2 and card[0].shape == (144, 256, 3)
    assert main(["post", str(files / "whole.mp4"), "--title", "w" * 2000, "--formats", "mp4",
                 "--interpolate", "1"]) == 0
    assert (outputs / "final" / "final.mp4").exists()


def test_post_refuses_settings_whose_frames_would_not_fit_in_memory():
    from helpers.post import check_memory

    clip = [np.zeros((576, 1024, 3), np.uint8)] * 50
    settings = dict(interpolate=8, fps=120, title_s=0)
    with pytest.raises(ValueError, match="GiB.*lower --fps or --interpolate, or raise --speed"):
        check_memory([clip], 10, settings, speed=0.1)
    check_memory([clip], 10, dict(settings, interpolate=1, fps=10), speed=1.0)  # the usual case fits
