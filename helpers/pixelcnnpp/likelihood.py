"""PixelCNN++ the likelihood (notebook 01): the discretized logistic mixture, its NLL and bits/dim,
and drawing one pixel from it (notebook 03).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import torch
import torch.nn.functional as F

from helpers.pixelcnnpp.model import num_params_per_pixel

LOG_SCALE_MIN = -7.0  # the original's floor on log-scales
# A bin whose probability is below this uses the density at its centre times its width instead.
TINY_BIN = 1e-5


# --------------------------------------------------------------------------------------------
# The discretized logistic mixture likelihood
# --------------------------------------------------------------------------------------------

def unpack_params(params: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Split (B, P, ...) parameters into logits (B, M, ...), means and log_scales (B, C, M, ...)
    (log-scales floored at -7) and tanh'd coefficients (B, C, M, ...) or None for one channel."""
    m = params.shape[1] // (3 if channels == 1 else 10)
    if params.shape[1] != num_params_per_pixel(channels, m):
        raise ValueError(f"{params.shape[1]} parameters per pixel do not fit {channels} channel(s)")
    logits, rest = params[:, :m], params[:, m:]
    per = 2 * m if channels == 1 else 3 * m
    rest = rest.reshape(rest.shape[0], channels, per, *rest.shape[2:])
    means = rest[:, :, :m]
    log_scales = rest[:, :, m:2 * m].clamp(min=LOG_SCALE_MIN)
    coeffs = torch.tanh(rest[:, :, 2 * m:3 * m]) if channels == 3 else None
    return logits, means, log_scales, coeffs


def coupled_means(means: torch.Tensor, coeffs: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """Means of each colour given the colours before it in the same pixel (B, C, M, ...).

    ``x`` (B, C, ...) holds the pixel values; G's mean moves with R, B's with R and G."""
    if coeffs is None:
        return means
    r, g = x[:, 0:1], x[:, 1:2]
    return torch.cat([means[:, 0:1],
                      means[:, 1:2] + coeffs[:, 0:1] * r,
                      means[:, 2:3] + coeffs[:, 1:2] * r + coeffs[:, 2:3] * g], dim=1)


def discretized_logistic_log_prob(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """log P(x) of a logistic discretized to the 256 levels of [-1, 1] (bin width 2/255).

    Bin 0 takes all mass below -1 + 1/255 and bin 255 all mass above 1 - 1/255, so the 256
    probabilities sum to one. Written with log-sigmoid / softplus; a bin whose probability is
    below 1e-5 uses the density at its centre times the bin width (as the original does)."""
    centered = x - means
    inv_scale = torch.exp(-log_scales)
    plus_in = inv_scale * (centered + 1.0 / 255.0)
    min_in = inv_scale * (centered - 1.0 / 255.0)
    mid_in = inv_scale * centered
    log_cdf_plus = plus_in - F.softplus(plus_in)          # log sigmoid(plus_in), for bin 0
    log_one_minus_cdf_min = -F.softplus(min_in)           # log(1 - sigmoid(min_in)), for bin 255
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    inner = torch.where(cdf_delta > TINY_BIN, torch.log(cdf_delta.clamp(min=1e-12)),
                        log_pdf_mid - math.log(127.5))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, inner))


def discretized_mix_logistic_log_prob(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """log P(pixel) for every pixel: (B, H, W), the colours of one pixel counted together."""
    logits, means, log_scales, coeffs = unpack_params(params, x.shape[1])
    xs = x.unsqueeze(2)                                             # (B, C, 1, H, W)
    mu = coupled_means(means, coeffs, xs)
    per_channel = discretized_logistic_log_prob(xs, mu, log_scales)  # (B, C, M, H, W)
    per_component = per_channel.sum(dim=1) + torch.log_softmax(logits, dim=1)
    return torch.logsumexp(per_component, dim=1)


def discretized_mix_logistic_nll(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood in nats per image, shape (B,).

    ``x``: (B, C, H, W) on the 8-bit grid in [-1, 1]; ``params``: the model output (B, P, H, W)."""
    if x.ndim != 4 or params.ndim != 4 or x.shape[0] != params.shape[0] or x.shape[2:] != params.shape[2:]:
        raise ValueError(f"x {tuple(x.shape)} and params {tuple(params.shape)} do not match")
    return -discretized_mix_logistic_log_prob(x, params).flatten(1).sum(dim=1)


def bits_per_dim(nll: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Nats per image -> bits per sub-pixel: nll / (ln 2 * C * H * W).

    ``shape`` is one image's (C, H, W); a batch shape (B, C, H, W) also works (B is ignored)."""
    dims = math.prod(tuple(shape)[-3:])
    return nll / (math.log(2.0) * dims)


# --------------------------------------------------------------------------------------------
# Sampling one pixel from the mixture
# --------------------------------------------------------------------------------------------

def to_grid(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [-1, 1] and round to the nearest of the 256 levels: round((x + 1) * 127.5) / 127.5 - 1.

    The constants are tensors of x's dtype: the samplers call this 3 times per pixel, and a Python number
    would be turned into a new tensor by every operation (the same arithmetic, the same numbers)."""
    one, half_levels = cached_constant(1.0, x.dtype, x.device), cached_constant(127.5, x.dtype, x.device)
    return x.clamp(-1.0, 1.0).add_(one).mul_(half_levels).round_().div_(half_levels).sub_(one)


@lru_cache(maxsize=None)
def cached_constant(values: float | tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small constant tensor, made once per dtype and device, for code that runs once per pixel (callers
    only read it)."""
    return torch.tensor(values, dtype=dtype, device=device)


def gumbel_noise(u_mix: torch.Tensor) -> torch.Tensor:
    """Gumbel noise -log(-log(u)) from uniforms (clamped away from 0 and 1): for the Gumbel-max trick."""
    return -torch.log(-torch.log(u_mix.clamp(1e-5, 1.0 - 1e-5)))


def logistic_noise(u_logistic: torch.Tensor) -> torch.Tensor:
    """A standard logistic draw log(u) - log(1 - u) from uniforms (clamped away from 0 and 1)."""
    u = u_logistic.clamp(1e-5, 1.0 - 1e-5)
    return torch.log(u) - torch.log1p(-u)


def sample_pixel(params: torch.Tensor, channels: int, u_mix: torch.Tensor, u_logistic: torch.Tensor,
                 temperature: float = 1.0) -> torch.Tensor:
    """Draw one pixel per row of ``params`` (N, P) with given uniforms; returns (N, C) on the grid.

    ``u_mix`` (N, M) picks the mixture component by the Gumbel-max trick on logits / T;
    ``u_logistic`` (N, C) gives each colour a logistic draw with its scale multiplied by T.
    Each colour is rounded to the grid before it enters the next colour's mean, so the draw
    follows the discretized distribution exactly (clamping puts the tails in bins 0 and 255)."""
    return draw_with_noise(params, channels, gumbel_noise(u_mix), logistic_noise(u_logistic), temperature)


def draw_with_noise(params: torch.Tensor, channels: int, gumbel: torch.Tensor, logistic: torch.Tensor,
                    temperature: float = 1.0) -> torch.Tensor:
    """:func:`sample_pixel` with its noise already made (:func:`gumbel_noise`, :func:`logistic_noise`):
    the samplers make all of it at once, then draw each pixel with a few small operations. Only the
    chosen component's parameters are floored or tanh'd (elementwise, so the same numbers)."""
    n, p = params.shape
    m = p // (3 if channels == 1 else 10)
    if p != num_params_per_pixel(channels, m):
        raise ValueError(f"{p} parameters per pixel do not fit {channels} channel(s)")
    # method calls rather than indexing: the samplers call this once per pixel, and Python's indexing
    # costs more than the arithmetic on a few numbers
    logits = params.narrow(1, 0, m) if temperature == 1.0 else params.narrow(1, 0, m) / temperature
    k = torch.argmax(logits + gumbel, dim=1)                           # (N,)
    per = 2 if channels == 1 else 3                                    # means, log-scales(, coeffs) per colour
    rows = params.reshape(n, 1 + channels * per, m)                    # logits, then per colour its rows
    chosen = rows.gather(2, k.view(n, 1, 1).expand(n, 1 + channels * per, 1)).view(n, 1 + channels * per)
    chosen = chosen.narrow(1, 1, channels * per).view(n, channels, per)
    mu, scale = chosen.select(2, 0), torch.exp(chosen.select(2, 1).clamp(min=LOG_SCALE_MIN))
    noise = scale * logistic if temperature == 1.0 else scale * temperature * logistic
    if channels == 1:
        return to_grid(mu + noise)
    (mu_r, mu_g, mu_b), (n_r, n_g, n_b) = mu.unbind(1), noise.unbind(1)
    c_rg, c_rb, c_gb = torch.tanh(chosen.select(2, 2)).unbind(1)
    r = to_grid(mu_r + n_r)
    g = to_grid(mu_g + c_rg * r + n_g)
    b = to_grid(mu_b + c_rb * r + c_gb * g + n_b)
    return torch.stack([r, g, b], dim=1)


def pixel_pmf(params: torch.Tensor, channels: int, previous: torch.Tensor | None = None) -> torch.Tensor:
    """The model's probabilities of the 256 values of each colour of one pixel.

    ``params`` (N, P) for one pixel; ``previous`` (N, C) holds the pixel's colours (only those
    before colour c are used for colour c). Returns (N, C, 256): colour c given the earlier
    colours. For RGB with M > 1 the earlier colours also shift the odds of the mixture
    components: weight_k is proportional to pi_k * P_k(R) (* P_k(G | R) for B)."""
    n = params.shape[0]
    levels = torch.arange(256, dtype=params.dtype, device=params.device) / 127.5 - 1.0
    logits, means, log_scales, coeffs = unpack_params(params, channels)  # means (N, C, M)
    prev = previous if previous is not None else torch.zeros(n, channels, dtype=params.dtype, device=params.device)
    mu = coupled_means(means, coeffs, prev.unsqueeze(2))                 # (N, C, M)
    lp = discretized_logistic_log_prob(levels.view(1, 1, 1, 256), mu.unsqueeze(-1), log_scales.unsqueeze(-1))
    lp_prev = discretized_logistic_log_prob(prev.unsqueeze(2), mu, log_scales)  # (N, C, M)
    earlier = torch.cumsum(lp_prev, dim=1) - lp_prev                     # log P_k(colours before c)
    weights = torch.log_softmax(torch.log_softmax(logits, dim=1).unsqueeze(1) + earlier, dim=2)
    return torch.logsumexp(lp + weights.unsqueeze(-1), dim=2).exp()


