"""Image-to-video time and peak memory per memory strategy (notebooks 06-07).

Every configuration runs in a fresh Python process, so its peak memory is its own: peak CPU
RSS from ``resource.getrusage`` (no psutil needed) and, on a GPU, ``torch.cuda.max_memory_allocated``.
Each configuration is run once to warm up and then ``--repeats`` times; the median time is reported.

Tiny twins on the CPU (what this machine can do; random weights, the numbers only compare strategies):

    .venv/bin/python benchmarks/bench_animate.py --threads 2

The full-size SVD-XT architecture with random weights, built from the published configuration
(UNetSpatioTemporalConditionModel defaults, the SVD VAE, the ViT-H/14 CLIP image encoder), on a GPU:
25 frames, 576x1024, 25 steps, fp16, eager vs torch.compile, offload options:

    .venv/bin/python benchmarks/bench_animate.py --full-size --device cuda --compile

``--count-params`` builds the full-size models on the meta device (no memory) and prints their
parameter counts: a check that the configuration is the published one. Results go to
docs/benchmarks.md by hand, with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (backend, memory option, settings overrides). decode_chunk_size only exists for SVD.
TINY_CASES = {
    "svd: none (decode all frames at once)": ("svd", "none", {"decode_chunk_size": 8}),
    "svd: decode_chunk_size=1": ("svd", "none", {"decode_chunk_size": 1}),
    "svd: forward_chunking": ("svd", "forward_chunking", {"decode_chunk_size": 8}),
    "ltx: none": ("ltx", "none", {}),
    # VAE tiling only starts above 512 px, so these two run the LTX twin at 576x576
    "ltx 576x576: none": ("ltx", "none", {"width": 576, "height": 576}),
    "ltx 576x576: vae_tiling": ("ltx", "vae_tiling", {"width": 576, "height": 576}),
}
FULL_CASES = {
    "fp16, all on GPU (eager)": ("none", {"decode_chunk_size": 8}, False),
    "fp16, all on GPU, torch.compile(unet)": ("none", {"decode_chunk_size": 8}, True),
    "fp16, model offload + forward chunking, decode 2": ("model_offload+forward_chunking", {"decode_chunk_size": 2}, False),
    "fp16, sequential offload, decode 1": ("sequential_offload", {"decode_chunk_size": 1}, False),
}
FULL_SETTINGS = dict(width=1024, height=576, num_frames=25, num_inference_steps=25, fps=6, motion_bucket_id=127,
                     noise_aug_strength=0.02, min_guidance_scale=1.0, max_guidance_scale=3.0)


def build_full_svd(device: str = "cuda", dtype=None):
    """StableVideoDiffusionPipeline with SVD-XT's published architecture and random weights, on ``device``.

    The course's GPU test mode builds it (helpers/twins/full_size.py): the UNet is
    UNetSpatioTemporalConditionModel's defaults, the VAE and the ViT-H/14 image encoder follow the
    published configs. ``device="meta"`` only counts the weights.
    """
    from helpers.twins.full_size import svd

    return svd(device, dtype)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024**2
    except OSError:
        return float("nan")


def run_one(spec: dict) -> dict:
    """Measure one configuration in this process; returns a JSON-able record."""
    import torch

    from helpers import animate
    from helpers.demo_images import demo_image
    from helpers.profiles import get_profile

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    image = demo_image("sunset")
    cuda = spec["device"] == "cuda"
    if spec["kind"] == "full":
        from helpers.images import fit_to
        from helpers.profiles import Profile

        profile = Profile("full", "cuda", "float16", "benchmark")
        pipe = build_full_svd("cuda", torch.float16)
        pipe.set_progress_bar_config(disable=True)
        pipe = animate.apply_memory_options(pipe, spec["memory"], profile)
        if spec.get("compile"):
            pipe.unet = torch.compile(pipe.unet, mode="reduce-overhead", fullgraph=True)
        settings = dict(FULL_SETTINGS, **spec["overrides"])
        fitted, _ = fit_to(image, settings["width"], settings["height"])

        def call():
            return animate.svd_frames(pipe, fitted, settings, seed=0)
    else:
        profile = get_profile("tiny")
        if spec["backend"] == "svd":
            settings = animate.svd_settings(profile, memory=spec["memory"], **spec["overrides"])
            pipe = animate.load_svd(profile, settings)

            def call():
                return animate.animate_image(image, profile, pipe=pipe, **{**spec["overrides"], "memory": spec["memory"]})
        else:
            settings = animate.ltx_settings(profile, memory=spec["memory"], **spec["overrides"])
            pipe = animate.load_ltx(profile, settings)

            def call():
                return animate.animate_ltx([(image, 0)], None, profile, pipe=pipe,
                                           **{**spec["overrides"], "memory": spec["memory"]})
    rss_loaded = current_rss_mb()
    if cuda:
        torch.cuda.synchronize()
    call()  # warm-up (and compilation)
    times = []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        call()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    record = {"name": spec["name"], "median_s": statistics.median(times), "times_s": times,
              "rss_after_load_mb": rss_loaded, "peak_rss_mb": peak_rss_mb()}
    if cuda:
        record["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 1024**2
        record["gpu"] = torch.cuda.get_device_name(0)
    return record


def count_params() -> None:
    import torch

    pipe = build_full_svd("meta")
    for name in ("unet", "vae", "image_encoder"):
        count = sum(p.numel() for p in getattr(pipe, name).parameters())
        print(f"{name:14s} {count / 1e6:8.1f} M parameters")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full-size", action="store_true", help="full-size SVD-XT with random weights (GPU)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (full size)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs after one warm-up")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--only", default=None, help="run only cases whose name contains this text")
    parser.add_argument("--json", default=None, help="also write the records to this JSON file")
    parser.add_argument("--count-params", action="store_true", help="print full-size parameter counts and stop")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: one case, JSON out
    args = parser.parse_args()

    if args.one:
        print("RESULT " + json.dumps(run_one(json.loads(args.one))))
        return
    if args.count_params:
        count_params()
        return
    if args.full_size:
        if args.device != "cuda":
            sys.exit("--full-size needs --device cuda: SVD-XT at 576x1024 is far too slow for a CPU")
        specs = [dict(kind="full", name=name, memory=memory, overrides=overrides, compile=compiled)
                 for name, (memory, overrides, compiled) in FULL_CASES.items() if args.compile or not compiled]
    else:
        specs = [dict(kind="tiny", name=name, backend=backend, memory=memory, overrides=overrides)
                 for name, (backend, memory, overrides) in TINY_CASES.items()]
    specs = [s for s in specs if not args.only or args.only in s["name"]]
    env = dict(os.environ, COURSE_PROFILE="tiny", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    records = []
    for spec in specs:
        spec.update(device=args.device, repeats=args.repeats, threads=args.threads)
        result = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        line = next((l for l in result.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            print(f"{spec['name']}: failed\n{result.stderr[-1500:]}", file=sys.stderr)
            continue
        records.append(json.loads(line[len("RESULT "):]))
        print(f"done: {spec['name']}", file=sys.stderr)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {args.threads or 'default'}"
    print(f"\nMachine: {machine}; {args.repeats} timed run(s) after one warm-up\n")
    gpu = args.device == "cuda"
    print("| configuration | median time (s) | RSS after load (MB) | peak RSS (MB) |" + (" peak CUDA (MB) |" if gpu else ""))
    print("|---|---:|---:|---:|" + ("---:|" if gpu else ""))
    for r in records:
        row = f"| {r['name']} | {r['median_s']:.2f} | {r['rss_after_load_mb']:.0f} | {r['peak_rss_mb']:.0f} |"
        print(row + (f" {r['peak_cuda_mb']:.0f} |" if gpu else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "records": records}, indent=2) + "\n")


if __name__ == "__main__":
    main()
