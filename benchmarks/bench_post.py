"""Post-production timings (notebook 08, ``python -m helpers post``) on this machine's CPU.

Everything here runs on the CPU in every profile (numpy and ffmpeg), so the numbers carry over to a
GPU machine's CPU roughly in proportion to its cores. Median of ``--repeats`` runs after one warm-up.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_post.py

Reports: interpolation of one frame pair per method and size, one LUT-graded frame (numpy vs ffmpeg
lut3d), export of a clip per format (time, size, PSNR), and the whole ``python -m helpers post`` in a
fresh process on a 50-frame 128x64 clip at 8 fps (the size ``animate --long 50`` writes in tiny).
Results go to docs/benchmarks.md by hand, with the command and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import post  # noqa: E402
from helpers.demo_images import demo_image  # noqa: E402
from helpers.video import write_mp4  # noqa: E402

SIZES = [(128, 64), (256, 144), (1024, 576)]


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pan_pair(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Two frames of a picture panning by 2 % of the width."""
    w, h = size
    big = np.asarray(demo_image("planet").resize((int(w * 1.1), h), Image.Resampling.BICUBIC))
    step = max(1, w // 50)
    return big[:, step:step + w].copy(), big[:, :w].copy()


def clip(size: tuple[int, int], frames: int) -> list[np.ndarray]:
    w, h = size
    big = np.asarray(demo_image("planet").resize((w + frames, h), Image.Resampling.BICUBIC))
    return [big[:, frames - i:frames - i + w].copy() for i in range(frames)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average {os.getloadavg()[0]:.1f}")

    print("\n| size | flow (numpy) | ffmpeg minterpolate | blend |\n|---|---|---|---|")
    for size in SIZES:
        a, b = pan_pair(size)
        cells = [f"{median_time(lambda m=m: post.interpolate([a, b], 2, m), args.repeats):.3f} s"
                 for m in ("flow", "ffmpeg", "blend")]
        print(f"| {size[0]}x{size[1]} (one pair, x2) | " + " | ".join(cells) + " |")

    print("\n| size | LUT numpy (trilinear) | LUT ffmpeg lut3d |\n|---|---|---|")
    for size in SIZES:
        frame = pan_pair(size)[0]
        numpy_s = median_time(lambda: post.apply_lut([frame], "warm"), args.repeats)
        ffmpeg_s = median_time(lambda: post.apply_lut_ffmpeg([frame], "warm"), args.repeats)
        print(f"| {size[0]}x{size[1]} (one frame) | {numpy_s:.3f} s | {ffmpeg_s:.3f} s |")

    print("\n| clip | format | time | size | PSNR |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size, count in (((128, 64), 99), ((1024, 576), 25)):
            frames = clip(size, count)
            for fmt, spec in post.FORMATS.items():
                path = Path(tmp) / f"c{size[0]}{spec.suffix}"
                seconds = median_time(lambda: post.export(frames, path, 16, fmt), args.repeats)
                row = post.quality_table(frames, {fmt: path})[0]
                print(f"| {count} x {size[0]}x{size[1]} | {fmt} | {seconds:.2f} s | {row['bytes'] / 1024:.0f} KB "
                      f"| {row['psnr_db']:.1f} dB |")

        outputs = Path(tmp) / "outputs"
        write_mp4(clip((128, 64), 50), outputs / "videos" / "animation.mp4", fps=8)
        env = dict(os.environ, COURSE_PROFILE="tiny", COURSE_OUTPUTS=str(outputs), PYTHONPATH=str(ROOT))
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "helpers", "post"], env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        print(f"\n`python -m helpers post` (tiny defaults, 50 frames of 128x64 at 8 fps, fresh process): "
              f"median {statistics.median(times):.2f} s of {args.repeats} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
