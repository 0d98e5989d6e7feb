"""PixelCNN++ fast sampler (notebook 03): every layer's activations cached; each new pixel computes
only the layer outputs it completes (Ramachandran et al. 2017).

The plan (which map reads what, and when each position can be computed) is in
:mod:`helpers.pixelcnnpp.fast_plan`; this module runs it:

- :class:`FastSampler` builds the plan for one model and image shape;
- :func:`draw_pixel` is the first half of one step: draw pixel t from the last map and write it;
- :func:`record_jobs` and :func:`listed_steps` are the second half, on a CPU: per pixel, the jobs it completes,
  recorded once (a one-position job as its few operations on views of the caches: no gather, no copy;
  a row job as a gather into a kept work buffer and products written with ``out=``) and replayed, in
  inference mode; small caches and their recorded jobs are kept for the next run (:meth:`FastSampler.recorded`);
  in float32, each block's elementwise tail is one C call (:mod:`helpers.pixelcnnpp.fused`), and
  :func:`record_draws` records the draw too (PyTorch's exp and tanh, then one C call: the same pixels);
- :func:`table_steps` is the same work for CUDA graphs: one function per *shape* of step reading its
  positions from a table, so each can be captured once and replayed (:func:`capture`); kept with the caches
  for the next run like the listed steps (:meth:`FastSampler.table_recorded`).
"""

from __future__ import annotations

import contextlib
import gc
import warnings
import weakref
from functools import partial
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F

from helpers.pixelcnnpp import fused
from helpers.pixelcnnpp.fast_plan import CachedMap, Job, Where, build_cache_graph, make_schedule, read, write
from helpers.pixelcnnpp.likelihood import LOG_SCALE_MIN, draw_with_noise, gumbel_noise, logistic_noise
from helpers.pixelcnnpp.model import PixelCNNpp, num_params_per_pixel


def progress_bar(total: int, enabled: bool, desc: str):
    """A tqdm bar over the H*W pixel steps, or None when progress is off."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="px", leave=False)


class FastSampler:
    """Cached sampling for one model and image shape (Ramachandran et al. 2017, adapted).

    What is cached: the full activation map of every layer of both streams at every resolution
    (as in one forward pass), plus each gated block's inner activation (``nodes``, built by
    :func:`~helpers.pixelcnnpp.fast_plan.build_cache_graph`). When does a value get computed: for every
    layer position we work out, by following the convolutions' index tables, the last pixel (in raster
    order) it depends on (``node.dep``); after that pixel is drawn, that position is computed from
    the cached inputs under its kernel, once, and never again (``schedule``). Strided layers get a
    sparse schedule for free: a H/2 layer position completes only after pixels in every second row and
    column, a H/4 one every fourth. What only the next image row needs (the ``u`` stream, the kernel
    row above of each ``ul`` convolution) waits for the end of the row and is computed a row at a time
    (``node.sched``). So each pixel costs a few small matrix products of the ``ul`` stream instead of a
    full network pass, and the total work equals about one forward pass.

    ``forward_all(x)`` evaluates the same plan for all positions at once: it must equal
    ``model(x)``, which checks the plan against the model."""

    KEEP_BYTES = 256 * 2**20  # caches up to this size (and the steps recorded on them) stay for the next run
    fused_kernels = True  # float32 on a CPU: each block's gate and concat_elu, and the draw, as one C loop each (fused.py)

    def __init__(self, model: PixelCNNpp, image_shape: Sequence[int]):
        c, h, w = (int(s) for s in image_shape)
        self.shape = (c, h, w)  # no reference to the model: for_model caches plans in a weak dictionary
        self.nodes: list[CachedMap] = build_cache_graph(model, self.shape)
        self.input, self.last = self.nodes[0], self.nodes[-1]
        self.w_out = model.nin_out.weight.reshape(model.nin_out.out_channels, -1)
        self.b_out = model.nin_out.bias
        if (self.last.sched >= torch.arange(h * w)).any():  # the model would see the pixel it predicts
            raise RuntimeError("the network is not causal for this image shape")
        self.schedule: list[list[Job]]
        self.wheres: list[list[Where]]
        self.schedule, self.wheres, self.runs = make_schedule(self.nodes, h * w)
        self.conditioned = [node for node in self.nodes if getattr(node, "class_weight", None) is not None]
        self.num_classes = getattr(model, "num_classes", None)
        self.kept: tuple | None = None  # (key, recorded steps, draws): see recorded() and table_recorded()

    @classmethod
    def for_model(cls, model: PixelCNNpp, image_shape: Sequence[int]) -> "FastSampler":
        """The sampler for ``model`` and ``image_shape``, built once and reused while the weights stay the same.

        The plan costs about half a network pass to build (index tables, times, schedule); a notebook
        that samples again and again from one model pays it once. The plan holds copies of the weights,
        so any change to a parameter (an optimizer step, ``load_state_dict``, ``.to(dtype)``) builds a new one.
        Changes written through ``.data`` bypass PyTorch's version counter and are not seen: for a model changed
        that way, build ``FastSampler(model, image_shape)`` directly."""
        key = (tuple(int(s) for s in image_shape),
               tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in model.parameters()))
        plans = _PLANS.setdefault(model, {})
        if key not in plans:
            plans.clear()  # one plan per model: an old one is stale or of another size
            plans[key] = cls(model, image_shape)
        return plans[key]

    def work_per_step(self) -> dict[str, list[int]]:
        """For figures: how many positions each layer computes after each pixel (index t+1)."""
        table = {node.name: [0] * len(self.schedule) for node in self.nodes[1:]}
        for step, jobs in enumerate(self.schedule):
            for node, positions, _ in jobs:
                table[node.name][step] = len(positions)
        return table

    def step_classes(self) -> tuple[list[int], list[list[tuple[CachedMap, int]]], list[torch.Tensor]]:
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
        layouts: list[list[tuple[CachedMap, int]]] = []
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

    def allocate(self, batch: int, device: torch.device, dtype: torch.dtype) -> None:
        """Fresh, empty caches for ``batch`` images; the input's channel of ones is set once here."""
        self.kept = None  # steps recorded on the old caches are void
        for node in self.nodes:
            node.allocate(batch, device, dtype)
        self.input.raw[:, :-1, -1] = 1.0

    def free(self) -> None:
        """Let go of the caches, the views of them and the recorded steps."""
        self.kept = None
        for node in self.nodes:
            node.raw = node.ce = None
            node.views = {}

    def cache_bytes(self) -> int:
        """The bytes the caches take now (0 when freed)."""
        return sum(b.numel() * b.element_size() for node in self.nodes for b in (node.raw, node.ce) if b is not None)

    @torch.no_grad()
    def recorded(self, batch: int, device: torch.device, dtype: torch.dtype) -> tuple[list[list[Callable[[], object]]],
                                                                                 "RecordedDraws | None"]:
        """Caches for ``batch`` images and every step's jobs recorded on them (:func:`record_jobs`), and with the
        C kernels (float32 on a CPU, :mod:`~helpers.pixelcnnpp.fused`) the pixel draws recorded too
        (:func:`record_draws`). All are kept after a run when the caches take at most ``KEEP_BYTES``, so the next
        draw of the same batch size, device and dtype starts at once (recording costs about a sixth of a pass)."""
        device = torch.device(device)
        kernels = fused.kernels() if self.fused_kernels and device.type == "cpu" and dtype == torch.float32 else None
        key = (batch, device, dtype, kernels is not None)
        if self.kept is None or self.kept[0] != key:
            self.allocate(batch, device, dtype)
            for node in self.nodes:
                node.tails = kernels
            self.fill_constants(batch)
            self.kept = (key, record_jobs(self, batch), record_draws(self, batch, kernels) if kernels else None)
        return self.kept[1], self.kept[2]

    @torch.no_grad()
    def table_recorded(self, batch: int, gumbel: torch.Tensor, logistic: torch.Tensor, temperature: float,
                       cuda_graphs: bool, labels: torch.Tensor | None = None
                       ) -> tuple[list[int], list[Callable[[], None]], bool]:
        """The table steps (:func:`table_steps`; captured as CUDA graphs when asked), kept with the caches as the
        listed steps are (``KEEP_BYTES``), so the next run of the same batch, device, dtype and temperature neither
        records nor captures again (each capture synchronises, collects garbage and empties the CUDA cache).
        A kept run copies its noise into the buffers the steps read, empties the caches in place (their addresses,
        which a graph replays, stay) and zeroes the step counters."""
        key = ("table", batch, gumbel.device, gumbel.dtype, float(temperature), cuda_graphs)
        if self.kept is None or self.kept[0] != key:
            self.allocate(batch, gumbel.device, gumbel.dtype)
            self.set_labels(labels)  # before the steps are made: a capture's warm-up reads the class bias
            noise = (torch.empty_like(gumbel), torch.empty_like(logistic))
            order, fns, used, counters = table_steps(self, batch, *noise, temperature, cuda_graphs)
            self.kept = (key, (order, fns, used, counters, noise), None)
        else:
            order, fns, used, counters, noise = self.kept[1]
            self.reset()
            for counter in counters:
                counter.zero_()
            self.set_labels(labels)  # in place: the kept steps and graphs read this run's classes
        noise[0].copy_(gumbel)
        noise[1].copy_(logistic)
        self.fill_constants(batch)  # after table_steps: a capture's warm-up writes into the caches
        return order, fns, used

    def set_labels(self, labels: torch.Tensor | None) -> None:
        """A class-conditional model: every image's class bias into the maps that add it (in place)."""
        if (labels is None) != (self.num_classes is None):
            raise ValueError("a class-conditional model samples with labels, an unconditional one without")
        for node in self.conditioned:
            node.set_labels(labels.to(node.image_bias.device))

    @torch.no_grad()
    def fill_constants(self, batch: int) -> None:
        """Compute what depends on no pixel (``schedule[0]``: e.g. the first image row of the ``u`` stream,
        which sees only padding). Nothing overwrites it during a draw, so kept caches keep it too."""
        device = self.input.raw.device
        for (node, _, flats), where in zip(self.schedule[0], self.wheres[0]):
            node.compute(batch, where, [f.to(device) for f in flats])

    def reset(self) -> None:
        """Empty every cache in place (the buffers keep their addresses: captured graphs read them)."""
        for node in self.nodes:
            for buffer in (node.raw, node.ce):
                if buffer is not None:
                    buffer.zero_()
        self.input.raw[:, :-1, -1] = 1.0

    @torch.no_grad()
    def forward_all(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The whole plan at once for images x (B, C, H, W): equals ``model(x, labels)`` in eval mode."""
        c, h, w = self.shape
        batch = x.shape[0]
        self.allocate(batch, x.device, x.dtype)
        self.set_labels(labels)
        self.input.raw[:, :-1, :c] = x.permute(0, 2, 3, 1).reshape(batch, h * w, c)
        for node in self.nodes[1:]:
            node.compute(batch, (0, node.size), [index.to(x.device).reshape(-1) for _, _, index in node.gathers])
        out = F.linear(F.elu(self.last.raw[:, :-1]), self.w_out, self.b_out)
        return out.reshape(batch, h, w, -1).permute(0, 3, 1, 2)

    @torch.no_grad()
    def run(self, n: int, u_mix: torch.Tensor, u_log: torch.Tensor, temperature: float = 1.0,
            progress: bool = False, cuda_graphs: bool | None = None, steps: str | None = None,
            labels: torch.Tensor | None = None) -> torch.Tensor:
        """Sample n images with the given uniforms (see :func:`~helpers.pixelcnnpp.sampling.sample`).

        ``labels`` (n,): the class of each image, for a class-conditional model (None for an unconditional
        one). They enter as each image's bias rows (:meth:`set_labels`) before the constants are computed,
        so recorded steps and captured graphs serve any labels.
        ``cuda_graphs`` (default: on for CUDA tensors): capture each step class once as a CUDA graph
        and replay it, so a step costs one launch instead of hundreds of small ones from Python.
        ``steps``: ``"listed"`` (default without graphs: per pixel, its jobs recorded as views or Python-int runs)
        or ``"table"`` (the step functions that graphs capture, run eagerly; the tests compare both)."""
        c, h, w = self.shape
        device = u_mix.device
        cuda_graphs = device.type == "cuda" if cuda_graphs is None else cuda_graphs
        if cuda_graphs and device.type != "cuda":
            raise ValueError(f"cuda_graphs=True needs CUDA tensors; these are on {device}")
        if steps not in (None, "listed", "table"):
            raise ValueError(f"steps must be 'listed' or 'table', got {steps!r}")
        # all the noise at once, as the naive sampler makes it
        gumbel, logistic = gumbel_noise(u_mix).reshape(h * w, n, -1), logistic_noise(u_log).reshape(h * w, n, -1)
        table = cuda_graphs or steps == "table"
        # The listed steps run in inference mode: no version counters or view tracking per operation, about a
        # tenth of a CPU step. Its tensors (the kept caches) never meet autograd; the images are cloned out of it.
        with gc_paused(), (contextlib.nullcontext() if table else torch.inference_mode()):
            try:
                if table:
                    order, step_fns, cuda_graphs = self.table_recorded(n, gumbel, logistic, temperature, cuda_graphs,
                                                                         labels)
                else:  # kept caches already hold the constants (of an unconditional model: they depend on the labels)
                    jobs, draws = self.recorded(n, device, u_mix.dtype)
                    if self.conditioned:
                        self.set_labels(labels)
                        self.fill_constants(n)
                    order, step_fns = range(h * w), listed_steps(self, jobs, gumbel, logistic, temperature, draws)
                bar = progress_bar(h * w, progress, "fast sampling" + (" (CUDA graphs)" if cuda_graphs else ""))
                for k in order:
                    step_fns[k]()
                    if bar is not None:
                        bar.update(1)
                if bar is not None:
                    bar.close()
                images = self.input.raw[:, :-1, :c].reshape(n, h, w, c).permute(0, 3, 1, 2)
            finally:  # also when interrupted
                if self.kept is None or self.cache_bytes() > self.KEEP_BYTES:
                    self.free()
        return images.clone(memory_format=torch.contiguous_format)  # out of inference mode: an ordinary tensor


@contextlib.contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector: a run makes tens of thousands of small objects (the
    recorded steps), and each collection it triggers would scan every object of the notebook."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_PLANS: "weakref.WeakKeyDictionary[PixelCNNpp, dict]" = weakref.WeakKeyDictionary()  # FastSampler.for_model


# --------------------------------------------------------------------------------------------
# One step: draw pixel t, then compute what it completes
# --------------------------------------------------------------------------------------------

def draw_pixel(sampler: FastSampler, t, gumbel_t: torch.Tensor, logistic_t: torch.Tensor, temperature: float) -> None:
    """Draw pixel ``t`` ((t, 1) on a CPU, a one-element index tensor in a graph) from the last map
    (its parameters: the 1x1 output layer on elu of the cached values) with its noise (made from the
    uniforms, :func:`~helpers.pixelcnnpp.likelihood.gumbel_noise`) and write it into the input map."""
    c = sampler.shape[0]
    params = F.linear(F.elu(read(sampler.last.raw, t).select(1, 0)), sampler.w_out, sampler.b_out)
    pixel = draw_with_noise(params, c, gumbel_t, logistic_t, temperature)
    write(sampler.input.raw.narrow(2, 0, c), t, pixel.unsqueeze(1))


def record_jobs(sampler: FastSampler, batch: int) -> list[list[Callable[[], object]]]:
    """Per pixel t, the jobs ``schedule[t + 1]`` as calls with every tensor bound, on the current caches.

    A job of one position (most of the per-pixel work: the ``ul`` stream) is written down as its few
    operations on views of the caches (:meth:`~helpers.pixelcnnpp.fast_plan.CachedMap.one_position_ops`:
    no gather, no copy, no allocation); a job of a run of neighbouring positions (a row) as its gather into a
    work buffer and its products written with ``out=`` (:meth:`~helpers.pixelcnnpp.fast_plan.CachedMap.run_ops`);
    the few others as a call of ``compute``."""
    n_pix = len(sampler.schedule) - 1
    device = sampler.input.raw.device
    move = (lambda f: f) if device.type == "cpu" else (lambda f: f.to(device))
    scratch: dict = {}  # work buffers shared by the recorded jobs (fast_plan.scratch_for)

    def ops_of(t: int) -> list[Callable[[], object]]:
        ops: list[Callable[[], object]] = []
        for (node, _, flats), where, runs in zip(sampler.schedule[t], sampler.wheres[t], sampler.runs[t]):
            if runs is not None:
                ops += node.one_position_ops(where[0], runs, scratch)
            elif isinstance(where, tuple):
                ops += node.run_ops(where, [move(f) for f in flats], scratch)
            else:
                ops.append(partial(node.compute, batch, where, [move(f) for f in flats]))
        return ops

    return [ops_of(t) for t in range(1, n_pix)] + [[]]


def listed_steps(sampler: FastSampler, jobs: list[list[Callable[[], object]]], gumbel: torch.Tensor,
                 logistic: torch.Tensor, temperature: float, draws: "RecordedDraws | None" = None) -> list[Callable[[], None]]:
    """One function per pixel t: draw it (:func:`draw_pixel`, or its recorded calls: :func:`record_draws`), then
    replay its recorded jobs (:func:`record_jobs`)."""
    if draws is not None:  # this run's noise into the buffers the recorded draws read
        draws.gumbel.copy_(gumbel)
        draws.logistic.copy_(logistic)
        draws.temperature.fill_(temperature)

    def step_of(t: int) -> Callable[[], None]:
        ops = jobs[t] if draws is None else draws.ops[t] + jobs[t]

        def step() -> None:
            if draws is None:
                draw_pixel(sampler, (t, 1), gumbel[t], logistic[t], temperature)
            for op in ops:
                op()
        return step

    return [step_of(t) for t in range(len(jobs))]


class RecordedDraws(NamedTuple):
    """The pixel draws recorded on the caches (:func:`record_draws`): per pixel its calls, and the buffers they
    read the run's noise and temperature from."""

    ops: list[list[Callable[[], object]]]
    gumbel: torch.Tensor       # (H*W, B, M)
    logistic: torch.Tensor     # (H*W, B, C)
    temperature: torch.Tensor  # (1,)


def record_draws(sampler: FastSampler, batch: int, kernels: fused.FusedKernels) -> RecordedDraws:
    """Per pixel t, :func:`draw_pixel` as recorded calls: PyTorch's elu, output layer, exp of the log-scales and
    tanh of the coefficients (of every mixture component, into kept buffers with ``out=``: the same numbers as
    for the chosen one), then one C call that picks the component and draws the colours with the same float
    operations as :func:`~helpers.pixelcnnpp.likelihood.draw_with_noise`, into the input map."""
    c, h, w = sampler.shape
    last, like = sampler.last.raw, sampler.input.raw
    n_params = sampler.w_out.shape[0]
    m = n_params // (3 if c == 1 else 10)
    if n_params != num_params_per_pixel(c, m):  # as draw_with_noise checks it
        raise ValueError(f"{n_params} parameters per pixel do not fit {c} channel(s)")
    per = 2 if c == 1 else 3
    buffer = lambda *shape: torch.empty(*shape, dtype=like.dtype, device=like.device)  # noqa: E731
    hidden, params = buffer(batch, last.shape[2]), buffer(batch, n_params)
    scales, coeffs = buffer(batch, c, m), buffer(batch, c, m)
    draws = RecordedDraws([], buffer(h * w, batch, m), buffer(h * w, batch, c), buffer(1))
    rows = params.view(batch, 1 + c * per, m)  # logits, then per colour: means, log-scales(, coefficients)
    shared: list[Callable[[], object]] = [
        partial(torch.addmm, sampler.b_out, hidden, sampler.w_out.t(), out=params),  # what F.linear computes
        partial(torch.clamp, rows[:, 2::per], min=LOG_SCALE_MIN, out=scales), partial(torch.exp_, scales)]
    if c == 3:
        shared.append(partial(torch.tanh, rows[:, 3::per], out=coeffs))
    elu = torch._C._nn.elu  # what F.elu calls, with out=
    for t in range(h * w):
        draw = kernels.draw(params, scales, coeffs, draws.gumbel[t], draws.logistic[t], like[:, t, :c], draws.temperature)
        draws.ops.append([partial(elu, last[:, t], out=hidden), *shared, draw])
    return draws


def table_step(sampler: FastSampler, batch: int, layout: list[tuple[CachedMap, int]], table: torch.Tensor,
               counter: torch.Tensor, gumbel: torch.Tensor, logistic: torch.Tensor,
               temperature: float) -> Callable[[], None]:
    """One step of a class: read the class's next table row (``counter``), draw pixel t, compute the
    positions it completes. Only tensor operations with fixed shapes, no host sync: the same function
    runs eagerly or is captured once and replayed (CUDA graph)."""
    def step() -> None:
        row = table.index_select(0, counter).view(-1)
        counter.add_(1)
        t = row[:1]
        draw_pixel(sampler, t, gumbel.index_select(0, t)[0], logistic.index_select(0, t)[0], temperature)
        offset = 1
        for node, n_pos in layout:
            positions = row[offset:offset + n_pos]
            offset += n_pos
            flats = []
            for _, _, index in node.gathers:
                flats.append(row[offset:offset + n_pos * index.shape[1]])
                offset += n_pos * index.shape[1]
            node.compute(batch, positions, flats)

    return step


def table_steps(sampler: FastSampler, batch: int, gumbel: torch.Tensor, logistic: torch.Tensor, temperature: float,
                cuda_graphs: bool) -> tuple[list[int], list[Callable[[], None]], bool, list[torch.Tensor]]:
    """(class of each step, one function per class, whether graphs are used, the step counters): the step
    functions of :meth:`FastSampler.step_classes`, captured as CUDA graphs when asked (eager if capture fails)."""
    step_class, layouts, tables = sampler.step_classes()
    device = gumbel.device
    counters = [torch.zeros(1, dtype=torch.long, device=device) for _ in tables]
    fns = [table_step(sampler, batch, layout, table.to(device), counter, gumbel, logistic, temperature)
           for layout, table, counter in zip(layouts, tables, counters)]
    if cuda_graphs:
        try:
            fns = capture(fns, counters)
        except RuntimeError as err:  # a driver or torch build that cannot capture: slower, still right
            warnings.warn(f"CUDA graph capture failed ({str(err).splitlines()[0]}); sampling without "
                          "CUDA graphs, which is slower but draws the same images", RuntimeWarning)
            cuda_graphs = False
            for counter in counters:
                counter.zero_()
        sampler.reset()  # the warm-up (and a failed capture) wrote into the caches
    return step_class, fns, cuda_graphs, counters


def capture(steps: list[Callable[[], None]], counters: list[torch.Tensor]) -> list[Callable[[], None]]:
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
