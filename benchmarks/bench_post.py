"""Post-production timings (notebook 08, ``python -m helpers post``): numpy, torch on the CPU, torch on CUDA.

Median of ``--repeats`` runs after one warm-up; every comparison is measured side by side in one run.

    .venv/bin/python benchmarks/bench_post.py --clip-only                # the 50-frame 1024x576 clip, every device
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_post.py --no-clip  # pairs, LUTs, exports, the command

Reports: the full-size case first, interpolation x2 and grading (the ``warm`` LUT at 0.6, as the profiles
do) of a 50-frame 1024x576 clip by numpy, by torch on the CPU with all of its threads and with one, and by
torch on CUDA when there is a GPU (else "not yet measured"; the grading includes building the LUT's 256^3
table every time, as for the first clip graded with it: ``torch_path.cached_dense_lut`` keeps it for the next); ``--numpy-frames N`` measures the numpy path
on the first N frames only and scales it to the clip, saying so. Then (without ``--clip-only``):
interpolation of one frame pair per method and size, one LUT-graded frame, export of a clip per format
(time, size, PSNR), and the whole ``python -m helpers post`` in a fresh process on a 50-frame 128x64 clip
at 8 fps (the size ``animate --long 50`` writes in tiny). Results go to docs/benchmarks.md by hand, with
the command and the machine.
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
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import post  # noqa: E402
from helpers.post import torch_path  # noqa: E402
from helpers.core.demo_images import demo_image  # noqa: E402
from helpers.core.video import write_mp4  # noqa: E402

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


def full_size_clip(frames: int, repeats: int, numpy_frames: int | None) -> None:
    """Interpolation x2 and grading of ``frames`` frames of 1024x576 on every device, side by side."""
    source = clip((1024, 576), frames)
    threads = torch.get_num_threads()
    cases = [("numpy (float64, one pair at a time)", "numpy", None),
             (f"torch CPU, {threads} threads (float32)", "cpu", threads),
             ("torch CPU, 1 thread (float32)", "cpu", 1)]
    print(f"\n{frames} frames of 1024x576: interpolation x2 (flow) and the warm LUT at 0.6, median of {repeats}\n")
    print("| path | interpolation x2 | grading | both | per frame pair | per graded frame | load average |\n"
          "|---|---|---|---|---|---|---|")
    for name, device, count in cases + [("torch CUDA (float32)", "cuda", None)]:
        if device == "cuda" and not torch.cuda.is_available():
            print(f"| {name} | not yet measured (no GPU here) | | | | | |")
            continue
        if count:
            torch.set_num_threads(count)
        used = source[:numpy_frames] if device == "numpy" and numpy_frames else source
        load_before = os.getloadavg()[0]
        interp = median_time(lambda: post.interpolate(used, 2, "flow", device), repeats)
        interp *= (frames - 1) / (len(used) - 1)  # 1 unless numpy was measured on fewer frames
        def grade_fresh():                          # the 256^3 table built in every call, as for a first clip
            torch_path._DENSE_CACHE.clear()
            return post.apply_lut(used, "warm", 0.6, device)

        grade = median_time(grade_fresh, repeats) * frames / len(used)
        scaled = f" (scaled from {len(used)} measured frames)" if len(used) < frames else ""
        label = f"{name}: {torch_path.describe_device(device)}" if device == "cuda" else name
        print(f"| {label}{scaled} | {interp:.2f} s | {grade:.2f} s | {interp + grade:.2f} s | "
              f"{interp / (frames - 1):.3f} s | {grade / frames:.3f} s | {load_before:.1f} -> {os.getloadavg()[0]:.1f} |")
    torch.set_num_threads(threads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=50, help="frames of the 1024x576 clip")
    parser.add_argument("--numpy-frames", type=int, help="measure numpy on this many frames only, scaled to --frames")
    parser.add_argument("--clip-only", action="store_true", help="only the 1024x576 clip on every device")
    parser.add_argument("--no-clip", action="store_true", help="everything but the 1024x576 clip")
    args = parser.parse_args()
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
             if line.startswith("model name")]
    cpu = names[0] if names else platform.processor() or platform.machine()
    print(f"# {platform.machine()} ({cpu}), {os.cpu_count()} CPUs, numpy {np.__version__}, torch {torch.__version__}, "
          f"torch threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"load average {os.getloadavg()[0]:.1f}, GPU: "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")
    if not args.no_clip:
        full_size_clip(args.frames, args.repeats, args.numpy_frames)
    if args.clip_only:
        return 0

    print("\n| size | flow (numpy) | flow (torch CPU) | ffmpeg minterpolate | blend |\n|---|---|---|---|---|")
    for size in SIZES:
        a, b = pan_pair(size)
        cells = [f"{median_time(lambda m=m, d=d: post.interpolate([a, b], 2, m, d), args.repeats):.3f} s"
                 for m, d in (("flow", "numpy"), ("flow", "cpu"), ("ffmpeg", "numpy"), ("blend", "numpy"))]
        print(f"| {size[0]}x{size[1]} (one pair, x2) | " + " | ".join(cells) + " |")

    print("\n| size | LUT numpy (trilinear) | LUT torch CPU | LUT ffmpeg lut3d |\n|---|---|---|---|")
    for size in SIZES:
        frame = pan_pair(size)[0]
        numpy_s = median_time(lambda: post.apply_lut([frame], "warm", device="numpy"), args.repeats)
        torch_s = median_time(lambda: post.apply_lut([frame], "warm", device="cpu"), args.repeats)
        ffmpeg_s = median_time(lambda: post.apply_lut_ffmpeg([frame], "warm"), args.repeats)
        print(f"| {size[0]}x{size[1]} (one frame) | {numpy_s:.3f} s | {torch_s:.3f} s | {ffmpeg_s:.3f} s |")

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
