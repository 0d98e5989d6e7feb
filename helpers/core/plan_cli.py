"""``python -m helpers plan``: what a stage or notebook needs on the GPU, in RAM and on disk (helpers.core.plan)."""

from __future__ import annotations

import argparse
import os

from helpers.core.hardware import GPU_CLASSES

PLANNED_STAGES = ("flux", "slides", "svd", "ltx", "ltx_distilled")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", choices=PLANNED_STAGES, help="one model stage (default: every model notebook)")
    parser.add_argument("--notebook", choices=("05", "06", "07", "09", "10"), help="one notebook as a whole")
    parser.add_argument("--gpu-class", choices=GPU_CLASSES, default=None,
                        help="t4 (no native bfloat16: the T4 plan) or bf16 (A100/L4/H100); "
                             "default: t4 for colab, bf16 for full")
    parser.add_argument("--detail", action="store_true", help="also list every component and the activations")


def run(args: argparse.Namespace) -> int:
    from helpers.core.plan import NOTEBOOKS, format_table, notebook_plan, over_budget, stage_plan

    profile = args.profile or os.environ.get("COURSE_PROFILE") or "colab"
    if profile == "tiny":
        print("tiny runs small random-weight twins (a few MB); showing the colab plan (--profile full for the other)")
        profile = "colab"
    if args.stage:
        plans = [stage_plan(args.stage, profile, args.gpu_class)]
        print(format_table(plans, detail=args.detail))
    else:
        plans = []
        for notebook in [args.notebook] if args.notebook else NOTEBOOKS:
            plan = notebook_plan(notebook, profile, args.gpu_class)
            plans.append(plan)
            print(f"\nnotebook {notebook}")
            print(format_table(plan.stages, plan, detail=args.detail))
    problems = [line for plan in plans for line in over_budget(plan)]
    print("\n" + ("\n".join(f"DOES NOT FIT: {line}" for line in problems) if problems else "everything fits the budget"))
    return 0
