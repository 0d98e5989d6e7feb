"""``python -m helpers <stage> ...``: one subcommand per stage of the course.

Each stage lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``. Modules are imported only when their stage runs, so ``--help`` is quick.
Bad input (:class:`helpers.core.images.BadInputError`, or ``ValueError`` from argument checks)
ends with exit code 2 and one line on stderr: no traceback, nothing half-written, and no empty
stage folder left behind. A ``ValueError`` raised inside a library (not by ``helpers``) is an
internal error, not bad input: it keeps its traceback and exit code 1.
Numeric flags take their range from :func:`int_range` / :func:`float_range`, checked by argparse
before any work starts. Problems of the machine (:class:`helpers.core.outputs.EnvironmentProblem`: the
work folder is a file, the disk is full, another run writes the same folder; a read-only folder) also
end with exit code 2 and one line naming the path and the fix.
"""

from __future__ import annotations

import argparse
import importlib
import math
import signal
import sys
from pathlib import Path
from typing import Callable

# stage -> (module, one-line description). The order is the order of the course.
STAGES: dict[str, tuple[str, str]] = {
    "profile": ("helpers.core.profiles_cli", "show the profile that would be used and why"),
    "plan": ("helpers.core.plan_cli", "what a stage or notebook needs on the GPU, in RAM and on disk"),
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

# The stage folder each of these stages writes, held for one writer at a time while the stage runs
# (train, sample and post hold the folder or file set they write themselves, wherever --out points).
WRITES: dict[str, str] = {"curate": "curated", "keyframes": "keyframes", "refine": "refined", "slides": "final"}


def _number(kind: type, low: float | None, high: float | None, low_open: bool = False) -> Callable[[str], float]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        too_low = low is not None and (value <= low if low_open else value < low)
        if not math.isfinite(value) or too_low or (high is not None and value > high):
            lo = "" if low is None else (f"> {low}" if low_open else f">= {low}")
            hi = "" if high is None else f"<= {high}"
            raise argparse.ArgumentTypeError(f"must be {' and '.join(x for x in (lo, hi) if x)}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def int_range(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for an integer in [low, high], e.g. ``type=int_range(1, 255)``."""
    return _number(int, low, high)  # type: ignore[return-value]


def float_range(low: float | None = None, high: float | None = None, low_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` for a finite number in [low, high] (``(low, high]`` with ``low_open``)."""
    return _number(float, low, high, low_open)


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
    try:  # usage errors and --help end here with argparse's code (2 / 0), also when called in-process
        top = top_parser().parse_args(argv[:1] or ["--help"])
        module = importlib.import_module(STAGES[top.stage][0])
        args = stage_parser(top.stage, module).parse_args(argv[1:])
    except SystemExit as done:
        return int(done.code or 0) if not isinstance(done.code, str) else 2
    from helpers.core.device import GenerationError
    from helpers.core.hardware import configure_threads
    from helpers.core.images import BadInputError
    from helpers.core.outputs import EnvironmentProblem, clean_stale, environment_problem, layout_dirs
    from helpers.core.profiles import get_profile

    try:  # tiny: one torch thread, as in the notebooks (two oversubscribe a busy 2-core machine)
        configure_threads(get_profile(getattr(args, "profile", None)))
    except ValueError:
        pass  # an unknown profile: the stage itself reports it, with its own message

    existed = {folder for folder in layout_dirs() if folder.is_dir()}
    for folder in existed:
        clean_stale(folder)  # what a finished or killed run (even SIGKILL) left; a running one's files stay
    previous = signal.signal(signal.SIGTERM, _interrupt) if _main_thread() else None
    try:
        return _run_stage(top.stage, module, args)
    except (BadInputError, EnvironmentProblem) as err:
        return _failed(f"error: {err}", 2, existed)
    except (ValueError, FileNotFoundError) as err:
        if not _raised_by_helpers(err):
            raise  # a library's internal error, not the learner's input: keep the traceback
        return _failed(f"error: {err}", 2, existed)
    except OSError as err:  # a read-only folder, a full disk, met by a library: one line, not a traceback
        problem = environment_problem(err)
        if problem is None:
            raise
        return _failed(f"error: {problem}", 2, existed)
    except GenerationError as err:  # NaN / black / constant output: the message names the fix
        return _failed(f"error: {err}", 3, existed)
    except KeyboardInterrupt as err:  # a stage may say which of its outputs are left (e.g. post's file set)
        return _failed(f"interrupted: {err.args[0] if err.args else 'nothing half-written was kept'}", 130, existed)
    except RuntimeError as err:
        if "out of memory" in str(err).lower():
            print(f"error: the GPU ran out of memory. {oom_advice(top.stage)}", file=sys.stderr)
            return 3
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _run_stage(stage: str, module, args: argparse.Namespace) -> int:
    """Run the stage, holding its folder's one-writer lock when it has one in :data:`WRITES`."""
    import contextlib

    from helpers.core.outputs import layout_dirs, writer_lock

    lock = contextlib.nullcontext()
    if stage in WRITES:
        folder = layout_dirs()[0] / WRITES[stage]
        lock = writer_lock(folder, f"the {WRITES[stage]} folder", f"wait for it to finish before running {stage}")
    with lock:
        return int(module.run(args) or 0)


def _interrupt(signum, frame) -> None:
    """SIGTERM ends a stage like Ctrl-C: atomic writes remove their temporary files on the way out."""
    raise KeyboardInterrupt


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _failed(line: str, code: int, existed: set[Path]) -> int:
    """Print the one line and remove the empty stage folders this run created."""
    from helpers.core.outputs import remove_new_empty_dirs

    print(" ".join(line.split()), file=sys.stderr)  # one line, whatever the message held
    remove_new_empty_dirs(existed)
    return code


def _raised_by_helpers(err: BaseException) -> bool:
    """True when the innermost frame that raised ``err`` is this package's code."""
    here = Path(__file__).resolve().parents[1]  # the helpers package
    tb, last = err.__traceback__, None
    while tb is not None:
        last, tb = tb, tb.tb_next
    if last is None:
        return True
    return Path(last.tb_frame.f_code.co_filename).resolve().is_relative_to(here)


def oom_advice(stage: str) -> str:
    """The lighter option that fits, per stage, for an out-of-memory message."""
    return {
        "animate": "Try --profile colab (model offload, forward chunking), fewer --num-frames, "
                   "a smaller --decode-chunk-size, or a smaller --width/--height.",
        "refine": "Try --profile colab (sequential CPU offload) or a smaller size.",
        "train": "Try a smaller --batch-size or a smaller model (fewer filters/resnets).",
        "sample": "Try a smaller --batch-size.",
        "post": "Try --device cpu: post-production runs on the CPU too (torch, or --device numpy).",
    }.get(stage, "Try --profile colab or smaller sizes.")


if __name__ == "__main__":
    sys.exit(main())
