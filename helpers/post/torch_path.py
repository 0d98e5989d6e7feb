"""The same optical flow, in-between frames and LUT grading as the numpy reference, in torch, batched on a device.

Where the work runs is one setting, ``device`` (the profile's ``post`` block, ``--device``, or the
``device=`` argument of :func:`~helpers.post.interpolate` / :func:`~helpers.post.apply_lut`):

- ``auto``: torch on the GPU when CUDA is available; otherwise :data:`CPU_PATH`, the faster of the two CPU
  paths as measured by ``benchmarks/bench_post.py`` (docs/benchmarks.md): torch on the CPU;
- ``numpy``: the numpy reference of notebook 08 (float64, one frame pair at a time);
- ``cpu`` / ``cuda`` (or ``cuda:1``...): torch on that device.

Every function here follows its numpy twin step by step (same pyramid, same Lucas-Kanade update, same
confidence-weighted smoothing, same bilinear reads with edges repeated, same trilinear LUT), but works on a
batch of frames at once and leaves the data on the device until the finished uint8 frames come back.
In float64 the flow matches the numpy reference within 1e-6 px (measured: ~1e-8 px); torch runs in float32
by default (what a GPU is fast at), which stays within :data:`FLOAT32_TOLERANCE` (tests/test_post_torch.py).
Nothing here is a matmul or a convolution, so TF32 never enters: the window sums are cumulative sums, every
read is ``grid_sample``, and a LUT becomes a table of all 256^3 colours read by one gather per frame.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

DEVICES = ("auto", "numpy", "cpu", "cuda")
# What "auto" runs without CUDA: torch on the CPU, measured faster than numpy on 1 and 2 cores
# (benchmarks/bench_post.py, docs/benchmarks.md). Set to "numpy" if a CPU ever measures the other way.
CPU_PATH = "cpu"
# Frame pairs (or frames) worked on at once. A GPU wants big batches (memory grows by about 85 MB per 1024x576
# pair in float32, measured on the CPU: 8 pairs ~0.7 GB); a CPU is fastest with small ones that stay in its
# caches (measured at 1024x576, one thread: 1-2 pairs 0.12 s per pair, 8 pairs 0.15 s).
BATCH = {"cpu": 2, "cuda": 8}
# float32 against the float64 numpy reference (tests/test_post_torch.py). Measured on CPU on panning pictures from
# 96x64 to 1024x576: flow median <= 5e-6 px and worst 4e-4 px; in-betweens before rounding <= 0.013 levels; uint8
# in-betweens and graded frames <= 1 level (a rounding). The bounds below leave at least 10x room (4x for in-betweens).
# The flow's settings, shared with the numpy reference (helpers.post.interpolation), chosen by measuring PSNR on held-out
# frames of a 1024x576 pan (benchmarks/bench_vs_ffmpeg.py, docs/benchmarks.md): a 15x15 window (radius 7; radius 3
# locked onto repeating roof tiles and lost 10 dB there), 4 pyramid levels, 3 Lucas-Kanade steps per level but 1 on
# the full-size level, which costs as much as all the others together and changes little once the flow is close.
LEVELS, RADIUS, ITERATIONS, FINE_ITERATIONS = 4, 7, 3, 1
# From this many pixels in a clip on, a LUT is applied through a table of all 256^3 colours (built once, then one
# gather per frame) rather than by grid_sample per pixel. An estimate, not a measured break-even: building was
# about 12 ns per colour and grid_sample about 50 ns per pixel on one loaded CPU core (16.7 M x 12 / 50 ~ 4 M).
DENSE_LUT_PIXELS = 4_000_000
# Built 256^3 tables kept in memory (48 MB each), newest last: grading a second clip with the same LUT and strength
# skips the build (about 0.6 s on one loaded CPU core, as long as grading 100 frames of 1024x576 by the gather).
DENSE_CACHE_SIZE = 2
_DENSE_CACHE: dict[tuple, torch.Tensor] = {}
FLOAT32_TOLERANCE = {"flow_median_px": 1e-4, "flow_max_px": 5e-3, "inbetween_levels": 0.05, "uint8_levels": 1}
_T, _R = TypeVar("_T"), TypeVar("_R")


# --------------------------------------------------------------------------------------------
# Which device


def resolve_device(device: str | None = "auto") -> str:
    """The path that runs for a ``device`` setting: ``"numpy"``, ``"cpu"`` or a CUDA device such as ``"cuda"``.

    ``auto`` (or None) gives ``cuda`` when CUDA is available, else :data:`CPU_PATH`. Asking for CUDA without
    a GPU, or for an unknown device, is a one-line ValueError.
    """
    name = "auto" if device is None else str(device).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else CPU_PATH
    if name in ("numpy", "cpu"):
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"post-production device {device!r}: no CUDA GPU is available here; "
                             "use 'auto', 'cpu' or 'numpy'")
        try:
            index = torch.device(name).index or 0
        except RuntimeError:
            index = -1
        if not 0 <= index < torch.cuda.device_count():
            raise ValueError(f"post-production device {device!r}: this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s)")
        return name
    raise ValueError(f"unknown post-production device {device!r}; choose one of {', '.join(DEVICES)}")


def describe_device(device: str | None = "auto") -> str:
    """Which path runs for ``device``, in words: e.g. ``torch on cuda: NVIDIA H100 80GB HBM3, float32``."""
    path = resolve_device(device)
    if path == "numpy":
        return "numpy on the CPU, float64: notebook 08's reference"
    if path == "cpu":
        threads = torch.get_num_threads()
        return f"torch on the CPU, {threads} thread{'s' if threads > 1 else ''}, float32"
    return f"torch on {path}: {torch.cuda.get_device_name(torch.device(path))}, float32"


def to_device(frames: Sequence[np.ndarray], device: str) -> torch.Tensor:
    """uint8 frames -> one (N, H, W, 3) uint8 tensor on ``device`` (a quarter of the bytes of float32)."""
    return torch.from_numpy(np.stack([np.asarray(f, dtype=np.uint8) for f in frames])).to(device)


def to_frames(batch: torch.Tensor) -> list[np.ndarray]:
    """Float frames in 0..255 (N, H, W, 3) -> uint8 arrays, rounded like ``np.rint``; one copy back to the host."""
    return list(batch.round().clamp_(0, 255).to(torch.uint8).cpu().numpy())


def _cpu_workers(device: str) -> int:
    """How many worker threads :func:`cpu_map` uses on ``device`` (1 on a GPU)."""
    return torch.get_num_threads() if device == "cpu" else 1


def cpu_map(fn: Callable[[_T], _R], items: Sequence[_T], device: str) -> list[_R]:
    """``[fn(x) for x in items]``; on the CPU spread over ``torch.get_num_threads()`` worker threads, one torch thread each.

    Why not let every torch op use all the threads? The flow is some 300 small element-wise ops per frame pair,
    and each multi-threaded op ends by waiting for its slowest thread. On a shared machine (2 cores, a neighbour
    busy) that thread is often off its core, and 2 threads measured 5x to 37x SLOWER than 1 (benchmarks/
    bench_vs_ffmpeg.py, docs/benchmarks.md). Here each worker runs whole frame pairs (or frames) on one thread:
    nothing waits until the end, a descheduled worker only delays its own items, and the results are the
    same numbers as one thread gives (a single item too runs on one thread: measured 0.7-1.0 s against 10-27 s
    for 4 frame pairs under load). On a GPU (or with one thread) the items simply run in turn.
    """
    workers = min(torch.get_num_threads(), len(items)) if device == "cpu" and torch.get_num_threads() > 1 else 0
    if not workers:
        return [fn(x) for x in items]

    def one_thread(item: _T) -> _R:
        torch.set_num_threads(1)              # this worker's ops; the caller's count is its own
        return fn(item)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one_thread, items))


# --------------------------------------------------------------------------------------------
# Optical flow (the numpy reference: helpers.post.interpolation)


def luma(frames: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Brightness of (N, H, W, 3) RGB frames in 0..255 -> (N, H, W) in 0..1 (Rec. 709 weights, no matmul)."""
    rgb = frames.to(dtype)
    return (0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]) / 255.0


def box_mean(image: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1) x (2r+1) window around each pixel of (..., H, W) images, edges repeated.

    Cumulative sums, as in the numpy version, but one axis at a time (a running sum along each row, the
    difference of two entries k apart, then the same down the columns): the cost does not grow with the
    window, and the sums stay row- or column-sized, so float32 keeps about 6 digits. No convolution (so no TF32
    on a GPU); every channel of ``image`` (e.g. the five products of a Lucas-Kanade step) in one call.
    """
    k = 2 * radius + 1
    shape = image.shape
    padded = F.pad(image.reshape(-1, 1, *shape[-2:]), (radius, radius, radius, radius), mode="replicate")
    running = padded.cumsum(-1)                       # running[j] = sum of entries 0..j
    rows = running[..., k - 1:].clone()               # sums of entries j-k+1..j ...
    rows[..., 1:] -= running[..., :-k]                # ... = running[j] - running[j-k]
    running = rows.cumsum(-2)
    cols = running[..., k - 1:, :].clone()
    cols[..., 1:, :] -= running[..., :-k, :]
    return cols.div_(k * k).reshape(shape)


def bilinear_sample(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) images read at real positions ``x``, ``y`` (N, h, w) in pixels -> (N, C, h, w).

    ``grid_sample`` with ``align_corners=True`` (-1 and 1 are the centres of the first and last pixels) and
    ``padding_mode="border"`` (outside reads the nearest edge): the numpy ``bilinear_sample``.
    """
    height, width = image.shape[-2:]
    grid = torch.stack([x * (2.0 / max(width - 1, 1)) - 1.0, y * (2.0 / max(height - 1, 1)) - 1.0], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def pixel_grid(count: int, height: int, width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x and y of every pixel, (count, height, width) each, on ``like``'s device and dtype."""
    ys = torch.arange(height, dtype=like.dtype, device=like.device).view(1, height, 1).expand(count, height, width)
    xs = torch.arange(width, dtype=like.dtype, device=like.device).view(1, 1, width).expand(count, height, width)
    return xs, ys


def _downsample(image: torch.Tensor) -> torch.Tensor:
    """Half size by averaging 2x2 blocks (an odd last row/column is repeated first)."""
    height, width = image.shape[-2:]
    if height % 2 or width % 2:
        image = F.pad(image[:, None], (0, width % 2, 0, height % 2), mode="replicate")[:, 0]
    return 0.25 * (image[:, 0::2, 0::2] + image[:, 1::2, 0::2] + image[:, 0::2, 1::2] + image[:, 1::2, 1::2])


def _upsample_flow(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A coarse (N, 2, h, w) flow brought to height x width: sampled bilinearly, vectors doubled."""
    xs, ys = pixel_grid(flow.shape[0], height, width, flow)
    return 2.0 * bilinear_sample(flow, (xs + 0.5) / 2 - 0.5, (ys + 0.5) / 2 - 0.5)


def lucas_kanade_step(a: torch.Tensor, b: torch.Tensor, flow: torch.Tensor, radius: int = RADIUS,
                      eps: float = 1e-4) -> torch.Tensor:
    """One Lucas-Kanade update of ``flow`` (N, 2, H, W) for (N, H, W) images, as the numpy ``lucas_kanade_step``.

    The five window sums are one :func:`box_mean` of a (N, 5, H, W) stack, the three of the confidence-weighted
    smoothing another.
    """
    xs, ys = pixel_grid(*a.shape, a)
    warped = bilinear_sample(b[:, None], xs + flow[:, 0], ys + flow[:, 1])[:, 0]
    iy, ix = torch.gradient(0.5 * (a + warped), dim=(1, 2))
    it = warped - a
    sums = box_mean(torch.stack([ix * ix, ix * iy, iy * iy, ix * it, iy * it], dim=1), radius)
    sxx, sxy, syy, sxt, syt = sums.unbind(1)
    sxx, syy = sxx + eps, syy + eps
    det = sxx * syy - sxy * sxy
    u = flow[:, 0] - (syy * sxt - sxy * syt) / det
    v = flow[:, 1] - (sxx * syt - sxy * sxt) / det
    trace = sxx + syy
    confidence = 0.5 * (trace - torch.sqrt(torch.clamp(trace * trace - 4 * det, min=0.0)))
    smooth = box_mean(torch.stack([confidence * u, confidence * v, confidence], dim=1), radius)
    return smooth[:, :2] / smooth[:, 2:]


def optical_flow(a: torch.Tensor, b: torch.Tensor, levels: int = LEVELS, radius: int = RADIUS,
                 iterations: int = ITERATIONS, eps: float = 1e-4, dtype: torch.dtype = torch.float32,
                 fine_iterations: int = FINE_ITERATIONS) -> torch.Tensor:
    """Dense flow from each frame of ``a`` to the same frame of ``b``, both (N, H, W, 3) in 0..255.

    Returns (N, H, W, 2) (dx, dy) in pixels with ``a(p) ~ b(p + flow(p))``, on the frames' device: the numpy
    ``optical_flow`` of every pair at once (same pyramid, same steps; ``fine_iterations`` on the full-size level).
    """
    pyramid = [(luma(a, dtype), luma(b, dtype))]
    while len(pyramid) < levels and min(pyramid[-1][0].shape[-2:]) >= 16:
        pyramid.append((_downsample(pyramid[-1][0]), _downsample(pyramid[-1][1])))
    flow = torch.zeros((a.shape[0], 2, *pyramid[-1][0].shape[-2:]), dtype=dtype, device=a.device)
    for level in reversed(range(len(pyramid))):
        ga, gb = pyramid[level]
        if flow.shape[-2:] != ga.shape[-2:]:
            flow = _upsample_flow(flow, *ga.shape[-2:])
        for _ in range(iterations if level else fine_iterations):
            flow = lucas_kanade_step(ga, gb, flow, radius, eps)
    return flow.permute(0, 2, 3, 1)


def inside(x: torch.Tensor, y: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """How much a read at (x, y) is inside the frame: 1 inside, falling to 0 one pixel beyond the edge."""
    margin = torch.minimum(torch.minimum(x, (width - 1) - x), torch.minimum(y, (height - 1) - y))
    return torch.clamp(margin + 1.0, 0.0, 1.0)


def flow_inbetween(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float, flow: torch.Tensor) -> torch.Tensor:
    """Frames at times ``t`` (0 = ``a``, 1 = ``b``; a number or one per frame) by warping both neighbours.

    ``a``, ``b``: (N, H, W, 3) in 0..255; ``flow``: (N, H, W, 2) from :func:`optical_flow`. Returns float
    (N, H, W, 3) in 0..255, in ``flow``'s dtype: the numpy ``flow_inbetween``. Weights ``1 - t`` and ``t``,
    each times :func:`inside` of its read, so content entering or leaving the frame comes from the neighbour
    that shows it (where neither does, the plain weights).
    """
    t = torch.as_tensor(t, dtype=flow.dtype, device=flow.device).reshape(-1, 1, 1)
    count, height, width = flow.shape[:3]
    xs, ys = pixel_grid(count, height, width, flow)
    fx, fy = flow[..., 0], flow[..., 1]
    channels_first = lambda frames: frames.to(flow.dtype).permute(0, 3, 1, 2)
    xa, ya, xb, yb = xs - t * fx, ys - t * fy, xs + (1 - t) * fx, ys + (1 - t) * fy
    from_a, from_b = bilinear_sample(channels_first(a), xa, ya), bilinear_sample(channels_first(b), xb, yb)
    wa, wb = (1 - t) * inside(xa, ya, height, width), t * inside(xb, yb, height, width)
    total = wa + wb
    seen = total > 1e-6
    wa = torch.where(seen, wa / torch.where(seen, total, 1.0), (1 - t).expand_as(wa))[:, None]
    return (wa * from_a + (1 - wa) * from_b).permute(0, 2, 3, 1)


def batch_size(device: str) -> int:
    """Frame pairs (or frames) per batch on ``device`` (:data:`BATCH`)."""
    return BATCH["cpu" if device == "cpu" else "cuda"]


def inbetweens(frames: Sequence[np.ndarray], jobs: Sequence[tuple[int, float]], device: str,
               dtype: torch.dtype = torch.float32, batch: int | None = None) -> list[np.ndarray]:
    """The uint8 frames at ``jobs`` = [(i, t), ...]: time ``t`` (0 < t < 1) between frames i and i + 1.

    The flow of each pair is computed once, ``batch`` pairs at a time on ``device`` (default
    :func:`batch_size`); every in-between of those pairs is made there too, and each batch comes back to
    the host in one copy. On the CPU the batches are shared out among worker threads (:func:`cpu_map`).
    """
    pairs = sorted({i for i, _ in jobs})
    batch = batch or min(batch_size(device), -(-len(pairs) // max(1, _cpu_workers(device))))   # work for every worker
    chunks = [pairs[start:start + batch] for start in range(0, len(pairs), batch)]
    out: dict[int, np.ndarray] = {}
    for made in cpu_map(lambda chunk: _chunk_inbetweens(frames, jobs, chunk, device, dtype, batch), chunks, device):
        out.update(made)
    return [out[j] for j in range(len(jobs))]


def _chunk_inbetweens(frames: Sequence[np.ndarray], jobs: Sequence[tuple[int, float]], chunk: list[int],
                      device: str, dtype: torch.dtype, batch: int) -> dict[int, np.ndarray]:
    """The in-betweens of the jobs whose pair is in ``chunk`` (pair indices), by job index: one batch of :func:`inbetweens`."""
    a, b = to_device([frames[i] for i in chunk], device), to_device([frames[i + 1] for i in chunk], device)
    flow = optical_flow(a, b, dtype=dtype)
    where = {i: k for k, i in enumerate(chunk)}
    mine = [j for j, (i, _) in enumerate(jobs) if i in where]
    out: dict[int, np.ndarray] = {}
    for first in range(0, len(mine), batch):
        some = mine[first:first + batch]
        index = torch.tensor([where[jobs[j][0]] for j in some], device=flow.device)
        t = torch.tensor([jobs[j][1] for j in some], dtype=dtype, device=flow.device)
        out.update(zip(some, to_frames(flow_inbetween(a[index], b[index], t, flow[index]))))
    return out


# --------------------------------------------------------------------------------------------
# Grading (the numpy reference: helpers.post.grading.apply_lut)


def axis_weights(levels: int, size: int, lo: float, hi: float, dtype: torch.dtype,
                 device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """For every 8-bit level of one channel, its LUT cell ``i`` (0..size-2) and position ``f`` (0..1) in it.

    The numpy ``apply_lut``'s ``x = clip((v / 255 - lo) / (hi - lo), 0, 1) * (N - 1)``, ``i = min(floor(x), N - 2)``.
    """
    x = ((torch.arange(levels, dtype=dtype, device=device) / 255.0 - lo) / (hi - lo)).clamp(0.0, 1.0) * (size - 1)
    i = torch.clamp(torch.floor(x), max=size - 2)
    return i.long(), x - i


def dense_lut(table: np.ndarray, domain_min: Sequence[float], domain_max: Sequence[float], strength: float,
              device: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The finished uint8 output of every one of the 256^3 input colours: a (256^3, 3) table, index ``(b*256 + g)*256 + r``.

    Trilinear interpolation is three linear ones, one axis at a time: along red (``table[b, g, r]``'s last axis)
    to 256 levels, then green, then blue, one blue level at a time in chunks. That is the numpy ``apply_lut``'s
    order of operations (red pairs, then green, then blue), so in float64 the table holds exactly its numbers.
    Then ``strength`` mixes with the input colour and the result is rounded, once per colour instead of once
    per pixel: grading a frame becomes one gather (:func:`apply_lut`). The blue levels are filled in chunks,
    on the CPU by worker threads (:func:`cpu_map`).
    """
    volume = torch.as_tensor(np.ascontiguousarray(table), dtype=dtype, device=device)       # (B, G, R, 3)
    size = volume.shape[0]
    (ir, fr), (ig, fg), (ib, fb) = (axis_weights(256, size, lo, hi, dtype, device)
                                    for lo, hi in zip(domain_min, domain_max))
    along_r = volume[:, :, ir] * (1 - fr)[:, None] + volume[:, :, ir + 1] * fr[:, None]       # (B, G, 256, 3)
    along_g = along_r[:, ig] * (1 - fg)[:, None, None] + along_r[:, ig + 1] * fg[:, None, None]  # (B, 256, 256, 3)
    level = torch.arange(256, dtype=dtype, device=device) / 255.0
    out = torch.empty((256, 256, 256, 3), dtype=torch.uint8, device=device)

    def blue_levels(b: slice) -> None:
        graded = along_g[ib[b]] * (1 - fb[b]).view(-1, 1, 1, 1) + along_g[ib[b] + 1] * fb[b].view(-1, 1, 1, 1)
        rgb = torch.stack(torch.broadcast_tensors(level.view(1, 1, -1), level.view(1, -1, 1), level[b].view(-1, 1, 1)),
                          dim=-1)
        out[b] = (((1 - strength) * rgb + strength * graded) * 255.0).round_().clamp_(0, 255).to(torch.uint8)

    cpu_map(blue_levels, [slice(first, first + 32) for first in range(0, 256, 32)], device)
    return out.view(-1, 3)


def apply_lut(frames: Sequence[np.ndarray], table: np.ndarray, domain_min: Sequence[float],
              domain_max: Sequence[float], strength: float, device: str, dtype: torch.dtype = torch.float32,
              batch: int | None = None) -> list[np.ndarray]:
    """uint8 frames through a 3D LUT ``table[b, g, r]`` with trilinear interpolation, on ``device``.

    Clips of at least :data:`DENSE_LUT_PIXELS` pixels: :func:`dense_lut` once (kept for the next clip:
    :func:`cached_dense_lut`), then one gather per frame (``out = dense[(b * 256 + g) * 256 + r]``), batches
    shared out among worker threads on the CPU. Smaller ones: ``grid_sample`` per pixel (:func:`lut_grid_sample`),
    cheaper than working out all 16.7 million colours.
    """
    batch = batch or batch_size(device)
    if sum(np.asarray(f).shape[0] * np.asarray(f).shape[1] for f in frames) < DENSE_LUT_PIXELS:
        return lut_grid_sample(frames, table, domain_min, domain_max, strength, device, dtype, batch)
    dense = cached_dense_lut(table, domain_min, domain_max, strength, device, dtype)

    def gather(start: int) -> list[np.ndarray]:
        red, green, blue = to_device(frames[start:start + batch], device).unbind(-1)
        index = blue.int().mul_(256).add_(green.int()).mul_(256).add_(red.int())
        return list(dense.index_select(0, index.view(-1)).view(*index.shape, 3).cpu().numpy())

    return [frame for some in cpu_map(gather, range(0, len(frames), batch), device) for frame in some]


def cached_dense_lut(table: np.ndarray, domain_min: Sequence[float], domain_max: Sequence[float], strength: float,
                     device: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """:func:`dense_lut`, built once per table, domain, strength, device and dtype (the last :data:`DENSE_CACHE_SIZE` kept)."""
    table = np.ascontiguousarray(table)
    key = (hashlib.sha1(table.tobytes()).hexdigest(), table.shape, str(table.dtype), tuple(map(float, domain_min)),
           tuple(map(float, domain_max)), float(strength), str(device), str(dtype))
    if key not in _DENSE_CACHE:
        while len(_DENSE_CACHE) >= DENSE_CACHE_SIZE:
            _DENSE_CACHE.pop(next(iter(_DENSE_CACHE)))
        _DENSE_CACHE[key] = dense_lut(table, domain_min, domain_max, strength, device, dtype)
    return _DENSE_CACHE[key]


def lut_grid_sample(frames: Sequence[np.ndarray], table: np.ndarray, domain_min: Sequence[float],
                    domain_max: Sequence[float], strength: float, device: str, dtype: torch.dtype = torch.float32,
                    batch: int | None = None) -> list[np.ndarray]:
    """The same grade by ``grid_sample``, pixel by pixel.

    The table becomes a 5-D volume (1, 3, blue, green, red) for ``grid_sample``, whose grid holds
    (x, y, z) = (red, green, blue) positions: the same axis order as the .cube file (red fastest). With
    ``align_corners=True``, -1 and 1 are the first and last grid points, so a colour's position on the grid
    is just ``2 * (colour - min) / (max - min) - 1``, clipped to [-1, 1] like the numpy version.
    """
    batch = batch or batch_size(device)
    volume = torch.as_tensor(np.ascontiguousarray(table), dtype=dtype, device=device).permute(3, 0, 1, 2)[None]
    lo = torch.as_tensor(domain_min, dtype=dtype, device=device)
    hi = torch.as_tensor(domain_max, dtype=dtype, device=device)
    out = []
    for start in range(0, len(frames), batch):
        rgb = to_device(frames[start:start + batch], device).to(dtype) / 255.0
        where = ((rgb - lo) / (hi - lo)).clamp(0.0, 1.0) * 2.0 - 1.0
        graded = F.grid_sample(volume, where[None], mode="bilinear", padding_mode="border", align_corners=True)
        graded = graded[0].permute(1, 2, 3, 0)                                    # (n, H, W, RGB)
        out += to_frames(((1 - strength) * rgb + strength * graded) * 255.0)
    return out
