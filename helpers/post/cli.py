"""The whole chain and its command line: ``python -m helpers post [VIDEO ...] [--out final.mp4]``.

Without arguments the command reads ``outputs/videos/`` (``animation.mp4`` when present, else every
video there in name order, else a stand-in) and writes ``outputs/final/final.mp4``, the profile's
other formats beside it, and ``final.json``, a record of what was done. The set is made whole in a staging
folder and swapped in by renames, so an interruption or a full disk leaves the previous set or the new
one, never a mix (and says which); one run writes a set at a time. Inputs are checked from their headers
(size x frames against :data:`MAX_BYTES`) before a frame is decoded; a clip made by a random-weight model
(it carries the RANDOM WEIGHTS band) keeps the stamp, a learner's own clip gets none.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from helpers.core.cli import float_range, int_range
from helpers.core.outputs import write_json
from helpers.core.registry import made_by_note
from helpers.core.standins import is_standin
from helpers.core.images import stamp_band_height
from helpers.post.editing import add_caption, boomerang, crossfade_clips, fit_clip, stamp_frames, title_card, trim
from helpers.post.exporting import FORMATS, export, format_table, parse_formats, quality_table, shrink_to_width
from helpers.post.frames import (Frames, as_frames, model_stamp, check_clip, check_positive,
                                 inspect_input, read_video)
from helpers.post.grading import LUT_NAMES, apply_lut, check_window, deflicker, load_lut, match_to_keyframe
from helpers.post.interpolation import METHODS, change_speed, check_factor, check_method, interpolate, retime
from helpers.post.torch_path import DEVICES, describe_device, resolve_device


HOLD_S = 1.0  # a clip of one frame is held this long, so that it is seen (not just the title card)


def post_settings(profile=None, **overrides: Any) -> dict[str, Any]:
    """The profile's ``post`` block with ``overrides`` (unknown names are refused)."""
    from helpers.core.profiles import get_profile

    settings = (profile or get_profile()).settings("post")
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown post setting(s) {sorted(unknown)}; known: {', '.join(settings)}")
    settings.update(overrides)
    return settings


def check_settings(settings: dict[str, Any]) -> None:
    """Every problem with ``settings`` as one clear ValueError, before any work is done."""
    check_factor(settings["interpolate"])
    check_method(settings["method"], tuple(METHODS))
    resolve_device(settings["device"])
    check_positive(settings["fps"], "fps", "frames per second")
    if settings["crossfade_s"] < 0:
        raise ValueError(f"crossfade must be >= 0 s (0 = a cut), got {settings['crossfade_s']}")
    if not 0.0 <= settings["match_keyframe"] <= 1.0:
        raise ValueError(f"match_keyframe strength must be between 0 and 1, got {settings['match_keyframe']}")
    check_window(settings["deflicker"])
    if settings["gif_width"] is not None and settings["gif_width"] < 2:
        raise ValueError(f"gif_width must be at least 2 pixels (or None), got {settings['gif_width']}")
    if not 0.0 <= settings["lut_strength"] <= 1.0:
        raise ValueError(f"LUT strength must be between 0 and 1, got {settings['lut_strength']}")
    if settings["lut"] not in (None, "", "none"):
        load_lut(settings["lut"])
    if settings["title"].strip():
        check_positive(settings["title_s"], "title card duration")
    parse_formats(settings["formats"])


def produce(clips: Sequence[Sequence], fps: float, settings: dict[str, Any], keyframe=None,
            stamp: bool | str = False, start: float = 0.0, end: float | None = None, speed: float = 1.0,
            boomerang_clip: bool = False, caption: str = "") -> tuple[Frames, list[str]]:
    """Clips (all at ``fps``) -> the finished frames at ``settings["fps"]``, and a list of the steps done.

    Order: fit to one size, join (crossfades), trim, speed, match the keyframe, deflicker, LUT,
    interpolate, retime to the final fps, hold a single frame for :data:`HOLD_S`, boomerang, caption, title card,
    model stamp (``stamp``: True or
    "random" for RANDOM WEIGHTS, "trained" for the course's trained twin, False for none).
    The LUT and the optical flow run on ``settings["device"]`` (:func:`helpers.post.torch_path.resolve_device`).
    """
    check_settings(settings)
    clips = [as_frames(c) for c in clips]
    if not clips:
        raise ValueError("no clips to post-produce (the list is empty)")
    for index, clip in enumerate(clips):
        check_clip(clip, f"clip {index + 1}")
    steps = []
    size = clips[0][0].shape[1::-1]
    if any(c[0].shape[1::-1] != size for c in clips[1:]):
        clips = [fit_clip(c, size) for c in clips]
        steps.append(f"fitted every clip to {size[0]}x{size[1]}")
    overlap = round(settings["crossfade_s"] * fps) if len(clips) > 1 else 0
    overlap = min(overlap, *(len(c) for c in clips))
    frames = crossfade_clips(clips, overlap)
    if len(clips) > 1:
        steps.append(f"joined {len(clips)} clips with {overlap}-frame crossfades")
    if start or end is not None:
        frames = trim(frames, fps, start, end)
        steps.append(f"trimmed to {start:g}-{'end' if end is None else f'{end:g}'} s")
    single = len(frames) == 1
    if speed != 1.0:
        frames = change_speed(frames, speed, "blend")
        steps.append(f"speed x{speed:g}")
    if keyframe is not None and settings["match_keyframe"] > 0:
        frames = match_to_keyframe(frames, keyframe, settings["match_keyframe"])
        steps.append(f"colours matched to the keyframe (strength {settings['match_keyframe']:g})")
    if settings["deflicker"] > 1:
        frames = deflicker(frames, settings["deflicker"])
        steps.append(f"deflickered ({settings['deflicker']}-frame moving average of brightness)")
    if settings["lut"] not in (None, "", "none") and settings["lut_strength"] > 0:
        frames = apply_lut(frames, settings["lut"], settings["lut_strength"], settings["device"])
        steps.append(f"LUT {settings['lut']} at strength {settings['lut_strength']:g} "
                     f"({describe_device(settings['device'])})")
    factor = settings["interpolate"]
    if factor > 1:
        frames = interpolate(frames, factor, settings["method"], settings["device"])
        where = f", {describe_device(settings['device'])}" if settings["method"] == "flow" else ""
        steps.append(f"interpolated x{factor} ({settings['method']}{where})")
    if abs(fps * factor - settings["fps"]) > 1e-9:
        frames = retime(frames, fps * factor, settings["fps"], "blend")
        steps.append(f"retimed from {fps * factor:g} to {settings['fps']:g} fps (duration kept)")
    if single:  # one frame alone would flash by (or vanish into the title card's crossfade)
        count = max(2, round(HOLD_S * settings["fps"]))
        frames = frames[:1] * count
        steps.append(f"a single frame: held for {HOLD_S:g} s ({count} frames)")
    if boomerang_clip:
        frames = boomerang(frames)
        steps.append("boomerang (forwards, then backwards)")
    if caption.strip():
        frames = add_caption(frames, caption, bottom=stamp_band_height(size, stamp) if stamp else 0)
        steps.append("caption")
    if settings["title"].strip():
        count = max(1, round(settings["title_s"] * settings["fps"]))
        card = title_card(settings["title"], size, count)
        fade = min(round(settings["crossfade_s"] * settings["fps"]), count, len(frames))
        frames = crossfade_clips([card, frames], fade)
        steps.append(f"title card {settings['title']!r} ({settings['title_s']:g} s, {fade}-frame crossfade)")
    if stamp:
        frames = stamp_frames(frames, "trained" if stamp == "trained" else "random")  # True means "random"
        steps.append("stamped SMALL TWIN TRAINED ON DIGITS on every frame" if stamp == "trained"
                     else "stamped RANDOM WEIGHTS on every frame")
    return frames, steps


# --------------------------------------------------------------------------------------------
# Command line


MAX_BYTES = 4 * 2**30  # the most the finished frames may take in memory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="*", help="videos to post-produce, joined in this order; default: "
                        "outputs/videos/animation.mp4, else every video in outputs/videos/ by name")
    parser.add_argument("--out", help="the final MP4; other formats are written beside it with their own "
                        "suffix (default: outputs/final/final.mp4). Other files in its folder stay: only the set "
                        "this stage wrote there before (listed in .NAME.files.json) is replaced, and a file of "
                        "the same name it did not write, or an input, is refused (exit 2)")
    parser.add_argument("--formats", help=f"comma-separated, from {', '.join(FORMATS)} (mp4 is always written); "
                        "default: the profile's")
    parser.add_argument("--gif-width", type=int_range(16, 4096), dest="gif_width",
                        help="scale the GIF down to at most this width in pixels (default: the profile's)")
    parser.add_argument("--interpolate", type=int_range(1, 8),
                        help="frame interpolation factor, 1-8 (2: n -> 2n-1 frames; 1 = off)")
    parser.add_argument("--method", choices=list(METHODS), help="how in-between frames are made")
    parser.add_argument("--device", choices=list(DEVICES),
                        help="where the optical flow and the LUT run: auto (the GPU when there is one, else torch "
                             "on the CPU), numpy (the reference), cpu or cuda; default: the profile's")
    parser.add_argument("--fps", type=float_range(0, 120, low_open=True),
                        help="frame rate of the final video, up to 120 (the clip is retimed to it)")
    parser.add_argument("--crossfade", type=float_range(0, 10), dest="crossfade_s", help="seconds of crossfade between clips")
    parser.add_argument("--lut", help=f"a .cube file or one of {', '.join(LUT_NAMES)}; 'none' = no LUT")
    parser.add_argument("--lut-strength", type=float_range(0, 1), dest="lut_strength", help="0 (off) to 1 (the full look)")
    parser.add_argument("--keyframe", help="match colours to this image (strength 1 unless --match says otherwise); "
                        "default the first keyframe `animate` uses (helpers.keyframes.animation_keyframes) when the "
                        "profile's match strength is above 0")
    parser.add_argument("--match", type=float_range(0, 1), dest="match_keyframe", help="colour-match strength, 0 (off) to 1")
    parser.add_argument("--deflicker", type=int_range(1, 51), help="frames in the brightness moving average (odd; 1 = off)")
    parser.add_argument("--title", help="title card text ('' = no title card)")
    parser.add_argument("--title-seconds", type=float_range(0, 30, low_open=True), dest="title_s",
                        help="title card duration in seconds, up to 30")
    parser.add_argument("--caption", default="", help="a caption burnt into every frame")
    parser.add_argument("--start", type=float_range(0, 36_000), default=0.0, help="trim: start at this second of the joined clips")
    parser.add_argument("--end", type=float_range(0, 36_000, low_open=True), help="trim: end at this second")
    parser.add_argument("--speed", type=float_range(0.1, 10), default=1.0,
                        help="play faster (2) or slower (0.5), 0.1-10")
    parser.add_argument("--boomerang", action="store_true", help="play forwards then backwards (a seamless loop)")


def check_memory(clips: Sequence[Sequence], fps: float, settings: dict[str, Any], speed: float = 1.0,
                 boomerang_clip: bool = False) -> None:
    """Refuse, before any work, settings whose frames would not fit in memory (:data:`MAX_BYTES`)."""
    height, width = np.asarray(clips[0][0]).shape[:2]
    check_memory_for(sum(len(c) for c in clips), width, height, fps, settings, speed, boomerang_clip)


def check_memory_for(frames_in: int, width: int, height: int, fps: float, settings: dict[str, Any],
                     speed: float = 1.0, boomerang_clip: bool = False, input_bytes: int = 0) -> None:
    """:func:`check_memory` from numbers alone (``frames_in`` frames of ``width`` x ``height`` at ``fps``, read
    from the videos' headers), so that nothing is decoded before the answer is known."""
    peak = max(frames_in / speed * settings["interpolate"], frames_in / fps / speed * settings["fps"])
    peak = math.ceil(peak * (2 if boomerang_clip else 1) + settings["title_s"] * settings["fps"])
    size = max(peak * width * height * 3, input_bytes)
    if input_bytes > MAX_BYTES:
        raise ValueError(f"the video decodes to {input_bytes / 2**30:.1f} GiB of frames (more than "
                         f"{MAX_BYTES / 2**30:.0f} GiB): shorten or shrink it first, or post-produce several "
                         "videos one at a time")
    if size > MAX_BYTES:
        raise ValueError(f"these settings make about {peak} frames of {width}x{height} ({size / 2**30:.1f} GiB, "
                         f"more than {MAX_BYTES / 2**30:.0f} GiB): lower --fps or --interpolate, or raise --speed")


def find_inputs(given: Sequence[str]) -> list[Path]:
    """The videos to work on: ``given``, else outputs/videos/animation.mp4, else all videos there, else a stand-in.

    A stand-in (its folder's record says so, :func:`helpers.core.standins.is_standin`) is never joined into
    real videos: found beside them it is left out, and used or given, it is named as one in one line."""
    from helpers.core.outputs import stage_dir
    from helpers.core.standins import ensure_video, is_standin, video_paths

    if given:
        paths = [Path(p) for p in given]
    elif (stage_dir("videos") / "animation.mp4").exists():
        paths = [stage_dir("videos") / "animation.mp4"]
    else:
        found = video_paths()
        real = [p for p in found if not is_standin(p)]
        if real and len(real) < len(found):
            print(f"note: left out {', '.join(p.name for p in found if p not in real)}: a stand-in (no model), "
                  "not your work, is never joined into your videos")
        return real or [ensure_video()]
    standins = [p for p in paths if is_standin(p)]
    if standins:
        print(f"note: {', '.join(str(p) for p in standins)} is a stand-in (a slow zoom into a demo image, no model), "
              "not your work; the record (.json) says so")
    return paths


def _settings_from(args: argparse.Namespace, profile) -> dict[str, Any]:
    """The profile's post settings with the flags given; every problem refused before any work."""
    names = ("interpolate", "method", "device", "fps", "crossfade_s", "lut", "lut_strength", "match_keyframe",
             "deflicker", "title", "title_s", "gif_width")
    overrides = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.keyframe and args.match_keyframe is None:
        overrides["match_keyframe"] = 1.0  # naming a keyframe means: match it
    if args.formats is not None:
        overrides["formats"] = tuple(parse_formats(args.formats))
    settings = post_settings(profile, **overrides)
    check_settings(settings)
    check_positive(args.speed, "--speed", "(1 = unchanged)")
    if args.start < 0:
        raise ValueError(f"--start must be >= 0 s, got {args.start}")
    if args.end is not None and args.end <= args.start:
        raise ValueError(f"--end ({args.end:g} s) must be after --start ({args.start:g} s)")
    return settings


def _output(args: argparse.Namespace) -> Path:
    from helpers.core.outputs import check_output_file, stage_dir

    out = Path(args.out) if args.out else stage_dir("final") / "final.mp4"
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"{out}: --out must end in .mp4 (other formats are written beside it)")
    return check_output_file(out)


def _keyframe(args: argparse.Namespace, settings: dict[str, Any]):
    from helpers.core.images import load_image

    if args.keyframe:
        return load_image(args.keyframe)[0]
    if settings["match_keyframe"] > 0:
        from helpers.keyframes import animation_keyframes

        animated = animation_keyframes(standins=False, verbose=False)  # what animate used by default
        return load_image(animated[0])[0] if animated else None
    return None


def _read_inputs(paths: Sequence[Path], settings: dict[str, Any], args: argparse.Namespace) -> tuple[list, float]:
    """Every input's header first (size, frames, rate: the memory check), then its frames at one rate."""
    infos = [inspect_input(p) for p in paths]
    rate = infos[0].fps
    frames_in = sum(round(i.frames * rate / i.fps) for i in infos)
    try:
        check_memory_for(frames_in, infos[0].width, infos[0].height, rate, settings, args.speed, args.boomerang,
                         input_bytes=sum(i.bytes for i in infos))
    except ValueError as err:  # name the videos: the message is about them
        names = ", ".join(str(p) for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        raise ValueError(f"{names}: {err}") from None
    clips, rates = [], []
    for path, info in zip(paths, infos):
        frames, fps = read_video(path, info)
        clips.append(frames)
        rates.append(fps)
    if len(set(round(r, 3) for r in rates)) > 1:
        clips = [retime(c, r, rates[0]) for c, r in zip(clips, rates)]
        print(f"note: clips had different frame rates; all retimed to {rates[0]:g} fps")
    return clips, rates[0]




def _export_set(frames: Frames, staging: Path, out: Path, settings: dict[str, Any]) -> tuple[dict, list]:
    """Every format into ``staging`` (named as they will be beside ``out``), and their quality table."""
    files = {}
    for fmt in parse_formats(settings["formats"]):
        clip = shrink_to_width(frames, settings["gif_width"]) if fmt == "gif" else frames
        files[fmt] = export(clip, staging / f"{out.stem}{FORMATS[fmt].suffix}", settings["fps"], fmt)
    rows = quality_table(frames, files)
    for row in rows:  # the record names the files where they will be, not where they were made
        row["file"] = str(out.with_suffix(Path(row["file"]).suffix))
    return {f: out.with_suffix(p.suffix) for f, p in files.items()}, rows


def _what_is_left(out: Path, run_id: str, before: list[str]) -> str:
    """After an interruption or a full disk: which set ``out``'s folder holds now (never a mix)."""
    import json

    try:
        current = json.loads(out.with_suffix(".json").read_text()).get("run")
    except (OSError, ValueError, AttributeError):
        current = None
    if current == run_id:
        return f"the new set is complete in {out.parent} ({', '.join(before) or out.name})"
    if before:
        return f"{out.parent} keeps the previous set ({', '.join(before)}); nothing of this run was kept"
    return f"no {out.stem} set was written to {out.parent}; nothing half-written was kept"


def run(args: argparse.Namespace) -> int:
    from helpers.core.outputs import writer_lock
    from helpers.core.profiles import get_profile

    profile = get_profile(args.profile)  # check everything that can be checked before reading or writing
    settings = _settings_from(args, profile)
    out = _output(args)
    keyframe = _keyframe(args, settings)
    print(profile.banner())
    print(f"post-production runs on: {describe_device(settings['device'])}")
    with writer_lock(out.with_suffix(""), f"the {out.stem} set ({out.stem}.mp4 and the files beside it)",
                     "wait for it to finish, or give --out another name"):
        return _produce_set(args, profile, settings, out, keyframe)


def _produce_set(args: argparse.Namespace, profile, settings: dict[str, Any], out: Path, keyframe) -> int:
    """Read, produce, export into a staging folder and swap the whole set in; say what is left if stopped."""
    import uuid

    from helpers.core.outputs import EnvironmentProblem, adopt, atomic_set, check_owned, clean_stale, set_members

    clean_stale(out.parent)  # a finished or killed run's staging folder, wherever --out points
    paths = find_inputs(args.videos)
    names = [f"{out.stem}{FORMATS[f].suffix}" for f in parse_formats(settings["formats"])] + [f"{out.stem}.json"]
    adopt(out.parent, out.stem, f"{out.stem}.json",  # a set written before manifests: named by its own record
          lambda data: [Path(r["file"]).name for r in data["files"]] if "run" in data else [])
    check_owned(out.parent, out.stem, names, "--out", inputs=paths)  # before any work: only its own set is touched
    order = [f.suffix for f in FORMATS.values()] + [".json"]  # the set's files named in format order, json last
    before = [p.name for p in sorted(set_members(out.parent, out.stem),
                                     key=lambda p: order.index(p.suffix) if p.suffix in order else len(order))]
    run_id = uuid.uuid4().hex
    try:
        start_time = time.perf_counter()
        clips, fps = _read_inputs(paths, settings, args)
        kinds = {model_stamp(c) for c in clips}  # only a tiny model's pixels keep (or get) its band
        stamp = "random" if "random" in kinds else "trained" if "trained" in kinds else False
        frames, steps = produce(clips, fps, settings, keyframe=keyframe, stamp=stamp, start=args.start,
                                end=args.end, speed=args.speed, boomerang_clip=args.boomerang, caption=args.caption)
        with atomic_set(out.parent, out.stem) as staging:
            files, rows = _export_set(frames, staging, out, settings)
            seconds = time.perf_counter() - start_time
            record = {"inputs": [str(p) for p in paths], "steps": steps, "fps": settings["fps"], "frames": len(frames),
                      "size": list(frames[0].shape[1::-1]), "seconds_of_video": round(len(frames) / settings["fps"], 3),
                      "files": rows, "profile": profile.name, "random_weights": profile.random_weights,
                      "stamped": bool(stamp), "stamp": stamp or None, "settings": settings, "device": describe_device(settings["device"]),
                      "took_s": round(seconds, 2), "run": run_id, "standin_inputs": [str(p) for p in paths if is_standin(p)]}
            write_json(staging / f"{out.stem}.json", record)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_what_is_left(out, run_id, before)) from None
    except EnvironmentProblem as err:  # name the file where it was going, not its staging folder
        path = out.parent / Path(err.path).name if ".set.partial" in err.path else err.path
        problem = err.problem.split(";")[0]
        raise EnvironmentProblem(path, f"{problem}; {_what_is_left(out, run_id, before)}", err.fix) from None
    _report(steps, rows, out, files, frames, settings, seconds, stamp, before)
    return 0


def _report(steps, rows, out: Path, files: dict, frames: Frames, settings: dict[str, Any], seconds: float,
            stamp: bool | str, before: list[str]) -> None:
    for step in steps:
        print(f"  - {step}")
    print(format_table(rows))
    if before:
        print(f"replaced the previous set in {out.parent} ({', '.join(before)}) as a whole")
    tiny = made_by_note("trained" if stamp == "trained" else "random" if stamp else "real")
    print(f"wrote {out} and {', '.join(str(p.name) for f, p in files.items() if f != 'mp4') or 'no other formats'}: "
          f"{len(frames)} frames at {settings['fps']:g} fps, {frames[0].shape[1]}x{frames[0].shape[0]}, "
          f"in {seconds:.1f} s{tiny}")
