"""Frame interpolation: in-between frames by optical flow, by a plain blend, or by ffmpeg's ``minterpolate``.

The optical flow here is the numpy reference, written out in notebook 08 (Lucas-Kanade, coarse to fine,
warping both neighbours); :mod:`helpers.post.torch_path` runs the same steps in torch, batched on a GPU
when there is one (the ``device`` argument). ``x2`` of ``n`` frames gives ``2n - 1`` frames and keeps the
originals exactly. Speed changes and frame-rate conversion pick or make frames at real-valued positions
(:func:`resample`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from helpers.post.frames import Frames, as_frames, check_clip, check_positive, pipe_ffmpeg, raw_to_frames
from helpers.post.torch_path import FINE_ITERATIONS, ITERATIONS, LEVELS, RADIUS, inbetweens, resolve_device

METHODS = {
    "flow": "optical flow (Lucas-Kanade, coarse to fine) and a warp of both neighbours: notebook 08, on the device",
    "blend": "a cross-dissolve of the two neighbours: no motion, just a fade",
    "ffmpeg": "ffmpeg's minterpolate: motion-compensated, block based",
}
SPEED_METHODS = ("nearest", "blend", "flow")


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


def lucas_kanade_step(a: np.ndarray, b: np.ndarray, flow: np.ndarray, radius: int = RADIUS,
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


def optical_flow(a, b, levels: int = LEVELS, radius: int = RADIUS, iterations: int = ITERATIONS, eps: float = 1e-4,
                 fine_iterations: int = FINE_ITERATIONS) -> np.ndarray:
    """Dense flow from frame ``a`` to frame ``b``: HxWx2 (dx, dy) in pixels, ``a(p) ~ b(p + flow(p))``.

    Coarse to fine: on a pyramid of half-size images (at most ``levels``, halving while the smaller
    side is at least 16 pixels), large motions become small ones; at each level ``iterations``
    Lucas-Kanade steps refine the flow brought up from the level below (``fine_iterations`` on the
    full-size level, the costliest, where the flow is already close).
    """
    pyramid = [(luma(a), luma(b))]
    while len(pyramid) < levels and min(pyramid[-1][0].shape) >= 16:
        pyramid.append((_downsample(pyramid[-1][0]), _downsample(pyramid[-1][1])))
    flow = np.zeros(pyramid[-1][0].shape + (2,))
    for level in reversed(range(len(pyramid))):
        ga, gb = pyramid[level]
        if flow.shape[:2] != ga.shape:
            flow = _upsample_flow(flow, ga.shape)
        for _ in range(iterations if level else fine_iterations):
            flow = lucas_kanade_step(ga, gb, flow, radius, eps)
    return flow


def inside(x: np.ndarray, y: np.ndarray, height: int, width: int) -> np.ndarray:
    """How much a read at (x, y) is inside the frame: 1 inside, falling to 0 one pixel beyond the edge."""
    margin = np.minimum(np.minimum(x, (width - 1) - x), np.minimum(y, (height - 1) - y))
    return np.clip(margin + 1.0, 0.0, 1.0)


def flow_inbetween(a, b, t: float, flow: np.ndarray | None = None) -> np.ndarray:
    """The frame at time ``t`` (0 = ``a``, 1 = ``b``) by warping both neighbours along the flow.

    Each pixel p looks back to ``a`` at ``p - t*F(p)`` and ahead to ``b`` at ``p + (1-t)*F(p)``, and the
    two are blended with weights ``1-t`` and ``t`` (using the flow at p for the moving point: the usual
    linear-motion approximation). A read that falls outside its frame (content entering or leaving, as in
    a pan) sees only a repeated edge, so its weight fades to 0 there (:func:`inside`) and the other
    neighbour, which does show that content, takes over. Returns float64 in 0..255.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    flow = optical_flow(a, b) if flow is None else flow
    height, width = a.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    xa, ya = xs - t * flow[..., 0], ys - t * flow[..., 1]
    xb, yb = xs + (1 - t) * flow[..., 0], ys + (1 - t) * flow[..., 1]
    wa, wb = (1 - t) * inside(xa, ya, height, width), t * inside(xb, yb, height, width)
    total = wa + wb
    wa = np.where(total > 1e-6, wa / np.maximum(total, 1e-6), 1 - t)[..., None]  # neither inside: plain weights
    return wa * bilinear_sample(a, xa, ya) + (1 - wa) * bilinear_sample(b, xb, yb)


def blend_inbetween(a, b, t: float) -> np.ndarray:
    """``(1 - t) * a + t * b`` in float64: a cross-dissolve, no motion."""
    return (1 - t) * np.asarray(a, dtype=np.float64) + t * np.asarray(b, dtype=np.float64)


def check_factor(factor: int) -> None:
    """Refuse an interpolation factor that is not a whole number >= 1."""
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"interpolation factor must be a whole number >= 1 (2 doubles the frames), got {factor!r}")


def check_method(method: str, allowed: Sequence[str]) -> None:
    """Refuse an interpolation method that is not one of ``allowed``."""
    if method not in allowed:
        raise ValueError(f"unknown interpolation method {method!r}; choose one of {', '.join(allowed)}")


def interpolate(frames: Sequence, factor: int = 2, method: str = "flow", device: str | None = "auto") -> Frames:
    """``factor - 1`` new frames between each pair: n frames -> (n - 1) * factor + 1, originals kept exactly.

    ``method``: ``flow`` (:func:`flow_inbetween`), ``blend`` (:func:`blend_inbetween`) or ``ffmpeg``
    (:func:`interpolate_ffmpeg`: minterpolate makes the in-betweens, the originals are put back).
    ``device`` says where the flow runs (:func:`helpers.post.torch_path.resolve_device`): ``auto``, ``numpy``,
    ``cpu`` or ``cuda``.
    """
    check_factor(factor)
    check_method(method, tuple(METHODS))
    frames = as_frames(frames)
    check_clip(frames)
    if method == "ffmpeg":
        return interpolate_ffmpeg(frames, factor)
    # Positions k / factor: every factor-th one is a whole number, i.e. an original frame, kept as is.
    return resample(frames, [k / factor for k in range((len(frames) - 1) * factor + 1)], method, device)


def interpolate_ffmpeg(frames: Sequence, factor: int = 2, mode: str = "mci") -> Frames:
    """In-betweens from ffmpeg's ``minterpolate`` (``mci``: motion-compensated; ``blend``: a fade).

    minterpolate outputs frame ``k * factor`` at the time of original frame ``k``; it needs a frame after
    the last one, so the clip is padded (``tpad``) and cut back to ``(n - 1) * factor + 1`` frames. The
    originals are then put back exactly (ffmpeg works in YUV, which shifts colours by a level or so).
    """
    check_factor(factor)
    frames = as_frames(frames)
    check_clip(frames)
    if factor == 1 or len(frames) == 1:
        return [f.copy() for f in frames]
    fps = 8.0  # any rate: only the ratio matters
    vf = (f"tpad=stop={factor}:stop_mode=clone,"
          f"minterpolate=fps={fps * factor:g}:mi_mode={mode}:mc_mode=aobmc:me_mode=bidir:vsbmc=1")
    out = raw_to_frames(pipe_ffmpeg(frames, fps, ["-vf", vf]), frames[0].shape)
    wanted = (len(frames) - 1) * factor + 1
    if len(out) < wanted:
        raise RuntimeError(f"minterpolate gave {len(out)} frames, expected at least {wanted}")
    out = out[:wanted]
    for k, frame in enumerate(frames):
        out[k * factor] = frame.copy()
    return out


def resample(frames: Sequence, positions: Sequence[float], method: str = "blend",
             device: str | None = "auto") -> Frames:
    """Frames at real-valued ``positions`` of the clip (0 = first frame, n - 1 = last).

    Whole positions return the original frame; between two frames ``nearest`` picks the closer one,
    ``blend`` fades and ``flow`` warps along the optical flow (computed once per pair): in numpy here, or
    in torch on ``device`` (:func:`helpers.post.torch_path.inbetweens`, every pair batched).
    """
    check_method(method, SPEED_METHODS)
    path = resolve_device(device)
    frames = as_frames(frames)
    check_clip(frames)
    out: list[np.ndarray | None] = []
    jobs: list[tuple[int, float]] = []  # (pair i, time t) of each in-between to make ...
    slots: list[int] = []               # ... and where it goes in ``out``
    for p in positions:
        p = min(max(float(p), 0.0), len(frames) - 1.0)
        i = int(math.floor(p + 1e-9))
        t = p - i
        if t < 1e-9 or i >= len(frames) - 1:
            out.append(frames[min(i, len(frames) - 1)].copy())
        elif method == "nearest":
            out.append(frames[i + (t >= 0.5)].copy())
        else:
            slots.append(len(out))
            out.append(None)
            jobs.append((i, t))
    if method == "flow" and path != "numpy" and jobs:
        made = inbetweens(frames, jobs, path)
    else:
        made, pair, flow = [], None, None
        for i, t in jobs:
            a, b = frames[i], frames[i + 1]
            if method == "flow":
                if i != pair:  # one flow per pair (positions come in order), only the current one kept
                    pair, flow = i, optical_flow(a, b)
                middle = flow_inbetween(a, b, t, flow)
            else:
                middle = blend_inbetween(a, b, t)
            made.append(np.clip(np.rint(middle), 0, 255).astype(np.uint8))
    for slot, frame in zip(slots, made):
        out[slot] = frame
    return out


def change_speed(frames: Sequence, speed: float, method: str = "blend", device: str | None = "auto") -> Frames:
    """Play ``speed`` times faster at the same frame rate (2: half the frames; 0.5: twice as many).

    The same operation converts frame rates with the duration kept: ``retime(frames, 8, 16)`` is
    ``change_speed(frames, 8 / 16)``.
    """
    check_positive(speed, "speed", "(1 = unchanged)")
    check_method(method, SPEED_METHODS)
    frames = as_frames(frames)
    check_clip(frames)
    positions = np.arange(0, len(frames) - 1 + 1e-9, speed)
    return resample(frames, positions, method, device)


def retime(frames: Sequence, source_fps: float, target_fps: float, method: str = "blend",
           device: str | None = "auto") -> Frames:
    """The clip at ``target_fps`` instead of ``source_fps``, lasting as long (frames picked or made)."""
    check_positive(source_fps, "source fps", "frames per second")
    check_positive(target_fps, "target fps", "frames per second")
    if abs(source_fps - target_fps) < 1e-9:
        return as_frames(frames)
    return change_speed(frames, source_fps / target_fps, method, device)
