"""Post-production (notebook 08): ``python -m helpers post [VIDEO ...] [--out final.mp4]``.

Four jobs, each a few small functions on lists of frames (HxWx3 uint8 arrays):

- **interpolation**: in-between frames by optical flow (numpy, written out in notebook 08), by a plain
  blend, or by ffmpeg's motion-compensated ``minterpolate``. ``x2`` of ``n`` frames gives ``2n - 1``
  frames and keeps the originals exactly.
- **grading**: 3D LUTs in the ``.cube`` format (read, write, apply with trilinear interpolation; the
  project's own looks are made by :func:`make_lut`), matching a clip's colours to its keyframe, and
  deflicker (a moving average of brightness).
- **editing**: trim, concatenate, crossfade, change speed, loop, boomerang, title card, caption.
- **export**: MP4 (H.264 yuv420p faststart), GIF (palettegen + paletteuse), ProRes 422 HQ (.mov) and
  WebM (VP9), and a table of size and quality (PSNR against the frames) per file.

Without arguments the command reads ``outputs/videos/`` (``animation.mp4`` when present, else every
video there in name order, else a stand-in) and writes ``outputs/final/final.mp4``, the profile's
other formats beside it, and ``final.json``, a record of what was done.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from helpers.cli import float_range, int_range
from helpers.images import BadInputError, check_file, fit_to, stamp_random_weights
from helpers.outputs import atomic_path

Frames = list  # a list of HxWx3 uint8 arrays

METHODS = {
    "flow": "optical flow (Lucas-Kanade, coarse to fine) and a warp of both neighbours: numpy, notebook 08",
    "blend": "a cross-dissolve of the two neighbours: no motion, just a fade",
    "ffmpeg": "ffmpeg's minterpolate: motion-compensated, block based",
}
SPEED_METHODS = ("nearest", "blend", "flow")
STANDIN_NAME = "standin.mp4"  # helpers.standins.ensure_video's stand-in: no model, nothing to stamp
# Clips made without any model, so never stamped "random weights": the stand-in, and notebook 08's own lesson clip.
MODEL_FREE_NAMES = (STANDIN_NAME, "moving_shapes.mp4")


# --------------------------------------------------------------------------------------------
# Frames in and out


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
    from helpers.video import TruncatedVideoError, read_frames

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


def _check_clip(frames: Sequence, what: str = "clip") -> None:
    if len(frames) == 0:
        raise ValueError(f"the {what} has no frames")


def _positive(value: float, name: str, unit: str = "s") -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be more than 0 {unit}, got {value!r}")


# --------------------------------------------------------------------------------------------
# Optical flow and in-between frames (the numpy version is written out in notebook 08)


def luma(frame: np.ndarray) -> np.ndarray:
    """Brightness of an RGB frame, float64 in 0..1 (Rec. 709 weights)."""
    return np.asarray(frame, dtype=np.float64) @ np.array([0.2126, 0.7152, 0.0722]) / 255.0


def box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1) x (2r+1) window around each pixel (edges repeated), from cumulative sums."""
    k = 2 * radius + 1
    padded = np.pad(image, radius, mode="edge")
    c = np.pad(padded.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def bilinear_sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``image`` (HxW or HxWxC) read at real positions (x, y), bilinearly; outside reads the nearest edge."""
    height, width = image.shape[:2]
    x = np.clip(x, 0, width - 1)
    y = np.clip(y, 0, height - 1)
    x0 = np.minimum(np.floor(x).astype(int), max(width - 2, 0))
    y0 = np.minimum(np.floor(y).astype(int), max(height - 2, 0))
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = x - x0, y - y0
    if image.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def _downsample(image: np.ndarray) -> np.ndarray:
    """Half size by averaging 2x2 blocks (an odd last row/column is repeated first)."""
    h, w = image.shape
    image = np.pad(image, ((0, h % 2), (0, w % 2)), mode="edge")
    return 0.25 * (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2])


def _upsample_flow(flow: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A coarse flow field brought to ``shape``: sampled bilinearly, vectors doubled."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    return 2.0 * bilinear_sample(flow, (xs + 0.5) / 2 - 0.5, (ys + 0.5) / 2 - 0.5)


def lucas_kanade_step(a: np.ndarray, b: np.ndarray, flow: np.ndarray, radius: int = 3,
                      eps: float = 1e-4) -> np.ndarray:
    """One Lucas-Kanade update of ``flow`` (HxWx2, in pixels) such that ``a(p) ~ b(p + flow(p))``.

    Warp ``b`` by the current flow, then in each (2r+1)^2 window solve the 2x2 least-squares system
    ``[Sxx Sxy; Sxy Syy] d = -[Sxt; Syt]`` for the correction ``d``. ``eps`` is added to the diagonal
    so that flat windows (no texture, no information) get a correction near 0 instead of noise.
    Then the flow is averaged over the window, weighted by each pixel's *confidence* (the smaller
    eigenvalue of the 2x2 matrix: large only where the window has texture in two directions), so
    motion found at corners and edges spreads into flat areas and noisy estimates do not pile up.
    """
    ys, xs = np.mgrid[0:a.shape[0], 0:a.shape[1]].astype(np.float64)
    warped = bilinear_sample(b, xs + flow[..., 0], ys + flow[..., 1])
    iy, ix = np.gradient(0.5 * (a + warped))
    it = warped - a
    sxx, sxy, syy = box_mean(ix * ix, radius) + eps, box_mean(ix * iy, radius), box_mean(iy * iy, radius) + eps
    sxt, syt = box_mean(ix * it, radius), box_mean(iy * it, radius)
    det = sxx * syy - sxy * sxy
    du = -(syy * sxt - sxy * syt) / det
    dv = -(sxx * syt - sxy * sxt) / det
    flow = flow + np.stack([du, dv], axis=-1)
    trace = sxx + syy
    confidence = 0.5 * (trace - np.sqrt(np.maximum(trace * trace - 4 * det, 0.0)))
    weight = box_mean(confidence, radius)
    return np.stack([box_mean(confidence * flow[..., k], radius) / weight for k in range(2)], axis=-1)


def optical_flow(a, b, levels: int = 4, radius: int = 3, iterations: int = 3, eps: float = 1e-4) -> np.ndarray:
    """Dense flow from frame ``a`` to frame ``b``: HxWx2 (dx, dy) in pixels, ``a(p) ~ b(p + flow(p))``.

    Coarse to fine: on a pyramid of half-size images (at most ``levels``, halving while the smaller
    side is at least 16 pixels), large motions become small ones; at each level ``iterations``
    Lucas-Kanade steps refine the flow brought up from the level below.
    """
    pyramid = [(luma(a), luma(b))]
    while len(pyramid) < levels and min(pyramid[-1][0].shape) >= 16:
        pyramid.append((_downsample(pyramid[-1][0]), _downsample(pyramid[-1][1])))
    flow = np.zeros(pyramid[-1][0].shape + (2,))
    for ga, gb in reversed(pyramid):
        if flow.shape[:2] != ga.shape:
            flow = _upsample_flow(flow, ga.shape)
        for _ in range(iterations):
            flow = lucas_kanade_step(ga, gb, flow, radius, eps)
    return flow


def flow_inbetween(a, b, t: float, flow: np.ndarray | None = None) -> np.ndarray:
    """The frame at time ``t`` (0 = ``a``, 1 = ``b``) by warping both neighbours along the flow.

    Each pixel p looks back to ``a`` at ``p - t*F(p)`` and ahead to ``b`` at ``p + (1-t)*F(p)``, and the
    two are blended with weights ``1-t`` and ``t`` (using the flow at p for the moving point: the usual
    linear-motion approximation). Returns float64 in 0..255.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    flow = optical_flow(a, b) if flow is None else flow
    ys, xs = np.mgrid[0:a.shape[0], 0:a.shape[1]].astype(np.float64)
    from_a = bilinear_sample(a, xs - t * flow[..., 0], ys - t * flow[..., 1])
    from_b = bilinear_sample(b, xs + (1 - t) * flow[..., 0], ys + (1 - t) * flow[..., 1])
    return (1 - t) * from_a + t * from_b


def blend_inbetween(a, b, t: float) -> np.ndarray:
    """``(1 - t) * a + t * b`` in float64: a cross-dissolve, no motion."""
    return (1 - t) * np.asarray(a, dtype=np.float64) + t * np.asarray(b, dtype=np.float64)


def _check_factor(factor: int) -> None:
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"interpolation factor must be a whole number >= 1 (2 doubles the frames), got {factor!r}")


def _check_method(method: str, allowed: Sequence[str]) -> None:
    if method not in allowed:
        raise ValueError(f"unknown interpolation method {method!r}; choose one of {', '.join(allowed)}")


def interpolate(frames: Sequence, factor: int = 2, method: str = "flow") -> Frames:
    """``factor - 1`` new frames between each pair: n frames -> (n - 1) * factor + 1, originals kept exactly.

    ``method``: ``flow`` (:func:`flow_inbetween`), ``blend`` (:func:`blend_inbetween`) or ``ffmpeg``
    (:func:`interpolate_ffmpeg`: minterpolate makes the in-betweens, the originals are put back).
    """
    _check_factor(factor)
    _check_method(method, tuple(METHODS))
    frames = as_frames(frames)
    _check_clip(frames)
    if method == "ffmpeg":
        return interpolate_ffmpeg(frames, factor)
    # Positions k / factor: every factor-th one is a whole number, i.e. an original frame, kept as is.
    return resample(frames, [k / factor for k in range((len(frames) - 1) * factor + 1)], method)


def _pipe_ffmpeg(frames: Frames, fps: float, args: list[str], output: str | None = None) -> bytes:
    """Feed raw RGB frames to ffmpeg with ``args``; return its stdout (raw frames when ``output`` is None)."""
    from helpers.video import ffmpeg_exe

    height, width = frames[0].shape[:2]
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", f"{fps:g}", "-i", "-", *args]
    command += [output] if output else ["-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    result = subprocess.run(command, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames),
                            capture_output=True)
    if result.returncode:
        raise RuntimeError(f"ffmpeg failed: {result.stderr.decode(errors='replace').strip()[-500:]}")
    return result.stdout


def _raw_to_frames(raw: bytes, shape: tuple[int, ...]) -> Frames:
    height, width = shape[:2]
    return list(np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3).copy())


def interpolate_ffmpeg(frames: Sequence, factor: int = 2, mode: str = "mci") -> Frames:
    """In-betweens from ffmpeg's ``minterpolate`` (``mci``: motion-compensated; ``blend``: a fade).

    minterpolate outputs frame ``k * factor`` at the time of original frame ``k``; it needs a frame after
    the last one, so the clip is padded (``tpad``) and cut back to ``(n - 1) * factor + 1`` frames. The
    originals are then put back exactly (ffmpeg works in YUV, which shifts colours by a level or so).
    """
    _check_factor(factor)
    frames = as_frames(frames)
    _check_clip(frames)
    if factor == 1 or len(frames) == 1:
        return [f.copy() for f in frames]
    fps = 8.0  # any rate: only the ratio matters
    vf = (f"tpad=stop={factor}:stop_mode=clone,"
          f"minterpolate=fps={fps * factor:g}:mi_mode={mode}:mc_mode=aobmc:me_mode=bidir:vsbmc=1")
    out = _raw_to_frames(_pipe_ffmpeg(frames, fps, ["-vf", vf]), frames[0].shape)
    wanted = (len(frames) - 1) * factor + 1
    if len(out) < wanted:
        raise RuntimeError(f"minterpolate gave {len(out)} frames, expected at least {wanted}")
    out = out[:wanted]
    for k, frame in enumerate(frames):
        out[k * factor] = frame.copy()
    return out


def resample(frames: Sequence, positions: Sequence[float], method: str = "blend") -> Frames:
    """Frames at real-valued ``positions`` of the clip (0 = first frame, n - 1 = last).

    Whole positions return the original frame; between two frames ``nearest`` picks the closer one,
    ``blend`` fades and ``flow`` warps along the optical flow (computed once per pair).
    """
    _check_method(method, SPEED_METHODS)
    frames = as_frames(frames)
    _check_clip(frames)
    flows: dict[int, np.ndarray] = {}
    out = []
    for p in positions:
        p = min(max(float(p), 0.0), len(frames) - 1.0)
        i = int(math.floor(p + 1e-9))
        t = p - i
        if t < 1e-9 or i >= len(frames) - 1:
            out.append(frames[min(i, len(frames) - 1)].copy())
        elif method == "nearest":
            out.append(frames[i + (t >= 0.5)].copy())
        else:
            a, b = frames[i], frames[i + 1]
            if method == "flow":
                if i not in flows:
                    flows[i] = optical_flow(a, b)
                middle = flow_inbetween(a, b, t, flows[i])
            else:
                middle = blend_inbetween(a, b, t)
            out.append(np.clip(np.rint(middle), 0, 255).astype(np.uint8))
    return out


def change_speed(frames: Sequence, speed: float, method: str = "blend") -> Frames:
    """Play ``speed`` times faster at the same frame rate (2: half the frames; 0.5: twice as many).

    The same operation converts frame rates with the duration kept: ``retime(frames, 8, 16)`` is
    ``change_speed(frames, 8 / 16)``.
    """
    _positive(speed, "speed", "(1 = unchanged)")
    _check_method(method, SPEED_METHODS)
    frames = as_frames(frames)
    _check_clip(frames)
    positions = np.arange(0, len(frames) - 1 + 1e-9, speed)
    return resample(frames, positions, method)


def retime(frames: Sequence, source_fps: float, target_fps: float, method: str = "blend") -> Frames:
    """The clip at ``target_fps`` instead of ``source_fps``, lasting as long (frames picked or made)."""
    _positive(source_fps, "source fps", "frames per second")
    _positive(target_fps, "target fps", "frames per second")
    if abs(source_fps - target_fps) < 1e-9:
        return as_frames(frames)
    return change_speed(frames, source_fps / target_fps, method)


# --------------------------------------------------------------------------------------------
# Colour: 3D LUTs (.cube), matching the keyframe, deflicker


LUT_NAMES = {
    "identity": "changes nothing (a test of the machinery)",
    "warm": "a warmer white balance (more red, less blue), slightly richer colours, a gentle S-curve",
    "teal_orange": "the blockbuster look: shadows towards teal, highlights and skin towards orange",
}
SHIPPED_LUT_SIZE = 17  # points per axis of the .cube files in data/luts/ (17^3 = 4913 colours)


@dataclass
class Lut:
    """A 3D colour table: ``table[b, g, r]`` is the output RGB (0..1) for input (r, g, b) on a grid."""

    table: np.ndarray                   # N x N x N x 3, blue slowest, red fastest (the .cube order)
    title: str = ""
    domain_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    domain_max: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def size(self) -> int:
        return self.table.shape[0]


def lut_grid(size: int) -> np.ndarray:
    """The input colours of a size-N LUT as ``table[b, g, r] = (r, g, b)`` in 0..1: the identity LUT."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 2 <= size <= 256:
        raise ValueError(f"a LUT needs 2 to 256 points per axis, got {size!r}")
    axis = np.linspace(0.0, 1.0, size)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r, g, b], axis=-1)


def identity_lut(size: int = 17) -> Lut:
    """A LUT that changes nothing."""
    return Lut(lut_grid(size), title=f"identity {size}")


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def s_curve(x: np.ndarray, amount: float) -> np.ndarray:
    """``x - amount * sin(2 pi x) / (2 pi)``: keeps 0, 0.5 and 1; steeper (more contrast) in the mids."""
    return x - amount * np.sin(2 * np.pi * x) / (2 * np.pi)


def make_lut(name: str, size: int = SHIPPED_LUT_SIZE) -> Lut:
    """The project's looks, as pure functions of the input colour (so the .cube files can be rebuilt)."""
    if name not in LUT_NAMES:
        raise ValueError(f"unknown LUT {name!r}; the project's LUTs are {', '.join(LUT_NAMES)} (or give a .cube file)")
    rgb = lut_grid(size)
    y = (rgb @ np.array([0.2126, 0.7152, 0.0722]))[..., None]
    if name == "identity":
        return Lut(rgb, title=f"identity {size}")
    if name == "warm":
        out = rgb * np.array([1.06, 1.0, 0.90])                    # white balance towards warm
        out = y + 1.10 * (out - y)                                  # 10 % more saturation
        out = s_curve(np.clip(out, 0.0, 1.0), 0.15)                 # a little more contrast in the mids
    else:  # teal_orange
        shadows, highlights = 1.0 - _smoothstep(0.15, 0.6, y), _smoothstep(0.4, 0.9, y)
        out = rgb + shadows * np.array([-0.06, 0.02, 0.05]) + highlights * np.array([0.07, 0.02, -0.06])
        out = s_curve(np.clip(out, 0.0, 1.0), 0.2)
    return Lut(np.clip(out, 0.0, 1.0), title=f"pixels-to-motion {name}")


def read_cube(path: str | Path) -> Lut:
    """Read a 3D LUT in the Adobe/Resolve ``.cube`` text format; problems are one-line :class:`BadInputError`."""
    path = check_file(path, "a .cube LUT file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise BadInputError(path, "not a text file (a .cube LUT is text)") from None
    size, title, rows = None, "", []
    domain = {"DOMAIN_MIN": (0.0, 0.0, 0.0), "DOMAIN_MAX": (1.0, 1.0, 1.0)}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        key = words[0].upper()
        try:
            if key[0] in "+-.0123456789":
                if len(words) != 3:
                    raise ValueError
                rows.append([float(w) for w in words])
            elif key == "LUT_3D_SIZE":
                size = int(words[1])
            elif key == "LUT_1D_SIZE":
                raise BadInputError(path, "is a 1D LUT; only 3D LUTs (LUT_3D_SIZE) are supported")
            elif key in domain:
                domain[key] = tuple(float(w) for w in words[1:4])
                if len(domain[key]) != 3:
                    raise ValueError
            elif key == "TITLE":
                title = line[len(words[0]):].strip().strip('"')
            # other keywords (e.g. LUT_3D_INPUT_RANGE from some tools) are ignored
        except (ValueError, IndexError):
            raise BadInputError(path, f"line {number} is not a valid .cube line: {line[:60]!r}") from None
    if size is None:
        raise BadInputError(path, "no LUT_3D_SIZE line: not a 3D .cube LUT")
    if not 2 <= size <= 256:
        raise BadInputError(path, f"LUT_3D_SIZE {size} is out of range (2 to 256)")
    if len(rows) != size ** 3:
        raise BadInputError(path, f"has {len(rows)} colour rows; LUT_3D_SIZE {size} needs {size ** 3}")
    table = np.asarray(rows, dtype=np.float64).reshape(size, size, size, 3)
    if not np.all(np.isfinite(table)):
        raise BadInputError(path, "contains values that are not finite numbers")
    lo, hi = np.array(domain["DOMAIN_MIN"]), np.array(domain["DOMAIN_MAX"])
    if np.any(hi <= lo):
        raise BadInputError(path, "DOMAIN_MAX must be larger than DOMAIN_MIN on every channel")
    return Lut(table, title, tuple(lo), tuple(hi))


def write_cube(path: str | Path, lut: Lut) -> Path:
    """Write ``lut`` as a ``.cube`` file (red fastest, then green, then blue), atomically."""
    path = Path(path)
    lines = []
    if lut.title:
        lines.append(f'TITLE "{lut.title}"')
    lines.append(f"LUT_3D_SIZE {lut.size}")
    if lut.domain_min != (0.0, 0.0, 0.0) or lut.domain_max != (1.0, 1.0, 1.0):
        lines.append("DOMAIN_MIN " + " ".join(f"{v:g}" for v in lut.domain_min))
        lines.append("DOMAIN_MAX " + " ".join(f"{v:g}" for v in lut.domain_max))
    lines += [f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in lut.table.reshape(-1, 3)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def luts_dir() -> Path:
    """data/luts/ in a checkout of the repository (may not exist after a pip install)."""
    return Path(__file__).resolve().parent.parent / "data" / "luts"


def write_project_luts(folder: str | Path | None = None) -> list[Path]:
    """(Re)write the project's shipped LUTs (every name but ``identity``) into ``folder`` (default data/luts/)."""
    folder = Path(folder) if folder else luts_dir()
    return [write_cube(folder / f"{name}.cube", make_lut(name)) for name in LUT_NAMES if name != "identity"]


def lut_path(name_or_path: str | Path) -> Path:
    """A .cube file for a project LUT name (data/luts/, or written to the cache) or an existing file."""
    from helpers.outputs import cache_dir

    text = str(name_or_path)
    if text in LUT_NAMES:
        shipped = luts_dir() / f"{text}.cube"
        if shipped.exists():
            return shipped
        cached = cache_dir() / "luts" / f"{text}.cube"
        if not cached.exists():
            write_cube(cached, make_lut(text))
        return cached
    path = Path(name_or_path)
    if path.suffix.lower() != ".cube" and not path.exists():
        raise ValueError(f"unknown LUT {text!r}; give a .cube file or one of {', '.join(LUT_NAMES)}")
    if not path.exists():
        raise BadInputError(path, "no such LUT file")
    return path


def load_lut(lut: Lut | str | Path) -> Lut:
    """A :class:`Lut` from itself, a project LUT name or a .cube path."""
    if isinstance(lut, Lut):
        return lut
    if str(lut) == "identity":
        return identity_lut()
    return read_cube(lut_path(lut))


def apply_lut(frames: Sequence, lut: Lut | str | Path, strength: float = 1.0) -> Frames:
    """Grade ``frames`` through a 3D LUT with trilinear interpolation (what ffmpeg's ``lut3d`` does).

    Each colour falls in one cell of the N^3 grid; its output is the weighted mean of the cell's 8
    corners (weights from the position inside the cell). ``strength`` mixes the graded frame with the
    original (0 = untouched, 1 = the full look).
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"LUT strength must be between 0 and 1, got {strength}")
    lut = load_lut(lut)
    table, n = lut.table, lut.size
    lo, hi = np.array(lut.domain_min), np.array(lut.domain_max)
    out = []
    for frame in as_frames(frames):
        rgb = frame.astype(np.float64) / 255.0
        x = np.clip((rgb - lo) / (hi - lo), 0.0, 1.0) * (n - 1)
        i = np.minimum(np.floor(x).astype(int), n - 2)
        f = x - i
        r0, g0, b0 = i[..., 0], i[..., 1], i[..., 2]
        fr, fg, fb = f[..., 0:1], f[..., 1:2], f[..., 2:3]

        def corner(db: int, dg: int, dr: int) -> np.ndarray:
            return table[b0 + db, g0 + dg, r0 + dr]

        near_b = (corner(0, 0, 0) * (1 - fr) + corner(0, 0, 1) * fr) * (1 - fg) + \
                 (corner(0, 1, 0) * (1 - fr) + corner(0, 1, 1) * fr) * fg
        far_b = (corner(1, 0, 0) * (1 - fr) + corner(1, 0, 1) * fr) * (1 - fg) + \
                (corner(1, 1, 0) * (1 - fr) + corner(1, 1, 1) * fr) * fg
        graded = near_b * (1 - fb) + far_b * fb
        mixed = (1 - strength) * rgb + strength * graded
        out.append(np.clip(np.rint(mixed * 255.0), 0, 255).astype(np.uint8))
    return out


def apply_lut_ffmpeg(frames: Sequence, cube: str | Path) -> Frames:
    """The same grade by ffmpeg's ``lut3d`` filter (trilinear), in RGB: to check :func:`apply_lut`."""
    path = lut_path(cube)
    read_cube(path)  # a malformed file fails here, with a clear message
    frames = as_frames(frames)
    _check_clip(frames)
    escaped = str(path.resolve()).replace("\\", "/").replace(":", "\\:").replace("'", "\\'")
    raw = _pipe_ffmpeg(frames, 8.0, ["-vf", f"lut3d=file='{escaped}':interp=trilinear"])
    return _raw_to_frames(raw, frames[0].shape)


def match_to_keyframe(frames: Sequence, keyframe, strength: float = 1.0) -> Frames:
    """Pull each frame's colours (per-channel mean and spread) towards the keyframe's.

    The same colour transfer that :func:`helpers.animate.match_colors` uses between SVD segments.
    """
    from helpers.animate import match_colors

    frames = as_frames(frames)
    _check_clip(frames)
    return as_frames(match_colors(frames, keyframe, strength))


def brightness(frames: Sequence) -> np.ndarray:
    """Mean brightness of each frame, 0..255 (Rec. 709 luma)."""
    return np.array([luma(f).mean() * 255.0 for f in as_frames(frames)])


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` values (odd), the ends repeated to keep the length."""
    half = window // 2
    padded = np.pad(np.asarray(values, dtype=np.float64), half, mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def _check_window(window: int) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1 or window % 2 == 0:
        raise ValueError(f"deflicker window must be an odd number of frames >= 1 (1 = off), got {window!r}")


def deflicker(frames: Sequence, window: int = 5) -> Frames:
    """Remove frame-to-frame brightness jumps: scale each frame so its mean brightness follows the
    moving average of its ``window`` neighbours (slow changes, e.g. a sunset, are kept)."""
    _check_window(window)
    frames = as_frames(frames)
    _check_clip(frames)
    if window == 1:
        return [f.copy() for f in frames]
    level = brightness(frames)
    target = moving_average(level, window)
    gains = target / np.maximum(level, 1e-6)
    return [np.clip(np.rint(f * g), 0, 255).astype(np.uint8) for f, g in zip(frames, gains)]


# --------------------------------------------------------------------------------------------
# Editing


def duration(frames: Sequence, fps: float) -> float:
    """Seconds a clip lasts at ``fps``."""
    return len(frames) / fps


def trim(frames: Sequence, fps: float, start: float = 0.0, end: float | None = None) -> Frames:
    """The part of a clip from ``start`` to ``end`` seconds (``end=None``: to the end)."""
    _positive(fps, "fps", "frames per second")
    frames = as_frames(frames)
    _check_clip(frames)
    length = duration(frames, fps)
    if start < 0:
        raise ValueError(f"trim start must be >= 0 s, got {start}")
    if start >= length:
        raise ValueError(f"trim start {start:g} s is beyond the end of the clip ({length:g} s)")
    if end is not None:
        if end <= start:
            raise ValueError(f"trim end ({end:g} s) must be after the start ({start:g} s)")
        if end > length + 1e-9:
            raise ValueError(f"trim end {end:g} s is beyond the end of the clip ({length:g} s)")
    first = round(start * fps)
    last = len(frames) if end is None else max(round(end * fps), first + 1)
    return frames[first:last]


def concat(clips: Sequence[Sequence]) -> Frames:
    """Clips one after the other (a cut). All must have the same size: see :func:`fit_clip`."""
    clips = [as_frames(c) for c in clips]
    if not clips:
        raise ValueError("no clips to join (the list is empty)")
    for index, clip in enumerate(clips):
        _check_clip(clip, f"clip {index + 1}")
    size = clips[0][0].shape[:2]
    for index, clip in enumerate(clips[1:], 2):
        if clip[0].shape[:2] != size:
            raise ValueError(f"clip {index} is {clip[0].shape[1]}x{clip[0].shape[0]}, clip 1 is {size[1]}x{size[0]}; "
                             "fit them to one size first (fit_clip)")
    return [f for clip in clips for f in clip]


def fit_clip(frames: Sequence, size: tuple[int, int]) -> Frames:
    """Every frame resized to cover ``size`` (width, height) and centre-cropped (no distortion)."""
    out = []
    for frame in as_frames(frames):
        if frame.shape[1::-1] == tuple(size):
            out.append(frame)
        else:
            out.append(np.asarray(fit_to(Image.fromarray(frame), *size)[0]))
    return out


def crossfade_clips(clips: Sequence[Sequence], overlap: int) -> Frames:
    """Join clips, each dissolving into the next over ``overlap`` frames (0 = a cut).

    Uses :func:`helpers.animate.crossfade`: blend weights ``(i + 1) / (overlap + 1)``, so the joined
    clip is ``overlap`` frames shorter per join.
    """
    from helpers.animate import crossfade

    joined = concat(clips[:1])  # checks the list and the first clip
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise ValueError(f"crossfade overlap must be a whole number of frames >= 0, got {overlap!r}")
    for clip in clips[1:]:
        concat([joined[:1], clip])  # same size, not empty
        joined = as_frames(crossfade(joined, as_frames(clip), overlap))
    return joined


def loop(frames: Sequence, times: int = 2) -> Frames:
    """The clip played ``times`` times in a row."""
    if isinstance(times, bool) or not isinstance(times, (int, np.integer)) or times < 1:
        raise ValueError(f"loop count must be a whole number >= 1, got {times!r}")
    frames = as_frames(frames)
    _check_clip(frames)
    return frames * times


def boomerang(frames: Sequence) -> Frames:
    """Forwards then backwards, without repeating the turning frames: loops seamlessly (2n - 2 frames)."""
    frames = as_frames(frames)
    _check_clip(frames)
    return frames + frames[-2:0:-1] if len(frames) > 2 else frames


def title_card(text: str, size: tuple[int, int], frames: int, subtitle: str = "",
               background: tuple[int, int, int] = (14, 14, 20), color: tuple[int, int, int] = (245, 245, 245)) -> Frames:
    """``frames`` frames of centred text on a plain background (the same array repeated)."""
    from PIL import ImageDraw

    from helpers.slides import _font, fit_lines, wrap_text

    if not text.strip():
        raise ValueError("a title card needs some text")
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ValueError(f"a title card needs at least 1 frame, got {frames!r}")
    width, height = size
    card = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(card)
    big, small = _font(max(9, round(height / 6))), _font(max(8, round(height / 11)))
    # As many lines as the card holds (a long title ends in "..."); wrapping is linear in the text.
    most = max(1, int(height * 0.9 // (big.getbbox("Ag")[3] + 2 if hasattr(big, "getbbox") else 12)))
    title, _ = fit_lines(wrap_text(text.strip(), big, width * 0.9, max_lines=most), big, width * 0.9, most)
    lines = [(line, big) for line in title]
    if subtitle.strip():
        room = max(1, most - len(title))
        sub, _ = fit_lines(wrap_text(subtitle.strip(), small, width * 0.9, max_lines=room), small, width * 0.9, room)
        lines += [(line, small) for line in sub]
    heights = [draw.textbbox((0, 0), line or " ", font=font)[3] + 2 for line, font in lines]
    y = (height - sum(heights)) / 2
    for (line, font), line_height in zip(lines, heights):
        draw.text(((width - draw.textlength(line, font=font)) / 2, y), line, font=font, fill=color)
        y += line_height
    array = np.asarray(card)
    return [array] * frames


def add_caption(frames: Sequence, text: str, bottom: int = 0) -> Frames:
    """Burn a caption into every frame (white on a dark band; :func:`helpers.slides.caption_layer`)."""
    from helpers.slides import caption_layer

    frames = as_frames(frames)
    _check_clip(frames)
    size = frames[0].shape[1::-1]
    layer = caption_layer(text, size, bottom=bottom)
    return [np.asarray(layer.apply(Image.fromarray(f))) for f in frames]


def stamp_frames(frames: Sequence) -> Frames:
    """Label every frame as random-weight output (done last, so no grade or fade dims the label)."""
    return [np.asarray(stamp_random_weights(Image.fromarray(f))) for f in as_frames(frames)]


# --------------------------------------------------------------------------------------------
# Export


@dataclass(frozen=True)
class Format:
    suffix: str
    codec: str       # as ffmpeg reports it when reading the file back (helpers.video.probe)
    pix_fmt: str     # likewise
    use: str


FORMATS: dict[str, Format] = {
    "mp4": Format(".mp4", "h264", "yuv420p", "H.264 in MP4 with faststart: plays in every browser and phone"),
    "gif": Format(".gif", "gif", "bgra", "GIF, 256 colours from a palette made for this clip: plays anywhere "
                                         "without a player (ffmpeg reads its palette frames back as bgra)"),
    "prores": Format(".mov", "prores", "yuv422p10le", "ProRes 422 HQ, 10-bit: for editing software; large, "
                                                      "close to lossless"),
    "webm": Format(".webm", "vp9", "yuv420p", "VP9 in WebM: small files for the web"),
}


def parse_formats(text: str | Sequence[str]) -> list[str]:
    """``"mp4,gif"`` or a list -> checked format names, mp4 first and always included."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    return ["mp4"] + [n for n in dict.fromkeys(names) if n != "mp4"]


def shrink_to_width(frames: Sequence, width: int | None) -> Frames:
    """Frames scaled down (Lanczos, aspect kept, even sides) to at most ``width`` pixels wide; None = as they are."""
    frames = as_frames(frames)
    if width is None or frames[0].shape[1] <= width:
        return frames
    if width < 2:
        raise ValueError(f"gif_width must be at least 2 pixels (or None), got {width}")
    width -= width % 2
    h, w = frames[0].shape[:2]
    size = (width, max(2, round(h * width / w / 2) * 2))
    return [np.asarray(Image.fromarray(f).resize(size, Image.Resampling.LANCZOS)) for f in frames]


def _even(frames: Frames) -> Frames:
    """Pad odd sides by one repeated pixel: 4:2:0 and 4:2:2 video need even sizes."""
    h, w = frames[0].shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return [np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") for f in frames]


def export(frames: Sequence, path: str | Path, fps: float, fmt: str | None = None, crf: int = 18) -> Path:
    """Write ``frames`` as one of :data:`FORMATS` (default: from the file's suffix), atomically.

    - ``mp4``: :func:`helpers.video.write_mp4` (libx264, ``crf`` 18 = visually lossless-ish, yuv420p, faststart)
    - ``gif``: ``palettegen`` finds the 256 colours this clip needs, ``paletteuse`` maps to them with dithering
    - ``prores``: ``prores_ks`` profile 3 (422 HQ), 10-bit 4:2:2, in a .mov
    - ``webm``: ``libvpx-vp9`` in constant-quality mode (``-crf 32 -b:v 0``)
    """
    path = Path(path)
    if fmt is None:
        by_suffix = {f.suffix: name for name, f in FORMATS.items()}
        if path.suffix.lower() not in by_suffix:
            raise ValueError(f"{path}: unknown video format {path.suffix!r}; use {', '.join(by_suffix)}")
        fmt = by_suffix[path.suffix.lower()]
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    _positive(fps, "fps", "frames per second")
    frames = as_frames(frames)
    _check_clip(frames)
    if fmt == "mp4":
        from helpers.video import write_mp4

        return write_mp4(frames, path, fps=fps, crf=crf)
    args = {
        "gif": ["-vf", "split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer:bayer_scale=3",
                "-loop", "0"],
        "prores": ["-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le", "-vendor", "apl0"],
        "webm": ["-c:v", "libvpx-vp9", "-crf", "32", "-b:v", "0", "-pix_fmt", "yuv420p", "-row-mt", "1",
                 "-deadline", "good", "-cpu-used", "4"],
    }[fmt]
    if fmt != "gif":
        frames = _even(frames)
    with atomic_path(path) as tmp:
        _pipe_ffmpeg(frames, fps, args + ["-f", {"gif": "gif", "prores": "mov", "webm": "webm"}[fmt]], str(tmp))
    return path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB between two uint8 images (higher is closer; identical = inf)."""
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def quality_table(frames: Sequence, files: dict[str, Path]) -> list[dict[str, Any]]:
    """Per exported file: format, file size, codec and pixel format (read back), frames and PSNR vs ``frames``.

    PSNR is over all pixels of all frames (the mean squared error of the whole clip), after cropping
    any padding; frame counts must match (they do for every format here). A file stored smaller (a GIF
    scaled down by ``gif_width``) is compared with the source scaled the same way.
    """
    from helpers.video import probe, read_frames

    source = np.stack(as_frames(frames)).astype(np.float64)
    rows = []
    for fmt, path in files.items():
        info = probe(path)
        decoded, _ = read_frames(path)
        count = min(len(decoded), len(source))
        reference = source[:count]
        if decoded[0].shape[1] < source.shape[2] - 1:  # stored smaller, not just padded to even sides
            reference = np.stack(shrink_to_width(frames[:count], decoded[0].shape[1] - decoded[0].shape[1] % 2))
        h, w = reference.shape[1:3]
        back = np.stack(decoded[:count])[:, :h, :w].astype(np.float64)
        rows.append({"format": fmt, "file": str(path), "bytes": Path(path).stat().st_size,
                     "codec": info["codec"], "pix_fmt": info["pix_fmt"], "frames": len(decoded),
                     "size": [int(decoded[0].shape[1]), int(decoded[0].shape[0])],
                     "psnr_db": round(psnr(back, reference.astype(np.float64)), 2)})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`quality_table` as aligned text."""
    lines = [f"{'format':<8} {'size':>10} {'codec':<8} {'pix_fmt':<12} {'frames':>6} {'PSNR dB':>8}"]
    for r in rows:
        lines.append(f"{r['format']:<8} {r['bytes'] / 1024:>7.1f} KB {r['codec']:<8} {r['pix_fmt']:<12} "
                     f"{r['frames']:>6} {r['psnr_db']:>8.2f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The whole chain


def post_settings(profile=None, **overrides: Any) -> dict[str, Any]:
    """The profile's ``post`` block with ``overrides`` (unknown names are refused)."""
    from helpers.profiles import get_profile

    settings = (profile or get_profile()).settings("post")
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown post setting(s) {sorted(unknown)}; known: {', '.join(settings)}")
    settings.update(overrides)
    return settings


def check_settings(settings: dict[str, Any]) -> None:
    """Every problem with ``settings`` as one clear ValueError, before any work is done."""
    _check_factor(settings["interpolate"])
    _check_method(settings["method"], tuple(METHODS))
    _positive(settings["fps"], "fps", "frames per second")
    if settings["crossfade_s"] < 0:
        raise ValueError(f"crossfade must be >= 0 s (0 = a cut), got {settings['crossfade_s']}")
    if not 0.0 <= settings["match_keyframe"] <= 1.0:
        raise ValueError(f"match_keyframe strength must be between 0 and 1, got {settings['match_keyframe']}")
    _check_window(settings["deflicker"])
    if settings["gif_width"] is not None and settings["gif_width"] < 2:
        raise ValueError(f"gif_width must be at least 2 pixels (or None), got {settings['gif_width']}")
    if not 0.0 <= settings["lut_strength"] <= 1.0:
        raise ValueError(f"LUT strength must be between 0 and 1, got {settings['lut_strength']}")
    if settings["lut"] not in (None, "", "none"):
        load_lut(settings["lut"])
    if settings["title"].strip():
        _positive(settings["title_s"], "title card duration")
    parse_formats(settings["formats"])


def produce(clips: Sequence[Sequence], fps: float, settings: dict[str, Any], keyframe=None,
            stamp: bool = False, start: float = 0.0, end: float | None = None, speed: float = 1.0,
            boomerang_clip: bool = False, caption: str = "") -> tuple[Frames, list[str]]:
    """Clips (all at ``fps``) -> the finished frames at ``settings["fps"]``, and a list of the steps done.

    Order: fit to one size, join (crossfades), trim, speed, match the keyframe, deflicker, LUT,
    interpolate, retime to the final fps, boomerang, caption, title card, random-weights stamp.
    """
    check_settings(settings)
    clips = [as_frames(c) for c in clips]
    if not clips:
        raise ValueError("no clips to post-produce (the list is empty)")
    for index, clip in enumerate(clips):
        _check_clip(clip, f"clip {index + 1}")
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
        frames = apply_lut(frames, settings["lut"], settings["lut_strength"])
        steps.append(f"LUT {settings['lut']} at strength {settings['lut_strength']:g}")
    factor = settings["interpolate"]
    if factor > 1:
        frames = interpolate(frames, factor, settings["method"])
        steps.append(f"interpolated x{factor} ({settings['method']})")
    if abs(fps * factor - settings["fps"]) > 1e-9:
        frames = retime(frames, fps * factor, settings["fps"], "blend")
        steps.append(f"retimed from {fps * factor:g} to {settings['fps']:g} fps (duration kept)")
    if boomerang_clip:
        frames = boomerang(frames)
        steps.append("boomerang (forwards, then backwards)")
    if caption.strip():
        from helpers.slides import stamp_band_height

        frames = add_caption(frames, caption, bottom=stamp_band_height(size) if stamp else 0)
        steps.append("caption")
    if settings["title"].strip():
        count = max(1, round(settings["title_s"] * settings["fps"]))
        card = title_card(settings["title"], size, count)
        fade = min(round(settings["crossfade_s"] * settings["fps"]), count, len(frames))
        frames = crossfade_clips([card, frames], fade)
        steps.append(f"title card {settings['title']!r} ({settings['title_s']:g} s, {fade}-frame crossfade)")
    if stamp:
        frames = stamp_frames(frames)
        steps.append("stamped RANDOM WEIGHTS on every frame")
    return frames, steps


# --------------------------------------------------------------------------------------------
# Command line


MAX_BYTES = 4 * 2**30  # the most the finished frames may take in memory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("videos", nargs="*", help="videos to post-produce, joined in this order; default: "
                        "outputs/videos/animation.mp4, else every video in outputs/videos/ by name")
    parser.add_argument("--out", help="the final MP4; other formats are written beside it with their own "
                        "suffix (default: outputs/final/final.mp4)")
    parser.add_argument("--formats", help=f"comma-separated, from {', '.join(FORMATS)} (mp4 is always written); "
                        "default: the profile's")
    parser.add_argument("--gif-width", type=int_range(16, 4096), dest="gif_width",
                        help="scale the GIF down to at most this width in pixels (default: the profile's)")
    parser.add_argument("--interpolate", type=int_range(1, 8),
                        help="frame interpolation factor, 1-8 (2: n -> 2n-1 frames; 1 = off)")
    parser.add_argument("--method", choices=list(METHODS), help="how in-between frames are made")
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
    frames_in = sum(len(c) for c in clips)
    height, width = np.asarray(clips[0][0]).shape[:2]
    peak = max(frames_in / speed * settings["interpolate"], frames_in / fps / speed * settings["fps"])
    peak = math.ceil(peak * (2 if boomerang_clip else 1) + settings["title_s"] * settings["fps"])
    size = peak * width * height * 3
    if size > MAX_BYTES:
        raise ValueError(f"these settings make about {peak} frames of {width}x{height} ({size / 2**30:.1f} GiB, "
                         f"more than {MAX_BYTES / 2**30:.0f} GiB): lower --fps or --interpolate, or raise --speed")


def find_inputs(given: Sequence[str]) -> list[Path]:
    """The videos to work on: ``given``, else outputs/videos/animation.mp4, else all videos there, else a stand-in."""
    from helpers.outputs import stage_dir
    from helpers.standins import ensure_video, video_paths

    if given:
        return [Path(p) for p in given]
    animation = stage_dir("videos") / "animation.mp4"
    if animation.exists():
        return [animation]
    return video_paths() or [ensure_video()]


def run(args: argparse.Namespace) -> int:
    from helpers.outputs import stage_dir, write_json
    from helpers.profiles import get_profile
    from helpers.images import load_image

    # Check everything that can be checked before reading or writing anything.
    profile = get_profile(args.profile)
    names = ("interpolate", "method", "fps", "crossfade_s", "lut", "lut_strength", "match_keyframe",
             "deflicker", "title", "title_s", "gif_width")
    overrides = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.keyframe and args.match_keyframe is None:
        overrides["match_keyframe"] = 1.0  # naming a keyframe means: match it
    if args.formats is not None:
        overrides["formats"] = tuple(parse_formats(args.formats))
    settings = post_settings(profile, **overrides)
    check_settings(settings)
    _positive(args.speed, "--speed", "(1 = unchanged)")
    if args.start < 0:
        raise ValueError(f"--start must be >= 0 s, got {args.start}")
    if args.end is not None and args.end <= args.start:
        raise ValueError(f"--end ({args.end:g} s) must be after --start ({args.start:g} s)")
    out = Path(args.out) if args.out else stage_dir("final") / "final.mp4"
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"{out}: --out must end in .mp4 (other formats are written beside it)")
    keyframe = None
    if args.keyframe:
        keyframe, _ = load_image(args.keyframe)
    elif settings["match_keyframe"] > 0:
        from helpers.keyframes import animation_keyframes

        animated = animation_keyframes(standins=False, verbose=False)  # what animate used by default
        keyframe = load_image(animated[0])[0] if animated else None
    print(profile.banner())

    start_time = time.perf_counter()
    paths = find_inputs(args.videos)
    clips, rates = [], []
    for path in paths:
        frames, fps = read_video(path)
        clips.append(frames)
        rates.append(fps)
    if len(set(round(r, 3) for r in rates)) > 1:
        clips = [retime(c, r, rates[0]) for c, r in zip(clips, rates)]
        print(f"note: clips had different frame rates; all retimed to {rates[0]:g} fps")
    check_memory(clips, rates[0], settings, args.speed, args.boomerang)
    stamp = profile.random_weights and any(p.name not in MODEL_FREE_NAMES for p in paths)
    frames, steps = produce(clips, rates[0], settings, keyframe=keyframe, stamp=stamp, start=args.start,
                            end=args.end, speed=args.speed, boomerang_clip=args.boomerang, caption=args.caption)
    files = {}
    for fmt in parse_formats(settings["formats"]):
        clip = shrink_to_width(frames, settings["gif_width"]) if fmt == "gif" else frames
        files[fmt] = export(clip, out.with_suffix(FORMATS[fmt].suffix), settings["fps"], fmt)
    rows = quality_table(frames, files)
    seconds = time.perf_counter() - start_time
    record = {
        "inputs": [str(p) for p in paths], "steps": steps, "fps": settings["fps"], "frames": len(frames),
        "size": list(frames[0].shape[1::-1]), "seconds_of_video": round(len(frames) / settings["fps"], 3),
        "files": rows, "profile": profile.name, "random_weights": profile.random_weights, "stamped": stamp,
        "settings": settings,
        "took_s": round(seconds, 2),
    }
    write_json(out.with_suffix(".json"), record)
    for step in steps:
        print(f"  - {step}")
    print(format_table(rows))
    tiny = " (random weights: shows the pipeline runs, not a real result)" if stamp else ""
    print(f"wrote {out} and {', '.join(str(p.name) for f, p in files.items() if f != 'mp4') or 'no other formats'}: "
          f"{len(frames)} frames at {settings['fps']:g} fps, {frames[0].shape[1]}x{frames[0].shape[0]}, "
          f"in {seconds:.1f} s{tiny}")
    return 0
