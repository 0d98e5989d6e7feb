"""The ``animate`` command line: ``python -m helpers animate [IMAGE] [--out OUT.mp4] [--backend ...]``."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from PIL import Image

from helpers.core.cli import float_range, int_range
from helpers.core.images import load_image
from helpers.core.outputs import check_output_file
from helpers.core.profiles import Profile, get_profile
from helpers.core.registry import made_by, made_by_note
from helpers.core.video import write_mp4
from helpers.animate.ltx import (animate_ltx, evenly_spaced, ltx_check_size, ltx_frames_at_least, ltx_frames_for,
                                  ltx_settings, parse_keyframe, resolve_frame_index)
from helpers.animate.svd import animate_image, animate_keyframes, animate_long, svd_settings

BACKENDS = ("svd", "ltx", "ltx-distilled")
# Ranges of the command line's numbers, checked before any model loads.
MAX_FRAMES = 257        # frames of one generation (LTX-Video's longest; SVD-XT is trained on 25)
MAX_TOTAL_FRAMES = 2000  # frames of a chained or keyframed video (--long, --seconds)
MAX_STEPS = 200
MAX_SIDE = 2048


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", nargs="?", help="the still image to animate (any format PIL reads); "
                        "leave it out to animate the keyframes in outputs/keyframes")
    parser.add_argument("--out", help="where to write the video (.mp4); default outputs/videos/animation.mp4 "
                        "(animation_ltx.mp4 / animation_ltx-distilled.mp4 for the LTX backends), "
                        "or outputs/videos/IMAGE_NAME.mp4 for an image")
    parser.add_argument("--backend", choices=BACKENDS, default="svd",
                        help="svd: Stable Video Diffusion (image only); ltx: LTX-Video 0.9.5 (prompt + keyframes); "
                        "ltx-distilled: LTX-Video 0.9.8 distilled, the fast one (8 steps, no CFG)")
    parser.add_argument("--seed", type=int_range(0, 2**63 - 1), default=0, help="random seed (same seed, same video)")
    parser.add_argument("--num-frames", "--frames", type=int_range(2, MAX_FRAMES), dest="num_frames",
                        help=f"frames per generation, 2-{MAX_FRAMES} (SVD-XT is trained on 25; LTX needs 8k+1)")
    parser.add_argument("--steps", type=int_range(1, MAX_STEPS), dest="num_inference_steps",
                        help=f"denoising steps, 1-{MAX_STEPS}")
    parser.add_argument("--long", type=int_range(2, MAX_TOTAL_FRAMES), metavar="N",
                        help="at least N frames: chained SVD segments (svd) or one longer generation (ltx)")
    parser.add_argument("--seconds", type=float_range(0, 120, low_open=True),
                        help="video length in seconds, up to 120 (frames = seconds x frame rate)")
    parser.add_argument("--width", type=int_range(16, MAX_SIDE),
                        help="video width (svd: a multiple of 8, best 64; ltx: of 32)")
    parser.add_argument("--height", type=int_range(16, MAX_SIDE),
                        help="video height (svd: a multiple of 8, best 64; ltx: of 32)")
    svd = parser.add_argument_group("svd only")
    svd.add_argument("--motion-bucket-id", type=int_range(1, 255),
                     help="more motion with higher values (1-255, default 127)")
    svd.add_argument("--fps", type=int_range(1, 60),
                     help="frame rate the model is conditioned on, 1-60 (not the export rate)")
    svd.add_argument("--export-fps", type=float_range(0, 120, low_open=True), help="frame rate of the written MP4")
    svd.add_argument("--decode-chunk-size", type=int_range(1, MAX_FRAMES),
                     help="frames decoded at once (less memory, more flicker)")
    svd.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                     help="UNet convolutions in channels-last layout (default: the profile's; on for GPUs)")
    svd.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                     help="torch.compile the UNet: a slow first call, then faster (pays off over many clips)")
    ltx = parser.add_argument_group("ltx and ltx-distilled only")
    ltx.add_argument("--prompt", help='motion and atmosphere, e.g. "slow dolly-in, soft lighting"')
    ltx.add_argument("--keyframe", action="append", default=[], metavar="IMAGE@FRAME",
                     help="an image placed at a frame index (repeatable; @-1 or @end = last frame)")
    ltx.add_argument("--strength", type=float_range(0, 1), help="how strongly keyframes hold (0-1, default 1)")


def _default_out(args: argparse.Namespace) -> Path:
    from helpers.core.outputs import stage_dir

    if args.image:
        return stage_dir("videos") / f"{Path(args.image).stem}.mp4"
    return stage_dir("videos") / ("animation.mp4" if args.backend == "svd" else f"animation_{args.backend}.mp4")


def _check_flags(args: argparse.Namespace) -> None:
    if args.backend == "svd":
        used = [f for f, v in (("--prompt", args.prompt), ("--keyframe", args.keyframe),
                               ("--strength", args.strength)) if v not in (None, [])]
        if used:
            raise ValueError(f"{', '.join(used)} need --backend ltx or ltx-distilled (SVD takes one image and no text)")
    else:
        used = [f for f, v in (("--motion-bucket-id", args.motion_bucket_id), ("--fps", args.fps),
                               ("--decode-chunk-size", args.decode_chunk_size), ("--compile", args.compile),
                               ("--channels-last", args.channels_last)) if v is not None]
        if used:
            raise ValueError(f"{', '.join(used)} are SVD options; LTX-Video does not take them")
    for name in ("num_frames", "long", "num_inference_steps"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "num_inference_steps" else 2):
            raise ValueError(f"--{name.replace('_', '-')} is too small: {value}")
    if args.seconds is not None and args.seconds <= 0:
        raise ValueError(f"--seconds must be positive, got {args.seconds}")


def _load_inputs(args: argparse.Namespace) -> tuple[list[Image.Image], list[int | None]]:
    """The images to animate and their frame indices (None = place automatically). Bad input fails here."""
    images, indices = [], []
    if args.image:
        image, notes = load_image(args.image)
        for note in notes:
            print(f"note: {args.image}: {note}")
        images.append(image)
        indices.append(0 if args.keyframe else None)
    for spec in args.keyframe:
        path, index = parse_keyframe(spec)
        image, notes = load_image(path)
        for note in notes:
            print(f"note: {path}: {note}")
        images.append(image)
        indices.append(index)
    if not images:
        from helpers.keyframes import animation_keyframes

        for path in animation_keyframes():  # refined (real weights) or the keyframes; says which
            image, _ = load_image(path)
            images.append(image)
            indices.append(None)
    return images, indices


def run(args: argparse.Namespace) -> int:
    _check_flags(args)
    if args.out is not None and Path(args.out).suffix.lower() != ".mp4":
        raise ValueError(f"{args.out}: the output must end in .mp4")
    out = check_output_file(Path(args.out) if args.out else _default_out(args))  # before any generation
    images, indices = _load_inputs(args)  # bad input fails here, before any model loads
    profile = get_profile(args.profile)
    print(profile.banner())
    start = time.perf_counter()
    if args.backend == "svd":
        frames, settings = _run_svd(args, profile, images)
        fps = settings["export_fps"]
    else:
        frames, settings = _run_ltx(args, profile, images, indices)
        fps = settings["frame_rate"]
    write_mp4(frames, out, fps=fps)
    tiny = made_by_note(made_by(settings["model"], profile))
    print(f"wrote {out}: {len(frames)} frames at {settings['width']}x{settings['height']}, "
          f"{fps:g} fps, in {time.perf_counter() - start:.1f} s{tiny}")
    return 0


def _run_svd(args, profile: Profile, images: list[Image.Image]):
    names = ("num_frames", "num_inference_steps", "motion_bucket_id", "fps", "export_fps",
             "decode_chunk_size", "width", "height", "channels_last", "compile")
    overrides = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    for n in ("width", "height"):
        if n in overrides and (overrides[n] < 16 or overrides[n] % 8):
            raise ValueError(f"--{n} must be a multiple of 8 and at least 16, got {overrides[n]}")
        if n in overrides and overrides[n] % 64:
            print(f"note: --{n} {overrides[n]} is not a multiple of 64; SVD works best at 1024x576")
    settings = svd_settings(profile, **overrides)
    total = args.long
    if args.seconds is not None:
        total = max(total or 0, math.ceil(args.seconds * settings["export_fps"]))
    if total is not None and total > MAX_TOTAL_FRAMES:
        raise ValueError(f"--seconds {args.seconds:g} at --export-fps {settings['export_fps']:g} makes {total} "
                         f"frames; the most is {MAX_TOTAL_FRAMES}")
    if len(images) == 1 and total is None:
        return animate_image(images[0], profile, seed=args.seed, **overrides)
    if total is None:  # several keyframes: one segment each, crossfaded
        total = len(images) * settings["num_frames"] - (len(images) - 1) * settings["overlap"]
    if len(images) == 1:  # each loads SVD, and frees it when done
        frames = animate_long(images[0], total, profile, seed=args.seed, **overrides)
    else:
        frames = animate_keyframes(images, total, profile, seed=args.seed, **overrides)
    return frames, settings


def _run_ltx(args, profile: Profile, images: list[Image.Image], indices: list[int | None]):
    distilled = args.backend == "ltx-distilled"
    overrides = {n: getattr(args, n) for n in ("num_frames", "num_inference_steps", "width", "height", "strength")
                 if getattr(args, n) is not None}
    settings = ltx_settings(profile, distilled, **overrides)
    if args.seconds is not None and args.num_frames is None:
        overrides["num_frames"] = ltx_frames_for(args.seconds, settings["frame_rate"])
    if args.long is not None:
        overrides["num_frames"] = max(overrides.get("num_frames", 0), ltx_frames_at_least(args.long))
    settings = ltx_settings(profile, distilled, **overrides)
    if settings["num_frames"] > MAX_FRAMES:
        raise ValueError(f"--seconds/--long ask for {settings['num_frames']} frames; LTX-Video makes at most "
                         f"{MAX_FRAMES} in one generation")
    ltx_check_size(settings["width"], settings["height"], settings["num_frames"])
    n = settings["num_frames"]
    automatic = iter(evenly_spaced(len(images), n))
    keyframes = []
    for image, index in zip(images, indices):
        spot = next(automatic)
        keyframes.append((image, resolve_frame_index(spot if index is None else index, n)))
    return animate_ltx(keyframes, args.prompt, profile, seed=args.seed, distilled=distilled, **overrides)
