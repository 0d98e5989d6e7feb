"""Time (and on a GPU, peak memory) of curation, keyframes and Flux.1 refinement (notebooks 04-05).

Each case runs in a fresh Python process on a scratch outputs folder, so timings and peak memory are its own:
peak CPU RSS from ``resource.getrusage``; on a GPU also ``torch.cuda.max_memory_allocated``. The median of
``--repeats`` runs after one warm-up is reported.

Tiny profile on the CPU (random-weight Flux twin; curation on 64 stand-in or model samples):

    .venv/bin/python benchmarks/bench_flux.py --threads 2

Full-size FLUX.1 architecture with random weights (``COURSE_WEIGHTS=random``: no download) on a GPU,
one 1024x576 img2img refinement with 4 steps, per memory option:

    .venv/bin/python benchmarks/bench_flux.py --full-size

(``nf4`` cannot be measured this way: it quantises weights while loading them from the Hub.)
Results go to docs/benchmarks.md by hand, with the command and the machine.
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
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASE_CODE = r'''
import json, os, resource, sys, time
sys.path.insert(0, os.environ["BENCH_ROOT"])
import torch
case, repeats = sys.argv[1], int(sys.argv[2])
from helpers.core.profiles import get_profile
profile = get_profile(os.environ.get("BENCH_PROFILE", "tiny"))
if os.environ.get("BENCH_THREADS"):
    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
from helpers import curate, keyframes, flux

def run():
    if case == "curate (64 samples, no bits/dim)":
        curate.curate(profile=profile, likelihood=False)
    elif case == "keyframes (2 from 16 curated)":
        keyframes.make_keyframes(profile=profile)
    elif case.startswith("refine"):
        flux.refine_keyframes(profile=profile, pipe=PIPE)

curate.curate(profile=profile, likelihood=False)            # inputs for the later cases
keyframes.make_keyframes(profile=profile)
PIPE = None
if case.startswith("refine"):
    memory = case.split("memory ")[-1].rstrip(")")
    start = time.perf_counter()
    PIPE = flux.load_flux(profile.settings("flux")["model"], profile, memory)
    load_s = time.perf_counter() - start
else:
    load_s = 0.0
if torch.cuda.is_available():
    torch.cuda.reset_peak_memory_stats()
run()                                                        # warm-up
times = []
for _ in range(repeats):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
gpu = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
print(json.dumps({"times": times, "load_s": load_s, "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "gpu_gb": gpu}))
'''

TINY_CASES = ["curate (64 samples, no bits/dim)", "keyframes (2 from 16 curated)", "refine 2 keyframes (memory none)"]
FULL_CASES = ["refine 2 keyframes (memory none)", "refine 2 keyframes (memory model_offload)",
              "refine 2 keyframes (memory sequential_offload)"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full-size", action="store_true", help="full FLUX.1 architecture, random weights, GPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    cases = FULL_CASES if args.full_size else TINY_CASES
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"{'case':<48} {'median s':>9} {'load s':>7} {'RSS GB':>7} {'GPU GB':>7}")
    for case in cases:
        with tempfile.TemporaryDirectory() as scratch:
            env = dict(os.environ, BENCH_ROOT=str(ROOT), COURSE_OUTPUTS=scratch,
                       BENCH_PROFILE="full" if args.full_size else "tiny")
            env.setdefault("COURSE_CACHE", str(ROOT / ".cache"))
            if args.full_size:
                env["COURSE_WEIGHTS"] = "random"
            if args.threads:
                env["BENCH_THREADS"] = str(args.threads)
            done = subprocess.run([sys.executable, "-c", CASE_CODE, case, str(args.repeats)], env=env,
                                  capture_output=True, text=True, cwd=ROOT)
            if done.returncode:
                print(f"{case:<48} failed: {done.stderr.strip().splitlines()[-1]}")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            gpu = f"{result['gpu_gb']:.2f}" if result["gpu_gb"] is not None else "-"
            print(f"{case:<48} {statistics.median(result['times']):9.2f} {result['load_s']:7.2f} "
                  f"{result['rss_gb']:7.2f} {gpu:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
