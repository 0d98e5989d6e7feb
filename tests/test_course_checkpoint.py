"""The course's shipped PixelCNN++ (data/checkpoints/pixelcnnpp-digits): its record holds, and it draws the digit asked for."""

import hashlib
import json

import numpy as np
import torch
from PIL import Image

from helpers.core.cli import main
from helpers.core.judge import recognised_fraction
from helpers.train import course_checkpoint_dir, load_checkpoint


def test_the_record_matches_the_weights_and_the_checkpoint_loads():
    folder = course_checkpoint_dir()
    record = json.loads((folder / "training.json").read_text())
    digest = hashlib.sha256((folder / "ema.safetensors").read_bytes()).hexdigest()
    assert record["sha256"]["ema.safetensors"] == digest
    assert record["command"].startswith("python -m helpers train") and record["settings"]["seed"] == 0
    model, info = load_checkpoint("course")
    assert info["source"] == "the course's" and model.num_classes == 10 and info["image_shape"] == (1, 8, 8)
    assert abs(info["test_bpd"] - record["test_bits_per_dim"]) < 1e-9 and (folder / "loss.png").exists()
    assert (folder / "ema.safetensors").stat().st_size < 8 * 2**20  # a few MB


def test_sample_label_3_draws_threes(outputs, capsys):
    torch.set_num_threads(1)
    assert main(["sample", "--checkpoint", "course", "--label", "3", "--n", "64", "--batch-size", "32"]) == 0
    assert "the course's" in capsys.readouterr().out
    folder = outputs / "samples"
    images = np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("sample_*.png"))])
    assert images.shape == (64, 8, 8)
    share = recognised_fraction(torch.from_numpy(images).unsqueeze(1), label=3)
    assert share >= 0.8, f"{share:.0%} of 64 samples asked for a 3 are judged 3s"
