"""Writing videos every browser plays (H.264, yuv420p, faststart), reading and inspecting them.

Built on the ffmpeg binary that the ``imageio-ffmpeg`` package ships, so nothing else needs
installing, on Colab or offline.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from helpers.core.outputs import atomic_path


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by imageio-ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _as_array(frame) -> np.ndarray:
    if isinstance(frame, Image.Image):
        return np.asarray(frame.convert("RGB"))
    array = np.asarray(frame)
    if array.dtype != np.uint8:  # floats in [0, 1]
        array = np.clip(array * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return array


def write_mp4(frames: Iterable, path: str | os.PathLike, fps: float = 8, crf: int = 18) -> Path:
    """Write RGB frames (PIL images or HxWx3 arrays) as an H.264 / yuv420p MP4, atomically.

    yuv420p needs even sides: odd sizes are padded by one pixel (edge copied), never cropped.
    """
    import imageio_ffmpeg

    path = Path(path)
    frames = [_as_array(f) for f in frames]
    if not frames:
        raise ValueError("no frames to write")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    height, width = frames[0].shape[:2]
    for index, frame in enumerate(frames):  # check everything before ffmpeg starts
        if frame.shape[:2] != (height, width):
            raise ValueError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, "
                             f"the first was {width}x{height}")
    even_h, even_w = height + height % 2, width + width % 2
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (even_w, even_h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
            quality=None, macro_block_size=1,
            output_params=["-crf", str(crf), "-preset", "medium", "-movflags", "+faststart"],
            ffmpeg_log_level="error",
        )
        writer.send(None)
        try:
            for frame in frames:
                if (even_h, even_w) != (height, width):
                    frame = np.pad(frame, ((0, even_h - height), (0, even_w - width), (0, 0)), mode="edge")
                writer.send(np.ascontiguousarray(frame))
        finally:
            writer.close()  # ffmpeg has finished with the file before it is renamed or removed
    return path


class TruncatedVideoError(ValueError):
    """A video whose container declares more frames than can be decoded (e.g. a file cut short)."""

    def __init__(self, path: str | os.PathLike, read: int, declared: int):
        super().__init__(f"{path}: truncated: only {read} of the {declared} frames its header declares "
                         "could be read")
        self.read, self.declared = read, declared


def read_frames(path: str | os.PathLike) -> tuple[list[np.ndarray], float]:
    """All frames of a video as HxWx3 uint8 arrays, and its frame rate.

    A file that decodes to fewer frames than its container declares (duration x frame rate, with
    a little slack: GIF and some containers round their durations) raises :class:`TruncatedVideoError`: a cut file is an error, not a
    shorter video.
    """
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(buf, np.uint8).reshape(height, width, 3).copy() for buf in reader]
    fps, seconds = float(meta["fps"]), float(meta.get("duration") or 0)
    declared = round(seconds * fps)
    if declared and len(frames) < declared - max(2, declared // 20):
        raise TruncatedVideoError(path, len(frames), declared)
    return frames, fps


def probe(path: str | os.PathLike) -> dict:
    """Codec, pixel format, size, fps and frame count of a video (from ffmpeg's own report)."""
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path), "-map", "0:v:0",
                             "-f", "null", "-"], capture_output=True, text=True)
    log = result.stderr
    match = re.search(r"Stream #\S+.*?Video: (\w+).*?, (\w+)(?:\([^)]*\))?, (\d+)x(\d+)", log)
    if not match:
        raise ValueError(f"{path}: no video stream found")
    fps = re.search(r"([\d.]+) fps", log)
    frames = re.findall(r"frame=\s*(\d+)", log)
    return {"codec": match.group(1), "pix_fmt": match.group(2), "width": int(match.group(3)),
            "height": int(match.group(4)), "fps": float(fps.group(1)) if fps else None,
            "frames": int(frames[-1]) if frames else None}


def show_video(path: str | os.PathLike, width: int = 480):
    """Show a video inline in a notebook (embedded, so it survives a saved notebook)."""
    from IPython.display import Video

    return Video(str(path), embed=True, width=width, html_attributes="controls loop autoplay muted")


def frame_strip(frames: Sequence, count: int = 6) -> Image.Image:
    """``count`` evenly spaced frames side by side: a video as one still picture."""
    picks = np.linspace(0, len(frames) - 1, num=min(count, len(frames))).round().astype(int)
    arrays = [_as_array(frames[i]) for i in picks]
    return Image.fromarray(np.concatenate(arrays, axis=1))
