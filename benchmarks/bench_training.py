"""PixelCNN++ training speed on this machine: images/s and test bits/dim reached within time budgets.

Runs the course's own loop (``helpers.train.train``) with the tiny profile's settings (or
``--profile``), evaluating often, and reports for each budget the best test bits/dim of an
evaluation finished within it. Training throughput excludes evaluation time.

    COURSE_PROFILE=tiny .venv/bin/python benchmarks/bench_training.py --budgets 30 60 --threads 2

``--step-variants`` instead times one training step (forward, backward, Adam) of the profile's model,
eager float32 against channels-last, ``torch.compile`` and bfloat16 autocast (only where the CPU has
native bf16: avx512_bf16 or AMX in /proc/cpuinfo), and at 1 and 2 threads, as ratios in one run:

    COURSE_PROFILE=tiny .venv/bin/python benchmarks/bench_training.py --step-variants --set nr_filters=32

Results go to docs/benchmarks.md by hand, with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time


class BudgetReached(Exception):
    pass


def cpu_has_native_bf16() -> bool:
    """avx512_bf16 or AMX (amx_bf16) among the CPU flags (Linux); False where they cannot be read."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def time_steps(make_step, repeats: int, warmup: int = 3) -> float:
    """Median seconds of ``repeats`` calls of the step ``make_step()`` returns, after ``warmup`` calls."""
    import statistics

    step = make_step()
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_variants(settings: dict, repeats: int) -> None:
    """One training step per variant, timed; printed as ms and as speed-up over eager float32 (1 thread)."""
    import contextlib
    import math

    import torch

    from helpers.pixelcnnpp import PixelCNNpp, discretized_mix_logistic_nll

    size, batch = settings["image_size"], settings["batch_size"]
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 17, (batch, 1, size, size), generator=g).float() / 8 - 1
    labels = torch.randint(0, 10, (batch,), generator=g)

    def make(channels_last=False, compiled=False, bf16=False):
        def build():
            torch.manual_seed(0)
            model = PixelCNNpp(1, settings["nr_resnet"], settings["nr_filters"], settings["nr_logistic_mix"],
                               0.0, num_classes=10)
            inputs = x.contiguous(memory_format=torch.channels_last) if channels_last else x
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            forward = torch.compile(model) if compiled else model
            optimizer = torch.optim.Adam(model.parameters(), 1e-3)

            def step():
                autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
                with autocast:
                    params = forward(inputs, labels)
                loss = discretized_mix_logistic_nll(inputs, params.float()).mean() / (size * size * math.log(2))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            return step
        return build

    variants = [("eager float32", {}), ("channels-last", {"channels_last": True}), ("torch.compile", {"compiled": True})]
    if cpu_has_native_bf16():
        variants.append(("bf16 autocast", {"bf16": True}))
    else:
        print("bf16 autocast: not measured, this CPU has no native bf16 (no avx512_bf16 / amx_bf16)")
    results = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, options in variants:
            try:
                results[name, threads] = time_steps(make(**options), repeats)
            except Exception as err:  # e.g. torch.compile without a C++ compiler
                print(f"{name}, {threads} thread(s): failed ({type(err).__name__}: {str(err).splitlines()[0]})")
    base = results[("eager float32", 1)]
    print(f"model: digits {size}x{size}, nr_resnet {settings['nr_resnet']}, nr_filters {settings['nr_filters']}, "
          f"batch {batch}, class-conditional; median of {repeats} steps; load average {os.getloadavg()[0]:.1f}")
    print("| variant | threads | ms/step | speed-up over eager float32, 1 thread |")
    print("|---|---|---|---|")
    for (name, threads), seconds in results.items():
        print(f"| {name} | {threads} | {1000 * seconds:.1f} | {base / seconds:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--budgets", type=float, nargs="+", default=[30, 60], help="seconds of wall time")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--eval-every", type=int, default=25, help="steps between test evaluations")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a pixelcnnpp setting, e.g. --set nr_filters=64")
    parser.add_argument("--step-variants", action="store_true",
                        help="time one step: eager float32 vs channels-last, torch.compile, bf16, threads")
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per variant (--step-variants)")
    args = parser.parse_args()

    import torch

    from helpers.core.profiles import get_profile
    from helpers.train import Progress, parse_sets, train

    if args.threads:
        torch.set_num_threads(args.threads)
    profile = get_profile(args.profile)
    settings = profile.settings("pixelcnnpp")
    if args.step_variants:
        step_variants({**settings, **parse_sets(args.set)}, args.repeats)
        return
    overrides = {**parse_sets(args.set), "eval_every": args.eval_every, "samples_every": 0}
    limit = max(args.budgets)
    records: list[dict] = []
    start = time.perf_counter()

    def record(progress: Progress) -> None:
        records.append({"wall_s": time.perf_counter() - start, "step": progress.step,
                        "test_bpd": progress.test_bpd, "train_bpd": progress.train_bpd,
                        "images_per_s": progress.images_per_s})
        if records[-1]["wall_s"] > limit:
            raise BudgetReached

    with tempfile.TemporaryDirectory() as out:
        try:
            train(profile, steps=10**7, out_dir=out, resume=False, callback=record, progress=False, **overrides)
        except BudgetReached:
            pass
    config = {**settings, **overrides}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"model: {config['dataset']} {config['image_size']}x{config['image_size']}, nr_resnet "
          f"{config['nr_resnet']}, nr_filters {config['nr_filters']}, batch {config['batch_size']}")
    speeds = sorted(r["images_per_s"] for r in records[1:] or records)  # the first interval includes warm-up
    print(f"training throughput: median {speeds[len(speeds) // 2]:.0f} images/s (evaluation excluded)")
    for budget in args.budgets:
        within = [r for r in records if r["wall_s"] <= budget]
        if within:
            best = min(within, key=lambda r: r["test_bpd"])
            print(f"within {budget:.0f} s: step {within[-1]['step']}, best test bits/dim {best['test_bpd']:.3f}")
        else:
            print(f"within {budget:.0f} s: no evaluation finished")
    print(json.dumps(records))


if __name__ == "__main__":
    main()
