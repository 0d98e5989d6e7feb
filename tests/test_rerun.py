"""Every stage re-runs: more training, then sampling again, replaces the samples and says so; a moved
outputs folder still works (records hold paths relative to it)."""

import json
import shutil

import numpy as np
from PIL import Image

from helpers.core.cli import main

# A very small run: seconds on a CPU.
SMALL = ["--image-size", "8", "--batch-size", "8", "--samples", "0",
         "--set", "eval_every=10", "--set", "nr_filters=8"]


def pixels(folder):
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("sample_*.png"))}


def test_train_sample_train_sample_then_move_the_outputs(outputs, tmp_path, monkeypatch, capsys):
    assert main(["train", "--steps", "30", *SMALL]) == 0
    assert main(["sample", "--n", "8", "--batch-size", "8"]) == 0
    first = pixels(outputs / "samples")
    record = json.loads((outputs / "samples" / "samples.json").read_text())
    assert record["step"] == 30 and record["checkpoint"] == "checkpoints/pixelcnnpp/step_0000030"
    capsys.readouterr()

    assert main(["train", "--steps", "60", *SMALL]) == 0
    assert main(["sample", "--n", "8", "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    said = [line for line in out.splitlines() if line.startswith("replacing")]
    assert len(said) == 1 and "step_0000030 -> step_0000060" in said[0], out
    second = pixels(outputs / "samples")
    assert sorted(second) == sorted(first) and any(not np.array_equal(first[k], second[k]) for k in first)
    record = json.loads((outputs / "samples" / "samples.json").read_text())
    assert record["step"] == 60 and len(record["images"]) == 8
    assert sorted(p.name for p in outputs.iterdir()) == ["checkpoints", "samples"]  # nothing staged is left

    moved = tmp_path / "moved"
    shutil.move(outputs, moved)
    monkeypatch.setenv("COURSE_OUTPUTS", str(moved))
    capsys.readouterr()
    assert main(["sample", "--n", "8", "--batch-size", "8"]) == 0
    assert "replacing" not in capsys.readouterr().out  # the same run: recognised, nothing redrawn
    assert all(np.array_equal(second[k], v) for k, v in pixels(moved / "samples").items())
    assert main(["curate", "--no-likelihood", "--keep", "3"]) == 0
    scores = json.loads((moved / "curated" / "scores.json").read_text())
    assert scores["samples"] == "samples" and len(scores["records"]) == 8  # the 8 samples, no grid.png
