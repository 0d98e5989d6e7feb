"""The fast sampler's plan (notebook 03): PixelCNN++ as a graph of cached maps, and when each position
of each map can be computed.

Read it in the lesson's order:

1. :func:`conv_index` and friends - which input positions a layer position reads (its kernel as a table);
2. :class:`CachedMap` and its four kinds - one cached activation map per layer, and how one of its
   positions is computed from the maps it reads (:class:`ConvMap`, :class:`ShiftSumMap`,
   :class:`GatedOutMap`): ``compute`` for any positions, ``one_position_ops`` for one position whose
   kernel window is a view of the cache (the CPU steps record these once and replay them);
3. :func:`build_cache_graph` - the whole network as such maps, in the model's own order;
4. :func:`dependency_times` and :func:`make_schedule` - for every position, the last pixel it depends on,
   and so the work to do right after each pixel is drawn.

:mod:`helpers.pixelcnnpp.fast_sampler` runs the plan. Maps are channel-last, ``(B, H*W + 1, C)``: one
row per position, plus a last row that stays zero and stands for padding (index tables point at it).
"""

from __future__ import annotations

from functools import lru_cache, partial
from typing import Callable, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from helpers.pixelcnnpp.fused import FusedKernels
from helpers.pixelcnnpp.likelihood import cached_constant
from helpers.pixelcnnpp.model import GatedResnet, PixelCNNpp

# Where a job reads or writes: a table of positions (any positions; what a CUDA graph replays), or a
# run ``(start, count)`` of neighbouring positions (a Python-int slice: no index op on the CPU).
Where = Union[torch.Tensor, tuple]


def read(buffer: torch.Tensor, where: Where) -> torch.Tensor:
    """Rows ``where`` of a map (B, N + 1, C) -> (B, n, C); a run is a view, no copy."""
    if isinstance(where, tuple):
        return buffer.narrow(1, where[0], where[1])
    return buffer.index_select(1, where)


def write(buffer: torch.Tensor, where: Where, value: torch.Tensor) -> None:
    """Store ``value`` (B, n, C) in rows ``where`` of a map, in place."""
    if isinstance(where, tuple):
        buffer.narrow(1, where[0], where[1]).copy_(value)
    else:
        buffer.index_copy_(1, where, value)


def signs_like(x: torch.Tensor) -> torch.Tensor:
    """(2, 1): [[1], [-1]], so ``x.unsqueeze(-2) * signs`` is [x, -x] (exactly) in one operation."""
    return cached_constant(((1.0,), (-1.0,)), x.dtype, x.device)


def count(where: Where) -> int:
    return where[1] if isinstance(where, tuple) else len(where)


def rows_views(buffer: torch.Tensor, rows: int) -> tuple[torch.Tensor, ...]:
    """For every start p, rows ``p .. p + rows - 1`` of a map (B, N + 1, C) side by side, (B, rows * C), as views:
    they are neighbours in memory, so a kernel window whose taps are neighbouring positions needs no gather
    (no copy). All made in one call (``unbind``): making them one by one in Python would cost more than using them."""
    b, n, c = buffer.shape
    step = buffer.stride(1)  # c, or 2c for a half of ``ce``
    assert rows == 1 or step == c, "a window of several rows needs whole rows"
    return buffer.as_strided((n - rows + 1, b, rows * c), (step, buffer.stride(0), 1), buffer.storage_offset()).unbind(0)


Op = Callable[[], object]  # one recorded operation with its tensors bound: calling it runs it


# --------------------------------------------------------------------------------------------
# 1. Index tables: a convolution's kernel, written out as the input positions it reads
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)  # pure functions of a few ints; callers only read the tables
def conv_index(h_in: int, w_in: int, h_out: int, w_out: int, kernel: tuple[int, int], stride: tuple[int, int],
               top: int, left: int) -> torch.Tensor:
    """For each output position of a (padded) conv, the flat input positions under its kernel,
    (h_out*w_out, KH*KW); a padded position points at the zero slot h_in*w_in."""
    kh, kw = kernel
    r = torch.arange(h_out).view(-1, 1, 1, 1) * stride[0] + torch.arange(kh).view(1, 1, -1, 1) - top
    c = torch.arange(w_out).view(1, -1, 1, 1) * stride[1] + torch.arange(kw).view(1, 1, 1, -1) - left
    r, c = torch.broadcast_tensors(r, c)
    valid = (r >= 0) & (r < h_in) & (c >= 0) & (c < w_in)
    return torch.where(valid, r * w_in + c, h_in * w_in).reshape(h_out * w_out, kh * kw)


@lru_cache(maxsize=None)  # pure functions of a few ints; callers only read the tables
def deconv_index(h_in: int, w_in: int, kernel: tuple[int, int], stride: tuple[int, int],
                 crop_left: int) -> torch.Tensor:
    """For each output position of a cropped transposed conv (2h_in x 2w_in), the flat input
    position each kernel tap reads (zero slot where no input lands there)."""
    kh, kw = kernel
    h_out, w_out = h_in * stride[0], w_in * stride[1]
    rr = torch.arange(h_out).view(-1, 1, 1, 1) - torch.arange(kh).view(1, 1, -1, 1)
    cc = torch.arange(w_out).view(1, -1, 1, 1) + crop_left - torch.arange(kw).view(1, 1, 1, -1)
    rr, cc = torch.broadcast_tensors(rr, cc)
    r, c = torch.div(rr, stride[0], rounding_mode="floor"), torch.div(cc, stride[1], rounding_mode="floor")
    valid = (rr % stride[0] == 0) & (cc % stride[1] == 0) & (r >= 0) & (r < h_in) & (c >= 0) & (c < w_in)
    return torch.where(valid, r * w_in + c, h_in * w_in).reshape(h_out * w_out, kh * kw)


@lru_cache(maxsize=None)  # pure functions of a few ints; callers only read the tables
def shift_index(h: int, w: int, down: int, right: int) -> torch.Tensor:
    """down_shift / right_shift as a table: each position reads the one ``down`` rows up, ``right`` left."""
    return conv_index(h, w, h, w, (1, 1), (1, 1), down, right)


# --------------------------------------------------------------------------------------------
# 2. Cached maps: one per layer, and how a few of its positions are computed
# --------------------------------------------------------------------------------------------

class CachedMap:
    """One layer's activations, channel-last (B, H*W + 1, C), filled position by position.

    ``raw`` holds the values, ``ce`` their concat_elu (what the next convolution reads); only the ones
    another map reads are kept (``needs``). ``gathers``: (source map, "raw" | "ce", index table) read
    through a kernel; read at the same position: ``skips`` (their ``ce``), ``residual`` (its ``raw``, a gated
    block's input) and ``partial`` (its ``raw``: sums computed earlier, added instead of the bias);
    ``same``: all of those; ``dep``: per position, the last pixel
    (raster index) it depends on, -1 for none; ``sched``: the pixel after which it is computed (``dep``, or
    later: see :func:`schedule_times`)."""

    def __init__(self, name: str, h: int, w: int, channels: int):
        self.name, self.h, self.w, self.channels = name, h, w, channels
        self.gathers: list[tuple[CachedMap, str, torch.Tensor]] = []
        self.skips: list[CachedMap] = []
        self.residual: CachedMap | None = None
        self.partial: CachedMap | None = None
        self.needs: set[str] = set()
        self.dep: torch.Tensor | None = None
        self.sched: torch.Tensor | None = None
        self.raw: torch.Tensor | None = None
        self.ce: torch.Tensor | None = None
        self.views: dict = {}  # per-position views of the caches, made in bulk (see :meth:`view`)
        self.tails: FusedKernels | None = None  # C loops for the recorded stores and gates (set when recording)

    @property
    def size(self) -> int:
        return self.h * self.w

    @property
    def same(self) -> list[CachedMap]:
        return self.skips + [m for m in (self.residual, self.partial) if m is not None]

    def allocate(self, batch: int, device: torch.device, dtype: torch.dtype) -> None:
        """Buffers for ``batch`` images; only the padding row is zeroed (every position is written before
        anybody reads it: the schedule computes sources first)."""
        rows = (batch, self.size + 1)
        self.raw = torch.empty(*rows, self.channels, device=device, dtype=dtype) if "raw" in self.needs else None
        self.ce = torch.empty(*rows, 2 * self.channels, device=device, dtype=dtype) if "ce" in self.needs else None
        for buffer in (self.raw, self.ce):
            if buffer is not None:
                buffer[:, -1].zero_()
        self.views, self.tails = {}, None

    def view(self, kind: str, rows: int = 1, part: str = "") -> tuple[torch.Tensor, ...]:
        """Per position p, a view of the ``kind`` cache: ``rows`` neighbouring rows from p on (a kernel window,
        :func:`rows_views`), or with ``part`` "low" / "high" one row's first / second half of ``ce``."""
        key = (kind, rows, part)
        if key not in self.views:
            buffer = getattr(self, kind)
            if part:
                buffer = buffer.narrow(2, 0 if part == "low" else self.channels, self.channels)
            self.views[key] = rows_views(buffer, rows)
        return self.views[key]

    def patch(self, k: int, flat: torch.Tensor, batch: int) -> torch.Tensor:
        """Gather ``k``'s kernel windows: (batch * n, taps * C), one row per image and position."""
        source, kind, index = self.gathers[k]
        return getattr(source, kind).index_select(1, flat).view(batch * (len(flat) // index.shape[1]), -1)

    def store(self, where: Where, x: torch.Tensor) -> None:
        """Write the new values x (B, n, C) and, if read, their concat_elu (for a run, straight into the
        caches: the operations :meth:`store_run_ops` records)."""
        if isinstance(where, tuple):
            for op in self.store_run_ops(where, x):
                op()
            return
        if self.raw is not None:
            write(self.raw, where, x)
        if self.ce is not None:
            write(self.ce, where, F.elu_((x.unsqueeze(2) * signs_like(x)).flatten(2)))

    def compute(self, batch: int, where: Where, flats: list[torch.Tensor]) -> None:
        raise NotImplementedError

    # One position at a time, recorded (the CPU steps): the same numbers as compute(), with every tensor
    # a view bound once, results written with out= into the caches, and no gather, cat or allocation.

    def target(self, p: int) -> torch.Tensor:
        """Where position p's value is written first: its ``raw`` row, else the first half of its ``ce`` row."""
        return self.view("raw")[p] if self.raw is not None else self.view("ce", part="low")[p]

    def store_ops(self, p: int, x: torch.Tensor) -> list[Op]:
        """What :meth:`store` does for one position whose value x (B, C) is already in :meth:`target`."""
        if self.ce is None:
            return []
        row, low = self.view("ce")[p], self.view("ce", part="low")[p]
        if self.tails is not None and self.tails.fits(x, row):  # one C loop instead of two calls
            return [self.tails.store(x, None, row)]
        if x.data_ptr() == low.data_ptr():  # the product went straight into the first half
            return [partial(torch.neg, x, out=self.view("ce", part="high")[p]), partial(F.elu_, row)]
        pair = row.view(row.shape[0], 2, self.channels)  # [x, -x] in one product with the signs (1, -1)
        return [partial(torch.mul, x.unsqueeze(1), signs_like(x), out=pair), partial(F.elu_, row)]

    def one_position_ops(self, p: int, runs: Runs, scratch: dict) -> list[Op]:
        """The operations that compute position p, its kernel windows given as runs of neighbouring rows
        (:func:`tap_runs`)."""
        raise NotImplementedError

    # A run of positions (a row job), recorded the same way: the kernel windows gathered into a work buffer
    # with ``index_select(out=)``, the product and the gate written with ``out=``; no allocation per run.

    def run_ops(self, run: tuple[int, int], flats: list[torch.Tensor], scratch: dict) -> list[Op]:
        """The operations that compute the positions ``run`` = (start, count): by default one call of
        :meth:`compute` (the maps whose row jobs are rare)."""
        return [partial(self.compute, self.batch, run, flats)]

    @property
    def batch(self) -> int:
        return (self.raw if self.raw is not None else self.ce).shape[0]

    def store_run_ops(self, run: tuple[int, int], x: torch.Tensor) -> list[Op]:
        """What :meth:`store` does for the run's values x (B, n, C), recorded; x may already be the ``raw`` rows."""
        ops: list[Op] = []
        raw = self.raw.narrow(1, *run) if self.raw is not None else None
        if raw is not None and x.data_ptr() == raw.data_ptr():  # x is already there
            raw = None
        ce = self.ce.narrow(1, *run) if self.ce is not None else None
        if self.tails is not None and self.tails.fits(x, raw, ce):  # one C loop
            return [self.tails.store(x, raw, ce)] if raw is not None or ce is not None else []
        if raw is not None:
            ops.append(partial(raw.copy_, x))
        if ce is not None:
            ops += [partial(torch.mul, x.unsqueeze(2), signs_like(x), out=ce.unflatten(2, (2, self.channels))),
                    partial(F.elu_, ce)]
        return ops


class ConvMap(CachedMap):
    """A matrix product: ``bias`` (or the ``partial`` sums) + [kernel window | skips' concat_elu] @ weight.
    A convolution (shifted, strided or transposed) gathers its kernel window; a gated block's middle adds
    nin_skip(concat_elu(skips)) (the skips' ``ce`` columns reordered into the weight, each skip's product
    added to the window's).

    ``class_weight`` (num_classes, C_out): a class-conditional model's per-class bias. The bias is then one
    row per image, ``image_bias`` (B, C_out) = bias + class_weight[label], filled by :meth:`set_labels`:
    a constant of the image, so the products add it where they add the bias."""

    def __init__(self, name: str, h: int, w: int, weight: torch.Tensor, bias: torch.Tensor | None,
                 skips: Sequence[CachedMap] = ()):
        super().__init__(name, h, w, weight.shape[0])
        self.weight_t, self.bias = weight.t(), bias  # weight (C_out, taps * C_in [+ skip columns]), taps in index order
        self.skips = list(skips)
        self._rows: dict[tuple[int, int], torch.Tensor] = {}  # see weight_rows
        self.class_weight: torch.Tensor | None = None
        self.image_bias: torch.Tensor | None = None

    def allocate(self, batch: int, device: torch.device, dtype: torch.dtype) -> None:
        super().allocate(batch, device, dtype)
        if self.class_weight is not None:  # its address stays: recorded steps and graphs read it
            self.image_bias = torch.zeros(batch, self.weight_t.shape[1], device=device, dtype=dtype)

    def set_labels(self, labels: torch.Tensor) -> None:
        """image_bias = bias + class_weight[labels], in place (labels: (B,) long, on the caches' device)."""
        self.image_bias.copy_(self.bias + self.class_weight.detach()[labels])

    def bias_rows(self, batch: int, n: int) -> torch.Tensor:
        """The bias for ``batch * n`` rows, image-major: the shared vector, or each image's row n times."""
        return self.bias if self.image_bias is None else self.image_bias.repeat_interleave(n, dim=0)

    def product(self, batch: int, where: Where, flats: list[torch.Tensor]) -> torch.Tensor:
        """The product for positions ``where``: (batch * n, C_out). The skips are added by products of
        their own (gluing them to the kernel window first would copy the window once more)."""
        n = count(where)
        patch = self.patch(0, flats[0], batch)
        bias = self.bias_rows(batch, n) if self.partial is None else read(self.partial.raw, where).reshape(batch * n, -1)
        first = patch.shape[1]
        out = torch.addmm(bias, patch, self.weight_rows(0, first))
        for skip in self.skips:
            out.addmm_(read(skip.ce, where).reshape(batch * n, -1), self.weight_rows(first, 2 * skip.channels))
            first += 2 * skip.channels
        return out

    def compute(self, batch: int, where: Where, flats: list[torch.Tensor]) -> None:
        self.store(where, self.product(batch, where, flats).view(batch, count(where), -1))

    def weight_rows(self, first: int, count: int) -> torch.Tensor:
        """Rows ``first .. first + count - 1`` of ``weight_t`` (a view, made once per kind of run)."""
        if (first, count) not in self._rows:
            self._rows[first, count] = self.weight_t.narrow(0, first, count)
        return self._rows[first, count]

    def product_ops(self, p: int, runs: Runs, out: torch.Tensor) -> list[Op]:
        """out = bias (or the partial sums) + window @ W + each skip's concat_elu @ its W, at position p:
        one matrix product per run of neighbouring taps (a view of the cache), none for padding."""
        source, kind, index = self.gathers[0]
        width = source.channels * (2 if kind == "ce" else 1)
        if self.partial is not None:
            bias = self.partial.view("raw")[p]
        else:  # one image per row here: its own bias row, if any
            bias = self.bias if self.image_bias is None else self.image_bias
        ops: list[Op] = []
        for tap, row, n in runs[0]:
            window, weight = source.view(kind, n)[row], self.weight_rows(tap * width, n * width)
            ops.append(partial(out.addmm_, window, weight) if ops else partial(torch.addmm, bias, window, weight, out=out))
        if not ops:  # every tap reads padding
            ops.append(partial(out.copy_, bias))
        first = index.shape[1] * width
        for skip in self.skips:
            ops.append(partial(out.addmm_, skip.view("ce")[p], self.weight_rows(first, 2 * skip.channels)))
            first += 2 * skip.channels
        return ops

    def one_position_ops(self, p: int, runs: Runs, scratch: dict) -> list[Op]:
        out = self.target(p)
        return self.product_ops(p, runs, out) + self.store_ops(p, out)

    def product_run_ops(self, run: tuple[int, int], flats: list[torch.Tensor], scratch: dict,
                        name: str) -> tuple[list[Op], torch.Tensor]:
        """What :meth:`product` does for the run, recorded: (ops, the work buffer (B * n, C_out) they fill)."""
        source, kind, index = self.gathers[0]
        cache, n, b = getattr(source, kind), run[1], self.batch
        patch = scratch_for(scratch, "patch", cache, index.shape[1] * cache.shape[2], b * n)
        out = scratch_for(scratch, name, cache, self.weight_t.shape[1], b * n)
        first = patch.shape[1]
        ops: list[Op] = [partial(torch.index_select, cache, 1, flats[0], out=patch.view(b, -1, cache.shape[2]))]
        if self.partial is None and self.image_bias is None:
            ops.append(partial(torch.addmm, self.bias, patch, self.weight_rows(0, first), out=out))
        elif self.partial is None:  # each image's bias row over its n positions, then the product added
            ops += [partial(out.view(b, n, -1).copy_, self.image_bias.unsqueeze(1)),
                    partial(out.addmm_, patch, self.weight_rows(0, first))]
        else:  # the partial sums first (a copy: the run's rows are not one matrix), then the product added
            ops += [partial(out.view(b, n, -1).copy_, self.partial.raw.narrow(1, *run)),
                    partial(out.addmm_, patch, self.weight_rows(0, first))]
        for skip in self.skips:
            values = scratch_for(scratch, "skip", cache, 2 * skip.channels, b * n)
            ops += [partial(values.view(b, n, -1).copy_, skip.ce.narrow(1, *run)),
                    partial(out.addmm_, values, self.weight_rows(first, 2 * skip.channels))]
            first += 2 * skip.channels
        return ops, out

    def run_ops(self, run: tuple[int, int], flats: list[torch.Tensor], scratch: dict) -> list[Op]:
        ops, out = self.product_run_ops(run, flats, scratch, "out")
        return ops + self.store_run_ops(run, out.view(self.batch, run[1], -1))


class ShiftSumMap(CachedMap):
    """down_shift / right_shift of one or two maps, summed (the two streams' first states)."""

    def compute(self, batch: int, where: Where, flats: list[torch.Tensor]) -> None:
        total = self.patch(0, flats[0], batch)
        for k in range(1, len(flats)):
            total = total + self.patch(k, flats[k], batch)
        self.store(where, total.view(batch, count(where), -1))

    def one_position_ops(self, p: int, runs: Runs, scratch: dict) -> list[Op]:
        out = self.target(p)
        taps = [source.view(kind)[row] for (source, kind, _), gather in zip(self.gathers, runs) for _, row, _ in gather]
        ops: list[Op] = [partial(out.copy_, taps[0]) if taps else partial(out.zero_)]
        ops += [partial(out.add_, tap) for tap in taps[1:]]
        return ops + self.store_ops(p, out)


class GatedOutMap(ConvMap):
    """A gated block's output: x + a * sigmoid(b), (a, b) = conv_out(concat_elu(inner)), x = ``residual``."""

    def __init__(self, name: str, h: int, w: int, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__(name, h, w, weight, bias)
        self.channels = weight.shape[0] // 2  # the product gives (a, b); the map holds the gated x

    def compute(self, batch: int, where: Where, flats: list[torch.Tensor]) -> None:
        ab = self.product(batch, where, flats).view(batch, count(where), 2 * self.channels)
        gated = F.glu(ab, dim=-1)  # a * sigmoid(b) in one op (the same numbers as the model's)
        self.store(where, read(self.residual.raw, where) + gated)

    def run_ops(self, run: tuple[int, int], flats: list[torch.Tensor], scratch: dict) -> list[Op]:
        ops, ab = self.product_run_ops(run, flats, scratch, "ab")
        b, n = self.batch, run[1]
        if self.tails is not None and self.tails.fits(ab):  # the gate and the stores in one C loop
            raw = self.raw.narrow(1, *run) if self.raw is not None else None
            ce = self.ce.narrow(1, *run) if self.ce is not None else None
            return ops + [self.tails.gate(ab.view(b, n, -1), self.residual.raw.narrow(1, *run), raw, ce)]
        gated = scratch_for(scratch, "gated", ab, self.channels, b * n).view(b, n, -1)
        if self.raw is not None:  # x + gated straight into the cache rows
            out = self.raw.narrow(1, *run)
        else:
            out = scratch_for(scratch, "x", ab, self.channels, b * n).view(b, n, -1)
        glu = torch._C._nn.glu  # what F.glu calls; F.glu itself has no out=
        ops += [partial(glu, ab.view(b, n, -1), -1, out=gated),
                partial(torch.add, self.residual.raw.narrow(1, *run), gated, out=out)]
        return ops + self.store_run_ops(run, out)

    def one_position_ops(self, p: int, runs: Runs, scratch: dict) -> list[Op]:
        like = self.residual.raw
        ab = scratch_for(scratch, "ab", like, 2 * self.channels)
        ops = self.product_ops(p, runs, ab)
        if self.tails is not None and self.tails.fits(ab):  # the gate and the stores in one C loop
            raw = self.view("raw")[p] if self.raw is not None else None
            ce = self.view("ce")[p] if self.ce is not None else None
            return ops + [self.tails.gate(ab, self.residual.view("raw")[p], raw, ce)]
        gated, out = scratch_for(scratch, "gated", like, self.channels), self.target(p)
        glu = torch._C._nn.glu  # what F.glu calls; F.glu itself has no out=
        ops += [partial(glu, ab, -1, out=gated), partial(torch.add, self.residual.view("raw")[p], gated, out=out)]
        return ops + self.store_ops(p, out)


def scratch_for(scratch: dict, name: str, like: torch.Tensor, width: int, rows: int | None = None) -> torch.Tensor:
    """A work buffer (rows, width) (rows: by default the batch, ``like.shape[0]``), of the dtype and device of
    the cache ``like``, shared by all recorded jobs that need one of that name and size (they run one after another)."""
    rows = like.shape[0] if rows is None else rows
    key = (name, rows, width)
    if key not in scratch:
        scratch[key] = torch.empty(rows, width, device=like.device, dtype=like.dtype)
    return scratch[key]


# --------------------------------------------------------------------------------------------
# 3. The cache graph: every layer of the model as a cached map, in the model's order
# --------------------------------------------------------------------------------------------

def conv_map(name: str, source: CachedMap, kind: str, module: nn.Module) -> ConvMap:
    """A (down-shifted / down-right-shifted, maybe strided) convolution reading ``source``."""
    conv = module.conv
    left, right, top, bottom = module.pad
    (kh, kw), (sh, sw) = conv.kernel_size, conv.stride
    h_out, w_out = (source.h + top + bottom - kh) // sh + 1, (source.w + left + right - kw) // sw + 1
    node = ConvMap(name, h_out, w_out, conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1), conv.bias)
    node.gathers.append((source, kind, conv_index(source.h, source.w, h_out, w_out, (kh, kw), (sh, sw), top, left)))
    return node


def deconv_map(name: str, source: CachedMap, module: nn.Module) -> ConvMap:
    """A x2 transposed convolution (cropped as the model crops it) reading ``source``'s raw values."""
    deconv = module.deconv
    weight = deconv.weight.permute(1, 2, 3, 0).reshape(deconv.out_channels, -1)
    node = ConvMap(name, source.h * module.stride[0], source.w * module.stride[1], weight, deconv.bias)
    index = deconv_index(source.h, source.w, module.filter_size, module.stride, module.crop_left)
    node.gathers.append((source, "raw", index))
    return node


def shift_sum_map(name: str, parts: list[tuple[CachedMap, int, int]]) -> ShiftSumMap:
    """The sum of maps each shifted ``down`` rows and ``right`` columns: ``[(map, down, right), ...]``."""
    first = parts[0][0]
    node = ShiftSumMap(name, first.h, first.w, first.channels)
    node.gathers = [(source, "raw", shift_index(source.h, source.w, down, right)) for source, down, right in parts]
    return node


def block_maps(name: str, source: CachedMap, block: GatedResnet, skips: list[CachedMap],
               row_skips: int | None = None) -> list[CachedMap]:
    """A gated resnet block: its middle map and its output map (whose bias carries the block's
    ``class_bias``, if the model is class-conditional).

    ``row_skips`` (the ``ul`` stream): each convolution is split in two maps. The kernel rows above the
    position and the first ``row_skips`` skips (from the ``u`` stream, which reads rows above only) form a
    ``.above`` map that waits for the end of the row and is computed a row at a time; the block's map then
    adds the taps of the current row (and the other skips) to those sums, per pixel: half the work per pixel.
    The sums are the same, added in another order."""
    c = source.channels
    conv = block.conv_input.conv
    weight, bias = conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1), conv.bias
    if skips:  # nin reads [s1, s2, -s1, -s2]; the ce rows hold [s1, -s1] then [s2, -s2]
        s = len(skips)
        order = [sign * s * c + i * c + j for i in range(s) for sign in (0, 1) for j in range(c)]
        nin = block.nin_skip.weight.reshape(conv.out_channels, -1)[:, order]
        weight, bias = torch.cat([weight, nin], dim=1), bias + block.nin_skip.bias
    maps = []

    def add(suffix: str, module: nn.Module, reads: CachedMap, weight: torch.Tensor, bias: torch.Tensor,
            skips: list[CachedMap], kind: type[ConvMap], classes: torch.Tensor | None = None) -> ConvMap:
        left, _, top, _ = module.pad
        kernel = module.conv.kernel_size
        index = conv_index(source.h, source.w, source.h, source.w, kernel, (1, 1), top, left)
        if row_skips is None:
            node = kind(name + suffix, source.h, source.w, weight, bias)
            node.skips, node.gathers, node.class_weight = skips, [(reads, "ce", index)], classes
            maps.append(node)
            return node
        above_taps, taps, width = (kernel[0] - 1) * kernel[1], kernel[0] * kernel[1], 2 * reads.channels
        cols = torch.arange(weight.shape[1])
        skip_cols = [cols[taps * width + i * 2 * c:taps * width + (i + 1) * 2 * c] for i in range(len(skips))]
        first = torch.cat([cols[:above_taps * width], *skip_cols[:row_skips]])
        rest = torch.cat([cols[above_taps * width:taps * width], *skip_cols[row_skips:]])
        above = ConvMap(name + suffix + ".above", source.h, source.w, weight[:, first], bias, skips[:row_skips])
        above.gathers, above.class_weight = [(reads, "ce", index[:, :above_taps])], classes  # the bias is added here
        node = kind(name + suffix, source.h, source.w, weight[:, rest], None)
        node.skips, node.partial, node.gathers = skips[row_skips:], above, [(reads, "ce", index[:, above_taps:])]
        maps.extend([above, node])
        return node

    inner = add(".inner", block.conv_input, source, weight, bias, list(skips), ConvMap)
    conv = block.conv_out.conv
    out = add("", block.conv_out, inner, conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1),
              conv.bias, [], GatedOutMap, block.class_bias)
    out.residual = source
    return maps


def build_cache_graph(model: PixelCNNpp, shape: tuple[int, int, int]) -> list[CachedMap]:
    """Every layer of ``model`` for images of ``shape`` as cached maps, in the order of ``model.forward``:
    the input map first, the last ``ul`` map last. Dependency times are filled in as maps are added."""
    c, h, w = shape
    m, nodes = model, []

    def add(*new: CachedMap) -> CachedMap:
        for node in new:
            node.dep = dependency_times(node) if nodes else torch.arange(h * w)
            node.sched = schedule_times(node, h, w) if nodes else node.dep
            nodes.append(node)
        return new[-1]

    x = add(CachedMap("input", h, w, c + 1))  # the image plus a channel of ones (0 in the padding slot)
    u_init, up, left = (add(conv_map(name, x, "raw", getattr(m, name)))
                        for name in ("u_init", "ul_init_up", "ul_init_left"))
    u = add(shift_sum_map("u_0", [(u_init, 1, 0)]))
    ul = add(shift_sum_map("ul_0", [(up, 1, 0), (left, 0, 1)]))
    u_list, ul_list = [u], [ul]
    for level in range(3):
        for i, (block_u, block_ul) in enumerate(zip(m.up_u[level], m.up_ul[level])):
            u_list.append(add(*block_maps(f"up{level}.u{i}", u_list[-1], block_u, [])))
            ul_list.append(add(*block_maps(f"up{level}.ul{i}", ul_list[-1], block_ul, [u_list[-1]], 1)))
        if level < 2:
            u_list.append(add(conv_map(f"down{level}.u", u_list[-1], "raw", m.downsize_u[level])))
            ul_list.append(add(conv_map(f"down{level}.ul", ul_list[-1], "raw", m.downsize_ul[level])))
    u, ul = u_list.pop(), ul_list.pop()
    for level in range(3):
        for i, (block_u, block_ul) in enumerate(zip(m.down_u[level], m.down_ul[level])):
            u = add(*block_maps(f"dn{level}.u{i}", u, block_u, [u_list.pop()]))
            ul = add(*block_maps(f"dn{level}.ul{i}", ul, block_ul, [u, ul_list.pop()], 1))
        if level < 2:
            u = add(deconv_map(f"up{level}.u", u, m.upsize_u[level]))
            ul = add(deconv_map(f"up{level}.ul", ul, m.upsize_ul[level]))
    put_off_to_row_ends(nodes, w)
    mark_reads(nodes)
    return nodes


def mark_reads(nodes: list[CachedMap]) -> None:
    """Keep only the caches somebody reads: ``raw`` or ``ce`` through a kernel, ``raw`` of a gated block's
    input (the residual), ``ce`` of a skip, and the input's and the last map's ``raw``."""
    nodes[0].needs.add("raw")
    nodes[-1].needs.add("raw")
    for node in nodes:
        for source, kind, _ in node.gathers:
            source.needs.add(kind)
        for source in node.skips:
            source.needs.add("ce")
        for source in (node.residual, node.partial):
            if source is not None:
                source.needs.add("raw")


# --------------------------------------------------------------------------------------------
# 4. When: dependency times and the schedule
# --------------------------------------------------------------------------------------------

def _latest_of_sources(node: CachedMap, times: str) -> torch.Tensor:
    """For each position of ``node``: the latest of its sources' ``times`` ("dep" or "sched") it reads (-1: none)."""
    latest = torch.full((node.size,), -1, dtype=torch.long)
    for source, _, index in node.gathers:
        padded = torch.cat([getattr(source, times), torch.tensor([-1])])
        latest = torch.maximum(latest, padded[index].amax(dim=1))
    for source in node.same:
        latest = torch.maximum(latest, getattr(source, times))
    return latest


def dependency_times(node: CachedMap) -> torch.Tensor:
    """For each position of ``node``: the latest input pixel that reaches it (-1: none), from its sources'."""
    return _latest_of_sources(node, "dep")


def schedule_times(node: CachedMap, h: int, w: int) -> torch.Tensor:
    """For each position of ``node``: the pixel after which it is computed, never before its sources.

    A map that reads only image rows above each position's row (the ``u`` stream, the ``ul`` stream's
    first half) is put off to the end of the image row its sources complete: then a whole row of it is
    one matrix product with W x batch rows, instead of one small product per pixel. The ``ul`` stream's
    positions are computed right after their last source, as their dependency times say."""
    sched = _latest_of_sources(node, "sched")
    top_row = torch.arange(node.size) // node.w * (h // node.h)  # the first image row each position covers
    if (sched < top_row * w).all():  # reads rows above only: wait for the end of the row
        sched = torch.where(sched >= 0, (sched // w + 1) * w - 1, sched)
    return sched


def put_off_to_row_ends(nodes: list[CachedMap], w: int) -> None:
    """Put every position off to the end of its image row when nothing needs it earlier (e.g. the first
    convolutions, which only the next row reads through a shift): fewer, larger matrix products.
    ``need``: the earliest ``sched`` of a position that reads it (the output map's position t is needed
    before pixel t is drawn); maps are visited from the last to the first, so consumers are final."""
    needs = {id(node): torch.full((node.size + 1,), 1 << 40, dtype=torch.long) for node in nodes}
    needs[id(nodes[-1])][:-1] = torch.arange(nodes[-1].size) - 1
    for node in reversed(nodes[1:]):
        need = needs[id(node)][:-1]
        later = torch.where(node.sched >= 0, (node.sched // w + 1) * w - 1, node.sched)
        node.sched = torch.where(later <= need, later, node.sched)
        for source, _, index in node.gathers:
            taps = index.shape[1]
            needs[id(source)].scatter_reduce_(0, index.reshape(-1), node.sched.repeat_interleave(taps), "amin")
        for source in node.same:
            needs[id(source)][:-1] = torch.minimum(needs[id(source)][:-1], node.sched)


Job = tuple[CachedMap, torch.Tensor, list[torch.Tensor]]


Runs = tuple[tuple[tuple[int, int, int], ...], ...]  # per gather: (first tap, first row, count), see tap_runs


def tap_runs(taps: list[int], pad: int) -> tuple[tuple[int, int, int], ...]:
    """One position's kernel window (the row each tap reads) as runs of taps that read neighbouring rows:
    ``(first tap, first row, count)``; taps that read the padding row ``pad`` add zero and are left out.
    E.g. ``[pad, 40, 41, 57]`` -> ``((1, 40, 2), (3, 57, 1))``: two views, no gather."""
    runs: list[list[int]] = []
    for tap, row in enumerate(taps):
        if row == pad:
            continue
        if runs and runs[-1][0] + runs[-1][2] == tap and runs[-1][1] + runs[-1][2] == row:
            runs[-1][2] += 1
        else:
            runs.append([tap, row, 1])
    return tuple(tuple(run) for run in runs)


def make_schedule(nodes: list[CachedMap], n_pixels: int) -> tuple[list[list[Job]], list[list[Where]],
                                                                    list[list[Runs | None]]]:
    """schedule[t + 1]: the (map, positions, gather indices) to compute once pixel t is known
    (schedule[0]: what depends on no pixel at all), in network order; and, alongside, each job's
    positions as a run ``(start, count)`` where they are neighbours (see :data:`Where`), and, for a job of
    one position, its kernel windows as runs of neighbouring rows (:func:`tap_runs`; each run is a view,
    :func:`rows_views`), else None."""
    schedule: list[list[Job]] = [[] for _ in range(n_pixels + 1)]
    wheres: list[list[Where]] = [[] for _ in range(n_pixels + 1)]
    runs: list[list[Runs | None]] = [[] for _ in range(n_pixels + 1)]
    for node in nodes[1:]:
        order = torch.argsort(node.sched + 1, stable=True)  # positions by step; in each step, in raster order
        counts = torch.bincount(node.sched + 1, minlength=n_pixels + 1).tolist()
        steps = [s for s, k in enumerate(counts) if k]
        sizes = [counts[s] for s in steps]
        # one gather per table, then 1-D views: the indices of each job
        tables = [index[order].view(-1).split([k * index.shape[1] for k in sizes]) for _, _, index in node.gathers]
        rows = [index[order].tolist() for _, _, index in node.gathers]  # per position (in step order), its taps
        listed, start = order.tolist(), 0
        for step, size, positions, *flats in zip(steps, sizes, order.split(sizes), *tables):
            schedule[step].append((node, positions, flats))
            first, last = listed[start], listed[start + size - 1]
            wheres[step].append((first, size) if last - first == size - 1 else positions)
            runs[step].append(tuple(tap_runs(taps[start], source.size) for taps, (source, _, _) in zip(rows, node.gathers))
                              if size == 1 else None)
            start += size
    return schedule, wheres, runs
