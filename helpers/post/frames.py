"""Frames in and out, shared by every post-production job: a clip is a list of HxWx3 uint8 arrays.

Also the checks every job makes on its input (one clear line each), and the pipe that feeds raw frames
to ffmpeg (for ``minterpolate``, ``lut3d`` and the exports).
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from helpers.core.images import BadInputError, check_file

Frames = list  # a list of HxWx3 uint8 arrays

STANDIN_NAME = "standin.mp4"  # helpers.core.standins.ensure_video's stand-in: no model, nothing to stamp
# Clips made without any model, so never stamped "random weights": the stand-in, and notebook 08's own lesson clip.
MODEL_FREE_NAMES = (STANDIN_NAME, "moving_shapes.mp4")
# Mean difference (0-255) between a frame's bottom band and the same frame stamped again, below which the
# frame already carries the stamp (H.264 at crf 18 keeps it within about 10; a picture differs by 30 or more).
STAMP_TOLERANCE = 12.0


def as_frames(frames: Sequence) -> Frames:
    """PIL images or arrays (uint8, or floats in 0..255) -> a list of HxWx3 uint8 arrays."""
    out = []
    for frame in frames:
        if isinstance(frame, Image.Image):
            out.append(np.asarray(frame.convert("RGB")))
            continue
        array = np.asarray(frame)
        if array.dtype != np.uint8:
            array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        out.append(array)
    return out


def inspect_input(path: str | Path):
    """What a video file holds (:class:`helpers.core.video.VideoInfo`), read from its header and packet
    timestamps without decoding; a missing or unusable file is a :class:`BadInputError` saying which:
    empty, cut short, no video stream (only audio), no frames, or not a video."""
    from helpers.core.video import UnreadableVideoError, inspect_video

    path = check_file(path, "a video file")
    try:
        return inspect_video(path)
    except UnreadableVideoError as err:
        raise BadInputError(path, err.problem) from None
    except (OSError, RuntimeError, ValueError):
        raise BadInputError(path, "not a video ffmpeg can read") from None


def read_video(path: str | Path, info=None) -> tuple[Frames, float]:
    """All frames of a video file and its frame rate; a missing or unreadable file is a :class:`BadInputError`.

    A variable frame rate is resampled to a constant one that keeps the duration, saying so in one line.
    ``info``: :func:`inspect_input`'s answer, when already known."""
    from helpers.core.video import TruncatedVideoError, UnreadableVideoError, read_frames

    info = info or inspect_input(path)
    try:
        frames, fps = read_frames(path, info)
    except TruncatedVideoError as err:
        raise BadInputError(path, f"truncated: only {err.read} of the {err.declared} frames its header "
                                  "declares could be read") from None
    except UnreadableVideoError as err:
        raise BadInputError(path, err.problem) from None
    except (OSError, RuntimeError, ValueError, StopIteration):
        raise BadInputError(path, "not a video ffmpeg can read") from None
    if not frames:
        raise BadInputError(path, "no frames: not one frame of the video stream could be decoded")
    if info.variable:
        print(f"note: {Path(path).name} has a variable frame rate ({len(info.timestamps)} frames over "
              f"{info.seconds:.1f} s); resampled to a constant {fps:g} fps ({len(frames)} frames), duration kept")
    return frames, fps


def model_stamp(frames: Sequence) -> str | None:
    """Which tiny-profile model band the clip's first and last frames already carry: "random" (RANDOM
    WEIGHTS, every random-weight model of the course), "trained" (SMALL TWIN TRAINED ON DIGITS, the twin the
    course trained) or None (a learner's own clip, or one made without a model). post keeps it."""
    from helpers.core.images import MODEL_STAMPS

    ends = [np.asarray(frames[0]), np.asarray(frames[-1])]
    return next((kind for kind in MODEL_STAMPS if all(_carries(frame, kind) for frame in ends)), None)


def carries_random_weights_stamp(frames: Sequence) -> bool:
    """True when the clip carries a tiny-profile model band (:func:`model_stamp`), so post keeps it."""
    return model_stamp(frames) is not None


def _carries(frame: np.ndarray, kind: str) -> bool:
    """Whether ``frame``'s bottom rows are the ``kind`` label (within STAMP_TOLERANCE levels)."""
    from helpers.core.images import MODEL_STAMPS, stamp_band_height

    band = stamp_band_height((frame.shape[1], frame.shape[0]), kind)
    stamped = np.asarray(MODEL_STAMPS[kind](Image.fromarray(frame)))
    return band > 0 and np.abs(frame[-band:].astype(int) - stamped[-band:]).mean() <= STAMP_TOLERANCE


def check_clip(frames: Sequence, what: str = "clip") -> None:
    """Refuse an empty clip (``what`` names it in the message, e.g. "clip 2")."""
    if len(frames) == 0:
        raise ValueError(f"the {what} has no frames")


def check_positive(value: float, name: str, unit: str = "s") -> None:
    """Refuse a ``value`` that is not a finite number above 0 (a duration, a rate, a speed)."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be more than 0 {unit}, got {value!r}")


def pipe_ffmpeg(frames: Frames, fps: float, args: list[str], output: str | None = None) -> bytes:
    """Feed raw RGB frames to ffmpeg with ``args``; return its stdout (raw frames when ``output`` is None)."""
    from helpers.core.video import ffmpeg_exe

    height, width = frames[0].shape[:2]
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "-", *args]
    command += [output] if output else ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    result = subprocess.run(command, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames),
                            capture_output=True)
    if result.returncode:
        raise RuntimeError(f"ffmpeg failed: {result.stderr.decode(errors='replace').strip()[-500:]}")
    return result.stdout


def raw_to_frames(raw: bytes, shape: tuple[int, ...]) -> Frames:
    """ffmpeg's raw RGB output -> frames of the height and width in ``shape``."""
    height, width = shape[:2]
    return list(np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3).copy())
