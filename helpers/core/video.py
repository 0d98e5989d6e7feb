"""Writing videos every browser plays (H.264, yuv420p, faststart), reading and inspecting them.

Built on the ffmpeg binary that the ``imageio-ffmpeg`` package ships, so nothing else needs
installing, on Colab or offline. Reading keeps time, not frame count: a phone clip with a variable frame
rate is resampled to a constant one of the same duration (:func:`inspect_video`, :func:`read_frames`).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
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


def mp4_command(path: str | os.PathLike, width: int, height: int, fps: float, crf: int = 18) -> list[str]:
    """The ffmpeg command :func:`write_mp4` runs: raw RGB frames on stdin -> H.264, yuv420p, faststart."""
    rate = str(Fraction(fps).limit_denominator())  # 24000/1001 stays exact
    return [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-s", f"{width}x{height}", "-r", rate, "-i", "-", "-an", "-c:v", "libx264", "-crf", str(crf),
            "-preset", "medium", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)]


def _widen_pipe(pipe, frame_bytes: int) -> None:
    """Let the pipe to ffmpeg hold a whole frame where the system allows (Linux: up to
    /proc/sys/fs/pipe-max-size, 1 MiB by default): fewer switches between Python and ffmpeg per frame."""
    try:
        import fcntl
    except ImportError:  # Windows: the pipe stays as it is
        return
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:  # not Linux (macOS): the pipe stays as it is
        return
    for size in (frame_bytes, 1 << 20):
        try:
            fcntl.fcntl(pipe.fileno(), set_size, size)
            return
        except OSError:  # larger than allowed: try the default maximum
            continue


def write_mp4(frames: Iterable, path: str | os.PathLike, fps: float = 8, crf: int = 18) -> Path:
    """Write RGB frames (PIL images or HxWx3 arrays) as an H.264 / yuv420p MP4, atomically.

    yuv420p needs even sides: odd sizes are padded by one pixel (edge copied), never cropped.
    The frames go to ffmpeg's stdin one by one, as they are (no copy, no joined buffer);
    ffmpeg's error message, if any, is in the exception.
    """
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
    with atomic_path(path) as tmp, tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(mp4_command(tmp, even_w, even_h, fps, crf), stdin=subprocess.PIPE,
                                   stdout=subprocess.DEVNULL, stderr=errors)
        _widen_pipe(process.stdin, even_w * even_h * 3)
        try:
            for frame in frames:
                if (even_h, even_w) != (height, width):
                    frame = np.pad(frame, ((0, even_h - height), (0, even_w - width), (0, 0)), mode="edge")
                process.stdin.write(memoryview(np.ascontiguousarray(frame)).cast("B"))
        except BrokenPipeError:
            pass  # ffmpeg stopped early: its return code and message say why
        except BaseException:
            process.kill()
            raise
        finally:
            try:
                process.stdin.close()  # end of input: ffmpeg finishes the file
            except BrokenPipeError:
                pass
            code = process.wait()  # ffmpeg has finished with the file before it is renamed or removed
        if code != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()[-2000:]
            raise RuntimeError(f"ffmpeg could not write {path.name} (exit code {code}): {message}")
    return path


class TruncatedVideoError(ValueError):
    """A video whose container declares more frames than can be decoded (e.g. a file cut short)."""

    def __init__(self, path: str | os.PathLike, read: int, declared: int):
        super().__init__(f"{path}: truncated: only {read} of the {declared} frames its header declares "
                         "could be read")
        self.read, self.declared = read, declared


class UnreadableVideoError(ValueError):
    """A file that is not a video the course can use; ``problem`` says which: cut short before its first
    frame, no video stream (only audio, or nothing), no frames, or not a video at all."""

    def __init__(self, path: str | os.PathLike, problem: str):
        super().__init__(f"{path}: {problem}")
        self.problem = problem


# How container files start: one that starts like a video but does not open was cut short or damaged.
_VIDEO_SIGNATURES = ((4, b"ftyp", "MP4/MOV"), (0, b"\x1a\x45\xdf\xa3", "WebM/Matroska"), (0, b"GIF8", "GIF"),
                     (8, b"AVI ", "AVI"), (0, b"\x00\x00\x01\xba", "MPEG"), (0, b"FLV", "FLV"))
VFR_SPREAD = 0.5     # frame intervals differing by more than half the usual one: a variable frame rate
MAX_VFR_FPS = 60.0   # a variable-rate clip is resampled to its base rate, at most this


@dataclass(frozen=True)
class VideoInfo:
    """What the header and the packet timestamps say about a video's first video stream, before decoding."""

    width: int
    height: int
    fps: float              # the constant rate :func:`read_frames` returns the frames at
    frames: int             # how many frames it returns (after resampling a variable rate)
    seconds: float          # duration of the stream (first presentation time to the end of the last frame)
    timestamps: tuple[float, ...]  # presentation time of each stored frame, from 0, in order
    variable: bool          # True: a variable frame rate, resampled to ``fps``
    declared: int           # frames the container's duration x rate declares (0 = unknown)

    @property
    def bytes(self) -> int:
        """Memory the decoded RGB frames take."""
        return self.frames * self.width * self.height * 3


def _ffmpeg_log(path: str | os.PathLike) -> str:
    """ffmpeg's own description of a file (streams, duration, rates): what ffprobe would say."""
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True,
                          text=True, errors="replace").stderr


def _packet_times(path: str | os.PathLike) -> tuple[list[float], list[float]]:
    """Presentation time and duration (s) of every packet of the first video stream, in presentation
    order, read from the container without decoding (``-c copy -f framemd5``)."""
    result = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0",
                             "-c", "copy", "-f", "framemd5", "-"], capture_output=True, text=True, errors="replace")
    base = re.search(r"#tb 0: (\d+)/(\d+)", result.stdout)
    if not base:
        return [], []
    tick = int(base.group(1)) / int(base.group(2))
    rows = []
    for line in result.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if line.startswith("#") or len(parts) < 5 or not parts[2].lstrip("-").isdigit():
            continue
        rows.append((int(parts[2]) * tick, max(int(parts[3]), 0) * tick))
    rows.sort()
    return [t for t, _ in rows], [d for _, d in rows]


def _unreadable(path: Path, log: str) -> UnreadableVideoError:
    """Which problem a file in which ffmpeg finds no video stream has."""
    if re.search(r"Stream #\S+.*?Audio:", log):
        return UnreadableVideoError(path, "no video stream: the file holds only audio")
    with open(path, "rb") as handle:
        head = handle.read(16)
    kind = next((k for offset, signature, k in _VIDEO_SIGNATURES if head[offset:offset + len(signature)] == signature), None)
    # ffmpeg opened it: an empty container has no stream and no complaint; a damaged one has either
    complaints = re.search(r"invalid|partial file|truncat|not found|error|Stream #", log, re.IGNORECASE)
    if "Input #0" in log and not complaints:
        return UnreadableVideoError(path, "an empty video: the file holds no stream and no frames")
    if kind:
        return UnreadableVideoError(path, f"truncated or damaged: it starts like a video file ({kind}) but "
                                          "ffmpeg cannot open it (cut short while copying or downloading?)")
    return UnreadableVideoError(path, "not a video ffmpeg can read")


def inspect_video(path: str | os.PathLike) -> VideoInfo:
    """Size, rate, frame count and timestamps of a video's first video stream, without decoding a frame.

    Raises :class:`UnreadableVideoError` saying which problem a file has (no video stream, no frames,
    cut short, not a video)."""
    path = Path(path)
    log = _ffmpeg_log(path)
    stream = re.search(r"Stream #\S+.*?Video: .*?, (\d{2,})x(\d{2,})", log)
    if not stream:
        raise _unreadable(path, log)
    width, height = int(stream.group(1)), int(stream.group(2))
    times, durations = _packet_times(path)
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", log)
    header_s = int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3)) if duration else 0
    if not times:
        declared = round(header_s * (_rate(log, "fps") or 0))
        if declared:
            raise UnreadableVideoError(path, f"truncated: none of the {declared} frames its header declares could "
                                             "be read (cut short while copying or downloading?)")
        raise UnreadableVideoError(path, "no frames: the file has a video stream but not one frame in it")
    start = times[0]
    times = [t - start for t in times]
    steps = np.diff(times) if len(times) > 1 else np.array([])
    usual = float(np.median(steps)) if steps.size else 0.0
    average = _rate(log, "fps") or (1 / usual if usual > 0 else 8.0)
    last = durations[-1] if durations[-1] > 0 else (usual or 1 / average)
    seconds = times[-1] + last
    declared = round(header_s * average)
    variable = steps.size >= 2 and usual > 0 and float(steps.max() - steps.min()) > VFR_SPREAD * usual
    if not variable:
        return VideoInfo(width, height, average, len(times), seconds, tuple(times), False, declared)
    base = _rate(log, "tbr")
    fps = base if base and base <= MAX_VFR_FPS else min(MAX_VFR_FPS, 1 / max(float(steps[steps > 0].min()), 1e-3))
    fps = max(fps, len(times) / seconds)
    return VideoInfo(width, height, fps, max(1, round(seconds * fps)), seconds, tuple(times), True, declared)


def _rate(log: str, unit: str) -> float | None:
    """A rate ffmpeg prints in a stream line, e.g. '1.42 fps' or '8 tbr' ('90k tbr' = 90000)."""
    match = re.search(rf"Video:.*?([\d.]+)(k?) {unit}\b", log)
    if not match:
        return None
    value = float(match.group(1)) * (1000 if match.group(2) else 1)
    return value if value > 0 else None


def resample_to_constant_rate(frames: Sequence, times: Sequence[float], fps: float, count: int) -> list:
    """Frames shown at presentation ``times`` (s) -> ``count`` frames at a constant ``fps``: each output
    frame is the one on screen at its time (the last with a time <= k / fps), so the duration is kept."""
    picks = np.searchsorted(np.asarray(times), np.arange(count) / fps + 1e-6, side="right") - 1
    return [frames[int(i)] for i in np.clip(picks, 0, len(frames) - 1)]


def read_frames(path: str | os.PathLike, info: VideoInfo | None = None) -> tuple[list[np.ndarray], float]:
    """All frames of a video as HxWx3 uint8 arrays, and its frame rate (time, not frame count, is kept).

    Every stored frame is decoded once at its presentation time (``-fps_mode passthrough``). A variable
    frame rate (:func:`inspect_video`) is resampled to a constant rate that keeps the duration. A file that
    decodes to fewer frames than its container declares (duration x frame rate, with a little slack: GIF
    and some containers round their durations) raises :class:`TruncatedVideoError`: a cut file is an
    error, not a shorter video. ``info``: :func:`inspect_video`'s answer, when already known.
    """
    import imageio_ffmpeg

    info = info or inspect_video(path)
    reader = imageio_ffmpeg.read_frames(str(path), output_params=["-fps_mode", "passthrough"])
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(buf, np.uint8).reshape(height, width, 3).copy() for buf in reader]
    declared = info.declared
    if declared and len(frames) < declared - max(2, declared // 20):
        raise TruncatedVideoError(path, len(frames), declared)
    if not frames:
        raise UnreadableVideoError(path, "no frames: not one frame of the video stream could be decoded")
    if info.variable and len(frames) <= len(info.timestamps):
        # ffmpeg 7.0 (imageio-ffmpeg 0.6, Colab's in 2026-08) decodes a VFR clip's frames but the last:
        # the frames it gives are the first ones, shown at the first timestamps.
        times = info.timestamps[:len(frames)]
        return resample_to_constant_rate(frames, times, info.fps, info.frames), info.fps
    return frames, info.fps


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
