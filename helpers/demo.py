"""``python -m helpers demo``: the whole series in order, ending in outputs/final/final.mp4.

Each step is the same command a learner can run alone (``python -m helpers <stage>``), reading
and writing the standard folders under outputs/. ``make demo`` runs this in the tiny profile.
"""

from __future__ import annotations

import argparse
import time

from helpers.core.outputs import outputs_dir

# (stage, extra arguments, what it does) in the order of the course.
CHAIN: list[tuple[str, list[str], str]] = [
    ("train", [], "train PixelCNN++ on the profile's dataset (02)"),
    ("sample", [], "sample images from the trained model (03)"),
    ("curate", [], "score, de-duplicate and keep the best samples (04)"),
    ("keyframes", [], "choose, harmonise and upscale keyframes (04)"),
    ("refine", [], "refine the keyframes with Flux.1 img2img into outputs/refined (05)"),
    ("animate", ["--long", "50"], "animate the keyframes into a >= 50-frame video (06)"),
    ("post", [], "interpolate, grade, title and export (08)"),
    ("slides", [], "side road: the example storyboard as a slide video -> final/slides.mp4 (09)"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", choices=[c[0] for c in CHAIN],
                        help="start the chain at this stage (earlier outputs must exist)")


def run(args: argparse.Namespace) -> int:
    from helpers.core.cli import main

    stages = [c[0] for c in CHAIN]
    chain = CHAIN[stages.index(args.start):] if args.start else CHAIN
    profile = ["--profile", args.profile] if args.profile else []
    timings = []
    for index, (stage, extra, what) in enumerate(chain, 1):
        print(f"\n=== [{index}/{len(chain)}] python -m helpers {stage} {' '.join(extra)}: {what}", flush=True)
        start = time.perf_counter()
        code = main([stage, *profile, *extra])
        timings.append((stage, time.perf_counter() - start))
        if code:
            print(f"demo stopped: stage {stage!r} exited with code {code}")
            return code
    print("\nstage        seconds")
    for stage, seconds in timings:
        print(f"{stage:<12} {seconds:7.1f}")
    print(f"total        {sum(s for _, s in timings):7.1f}")
    final = outputs_dir() / "final"
    print(f"\nfinished: {final / 'final.mp4'} (and the slide video {final / 'slides.mp4'})")
    return 0
