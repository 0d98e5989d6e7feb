"""The colab stages under a T4's limits, on whatever GPU is lent: measured peaks next to the memory plan.

One short script (a few minutes on one GPU) for the day a GPU is available. It follows the T4 plan
(COURSE_GPU_CLASS=t4: float16 Flux with float32 text encoders and NF4, SVD float16, LTX-Video float32 with a
float8-stored transformer), caps this process at 15 GiB of GPU memory (torch.cuda.set_per_process_memory_fraction)
and watches its RSS against Colab's 12.7 GB of RAM. Each stage (Flux NF4, SVD with model offload, LTX-Video) runs in
a process of its own with random full-size weights (COURSE_WEIGHTS=random, no download): load, one generation of
two steps, then the peak GPU memory and RSS are printed beside helpers.core.plan's prediction.

    python benchmarks/gpu_rehearsal.py              # on a CUDA machine
    python benchmarks/gpu_rehearsal.py --dry-run    # anywhere: the plan and the steps it would run

Limits of the rehearsal: random weights are built on the GPU at full size and quantised there (the GPU test mode),
not read from disk as on Colab, so the *loading* peak is not Colab's; the cap is set after loading and applies to
generation. Random weights make noise, not pictures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STAGES = ("flux", "svd", "ltx")
CAP_GIB = 15.0
COLAB_RAM_GB = 12.7
STAGE_TIMEOUT_S = 150


def planned(stage: str):
    from helpers.core.plan import stage_plan

    return stage_plan(stage, "colab", "t4")


def dry_run(stages) -> int:
    from helpers.core.plan import format_table

    print("GPU rehearsal, dry run: nothing is loaded and nothing ran on a GPU.")
    print(format_table([planned(s) for s in stages], detail=True))
    for s in stages:
        plan = planned(s)
        print(f"\n{s}: would run in its own process with COURSE_PROFILE=colab COURSE_WEIGHTS=random COURSE_GPU_CLASS=t4:"
              f"\n  1. build {plan.model} at full size with random weights on CUDA, memory {plan.memory}"
              f"\n  2. empty the CUDA cache, reset the peaks, cap the process at {CAP_GIB:g} GiB of GPU memory"
              f"\n  3. one generation of 2 steps at the colab size, a thread watching RSS against {COLAB_RAM_GB} GB"
              f"\n  4. print peak GPU memory (allocated / reserved) and RSS next to the plan: "
              f"GPU {plan.gpu_peak / 2**30:.1f} GiB, RAM {plan.ram_weights / 2**30:.1f} GiB of weights")
    return 0


class RssWatch(threading.Thread):
    """Polls this process's RSS every 0.1 s; records the peak and whether it passed ``limit`` bytes."""

    def __init__(self, limit: float):
        super().__init__(daemon=True)
        self.limit, self.peak, self.stop = limit, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.1)


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def load_and_generate(stage: str, profile):
    """Load the stage's pipeline the way its notebook does, then return a function making one generation."""
    from PIL import Image

    image = Image.new("RGB", (1024, 576), (90, 120, 160))
    if stage == "flux":
        from helpers import flux

        settings = profile.settings("flux")
        pipe = flux.load_flux(settings["model"], profile, settings["memory"], settings["dtype"])
        return pipe, lambda: flux.refine_image(pipe, image, settings["prompt"], settings)
    if stage == "svd":
        from helpers.animate import animate_image, load_svd

        pipe = load_svd(profile, profile.settings("svd"))
        return pipe, lambda: animate_image(image, profile, pipe=pipe)
    from helpers.animate import animate_ltx, load_ltx

    pipe = load_ltx(profile, profile.settings("ltx"))
    return pipe, lambda: animate_ltx([image], profile=profile, pipe=pipe)


def child(stage: str) -> dict:
    """One stage in this process: load, cap, generate, measure."""
    import torch

    from helpers.core.profiles import get_profile

    profile = get_profile()
    base = _rss()
    start = time.perf_counter()
    pipe, generate = load_and_generate(stage, profile)
    load_s = time.perf_counter() - start
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, CAP_GIB * 2**30 / total))
    watch = RssWatch(COLAB_RAM_GB * 1e9)
    watch.start()
    error = None
    start = time.perf_counter()
    try:
        generate()
    except torch.cuda.OutOfMemoryError as err:
        error = f"out of memory under the {CAP_GIB:g} GiB cap: {str(err).splitlines()[0]}"
    watch.stop.set()
    watch.join()
    plan = planned(stage)
    return {"stage": stage, "model": plan.model, "device": torch.cuda.get_device_name(0), "load_s": round(load_s, 1),
            "generate_s": round(time.perf_counter() - start, 1), "error": error,
            "gpu_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
            "gpu_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
            "gpu_planned_gib": plan.gpu_peak / 2**30, "rss_peak_gb": watch.peak / 1e9,
            "over_colab_ram": watch.peak > COLAB_RAM_GB * 1e9,
            "ram_weights_measured_gib": (watch.peak - base) / 2**30, "ram_weights_planned_gib": plan.ram_weights / 2**30}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the steps; load nothing")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated, from: " + ", ".join(STAGES))
    parser.add_argument("--child", choices=STAGES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    if any(s not in STAGES for s in stages):
        parser.error(f"--stages takes {', '.join(STAGES)}")
    if args.dry_run:
        return dry_run(stages)
    if args.child:
        print("RESULT " + json.dumps(child(args.child)))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to rehearse (use --dry-run to see the plan and the steps)", file=sys.stderr)
        return 2
    env = dict(os.environ, COURSE_PROFILE="colab", COURSE_WEIGHTS="random", COURSE_GPU_CLASS="t4")
    results = []
    for stage in stages:
        try:
            done = subprocess.run([sys.executable, __file__, "--child", stage], env=env, capture_output=True,
                                  text=True, timeout=STAGE_TIMEOUT_S)
            lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
            results.append(json.loads(lines[-1][7:]) if lines else {"stage": stage, "error": done.stderr[-800:]})
        except subprocess.TimeoutExpired:
            results.append({"stage": stage, "error": f"over {STAGE_TIMEOUT_S} s"})
    print(report(results))
    return 0 if all(not r.get("error") for r in results) else 1


def report(results: list[dict]) -> str:
    lines = [f"{'stage':<6}{'GPU reserved':>14}{'planned':>10}{'RSS peak':>11}{'weights in RAM':>16}{'planned':>10}  notes"]
    for r in results:
        if "gpu_reserved_gib" not in r:
            lines.append(f"{r['stage']:<6}  FAILED: {r.get('error')}")
            continue
        notes = [r["device"], f"load {r['load_s']} s, generate {r['generate_s']} s"]
        notes += ["OVER COLAB RAM"] * r["over_colab_ram"] + ([r["error"]] if r["error"] else [])
        lines.append(f"{r['stage']:<6}{r['gpu_reserved_gib']:>10.1f} GiB{r['gpu_planned_gib']:>6.1f} GiB"
                     f"{r['rss_peak_gb']:>8.1f} GB{r['ram_weights_measured_gib']:>12.1f} GiB"
                     f"{r['ram_weights_planned_gib']:>6.1f} GiB  {'; '.join(notes)}")
    return "\n".join(lines) + "\n(planned GPU includes 0.5 GiB assumed for the CUDA context, which torch does not count)"


if __name__ == "__main__":
    sys.exit(main())
