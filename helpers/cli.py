"""``python -m helpers <stage> ...``: one subcommand per stage of the course.

Each stage lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their stage runs, so ``--help`` is quick.
Bad input (:class:`helpers.images.BadInputError`, or ``ValueError`` from argument checks)
ends with exit code 2 and one line on stderr: no traceback, nothing half-written.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# stage -> (module, one-line description). The order is the order of the course.
STAGES: dict[str, tuple[str, str]] = {
    "profile": ("helpers.profiles_cli", "show the profile that would be used and why"),
    "train": ("helpers.train", "train PixelCNN++ on a dataset (notebook 02)"),
    "sample": ("helpers.sample", "sample many images from a trained PixelCNN++ (notebook 03)"),
    "curate": ("helpers.curate", "score samples, drop duplicates, keep the best (notebook 04)"),
    "keyframes": ("helpers.keyframes", "choose, harmonise and upscale keyframes (notebook 04)"),
    "refine": ("helpers.flux", "refine keyframes with Flux.1 img2img / Kontext / Fill (notebook 05)"),
    "animate": ("helpers.animate", "turn an image into a video: SVD or LTX-Video (notebooks 06-07)"),
    "post": ("helpers.post", "interpolate, grade, edit and export a video (notebook 08)"),
    "slides": ("helpers.slides", "a slide video from a storyboard of prompts (notebook 09)"),
    "app": ("helpers.app", "serve the video studio web app (notebook 10)"),
    "demo": ("helpers.demo", "run the whole series in order, ending in outputs/final/final.mp4"),
}


class CourseArgumentParser(argparse.ArgumentParser):
    """argparse, but usage errors exit 2 with one line (argparse already uses code 2)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def top_parser() -> argparse.ArgumentParser:
    lines = "\n".join(f"  {name:<10} {text}" for name, (_, text) in STAGES.items())
    parser = CourseArgumentParser(
        prog="python -m helpers",
        description="Pixels to Motion: every stage of the course from the command line.",
        epilog=f"stages:\n{lines}\n\nEach stage takes --profile tiny|colab|full and --help.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stage", choices=list(STAGES), metavar="STAGE", help="one of the stages below")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def stage_parser(stage: str, module) -> argparse.ArgumentParser:
    parser = CourseArgumentParser(prog=f"python -m helpers {stage}", description=STAGES[stage][1])
    parser.add_argument("--profile", choices=["tiny", "colab", "full"], default=None,
                        help="tiny (random weights, any CPU), colab (~16 GB GPU) or full (>= 40 GB GPU); "
                             "default: $COURSE_PROFILE, else detected from the hardware")
    module.add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    top = top_parser().parse_args(argv[:1] or ["--help"])
    module = importlib.import_module(STAGES[top.stage][0])
    args = stage_parser(top.stage, module).parse_args(argv[1:])
    from helpers.device import GenerationError
    from helpers.images import BadInputError

    try:
        return int(module.run(args) or 0)
    except BadInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except GenerationError as err:  # NaN / black / constant output: the message names the fix
        print(f"error: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted: nothing half-written was kept", file=sys.stderr)
        return 130
    except RuntimeError as err:
        if "out of memory" in str(err).lower():
            print(f"error: the GPU ran out of memory. {oom_advice(top.stage)}", file=sys.stderr)
            return 3
        raise


def oom_advice(stage: str) -> str:
    """The lighter option that fits, per stage, for an out-of-memory message."""
    return {
        "animate": "Try --profile colab (model offload, forward chunking), fewer --num-frames, "
                   "a smaller --decode-chunk-size, or a smaller --width/--height.",
        "refine": "Try --profile colab (sequential CPU offload) or a smaller size.",
        "train": "Try a smaller --batch-size or a smaller model (fewer filters/resnets).",
        "sample": "Try a smaller --batch-size.",
    }.get(stage, "Try --profile colab or smaller sizes.")


if __name__ == "__main__":
    sys.exit(main())
