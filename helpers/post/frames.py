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


def read_video(path: str | Path) -> tuple[Frames, float]:
    """All frames of a video file and its frame rate; a missing or unreadable file is a :class:`BadInputError`."""
    from helpers.core.video import TruncatedVideoError, read_frames

    path = check_file(path, "a video file")
    try:
        frames, fps = read_frames(path)
    except TruncatedVideoError as err:
        raise BadInputError(path, f"truncated: only {err.read} of the {err.declared} frames its header "
                                  "declares could be read") from None
    except (OSError, RuntimeError, ValueError, StopIteration):
        raise BadInputError(path, "not a video ffmpeg can read") from None
    if not frames:
        raise BadInputError(path, "the video has no frames")
    return frames, fps


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
