"""Make the course's shipped PixelCNN++ checkpoint (data/checkpoints/pixelcnnpp-digits) with one command.

    python tools/train_course_checkpoint.py            # train (about 4 minutes on one CPU thread), then package
    python tools/train_course_checkpoint.py --package RUN --seconds S   # package a run made by COMMAND below

Training is the ordinary ``python -m helpers train`` with the settings below (tiny profile, class-conditional
digits on their 8x8 grid, nr_filters 32, dropout 0.5, seed 0). Packaging copies the last checkpoint's EMA weights (safetensors) and its
meta.json, draws 64 samples (the classes in turn) and 64 per digit, asks the digit judge
(helpers/core/judge.py) how many it recognises, and writes training.json (command, settings, seconds,
torch version, test bits/dim, judge percentages, sha256 of the weights) and loss.png beside them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "data" / "checkpoints" / "pixelcnnpp-digits"
STEPS = 2000
COMMAND = ["python", "-m", "helpers", "train", "--profile", "tiny", "--steps", str(STEPS), "--seed", "0", "--set", "dropout=0.5",
           "--set", "nr_filters=32", "--set", "lr_decay=0.9985", "--set", "ema=0.995", "--set", "eval_every=100",
           "--no-resume", "--samples", "0"]


def train(run_dir: Path) -> float:
    """Run COMMAND into ``run_dir`` (one torch thread, as measured); returns its wall-clock seconds."""
    env = {**os.environ, "COURSE_PROFILE": "tiny", "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, *COMMAND[1:], "--out-dir", str(run_dir)], check=True, env=env, cwd=ROOT)
    return time.perf_counter() - start


def judge_percentages(model, image_shape) -> dict:
    """Recognised share of 64 samples (classes in turn) and, per digit, of 64 samples asked for it."""
    import torch

    from helpers.core.judge import judge, recognised_fraction
    from helpers.pixelcnnpp import sample

    def draw(labels):
        return sample(model, 64, image_shape, generator=torch.Generator().manual_seed(0), labels=labels)

    mixed = draw(None)
    asked = torch.arange(64) % 10
    digits, confidences = judge(mixed)
    as_asked = float(((confidences >= 0.8) & (digits == asked.numpy())).mean())
    per_digit = {str(d): recognised_fraction(draw(d), label=d) for d in range(10)}
    return {"samples": 64, "seed": 0, "recognised": recognised_fraction(mixed), "recognised_as_asked": as_asked,
            "per_digit_as_asked": per_digit}


def loss_figure(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    figure, ax = plt.subplots(figsize=(5, 3))
    ax.plot(steps, [h["train_bpd"] for h in history], label="train")
    ax.plot(steps, [h["test_bpd"] for h in history], label="test (EMA weights)")
    ax.set_xlabel("step")
    ax.set_ylabel("bits/dim")
    ax.set_title("course checkpoint: PixelCNN++ on 8x8 digits")
    ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def package(run_dir: Path, seconds: float) -> dict:
    """Copy the run's last checkpoint into OUT with its record; returns the record."""
    import torch

    from helpers.train import latest_checkpoint, load_checkpoint

    last = latest_checkpoint(run_dir)
    if last is None:
        raise SystemExit(f"{run_dir}: no checkpoint to package")
    OUT.mkdir(parents=True, exist_ok=True)
    for name in ("ema.safetensors", "meta.json"):
        shutil.copyfile(last / name, OUT / name)
    model, info = load_checkpoint(OUT)
    torch.set_num_threads(1)
    record = {
        "what": "class-conditional PixelCNN++ trained on scikit-learn's digits (8x8) by this course",
        "command": " ".join(COMMAND), "maintainer_command": "python tools/train_course_checkpoint.py",
        "settings": info["config"], "step": info["step"], "seconds": round(seconds, 1),
        "threads": 1, "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
        "test_bits_per_dim": info["test_bpd"], "judge": judge_percentages(model, info["image_shape"]),
        "sha256": {"ema.safetensors": hashlib.sha256((OUT / "ema.safetensors").read_bytes()).hexdigest()},
    }
    (OUT / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    loss_figure(info["history"], OUT / "loss.png")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, help="package this finished run instead of training")
    parser.add_argument("--seconds", type=float, help="the training time of --package's run")
    args = parser.parse_args()
    if args.package:
        record = package(args.package, args.seconds or 0.0)
    else:
        run_dir = ROOT / "outputs" / "course-checkpoint-run"
        record = package(run_dir, train(run_dir))
    judged = record["judge"]
    print(f"{OUT}: test bits/dim {record['test_bits_per_dim']:.3f}; judge: {100 * judged['recognised']:.0f} % of "
          f"64 samples recognised, {100 * judged['recognised_as_asked']:.0f} % as the asked digit; "
          f"trained in {record['seconds']:.0f} s")


if __name__ == "__main__":
    main()
