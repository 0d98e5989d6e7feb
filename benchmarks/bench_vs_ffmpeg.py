"""Post-production against ffmpeg on the CPU: interpolation, LUT grading and MP4 export, same clip, one run.

The clip: scikit-learn's ``china.jpg`` (enlarged 2.1x, bicubic) seen through a 1024x576 window that pans 3 px right
and 0.75 px down per frame (sub-pixel, bicubic), 99 frames at 16 fps. Every other frame is held out: the 50 kept
frames are interpolated x2 (49 in-betweens) and each in-between is compared with the held-out frame (PSNR, mean
over the 49). ffmpeg is the binary of imageio-ffmpeg, fed the same raw RGB frames through a pipe, with what a user
would pick: ``minterpolate`` (mci, aobmc, bidir, vsbmc), ``lut3d`` (trilinear), ``libx264 -crf 18 -pix_fmt yuv420p``.

Every case is run once to warm up, then ``--repeats`` rounds in which every case runs once, in turn (so a
colleague's job on a shared machine slows all of them alike); the table gives medians and the ratios of medians.
The numpy reference is timed on the first ``--numpy-frames`` kept frames only and scaled to the clip (said in
the row). Torch on the CPU runs with all of torch's threads and with one; with several, frame pairs (or frames)
are shared out among worker threads (``torch_path.cpu_map``). The LUT's 256^3 table is timed both built inside the
call and cached from an earlier call with the same LUT (``torch_path.cached_dense_lut``). The LUT is the project's ``warm`` at strength 1 (``lut3d`` has no strength); its quality is the largest
difference, in 8-bit levels, from the float64 numpy reference of notebook 08.

    nice -n 10 .venv/bin/python benchmarks/bench_vs_ffmpeg.py                 # the table of docs/benchmarks.md
    nice -n 10 .venv/bin/python benchmarks/bench_vs_ffmpeg.py --frames 21 --repeats 1   # a quick look
    nice -n 10 .venv/bin/python benchmarks/bench_vs_ffmpeg.py --only export --repeats 7  # one row

Results go to docs/benchmarks.md and notebook 08's appendix by hand, with the command and the machine.
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
from helpers.core.video import ffmpeg_exe, write_mp4  # noqa: E402
from helpers.post import torch_path  # noqa: E402

FPS = 16


def china_pan(frames: int, size: tuple[int, int] = (1024, 576), dx: float = 3.0, dy: float = 0.75,
              scale: float = 2.1) -> list[np.ndarray]:
    """``frames`` frames of ``size`` panning over scikit-learn's china.jpg by (dx, dy) px per frame."""
    from sklearn.datasets import load_sample_image

    photo = Image.fromarray(load_sample_image("china.jpg"))
    photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BICUBIC)
    if (size[0] + dx * frames > photo.width) or (size[1] + dy * frames > photo.height):
        raise SystemExit(f"{frames} frames pan off the photo; use at most {int((photo.width - size[0]) / dx)}")
    return [np.asarray(photo.transform(size, Image.Transform.AFFINE, (1, 0, k * dx, 0, 1, k * dy),
                                       resample=Image.Resampling.BICUBIC)).copy() for k in range(frames)]


def timed(cases: dict, repeats: int) -> tuple[dict, dict]:
    """Each case once to warm up (its result kept), then ``repeats`` rounds of every case in turn: medians."""
    results = {name: fn() for name, fn in cases.items()}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, results


def with_threads(count: int, fn):
    """``fn`` run with ``count`` torch threads (the previous count restored)."""
    def run():
        before = torch.get_num_threads()
        torch.set_num_threads(count)
        try:
            return fn()
        finally:
            torch.set_num_threads(before)
    return run


def ratio(ours: float, theirs: float) -> str:
    """``2.1x faster``, ``parity`` (within 10 %) or ``1.3x slower``."""
    if abs(ours / theirs - 1) <= 0.10:
        return f"parity ({theirs / ours:.2f}x)"
    return f"{theirs / ours:.2f}x faster" if ours < theirs else f"{ours / theirs:.2f}x slower"


def held_out_psnr(made: list[np.ndarray], truth: list[np.ndarray]) -> float:
    """Mean PSNR of the in-betweens (odd frames of ``made``) against the held-out frames."""
    return float(np.mean([post.psnr(made[2 * k + 1], frame) for k, frame in enumerate(truth)]))


def interpolation_rows(clip: list[np.ndarray], repeats: int, numpy_frames: int, threads: int) -> list[str]:
    kept, truth = clip[0::2], clip[1::2]
    few = kept[:numpy_frames]
    cases = {f"torch CPU, {threads} threads": with_threads(threads, lambda: post.interpolate(kept, 2, "flow", "cpu")),
             "torch CPU, 1 thread": with_threads(1, lambda: post.interpolate(kept, 2, "flow", "cpu")),
             "numpy": lambda: post.interpolate(few, 2, "flow", "numpy"),
             "ffmpeg": lambda: post.interpolate_ffmpeg(kept, 2, "mci")}
    seconds, made = timed(cases, repeats)
    made_count = len(truth)
    seconds["numpy"] *= made_count / (len(few) - 1)
    ffmpeg_s, ffmpeg_db = seconds["ffmpeg"] / made_count, held_out_psnr(made["ffmpeg"], truth)
    rows = []
    for name in cases:
        if name == "ffmpeg":
            continue
        db = held_out_psnr(made[name], truth[:len(made[name]) // 2])
        scaled = f" (timed on {len(few) - 1} pairs, scaled)" if name == "numpy" else ""
        rows.append(f"| interpolate x2, flow, {name}{scaled} | {seconds[name] / made_count:.3f} s / in-between "
                    f"| minterpolate mci {ffmpeg_s:.3f} s | {ratio(seconds[name], seconds['ffmpeg'])} "
                    f"| {db:.2f} dB vs {ffmpeg_db:.2f} dB |")
    return rows


def lut_rows(clip: list[np.ndarray], repeats: int, numpy_frames: int, threads: int) -> list[str]:
    few = clip[:numpy_frames]
    lut = post.load_lut("warm")
    def built_in_the_call():
        torch_path._DENSE_CACHE.clear()
        return post.apply_lut(clip, lut, 1.0, "cpu")

    cases = {f"torch CPU, {threads} threads, 256^3 table built in the call + one gather":
             with_threads(threads, built_in_the_call),
             f"torch CPU, {threads} threads, 256^3 table cached (built once per LUT) + one gather":
             with_threads(threads, lambda: post.apply_lut(clip, lut, 1.0, "cpu")),
             "torch CPU, 1 thread, 256^3 table cached + one gather":
             with_threads(1, lambda: post.apply_lut(clip, lut, 1.0, "cpu")),
             "numpy": lambda: post.apply_lut(few, lut, 1.0, "numpy"),
             "ffmpeg": lambda: post.apply_lut_ffmpeg(clip, "warm")}
    seconds, made = timed(cases, repeats)
    seconds["numpy"] *= len(clip) / len(few)
    reference = np.stack(made["numpy"]).astype(int)
    differ = lambda frames: np.abs(np.stack(frames[:len(few)]).astype(int) - reference).max()
    rows = []
    for name in cases:
        if name == "ffmpeg":
            continue
        scaled = f" (timed on {len(few)} frames, scaled)" if name == "numpy" else ""
        quality = "the reference" if name == "numpy" else f"max diff {differ(made[name])} level"
        rows.append(f"| LUT `warm`, {name}{scaled} | {seconds[name] / len(clip):.4f} s / frame "
                    f"| lut3d {seconds['ffmpeg'] / len(clip):.4f} s | {ratio(seconds[name], seconds['ffmpeg'])} "
                    f"| {quality}; lut3d: max diff {differ(made['ffmpeg'])} |")
    return rows


def export_row(clip: list[np.ndarray], repeats: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = Path(tmp) / "ours.mp4", Path(tmp) / "ffmpeg.mp4"
        h, w = clip[0].shape[:2]
        command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
                   "-s", f"{w}x{h}", "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-crf", "18", "-preset", "medium",
                   "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(theirs)]
        raw = b"".join(f.tobytes() for f in clip)
        cases = {"write_mp4": lambda: write_mp4(clip, ours, fps=FPS),
                 "ffmpeg": lambda: subprocess.run(command, input=raw, check=True)}
        seconds, _ = timed(cases, repeats)
        decoded = [post.read_video(path)[0] for path in (ours, theirs)]
        same = all(np.array_equal(x, y) for x, y in zip(*decoded)) and len(decoded[0]) == len(decoded[1])
        quality = "identical decoded frames" if same else \
            f"{np.mean([post.psnr(x, y) for x, y in zip(*decoded)]):.1f} dB between the two"
        return [f"| MP4 export (write_mp4), {len(clip)} frames | {seconds['write_mp4']:.2f} s, "
                f"{ours.stat().st_size / 1024:.0f} KB | libx264 crf 18 yuv420p {seconds['ffmpeg']:.2f} s, "
                f"{theirs.stat().st_size / 1024:.0f} KB | {ratio(seconds['write_mp4'], seconds['ffmpeg'])} | {quality} |"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=99, help="frames of the clip (odd: every other one is held out)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--numpy-frames", type=int, default=5, help="kept frames the numpy reference is timed on")
    parser.add_argument("--only", nargs="+", choices=["interpolation", "lut", "export"],
                        default=["interpolation", "lut", "export"], help="run only these rows")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} ({threads} threads), numpy "
          f"{np.__version__}, ffmpeg {Path(ffmpeg_exe()).name}, load average {os.getloadavg()[0]:.1f}", flush=True)
    clip = china_pan(args.frames)
    print(f"\n{args.frames} frames of 1024x576 (china.jpg pan), median of {args.repeats}, ratios within this run\n\n"
          "| task | ours | ffmpeg | ratio | quality |\n|---|---|---|---|---|", flush=True)
    rows_of = {"interpolation": lambda: interpolation_rows(clip, args.repeats, args.numpy_frames, threads),
               "lut": lambda: lut_rows(clip, args.repeats, args.numpy_frames, threads),
               "export": lambda: export_row(clip, args.repeats)}
    for name in args.only:
        print("\n".join(rows_of[name]()), flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
