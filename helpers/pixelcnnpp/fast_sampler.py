"""PixelCNN++ fast sampler (notebook 03): every layer's activations cached; each new pixel computes
only the layer outputs it completes (Ramachandran et al. 2017).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from helpers.pixelcnnpp.likelihood import sample_pixel
from helpers.pixelcnnpp.model import GatedResnet, PixelCNNpp


# --------------------------------------------------------------------------------------------
# The fast sampler: every layer's activations cached, each new pixel computes only what it completes
# --------------------------------------------------------------------------------------------

def progress_bar(total: int, enabled: bool, desc: str):
    """A tqdm bar over the H*W pixel steps, or None when progress is off."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="px", leave=False)


def _concat_elu_last(x: torch.Tensor) -> torch.Tensor:
    """concat_elu for channel-last tensors (..., C) -> (..., 2C), same channel order."""
    return F.elu(torch.cat([x, -x], dim=-1))


def _conv_index(h_in: int, w_in: int, h_out: int, w_out: int, kernel: tuple[int, int], stride: tuple[int, int],
                top: int, left: int) -> torch.Tensor:
    """For each output position of a (padded) conv, the flat input positions under its kernel,
    (h_out*w_out, KH*KW); a padded position points at the zero slot h_in*w_in."""
    kh, kw = kernel
    r = torch.arange(h_out).view(-1, 1, 1, 1) * stride[0] + torch.arange(kh).view(1, 1, -1, 1) - top
    c = torch.arange(w_out).view(1, -1, 1, 1) * stride[1] + torch.arange(kw).view(1, 1, 1, -1) - left
    r, c = torch.broadcast_tensors(r, c)
    valid = (r >= 0) & (r < h_in) & (c >= 0) & (c < w_in)
    return torch.where(valid, r * w_in + c, h_in * w_in).reshape(h_out * w_out, kh * kw)


def _deconv_index(h_in: int, w_in: int, kernel: tuple[int, int], stride: tuple[int, int],
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


def _shift_index(h: int, w: int, down: int, right: int) -> torch.Tensor:
    return _conv_index(h, w, h, w, (1, 1), (1, 1), down, right)


class _Node:
    """One cached activation map, channel-last (B, H*W + 1, C); the extra last slot stays zero
    and stands for padding. ``raw`` holds the values, ``ce`` their concat_elu (what convs read)."""

    def __init__(self, name: str, h: int, w: int, channels: int, keep_raw: bool = True, keep_ce: bool = True):
        self.name, self.h, self.w, self.channels = name, h, w, channels
        self.keep_raw, self.keep_ce = keep_raw, keep_ce
        self.gathers: list[tuple[_Node, str, torch.Tensor]] = []  # (source, "raw"|"ce", index table)
        self.same: list[_Node] = []                                # raw sources read at the same position
        self.compute = None
        self.dep: torch.Tensor | None = None
        self.raw: torch.Tensor | None = None
        self.ce: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return self.h * self.w

    def allocate(self, batch: int, device: torch.device, dtype: torch.dtype) -> None:
        if self.keep_raw:
            self.raw = torch.zeros(batch, self.size + 1, self.channels, device=device, dtype=dtype)
        if self.keep_ce:
            self.ce = torch.zeros(batch, self.size + 1, 2 * self.channels, device=device, dtype=dtype)

    def write(self, positions: torch.Tensor, value: torch.Tensor) -> None:
        if self.keep_raw:
            self.raw.index_copy_(1, positions, value)
        if self.keep_ce:
            self.ce.index_copy_(1, positions, _concat_elu_last(value))


class FastSampler:
    """Cached sampling for one model and image shape (Ramachandran et al. 2017, adapted).

    What is cached: the full activation map of every layer of both streams at every resolution
    (as in one forward pass), plus each gated block's inner activation. When does a value get
    computed: for every layer position we work out, by following the convolutions' index tables,
    the last pixel (in raster order) it depends on; right after that pixel is drawn, that position
    is computed from the cached inputs under its kernel, once, and never again. Strided layers get
    a sparse schedule for free: a H/2 layer position completes only after pixels in every second
    row and column, a H/4 one every fourth. So each pixel costs a few small matrix products per
    layer instead of a full network pass, and the total work equals about one forward pass.

    ``forward_all(x)`` evaluates the same plan for all positions at once: it must equal
    ``model(x)``, which checks the plan against the model."""

    def __init__(self, model: PixelCNNpp, image_shape: Sequence[int]):
        c, h, w = (int(s) for s in image_shape)
        self.model, self.shape = model, (c, h, w)
        self.nodes: list[_Node] = []
        m = model
        x = self._add(_Node("input", h, w, c + 1, keep_ce=False))
        x.dep = torch.arange(h * w)
        self.input = x
        a = self._conv("u_init", x, "raw", m.u_init, keep_ce=False)
        u = self._shift_sum("u_0", [(a, 1, 0)])
        b1 = self._conv("ul_init_up", x, "raw", m.ul_init_up, keep_ce=False)
        b2 = self._conv("ul_init_left", x, "raw", m.ul_init_left, keep_ce=False)
        ul = self._shift_sum("ul_0", [(b1, 1, 0), (b2, 0, 1)])
        u_list, ul_list = [u], [ul]
        for level in range(3):
            for i, (block_u, block_ul) in enumerate(zip(m.up_u[level], m.up_ul[level])):
                u_list.append(self._block(f"up{level}.u{i}", u_list[-1], block_u, []))
                ul_list.append(self._block(f"up{level}.ul{i}", ul_list[-1], block_ul, [u_list[-1]]))
            if level < 2:
                u_list.append(self._conv(f"down{level}.u", u_list[-1], "raw", m.downsize_u[level]))
                ul_list.append(self._conv(f"down{level}.ul", ul_list[-1], "raw", m.downsize_ul[level]))
        u, ul = u_list.pop(), ul_list.pop()
        for level in range(3):
            for i, (block_u, block_ul) in enumerate(zip(m.down_u[level], m.down_ul[level])):
                u = self._block(f"dn{level}.u{i}", u, block_u, [u_list.pop()])
                ul = self._block(f"dn{level}.ul{i}", ul, block_ul, [u, ul_list.pop()])
            if level < 2:
                u = self._deconv(f"up{level}.u", u, m.upsize_u[level])
                ul = self._deconv(f"up{level}.ul", ul, m.upsize_ul[level])
        self.last = ul
        self.w_out = m.nin_out.weight.reshape(m.nin_out.out_channels, -1)
        self.b_out = m.nin_out.bias
        if (self.last.dep >= torch.arange(h * w)).any():  # the model would see the pixel it predicts
            raise RuntimeError("the network is not causal for this image shape")
        self.schedule = self._make_schedule()

    # -- building the plan ------------------------------------------------------------------

    def _add(self, node: _Node) -> _Node:
        self.nodes.append(node)
        return node

    def _finish(self, node: _Node) -> _Node:
        """Dependency time of each position: the latest input pixel that reaches it (-1: none)."""
        dep = torch.full((node.size,), -1, dtype=torch.long)
        for source, _, index in node.gathers:
            padded = torch.cat([source.dep, torch.tensor([-1])])
            dep = torch.maximum(dep, padded[index].amax(dim=1))
        for source in node.same:
            dep = torch.maximum(dep, source.dep)
        node.dep = dep
        return self._add(node)

    def _gather(self, batch: int, node: _Node, flats: list[torch.Tensor], n_pos: int) -> list[torch.Tensor]:
        return [getattr(src, kind).index_select(1, flat).view(batch, n_pos, -1)
                for (src, kind, _), flat in zip(node.gathers, flats)]

    def _conv(self, name: str, source: _Node, kind: str, module: nn.Module, keep_ce: bool = True) -> _Node:
        conv = module.conv
        left, right, top, bottom = module.pad
        kh, kw = conv.kernel_size
        sh, sw = conv.stride
        h_out = (source.h + top + bottom - kh) // sh + 1
        w_out = (source.w + left + right - kw) // sw + 1
        node = _Node(name, h_out, w_out, conv.out_channels, keep_ce=keep_ce)
        node.gathers.append((source, kind, _conv_index(source.h, source.w, h_out, w_out, (kh, kw), (sh, sw), top, left)))
        weight = conv.weight.permute(0, 2, 3, 1).reshape(conv.out_channels, -1)
        bias = conv.bias

        def compute(batch: int, positions: torch.Tensor, flats: list[torch.Tensor]) -> None:
            (patch,) = self._gather(batch, node, flats, len(positions))
            node.write(positions, F.linear(patch, weight, bias))

        node.compute = compute
        return self._finish(node)

    def _deconv(self, name: str, source: _Node, module: nn.Module) -> _Node:
        deconv = module.deconv
        node = _Node(name, source.h * module.stride[0], source.w * module.stride[1], deconv.out_channels)
        node.gathers.append((source, "raw", _deconv_index(source.h, source.w, module.filter_size, module.stride,
                                                          module.crop_left)))
        weight = deconv.weight.permute(1, 2, 3, 0).reshape(deconv.out_channels, -1)
        bias = deconv.bias

        def compute(batch: int, positions: torch.Tensor, flats: list[torch.Tensor]) -> None:
            (patch,) = self._gather(batch, node, flats, len(positions))
            node.write(positions, F.linear(patch, weight, bias))

        node.compute = compute
        return self._finish(node)

    def _shift_sum(self, name: str, parts: list[tuple[_Node, int, int]]) -> _Node:
        first = parts[0][0]
        node = _Node(name, first.h, first.w, first.channels)
        for source, down, right in parts:
            node.gathers.append((source, "raw", _shift_index(source.h, source.w, down, right)))

        def compute(batch: int, positions: torch.Tensor, flats: list[torch.Tensor]) -> None:
            node.write(positions, sum(self._gather(batch, node, flats, len(positions))))

        node.compute = compute
        return self._finish(node)

    def _block(self, name: str, source: _Node, block: GatedResnet, skips: list[_Node]) -> _Node:
        # inner node: concat_elu(conv_input(concat_elu(x)) + nin_skip(concat_elu(skips)))
        conv_in, conv_out = block.conv_input, block.conv_out
        inner = _Node(name + ".inner", source.h, source.w, conv_in.conv.out_channels, keep_raw=False)
        left, _, top, _ = conv_in.pad
        kernel = conv_in.conv.kernel_size
        inner.gathers.append((source, "ce", _conv_index(source.h, source.w, source.h, source.w, kernel, (1, 1), top, left)))
        inner.same = list(skips)
        w_in = conv_in.conv.weight.permute(0, 2, 3, 1).reshape(conv_in.conv.out_channels, -1)
        b_in = conv_in.conv.bias
        nin = block.nin_skip
        w_skip = nin.weight.reshape(nin.out_channels, -1) if nin is not None else None

        def compute_inner(batch: int, positions: torch.Tensor, flats: list[torch.Tensor]) -> None:
            (patch,) = self._gather(batch, inner, flats, len(positions))
            value = F.linear(patch, w_in, b_in)
            if skips:
                a = torch.cat([s.raw.index_select(1, positions) for s in skips], dim=-1)
                value = value + F.linear(_concat_elu_last(a), w_skip, nin.bias)
            inner.write(positions, value)

        inner.compute = compute_inner
        self._finish(inner)
        # block output: x + a * sigmoid(b), (a, b) = conv_out(inner)
        node = _Node(name, source.h, source.w, source.channels)
        left, _, top, _ = conv_out.pad
        node.gathers.append((inner, "ce", _conv_index(source.h, source.w, source.h, source.w,
                                                      conv_out.conv.kernel_size, (1, 1), top, left)))
        node.same = [source]
        w_o = conv_out.conv.weight.permute(0, 2, 3, 1).reshape(conv_out.conv.out_channels, -1)
        b_o = conv_out.conv.bias

        def compute_out(batch: int, positions: torch.Tensor, flats: list[torch.Tensor]) -> None:
            (patch,) = self._gather(batch, node, flats, len(positions))
            a, b = F.linear(patch, w_o, b_o).chunk(2, dim=-1)
            node.write(positions, source.raw.index_select(1, positions) + a * torch.sigmoid(b))

        node.compute = compute_out
        return self._finish(node)

    def _make_schedule(self) -> list[list[tuple[_Node, torch.Tensor, list[torch.Tensor]]]]:
        """schedule[t + 1]: the (node, positions, gather indices) to compute once pixel t is known
        (schedule[0]: what depends on no pixel at all), in network order."""
        n = self.shape[1] * self.shape[2]
        schedule: list[list] = [[] for _ in range(n + 1)]
        for node in self.nodes[1:]:
            order = torch.argsort(node.dep + 1, stable=True)
            counts = torch.bincount(node.dep + 1, minlength=n + 1).tolist()
            for step, positions in zip((s for s, k in enumerate(counts) if k), torch.split(order, [k for k in counts if k])):
                flats = [index[positions].reshape(-1) for _, _, index in node.gathers]
                schedule[step].append((node, positions, flats))
        return schedule

    def work_per_step(self) -> dict[str, list[int]]:
        """For figures: how many positions each layer computes after each pixel (index t+1)."""
        table = {node.name: [0] * len(self.schedule) for node in self.nodes[1:]}
        for step, jobs in enumerate(self.schedule):
            for node, positions, _ in jobs:
                table[node.name][step] = len(positions)
        return table

    # -- running it -------------------------------------------------------------------------

    def _allocate(self, batch: int, device: torch.device, dtype: torch.dtype) -> None:
        for node in self.nodes:
            node.allocate(batch, device, dtype)
        self.input.raw[:, :-1, -1] = 1.0  # the channel of ones (padding stays 0)

    def _reset(self) -> None:
        """Empty every cache in place (the buffers keep their addresses: captured graphs read them)."""
        for node in self.nodes:
            for buffer in (node.raw, node.ce):
                if buffer is not None:
                    buffer.zero_()
        self.input.raw[:, :-1, -1] = 1.0

    def step_classes(self) -> tuple[list[int], list[list[tuple[_Node, int]]], list[torch.Tensor]]:
        """Group the H*W steps by the *shape* of their work, so one function serves a whole group.

        Step t draws pixel t, then computes ``schedule[t + 1]``. Two steps have the same shape when
        they compute the same layers with the same number of positions each (e.g. every step in the
        middle of a row that is not at a stride boundary). Returns, per step, its class; per class, its
        layout ``[(node, positions), ...]``; and per class a table (steps of the class, L) whose rows
        hold, for one step, ``[t, positions and gather indices of every job]`` in the layout's order.
        Fixed shapes per class are what a CUDA graph needs: capture one step of each class once, then
        replay it with the next row of its table."""
        n_pix = self.shape[1] * self.shape[2]
        index = {id(node): k for k, node in enumerate(self.nodes)}
        class_of: dict[tuple, int] = {}
        step_class: list[int] = []
        layouts: list[list[tuple[_Node, int]]] = []
        rows: list[list[torch.Tensor]] = []
        for t in range(n_pix):
            jobs = self.schedule[t + 1] if t + 1 < n_pix else []
            signature = tuple((index[id(node)], len(positions)) for node, positions, _ in jobs)
            if signature not in class_of:
                class_of[signature] = len(layouts)
                layouts.append([(node, len(positions)) for node, positions, _ in jobs])
                rows.append([])
            step_class.append(class_of[signature])
            parts = [torch.tensor([t])] + [piece for _, positions, flats in jobs for piece in (positions, *flats)]
            rows[class_of[signature]].append(torch.cat(parts))
        return step_class, layouts, [torch.stack(r) for r in rows]

    def _make_step(self, batch: int, layout: list[tuple[_Node, int]], table: torch.Tensor, counter: torch.Tensor,
                   u_mix: torch.Tensor, u_log: torch.Tensor, temperature: float):
        """One step of a class: read the class's next table row (``counter``), draw pixel t, write it,
        compute the positions it completes. Only tensor operations with fixed shapes, no host sync:
        the same function runs eagerly (CPU) or is captured once and replayed (CUDA graph)."""
        c = self.shape[0]
        ones = torch.ones(batch, 1, device=table.device, dtype=self.input.raw.dtype)

        def step() -> None:
            row = table.index_select(0, counter).view(-1)
            counter.add_(1)
            t = row[:1]
            params = F.linear(F.elu(self.last.raw.index_select(1, t)[:, 0]), self.w_out, self.b_out)
            pixel = sample_pixel(params, c, u_mix.index_select(0, t)[0], u_log.index_select(0, t)[0], temperature)
            self.input.raw.index_copy_(1, t, torch.cat([pixel, ones], dim=1).unsqueeze(1))
            offset = 1
            for node, n_pos in layout:
                positions = row[offset:offset + n_pos]
                offset += n_pos
                flats = []
                for _, _, index in node.gathers:
                    length = n_pos * index.shape[1]
                    flats.append(row[offset:offset + length])
                    offset += length
                node.compute(batch, positions, flats)

        return step

    @torch.no_grad()
    def forward_all(self, x: torch.Tensor) -> torch.Tensor:
        """The whole plan at once for images x (B, C, H, W): equals ``model(x)`` in eval mode."""
        c, h, w = self.shape
        batch = x.shape[0]
        self._allocate(batch, x.device, x.dtype)
        self.input.raw[:, :-1, :c] = x.permute(0, 2, 3, 1).reshape(batch, h * w, c)
        for node in self.nodes[1:]:
            positions = torch.arange(node.size, device=x.device)
            flats = [index.to(x.device).reshape(-1) for _, _, index in node.gathers]
            node.compute(batch, positions, flats)
        out = F.linear(F.elu(self.last.raw[:, :-1]), self.w_out, self.b_out)
        return out.reshape(batch, h, w, -1).permute(0, 3, 1, 2)

    @torch.no_grad()
    def run(self, n: int, u_mix: torch.Tensor, u_log: torch.Tensor, temperature: float = 1.0,
            progress: bool = False, cuda_graphs: bool | None = None) -> torch.Tensor:
        """Sample n images with the given uniforms (see :func:`sample`).

        ``cuda_graphs`` (default: on for CUDA tensors): capture each step class once as a CUDA graph
        and replay it, so a step costs one launch instead of hundreds of small ones from Python. On the
        CPU the very same step functions run eagerly, which is what the tests check against naive."""
        c, h, w = self.shape
        device, dtype = u_mix.device, u_mix.dtype
        if cuda_graphs is None:
            cuda_graphs = device.type == "cuda"
        if cuda_graphs and device.type != "cuda":
            raise ValueError(f"cuda_graphs=True needs CUDA tensors; these are on {device}")
        u_mix = u_mix.reshape(h * w, n, -1)
        u_log = u_log.reshape(h * w, n, -1)
        self._allocate(n, device, dtype)
        step_class, layouts, tables = self.step_classes()
        counters = [torch.zeros(1, dtype=torch.long, device=device) for _ in tables]
        steps = [self._make_step(n, layout, table.to(device), counter, u_mix, u_log, temperature)
                 for layout, table, counter in zip(layouts, tables, counters)]
        if cuda_graphs:
            try:
                steps = _capture(steps, counters)
            except RuntimeError as err:  # a driver or torch build that cannot capture: slower, still right
                warnings.warn(f"CUDA graph capture failed ({str(err).splitlines()[0]}); sampling without "
                              "CUDA graphs, which is slower but draws the same images", RuntimeWarning)
                cuda_graphs = False
                for counter in counters:
                    counter.zero_()
            self._reset()
        first = [(node, positions.to(device), [f.to(device) for f in flats]) for node, positions, flats in self.schedule[0]]
        for node, positions, flats in first:
            node.compute(n, positions, flats)
        bar = progress_bar(h * w, progress, "fast sampling" + (" (CUDA graphs)" if cuda_graphs else ""))
        for k in step_class:
            steps[k]()
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        images = self.input.raw[:, :-1, :c].reshape(n, h, w, c).permute(0, 3, 1, 2).contiguous()
        for node in self.nodes:  # free the caches
            node.raw = node.ce = None
        return images


def _capture(steps: list, counters: list[torch.Tensor]) -> list:
    """Each step function captured as a CUDA graph; returns their ``replay`` methods.

    Warm-up first (one eager call of each on a side stream, as PyTorch's CUDA-graph notes ask), then
    capture; the warm-up wrote into the caches and counters, so the caller empties them. All graphs
    share one memory pool: they never run at the same time and keep nothing between replays."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for step in steps:
            step()
    torch.cuda.current_stream().wait_stream(side)
    pool = torch.cuda.graph_pool_handle()
    graphs = []
    for step in steps:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool):
            step()
        graphs.append(graph)
    torch.cuda.synchronize()
    for counter in counters:
        counter.zero_()
    return [graph.replay for graph in graphs]
