"""PixelCNN++ sampling (notebook 03): :func:`sample`, naive (one full pass per pixel) or fast.

Sampling: :func:`sample` with ``method="naive"`` runs the whole network once per pixel
(H*W passes); ``method="fast"`` (Ramachandran et al. 2017, "Fast Generation for Convolutional
Autoregressive Models") keeps every layer's activations in a cache and, after each new pixel,
computes only the layer outputs that this pixel completes (see :class:`FastSampler`). Both draw
all their random numbers up front in the same order, so one generator gives the same images.
A class-conditional model (``num_classes``) draws the class asked for: ``sample(..., labels=3)``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from helpers.pixelcnnpp.fast_sampler import FastSampler, progress_bar
from helpers.pixelcnnpp.likelihood import draw_with_noise, gumbel_noise, logistic_noise
from helpers.pixelcnnpp.model import PixelCNNpp


# --------------------------------------------------------------------------------------------
# Samplers
# --------------------------------------------------------------------------------------------

def _draw_uniforms(n: int, image_shape: tuple[int, int, int], m: int, generator: torch.Generator | None,
                   device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """All random numbers of a sampling run, drawn up front in one fixed order:
    component uniforms (H, W, n, M), then logistic uniforms (H, W, n, C)."""
    c, h, w = image_shape
    u_mix = torch.rand(h, w, n, m, generator=generator, device=device, dtype=dtype)
    u_log = torch.rand(h, w, n, c, generator=generator, device=device, dtype=dtype)
    return u_mix, u_log


def sample_labels(model: PixelCNNpp, n: int, labels: int | Sequence[int] | torch.Tensor | None = None) -> torch.Tensor | None:
    """The class of each of ``n`` images for ``model``: None for an unconditional model; for a conditional one,
    ``labels`` as n longs (one int: all n of that class; None: the classes in turn, 0, 1, ..., 0, 1, ...)."""
    classes = getattr(model, "num_classes", None)  # a duck-typed causal net (notebook 03's) has none
    if classes is None:
        if labels is not None:
            raise ValueError("labels: this model is unconditional (trained without classes); sample it without labels")
        return None
    if labels is None:
        return torch.arange(n) % classes
    labels = torch.as_tensor(labels).reshape(-1)
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.numel() == 1:
        labels = labels.repeat(n)
    if labels.numel() != n:
        raise ValueError(f"labels: one per image ({n}) or a single one, got {labels.numel()}")
    if int(labels.min()) < 0 or int(labels.max()) >= classes:
        raise ValueError(f"labels must be classes 0..{classes - 1}, got {sorted(set(labels.tolist()))}")
    return labels.long()


@torch.no_grad()
def sample(model: PixelCNNpp, n: int, image_shape: Sequence[int], temperature: float = 1.0,
           generator: torch.Generator | None = None, method: str = "fast",
           progress: bool = False, cuda_graphs: bool | None = None,
           labels: int | Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
    """Draw ``n`` images (n, C, H, W) in [-1, 1] on the 8-bit grid, pixel by pixel in raster order.

    ``temperature`` T > 0: the mixture logits are divided by T and every logistic scale is
    multiplied by T. T = 1 samples the model's distribution; T < 1 is more conservative (the
    likeliest component wins more often and each colour spreads less), T > 1 is wilder.
    ``method``: "naive" (one full network pass per pixel) or "fast" (cached, see FastSampler);
    both use the same random numbers, so the same ``generator`` gives the same images.
    ``cuda_graphs``: the fast sampler on CUDA captures its steps as CUDA graphs (default on CUDA;
    False runs them eagerly, for comparison). The model is put in eval mode for the draw (dropout off) and restored afterwards.
    ``labels``: for a class-conditional model, the class of the images (see :func:`sample_labels`)."""
    c, h, w = (int(s) for s in image_shape)
    if c != model.in_channels:
        raise ValueError(f"image_shape {tuple(image_shape)} has {c} channel(s); the model has {model.in_channels}")
    if h % 4 or w % 4 or h < 4 or w < 4:
        raise ValueError(f"height and width must be positive multiples of 4, got {h}x{w}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if method not in ("fast", "naive"):
        raise ValueError(f"method must be 'fast' or 'naive', got {method!r}")
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    labels = sample_labels(model, n, labels)
    labels = None if labels is None else labels.to(device)
    u_mix, u_log = _draw_uniforms(n, (c, h, w), model.nr_logistic_mix, generator, device, dtype)
    was_training = model.training
    model.eval()
    try:
        if method == "naive":
            return _sample_naive(model, n, (c, h, w), u_mix, u_log, temperature, progress, labels)
        return FastSampler.for_model(model, (c, h, w)).run(n, u_mix, u_log, temperature, progress, cuda_graphs,
                                                           labels=labels)
    finally:
        model.train(was_training)


def _sample_naive(model: PixelCNNpp, n: int, shape: tuple[int, int, int], u_mix: torch.Tensor,
                  u_log: torch.Tensor, temperature: float, progress: bool,
                  labels: torch.Tensor | None = None) -> torch.Tensor:
    c, h, w = shape
    x = torch.zeros(n, c, h, w, device=u_mix.device, dtype=u_mix.dtype)
    gumbel, logistic = gumbel_noise(u_mix), logistic_noise(u_log)  # all at once, as the fast sampler makes them
    bar = progress_bar(h * w, progress, "naive sampling")
    for i in range(h):
        for j in range(w):
            params = (model(x) if labels is None else model(x, labels))[:, :, i, j]
            x[:, :, i, j] = draw_with_noise(params, c, gumbel[i, j], logistic[i, j], temperature)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return x


