"""Image-to-video time and peak memory per memory strategy, speed option and model (notebooks 06, 07, 10).

Every configuration runs in a fresh Python process, so its peak memory is its own: peak CPU
RSS from ``resource.getrusage`` (no psutil needed) and, on a GPU, ``torch.cuda.max_memory_allocated``.
Each configuration is run once (the "first call": loading caches, compiling) and then ``--repeats``
times; the median of those is reported. Ratios are only meaningful between rows of one run.

Comparisons of speed (SVD's speed options, LTX-Video 0.9.5 against 0.9.8 distilled, the studio app's
backends) run as *groups*: the configurations of a group load in one process and take turns, call by
call, so that other work on a shared machine slows them alike; their peak RSS is the group's.

Tiny twins on the CPU (what this machine can do; random weights, the numbers only compare configurations):

    .venv/bin/python benchmarks/bench_animate.py --threads 2 --repeats 3              # everything
    .venv/bin/python benchmarks/bench_animate.py --threads 1 --repeats 5 --only "svd speed"   # SVD speed options
    .venv/bin/python benchmarks/bench_animate.py --threads 1 --repeats 5 --only "ltx recipe"  # 0.9.5 vs 0.9.8 distilled
    .venv/bin/python benchmarks/bench_animate.py --threads 1 --repeats 5 --only app           # the studio's defaults

On a small shared machine use one thread: two threads on two busy cores oversubscribe them and the times
swing several-fold between identical runs.

The full-size architectures with random weights, built from the published configurations
(helpers/core/twins/full_size.py; nothing is downloaded), on a GPU: SVD-XT at 25 frames, 576x1024, 25 steps,
fp16 (eager, channels_last, torch.compile, offload options) and LTX-Video 2B at 1216x704, 121 frames,
bf16 (0.9.5 with 40 steps and CFG against 0.9.8 distilled with 8 steps and none):

    .venv/bin/python benchmarks/bench_animate.py --full-size --device cuda --compile

``--count-params`` builds the full-size SVD on the meta device (no memory) and prints its parameter
counts: a check that the configuration is the published one. Results go to docs/benchmarks.md by
hand, with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
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
# group -> {label: (backend, memory, overrides)}: compared call by call in one process
TINY_GROUPS = {
    # the speed options of the svd block (helpers.animate.apply_speed_options)
    "svd speed": {"eager": ("svd", "none", {"channels_last": False, "compile": False}),
                  "channels_last": ("svd", "none", {"channels_last": True, "compile": False}),
                  "torch.compile (first call compiles)": ("svd", "none", {"channels_last": False, "compile": True})},
    # each model's own recipe at the tiny size: 0.9.5 at the full profile's 40 steps with CFG, distilled at 8 without
    "ltx recipe": {"0.9.5, 40 steps, guidance 3": ("ltx", "none", {"num_inference_steps": 40}),
                   "0.9.8 distilled, 8 steps, guidance 1": ("ltx-distilled", "none", {})},
    # the studio app (helpers.app.Studio.make_video) with its defaults per backend; the first call loads the model
    "app": {backend: ("app", "none", {"backend": backend}) for backend in ("svd", "ltx-distilled", "ltx")},
}

# name -> (backend, memory, overrides, compiled). Compiled cases run only with --compile.
FULL_CASES = {
    "svd fp16, all on GPU (eager)": ("svd", "none", {"decode_chunk_size": 8}, False),
    "svd fp16, all on GPU, channels_last": ("svd", "none", {"decode_chunk_size": 8, "channels_last": True}, False),
    "svd fp16, all on GPU, torch.compile(unet)": ("svd", "none", {"decode_chunk_size": 8}, True),
    "svd fp16, all on GPU, channels_last + torch.compile(unet)":
        ("svd", "none", {"decode_chunk_size": 8, "channels_last": True}, True),
    "svd fp16, model offload + forward chunking, decode 2":
        ("svd", "model_offload+forward_chunking", {"decode_chunk_size": 2}, False),
    "svd fp16, model offload + forward chunking, decode 1":
        ("svd", "model_offload+forward_chunking", {"decode_chunk_size": 1}, False),
    "svd fp16, sequential offload, decode 1": ("svd", "sequential_offload", {"decode_chunk_size": 1}, False),
    "ltx bf16, 0.9.5 architecture, 40 steps, guidance 3": ("ltx", "none", {}, False),
    "ltx bf16, 0.9.8 distilled architecture, 8 steps, guidance 1": ("ltx-distilled", "none", {}, False),
}
FULL_SETTINGS = {
    "svd": dict(width=1024, height=576, num_frames=25, num_inference_steps=25, fps=6, motion_bucket_id=127,
                noise_aug_strength=0.02, min_guidance_scale=1.0, max_guidance_scale=3.0, channels_last=False,
                compile=False, compile_mode="reduce-overhead"),
    "ltx": dict(width=1216, height=704, num_frames=121, num_inference_steps=40, guidance_scale=3.0),
    "ltx-distilled": dict(width=1216, height=704, num_frames=121),
}


def build_full_svd(device: str = "cuda", dtype=None):
    """StableVideoDiffusionPipeline with SVD-XT's published architecture and random weights, on ``device``.

    The course's GPU test mode builds it (helpers/core/twins/full_size.py): the UNet is
    UNetSpatioTemporalConditionModel's defaults, the VAE and the ViT-H/14 image encoder follow the
    published configs. ``device="meta"`` only counts the weights.
    """
    from helpers.core.twins.full_size import svd

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


def full_size_call(spec: dict, image):
    """A function that makes one full-size clip on the GPU with random weights (SVD fp16 or LTX bf16)."""
    import torch

    from helpers import animate
    from helpers.core import device
    from helpers.core.images import fit_to
    from helpers.core.profiles import Profile
    from helpers.core.twins import full_size

    backend = spec["backend"]
    settings = dict(FULL_SETTINGS[backend], **spec["overrides"], memory=spec["memory"], compile=spec["compile"])
    if backend == "svd":
        profile = Profile("full", "cuda", "float16", "benchmark")
        animate.check_speed_options(settings)
        pipe = build_full_svd("cuda", torch.float16)
        pipe.set_progress_bar_config(disable=True)
        pipe = animate.apply_speed_options(device.apply_memory_options(pipe, spec["memory"], profile), settings)
        fitted, _ = fit_to(image, settings["width"], settings["height"])
        return lambda: animate.svd_frames(pipe, fitted, settings, seed=0)
    profile = Profile("full", "cuda", "bfloat16", "benchmark")
    distilled = backend == "ltx-distilled"
    pipe = (full_size.ltx_distilled if distilled else full_size.ltx)("cuda", torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    pipe = device.apply_memory_options(pipe, spec["memory"], profile)
    settings = animate.ltx_settings(profile, distilled, **{k: v for k, v in settings.items()
                                                             if k not in ("compile",)})
    fitted, _ = fit_to(image, settings["width"], settings["height"])
    return lambda: animate.ltx_frames(pipe, [(fitted, 0)], settings, seed=0)


def tiny_call(spec: dict, image):
    """A function that runs one tiny case on the CPU (the pipeline is loaded before it is returned)."""
    from helpers import animate
    from helpers.core.profiles import get_profile

    profile = get_profile("tiny")
    backend, memory, overrides = spec["backend"], spec["memory"], spec["overrides"]
    if backend == "app":
        from helpers.app import Studio

        studio, out = Studio(profile), Path(os.environ["COURSE_OUTPUTS"]) / "bench_app.mp4"
        return lambda: studio.make_video(image, overrides["backend"], out=out)
    if backend == "svd":
        settings = animate.svd_settings(profile, memory=memory, **overrides)
        pipe = animate.load_svd(profile, settings)
        return lambda: animate.animate_image(image, profile, pipe=pipe, **{**overrides, "memory": memory})
    distilled = backend == "ltx-distilled"
    settings = animate.ltx_settings(profile, distilled, memory=memory, **overrides)
    pipe = animate.load_ltx(profile, settings)
    return lambda: animate.animate_ltx([(image, 0)], None, profile, pipe=pipe, distilled=distilled,
                                       **{**overrides, "memory": memory})


def timed(call, cuda: bool) -> float:
    """Seconds of one call (the GPU's queue drained before and after)."""
    import torch

    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    call()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def run_one(spec: dict) -> list[dict]:
    """Measure one configuration, or a group taking turns, in this process; returns JSON-able records."""
    import torch

    from helpers.core.demo_images import demo_image

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    image = demo_image("sunset")
    cuda = spec["device"] == "cuda"
    members = spec.get("members") or {spec["name"]: spec}
    calls, load_s, first_s, times = {}, {}, {}, {name: [] for name in members}
    for name, member in members.items():
        start = time.perf_counter()
        calls[name] = full_size_call(member, image) if spec["kind"] == "full" else tiny_call(member, image)
        load_s[name] = time.perf_counter() - start
    rss_loaded = current_rss_mb()
    for name, call in calls.items():  # first call: warm-up (and compilation, and the app's model load)
        first_s[name] = timed(call, cuda)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(spec["repeats"]):
        for name, call in calls.items():  # a group takes turns, call by call
            times[name].append(timed(call, cuda))
    records = []
    for name in members:
        label = f"{spec['name']}: {name}" if spec.get("members") else name
        record = {"name": label, "median_s": statistics.median(times[name]), "times_s": times[name],
                  "load_s": load_s[name], "first_call_s": first_s[name], "rss_after_load_mb": rss_loaded,
                  "peak_rss_mb": peak_rss_mb()}
        if cuda:
            record["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 1024**2
            record["gpu"] = torch.cuda.get_device_name(0)
        records.append(record)
    return records


def count_params() -> None:
    pipe = build_full_svd("meta")
    for name in ("unet", "vae", "image_encoder"):
        count = sum(p.numel() for p in getattr(pipe, name).parameters())
        print(f"{name:14s} {count / 1e6:8.1f} M parameters")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full-size", action="store_true",
                        help="full-size SVD-XT / LTX-Video with random weights (GPU)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile (full size)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs after the first call")
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
        specs = [dict(kind="full", name=name, backend=backend, memory=memory, overrides=overrides, compile=compiled)
                 for name, (backend, memory, overrides, compiled) in FULL_CASES.items() if args.compile or not compiled]
    else:
        specs = [dict(kind="tiny", name=name, backend=backend, memory=memory, overrides=overrides)
                 for name, (backend, memory, overrides) in TINY_CASES.items()]
        specs += [dict(kind="tiny", name=group, members={
                      label: dict(backend=backend, memory=memory, overrides=overrides)
                      for label, (backend, memory, overrides) in members.items()})
                  for group, members in TINY_GROUPS.items()]
    specs = [s for s in specs if not args.only or args.only in s["name"]]
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_animate_{os.getpid()}"
    # a fresh compile cache per run: a "first call" with torch.compile really compiles
    env = dict(os.environ, COURSE_PROFILE="tiny", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT),
               COURSE_OUTPUTS=str(scratch), TORCHINDUCTOR_CACHE_DIR=str(scratch / "inductor"))
    records = []
    for spec in specs:
        spec.update(device=args.device, repeats=args.repeats, threads=args.threads)
        result = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        line = next((l for l in result.stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            print(f"{spec['name']}: failed\n{result.stderr[-1500:]}", file=sys.stderr)
            continue
        records.extend(json.loads(line[len("RESULT "):]))
        print(f"done: {spec['name']}", file=sys.stderr)
    shutil.rmtree(scratch, ignore_errors=True)
    import torch

    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
               f"torch threads {args.threads or 'default'}")
    print(f"\nMachine: {machine}; first call, then the median of {args.repeats} timed run(s); groups take turns "
          "in one process (RSS: the group's)\n")
    gpu = args.device == "cuda"
    print("| configuration | median time (s) | first call (s) | load (s) | RSS after load (MB) | peak RSS (MB) |"
          + (" peak CUDA (MB) |" if gpu else ""))
    print("|---|---:|---:|---:|---:|---:|" + ("---:|" if gpu else ""))
    for r in records:
        row = (f"| {r['name']} | {r['median_s']:.2f} | {r['first_call_s']:.2f} | {r['load_s']:.2f} | "
               f"{r['rss_after_load_mb']:.0f} | {r['peak_rss_mb']:.0f} |")
        print(row + (f" {r['peak_cuda_mb']:.0f} |" if gpu else ""))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "records": records}, indent=2) + "\n")


if __name__ == "__main__":
    main()
