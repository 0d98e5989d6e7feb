"""PixelCNN++ training speed on this machine: images/s and test bits/dim reached within time budgets.

Runs the course's own loop (``helpers.train.train``) with the tiny profile's settings (or
``--profile``), evaluating often, and reports for each budget the best test bits/dim of an
evaluation finished within it. Training throughput excludes evaluation time.

    COURSE_PROFILE=tiny .venv/bin/python benchmarks/bench_training.py --budgets 30 60 --threads 2

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--budgets", type=float, nargs="+", default=[30, 60], help="seconds of wall time")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--eval-every", type=int, default=25, help="steps between test evaluations")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a pixelcnnpp setting, e.g. --set nr_filters=64")
    args = parser.parse_args()

    import torch

    from helpers.core.profiles import get_profile
    from helpers.train import Progress, parse_sets, train

    if args.threads:
        torch.set_num_threads(args.threads)
    profile = get_profile(args.profile)
    settings = profile.settings("pixelcnnpp")
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
