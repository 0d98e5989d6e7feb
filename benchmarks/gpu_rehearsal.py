"""The colab stages under a T4's limits, on whatever GPU is lent: measured peaks next to the memory plan.

One short script (under 8 minutes on one GPU, a deadline it keeps itself) for the day a GPU is available. It
follows the T4 plan (COURSE_GPU_CLASS=t4: float16 Flux with float32 text encoders and NF4, SVD float16, LTX-Video
float32 with a float8-stored transformer) and caps this process at what a Colab T4 leaves to PyTorch's allocator:
``BUDGETS["colab"].gpu`` (14.5 GiB; a T4 shows 14.56-14.75) minus the CUDA context, which the allocator does not
count (measured: memory in use before CUDA starts, from nvidia-smi, against ``torch.cuda.mem_get_info`` after;
assumed 0.5 GiB, typically 0.3-0.5, where that cannot be measured), through
``torch.cuda.set_per_process_memory_fraction``. It also watches RSS against Colab's 12.7 GB of RAM. Each stage runs
in a process of its own with random full-size weights (COURSE_WEIGHTS=random, no download): load, one generation of
two steps, then the peak GPU memory and RSS are printed beside helpers.core.plan's prediction. Stages: Flux img2img,
Kontext (twice the image tokens), the slides' text-to-image (T5 freed before denoising), SVD, LTX-Video, and one
load-free-load (LTX-Video loaded, freed with free_pipeline, then SVD loaded and run in the same process).

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
# stage -> the block of helpers.core.profiles it plans with; "ltx-svd": LTX-Video loaded and freed, then SVD
STAGES = {"flux": "flux", "kontext": "flux_kontext", "slides": "slides", "svd": "svd", "ltx": "ltx", "ltx-svd": "svd"}
ASSUMED_CONTEXT_GIB = 0.5  # where nvidia-smi cannot say: a CUDA context with cuBLAS/cuDNN is typically 0.3-0.5 GiB
COLAB_RAM_GB = 12.7
STAGE_TIMEOUT_S = 150
DEADLINE_S = 7.5 * 60      # the whole command, so it stays under 8 minutes on one GPU
STEPS = 2                  # denoising steps per generation: enough to reach every activation peak once


def budget_gib() -> float:
    from helpers.core.plan import BUDGETS, GiB

    return BUDGETS["colab"].gpu / GiB


def cap_fraction(total_bytes: int, context_bytes: int) -> float:
    """The share of the lent GPU PyTorch's allocator may use: the T4 budget minus the CUDA context."""
    from helpers.core.plan import BUDGETS

    return min(1.0, (BUDGETS["colab"].gpu - context_bytes) / total_bytes)


def context_bytes(used_before: int | None, total: int, free: int, reserved: int) -> int:
    """The CUDA context of this process: what the GPU has in use now (``total - free``) beyond what was in use
    before CUDA started (``used_before``) and what the allocator holds (``reserved``)."""
    if used_before is None:
        return int(ASSUMED_CONTEXT_GIB * 2**30)
    return max(0, total - free - used_before - reserved)


def gpu_used_before_cuda() -> int | None:
    """Bytes in use on GPU 0 before this process starts CUDA (nvidia-smi: it creates no context here), or None."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                             capture_output=True, text=True, timeout=20).stdout
        return int(float(out.strip().splitlines()[0]) * 2**20)
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def planned(stage: str):
    from helpers.core.plan import stage_plan

    return stage_plan(STAGES[stage], "colab", "t4")


def dry_run(stages) -> int:
    from helpers.core.plan import format_table

    print("GPU rehearsal, dry run: nothing is loaded and nothing ran on a GPU.")
    print(format_table([planned(s) for s in stages], detail=True))
    cap = budget_gib()
    for s in stages:
        plan = planned(s)
        first = "build LTX-Video at full size, run nothing, free_pipeline it, check the GPU and RSS drop; then " \
            if s == "ltx-svd" else ""
        print(f"\n{s}: would run in its own process with COURSE_PROFILE=colab COURSE_WEIGHTS=random COURSE_GPU_CLASS=t4:"
              f"\n  1. {first}build {plan.model} at full size with random weights on CUDA, memory {plan.memory}"
              f"\n  2. empty the CUDA cache, reset the peaks, cap the process at {cap:g} GiB of GPU memory minus the "
              f"CUDA context (measured; {ASSUMED_CONTEXT_GIB:g} GiB assumed if it cannot be)"
              f"\n  3. one generation of {STEPS} steps at the colab size, a thread watching RSS against {COLAB_RAM_GB} GB"
              f"\n  4. print peak GPU memory (allocated / reserved, + the context) and RSS next to the plan: "
              f"GPU {plan.gpu_peak / 2**30:.1f} GiB, RAM {plan.ram_weights / 2**30:.1f} GiB of weights")
    print(f"\nAll stages in one command, stopped at {DEADLINE_S / 60:g} minutes (stages not reached are reported).")
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
    if stage in ("flux", "kontext"):
        from helpers import flux

        settings = dict(profile.settings(STAGES[stage]), num_inference_steps=STEPS)
        pipe = flux.load_flux(settings["model"], profile, settings["memory"], settings["dtype"])
        if stage == "kontext":
            return pipe, lambda: flux.kontext_edit(pipe, image, settings["prompt"], settings, steps=STEPS)
        return pipe, lambda: flux.refine_image(pipe, image, settings["prompt"], settings)
    if stage == "slides":
        from helpers import slides

        settings = dict(profile.settings("slides"), num_inference_steps=STEPS)
        pipe = slides.load_text_to_image(profile, settings)
        board = slides.parse_storyboard({"slides": [{"title": "one", "prompt": "a lighthouse at dusk", "duration": 2}]})
        slides.load_text_to_image = lambda *_: pipe  # the stage's own path: it owns the pipeline and frees T5 first
        return pipe, lambda: slides.generate_stills(board, profile, settings=settings, progress=False)
    if stage in ("svd", "ltx-svd"):
        from helpers.animate import animate_image, load_svd

        pipe = load_svd(profile, profile.settings("svd"))
        return pipe, lambda: animate_image(image, profile, pipe=pipe, num_inference_steps=STEPS)
    from helpers.animate import animate_ltx, load_ltx

    pipe = load_ltx(profile, profile.settings("ltx"))
    return pipe, lambda: animate_ltx([image], profile=profile, pipe=pipe, num_inference_steps=STEPS)


def load_and_free_ltx(profile) -> dict:
    """The load-free-load stage's first half: LTX-Video loaded, then freed; what stays on the GPU and in RAM."""
    import torch

    from helpers.animate import load_ltx
    from helpers.core.device import free_pipeline

    before = _rss()
    pipe = load_ltx(profile, profile.settings("ltx"))
    alias = pipe  # a name a notebook cell may still hold
    loaded_gib, loaded_rss = torch.cuda.memory_allocated() / 2**30, _rss()
    pipe = free_pipeline(pipe)
    left = torch.cuda.memory_allocated() / 2**30
    return {"ltx_loaded_gib": loaded_gib, "ltx_left_gib": left, "ltx_rss_freed_gb": (loaded_rss - _rss()) / 1e9,
            "ltx_rss_loaded_gb": (loaded_rss - before) / 1e9, "leak": left > 0.25 or alias.transformer is not None}


def child(stage: str) -> dict:
    """One stage in this process: load, cap, generate, measure."""
    used_before = gpu_used_before_cuda()  # before torch starts CUDA in this process
    import torch

    from helpers.core.profiles import get_profile

    profile = get_profile()
    base = _rss()
    freed = load_and_free_ltx(profile) if stage == "ltx-svd" else {}
    start = time.perf_counter()
    pipe, generate = load_and_generate(stage, profile)
    load_s = time.perf_counter() - start
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    free, total = torch.cuda.mem_get_info()
    context = context_bytes(used_before, total, free, torch.cuda.memory_reserved())
    torch.cuda.set_per_process_memory_fraction(cap_fraction(total, context))
    watch = RssWatch(COLAB_RAM_GB * 1e9)
    watch.start()
    error = None
    start = time.perf_counter()
    try:
        generate()
    except torch.cuda.OutOfMemoryError as err:
        error = f"out of memory under the {(budget_gib() - context / 2**30):.2f} GiB cap: {str(err).splitlines()[0]}"
    watch.stop.set()
    watch.join()
    torch.cuda.synchronize()
    free, total = torch.cuda.mem_get_info()  # lazily loaded kernels grow the context during the run
    context_after = context_bytes(used_before, total, free, torch.cuda.memory_reserved())
    plan = planned(stage)
    reserved = torch.cuda.max_memory_reserved()
    return {"stage": stage, "model": plan.model, "device": torch.cuda.get_device_name(0), "load_s": round(load_s, 1),
            "generate_s": round(time.perf_counter() - start, 1), "error": error,
            "gpu_allocated_gib": torch.cuda.max_memory_allocated() / 2**30, "gpu_reserved_gib": reserved / 2**30,
            "context_gib": context_after / 2**30, "context_measured": used_before is not None,
            "fits_t4": reserved + context_after <= budget_gib() * 2**30,
            "gpu_planned_gib": plan.gpu_peak / 2**30, "rss_peak_gb": watch.peak / 1e9,
            "over_colab_ram": watch.peak > COLAB_RAM_GB * 1e9,
            "ram_weights_measured_gib": (watch.peak - base) / 2**30, "ram_weights_planned_gib": plan.ram_weights / 2**30,
            **freed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the steps; load nothing")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated, from: " + ", ".join(STAGES))
    parser.add_argument("--child", choices=list(STAGES), help=argparse.SUPPRESS)
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
    results, start = [], time.monotonic()
    for stage in stages:
        left = DEADLINE_S - (time.monotonic() - start)
        if left < 30:
            results.append({"stage": stage, "error": f"not run: the {DEADLINE_S / 60:g}-minute deadline was reached"})
            continue
        timeout = min(STAGE_TIMEOUT_S, left)
        try:
            done = subprocess.run([sys.executable, __file__, "--child", stage], env=env, capture_output=True,
                                  text=True, timeout=timeout)
            lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
            results.append(json.loads(lines[-1][7:]) if lines else {"stage": stage, "error": done.stderr[-800:]})
        except subprocess.TimeoutExpired:
            results.append({"stage": stage, "error": f"over {timeout:.0f} s"})
        print(report(results[-1:]), flush=True)  # each stage as it ends: a cut-off run still says something
    print(report(results))
    return 0 if all(not r.get("error") for r in results) else 1


def report(results: list[dict]) -> str:
    lines = [f"{'stage':<8}{'GPU reserved':>14}{'+context':>10}{'planned':>10}{'RSS peak':>11}{'weights in RAM':>16}"
             f"{'planned':>10}  notes"]
    for r in results:
        if "gpu_reserved_gib" not in r:
            lines.append(f"{r['stage']:<8}  FAILED: {r.get('error')}")
            continue
        notes = [r["device"], f"load {r['load_s']} s, generate {r['generate_s']} s"]
        notes += ["OVER THE T4 BUDGET"] * (not r.get("fits_t4", True)) + ["OVER COLAB RAM"] * r["over_colab_ram"]
        notes += [] if r.get("context_measured", True) else [f"context assumed {ASSUMED_CONTEXT_GIB:g} GiB"]
        if "ltx_left_gib" in r:
            notes.append(f"LTX-Video freed first: {r['ltx_loaded_gib']:.1f} -> {r['ltx_left_gib']:.2f} GiB on the GPU, "
                         f"{r['ltx_rss_freed_gb']:.1f} GB of RSS back" + (", LEAK" if r["leak"] else ""))
        notes += [r["error"]] if r["error"] else []
        lines.append(f"{r['stage']:<8}{r['gpu_reserved_gib']:>10.1f} GiB{r.get('context_gib', ASSUMED_CONTEXT_GIB):>6.2f} GiB"
                     f"{r['gpu_planned_gib']:>6.1f} GiB{r['rss_peak_gb']:>8.1f} GB{r['ram_weights_measured_gib']:>12.1f} GiB"
                     f"{r['ram_weights_planned_gib']:>6.1f} GiB  {'; '.join(notes)}")
    return "\n".join(lines) + (f"\n(the T4 budget: {budget_gib():g} GiB for reserved + context; planned GPU includes "
                               "0.5 GiB assumed for the CUDA context, which torch does not count)")


if __name__ == "__main__":
    sys.exit(main())
