"""The toy diffusion stage of notebook 04b: digits as vectors, a tiny MLP denoiser, a tiny autoencoder.

What the lesson writes out itself (noising, the sampler step, guidance, img2img) stays in the notebook;
this module holds the plumbing it reuses: the data, a small network that takes a noise level and a
label, a training loop with a progress bar, a digit classifier that grades samples, and a strip plot.
Everything runs on a CPU in seconds, in float32 (or float64 for the exact checks).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

NUM_CLASSES = 10          # digits 0-9
NULL_LABEL = NUM_CLASSES  # the "no label" token classifier-free guidance trains with


def load_digits_vectors(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1797 handwritten digits as (N, 64) vectors in [-1, 1], and their labels (N,)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=dtype) / 16.0 * 2.0 - 1.0
    return x, torch.tensor(digits.target, dtype=torch.long)


def time_embedding(t: torch.Tensor, dims: int = 32) -> torch.Tensor:
    """Sinusoidal features of a noise level ``t`` in [0, 1] (B,) -> (B, dims), as in transformers and UNets."""
    half = dims // 2
    freqs = torch.exp(torch.arange(half, dtype=t.dtype, device=t.device) * (-math.log(1000.0) / max(half - 1, 1)))
    angles = 1000.0 * t[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class TinyDenoiser(nn.Module):
    """An MLP that sees a noisy vector, its noise level ``t`` in [0, 1], a label (``NULL_LABEL``: none)
    and, if ``extra_inputs`` > 0, extra numbers (e.g. a guidance scale, as FLUX.1 [dev] takes one)."""

    def __init__(self, dims: int = 64, hidden: int = 256, time_dims: int = 32, extra_inputs: int = 0):
        super().__init__()
        self.dims, self.time_dims, self.extra_inputs = dims, time_dims, extra_inputs
        self.label = nn.Embedding(NUM_CLASSES + 1, time_dims)
        self.net = nn.Sequential(
            nn.Linear(dims + 2 * time_dims + extra_inputs, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, dims))

    def forward(self, x: torch.Tensor, t: torch.Tensor, label: torch.Tensor,
                extra: torch.Tensor | None = None) -> torch.Tensor:
        t = t.to(x.dtype).expand(x.shape[0]) if t.dim() == 0 else t.to(x.dtype)
        parts = [x, time_embedding(t, self.time_dims), self.label(label).to(x.dtype)]
        if self.extra_inputs:
            parts.append(extra.to(x.dtype).reshape(x.shape[0], self.extra_inputs))
        return self.net(torch.cat(parts, dim=1))


class TinyAutoencoder(nn.Module):
    """64 pixels -> ``latent_dims`` numbers -> 64 pixels: the idea of a VAE's latent space, at toy size."""

    def __init__(self, dims: int = 64, latent_dims: int = 8, hidden: int = 128):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dims, hidden), nn.SiLU(), nn.Linear(hidden, latent_dims))
        self.decoder = nn.Sequential(nn.Linear(latent_dims, hidden), nn.SiLU(), nn.Linear(hidden, dims), nn.Tanh())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def train(model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor],
          x: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int = 256, lr: float = 2e-3,
          seed: int = 0, desc: str = "training") -> list[float]:
    """Adam on random batches of ``(x, labels)`` for ``steps`` steps; ``loss_fn(x0, labels, generator)``
    returns the scalar loss. The learning rate decays to a tenth along a cosine. Returns the losses."""
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=lr / 10)
    losses = []
    for _ in tqdm(range(steps), desc=desc, mininterval=1.0):
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=gen)
        loss = loss_fn(x[idx], labels[idx], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss))
    return losses


def digit_classifier() -> Callable[[torch.Tensor], np.ndarray]:
    """The course's digit judge (helpers/core/judge.py, notebooks 02-04) as a grader: (N, 64) vectors in
    [-1, 1] -> the digit 0-9 it reads in each. A sample of the digit asked for should be read as that digit."""
    from helpers.core.judge import judge

    return lambda v: judge(v.detach().float().clamp(-1, 1).cpu().reshape(-1, 1, 8, 8))[0]


def show_strip(rows: Sequence[Sequence[torch.Tensor]], col_titles: Sequence[str] | None = None,
               row_titles: Sequence[str] | None = None, title: str = "", size: float = 1.1):
    """Plot rows of (64,) vectors as 8x8 grey images; titles above the columns and left of the rows."""
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols + 0.6, size * n_rows + 0.5), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([]), ax.set_yticks([])
            if j < len(row):
                ax.imshow(row[j].detach().float().reshape(8, 8).clamp(-1, 1).cpu(), cmap="gray_r", vmin=-1, vmax=1)
            else:
                ax.axis("off")
            if i == 0 and col_titles is not None and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=8)
            if j == 0 and row_titles is not None:
                ax.set_ylabel(row_titles[i], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def img2img_steps(strength: float, steps: int) -> int:
    """How many of ``steps`` denoising steps img2img runs at ``strength`` (diffusers' ``get_timesteps``)."""
    init = min(steps * strength, steps)
    start = int(max(steps - init, 0))
    return steps - start
