"""PixelCNN++ (Salimans et al. 2017): the model, its likelihood, and two samplers.

The model follows the original implementation (openai/pixel-cnn, ``pixel_cnn_pp/model.py``):
two causal streams, ``u`` (sees the rows above) and ``ul`` (sees the rows above and the pixels to
the left), an up pass and a down pass over three resolutions (H, H/2, H/4) joined by skip
connections, gated resnet blocks with ``concat_elu`` and dropout, and a 1x1 ("nin") output layer.
The convolutions are plain ``nn.Conv2d`` / ``nn.ConvTranspose2d`` (no weight normalisation and no
data-dependent init; the last conv of each gated block starts at 0.1 x its default scale, like the
original's ``init_scale=0.1``). Any H and W divisible by 4 work, square or not, grey or RGB.

Output layout (identical to openai/pixel-cnn's ``discretized_mix_logistic_loss``), M mixtures:

- one channel, P = 3M: ``[logits (M), means (M), log_scales (M)]``
- RGB, P = 10M: ``[logits (M)]`` then, for colour c = R, G, B, a block of 3M:
  ``[means_c (M), log_scales_c (M), coeffs_c (M)]``. The coefficients (tanh'd) couple the
  colours of one pixel inside a mixture component k:
  ``mean_G = means_G + coeffs_R * x_R`` and ``mean_B = means_B + coeffs_G * x_R + coeffs_B * x_G``
  (the coefficients stored in the R block act on G, those in the G and B blocks on B, exactly as
  in the original code). Log-scales are floored at -7.

Sampling: :func:`sample` with ``method="naive"`` runs the whole network once per pixel
(H*W passes); ``method="fast"`` (Ramachandran et al. 2017, "Fast Generation for Convolutional
Autoregressive Models") keeps every layer's activations in a cache and, after each new pixel,
computes only the layer outputs that this pixel completes (see :class:`FastSampler`). Both draw
all their random numbers up front in the same order, so one generator gives the same images.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LOG_SCALE_MIN = -7.0  # the original's floor on log-scales
# A bin whose probability is below this uses the density at its centre times its width instead.
TINY_BIN = 1e-5


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------

def concat_elu(x: torch.Tensor) -> torch.Tensor:
    """ELU of x and of -x, stacked along channels (keeps information from both signs)."""
    return F.elu(torch.cat([x, -x], dim=1))


def down_shift(x: torch.Tensor) -> torch.Tensor:
    """Move every row one step down (row 0 becomes zeros, the last row falls off)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1, :]


def right_shift(x: torch.Tensor) -> torch.Tensor:
    """Move every column one step right (column 0 becomes zeros)."""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, :-1]


class DownShiftedConv2d(nn.Module):
    """A conv that sees only the current row and rows above: pad (KH-1) rows on top and the
    width symmetrically, none below. Output row r depends on input rows r-KH+1..r."""

    def __init__(self, in_channels: int, out_channels: int, filter_size: tuple[int, int] = (2, 3),
                 stride: tuple[int, int] = (1, 1)):
        super().__init__()
        self.filter_size, self.stride = tuple(filter_size), tuple(stride)
        kh, kw = self.filter_size
        self.pad = ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0)  # left, right, top, bottom
        self.conv = nn.Conv2d(in_channels, out_channels, self.filter_size, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad))


class DownRightShiftedConv2d(nn.Module):
    """A conv that sees only the current pixel, pixels to its left and the rows above:
    pad (KH-1) rows on top and (KW-1) columns on the left."""

    def __init__(self, in_channels: int, out_channels: int, filter_size: tuple[int, int] = (2, 2),
                 stride: tuple[int, int] = (1, 1)):
        super().__init__()
        self.filter_size, self.stride = tuple(filter_size), tuple(stride)
        kh, kw = self.filter_size
        self.pad = (kw - 1, 0, kh - 1, 0)
        self.conv = nn.Conv2d(in_channels, out_channels, self.filter_size, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad))


class DownShiftedConvTranspose2d(nn.Module):
    """Upsampling x2 that keeps the down-shift: output rows 2i and 2i+1 read input row i only;
    columns are cropped symmetrically ((KW-1)//2 on each side), as in the original."""

    def __init__(self, in_channels: int, out_channels: int, filter_size: tuple[int, int] = (2, 3),
                 stride: tuple[int, int] = (2, 2)):
        super().__init__()
        self.filter_size, self.stride = tuple(filter_size), tuple(stride)
        self.crop_left = (self.filter_size[1] - 1) // 2
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, self.filter_size, self.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] * self.stride[0], x.shape[-1] * self.stride[1]
        return self.deconv(x)[:, :, :h, self.crop_left:self.crop_left + w]


class DownRightShiftedConvTranspose2d(DownShiftedConvTranspose2d):
    """Upsampling x2 for the ``ul`` stream: crops only at the bottom and right."""

    def __init__(self, in_channels: int, out_channels: int, filter_size: tuple[int, int] = (2, 2),
                 stride: tuple[int, int] = (2, 2)):
        super().__init__(in_channels, out_channels, filter_size, stride)
        self.crop_left = 0


class GatedResnet(nn.Module):
    """x + a * sigmoid(b), where (a, b) = conv(dropout(concat_elu(conv(concat_elu(x)) + nin(concat_elu(skip)))))."""

    def __init__(self, nr_filters: int, conv: type[nn.Module], skip_streams: int = 0, dropout: float = 0.5):
        super().__init__()
        self.conv_input = conv(2 * nr_filters, nr_filters)
        self.nin_skip = nn.Conv2d(2 * skip_streams * nr_filters, nr_filters, 1) if skip_streams else None
        self.dropout = nn.Dropout(dropout)
        self.conv_out = conv(2 * nr_filters, 2 * nr_filters)
        with torch.no_grad():  # the original's init_scale=0.1 on the last conv of the block
            self.conv_out.conv.weight.mul_(0.1)
            self.conv_out.conv.bias.zero_()

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv_input(concat_elu(x))
        if self.nin_skip is not None:
            h = h + self.nin_skip(concat_elu(skip))
        h = self.conv_out(self.dropout(concat_elu(h)))
        a, b = h.chunk(2, dim=1)
        return x + a * torch.sigmoid(b)


def num_params_per_pixel(in_channels: int, nr_logistic_mix: int) -> int:
    """P: 3M for one channel, 10M for RGB."""
    if in_channels == 1:
        return 3 * nr_logistic_mix
    if in_channels == 3:
        return 10 * nr_logistic_mix
    raise ValueError(f"in_channels must be 1 (grey) or 3 (RGB), got {in_channels}")


class PixelCNNpp(nn.Module):
    """PixelCNN++. ``model(x)``: x (B, C, H, W) in [-1, 1] -> mixture parameters (B, P, H, W).

    Paper defaults: nr_resnet=5 blocks per resolution, nr_filters=160, nr_logistic_mix=10,
    dropout=0.5. For teaching on a CPU use e.g. nr_resnet=1, nr_filters=16-64.
    """

    def __init__(self, in_channels: int = 3, nr_resnet: int = 5, nr_filters: int = 160,
                 nr_logistic_mix: int = 10, dropout: float = 0.5):
        super().__init__()
        self.in_channels, self.nr_resnet, self.nr_filters = in_channels, nr_resnet, nr_filters
        self.nr_logistic_mix = nr_logistic_mix
        self.num_params = num_params_per_pixel(in_channels, nr_logistic_mix)
        if nr_resnet < 1 or nr_filters < 1 or nr_logistic_mix < 1:
            raise ValueError("nr_resnet, nr_filters and nr_logistic_mix must be at least 1")
        f, c = nr_filters, in_channels + 1  # +1: a channel of ones tells image from padding
        self.u_init = DownShiftedConv2d(c, f, (2, 3))
        self.ul_init_up = DownShiftedConv2d(c, f, (1, 3))
        self.ul_init_left = DownRightShiftedConv2d(c, f, (2, 1))

        def blocks(count: int, conv: type[nn.Module], skip: int) -> nn.ModuleList:
            return nn.ModuleList(GatedResnet(f, conv, skip, dropout) for _ in range(count))

        self.up_u = nn.ModuleList(blocks(nr_resnet, DownShiftedConv2d, 0) for _ in range(3))
        self.up_ul = nn.ModuleList(blocks(nr_resnet, DownRightShiftedConv2d, 1) for _ in range(3))
        self.down_u = nn.ModuleList(blocks(n, DownShiftedConv2d, 1) for n in (nr_resnet, nr_resnet + 1, nr_resnet + 1))
        self.down_ul = nn.ModuleList(blocks(n, DownRightShiftedConv2d, 2) for n in (nr_resnet, nr_resnet + 1, nr_resnet + 1))
        self.downsize_u = nn.ModuleList(DownShiftedConv2d(f, f, (2, 3), (2, 2)) for _ in range(2))
        self.downsize_ul = nn.ModuleList(DownRightShiftedConv2d(f, f, (2, 2), (2, 2)) for _ in range(2))
        self.upsize_u = nn.ModuleList(DownShiftedConvTranspose2d(f, f, (2, 3)) for _ in range(2))
        self.upsize_ul = nn.ModuleList(DownRightShiftedConvTranspose2d(f, f, (2, 2)) for _ in range(2))
        self.nin_out = nn.Conv2d(f, self.num_params, 1)

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"this model takes images with {self.in_channels} channel(s), shape "
                             f"(B, {self.in_channels}, H, W); got {tuple(x.shape)}")
        if x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(f"height and width must be divisible by 4 (two x2 downsamplings), got {tuple(x.shape[2:])}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        # Up pass: remember every stream state for the down pass.
        u_list = [down_shift(self.u_init(x))]
        ul_list = [down_shift(self.ul_init_up(x)) + right_shift(self.ul_init_left(x))]
        for level in range(3):
            for block_u, block_ul in zip(self.up_u[level], self.up_ul[level]):
                u_list.append(block_u(u_list[-1]))
                ul_list.append(block_ul(ul_list[-1], u_list[-1]))
            if level < 2:
                u_list.append(self.downsize_u[level](u_list[-1]))
                ul_list.append(self.downsize_ul[level](ul_list[-1]))
        # Down pass: consume them in reverse order as skip connections.
        u, ul = u_list.pop(), ul_list.pop()
        for level in range(3):
            for block_u, block_ul in zip(self.down_u[level], self.down_ul[level]):
                u = block_u(u, u_list.pop())
                ul = block_ul(ul, torch.cat([u, ul_list.pop()], dim=1))
            if level < 2:
                u, ul = self.upsize_u[level](u), self.upsize_ul[level](ul)
        return self.nin_out(F.elu(ul))


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
    """Clamp to [-1, 1] and round to the nearest of the 256 levels."""
    return torch.round((x.clamp(-1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


def sample_pixel(params: torch.Tensor, channels: int, u_mix: torch.Tensor, u_logistic: torch.Tensor,
                 temperature: float = 1.0) -> torch.Tensor:
    """Draw one pixel per row of ``params`` (N, P) with given uniforms; returns (N, C) on the grid.

    ``u_mix`` (N, M) picks the mixture component by the Gumbel-max trick on logits / T;
    ``u_logistic`` (N, C) gives each colour a logistic draw with its scale multiplied by T.
    Each colour is rounded to the grid before it enters the next colour's mean, so the draw
    follows the discretized distribution exactly (clamping puts the tails in bins 0 and 255)."""
    logits, means, log_scales, coeffs = unpack_params(params, channels)
    gumbel = -torch.log(-torch.log(u_mix.clamp(1e-5, 1.0 - 1e-5)))
    k = torch.argmax(logits / temperature + gumbel, dim=1)            # (N,)
    pick = k.view(-1, 1, 1).expand(-1, channels, 1)

    def chosen(t: torch.Tensor) -> torch.Tensor:
        return t.gather(2, pick).squeeze(2)                            # (N, C)

    mu, scale = chosen(means), torch.exp(chosen(log_scales)) * temperature
    u = u_logistic.clamp(1e-5, 1.0 - 1e-5)
    noise = scale * (torch.log(u) - torch.log1p(-u))
    if coeffs is None:
        return to_grid(mu + noise)
    c = chosen(coeffs)
    r = to_grid(mu[:, 0] + noise[:, 0])
    g = to_grid(mu[:, 1] + c[:, 0] * r + noise[:, 1])
    b = to_grid(mu[:, 2] + c[:, 1] * r + c[:, 2] * g + noise[:, 2])
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


@torch.no_grad()
def sample(model: PixelCNNpp, n: int, image_shape: Sequence[int], temperature: float = 1.0,
           generator: torch.Generator | None = None, method: str = "fast",
           progress: bool = False, cuda_graphs: bool | None = None) -> torch.Tensor:
    """Draw ``n`` images (n, C, H, W) in [-1, 1] on the 8-bit grid, pixel by pixel in raster order.

    ``temperature`` T > 0: the mixture logits are divided by T and every logistic scale is
    multiplied by T. T = 1 samples the model's distribution; T < 1 is more conservative (the
    likeliest component wins more often and each colour spreads less), T > 1 is wilder.
    ``method``: "naive" (one full network pass per pixel) or "fast" (cached, see FastSampler);
    both use the same random numbers, so the same ``generator`` gives the same images.
    ``cuda_graphs``: the fast sampler on CUDA captures its steps as CUDA graphs (default on CUDA;
    False runs them eagerly, for comparison). The model is put in eval mode for the draw (dropout off) and restored afterwards."""
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
    u_mix, u_log = _draw_uniforms(n, (c, h, w), model.nr_logistic_mix, generator, device, dtype)
    was_training = model.training
    model.eval()
    try:
        if method == "naive":
            return _sample_naive(model, n, (c, h, w), u_mix, u_log, temperature, progress)
        return FastSampler(model, (c, h, w)).run(n, u_mix, u_log, temperature, progress, cuda_graphs)
    finally:
        model.train(was_training)


def _progress(total: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="px", leave=False)


def _sample_naive(model: PixelCNNpp, n: int, shape: tuple[int, int, int], u_mix: torch.Tensor,
                  u_log: torch.Tensor, temperature: float, progress: bool) -> torch.Tensor:
    c, h, w = shape
    x = torch.zeros(n, c, h, w, device=u_mix.device, dtype=u_mix.dtype)
    bar = _progress(h * w, progress, "naive sampling")
    for i in range(h):
        for j in range(w):
            params = model(x)[:, :, i, j]
            x[:, :, i, j] = sample_pixel(params, c, u_mix[i, j], u_log[i, j], temperature)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    return x


# --------------------------------------------------------------------------------------------
# The fast sampler: every layer's activations cached, each new pixel computes only what it completes
# --------------------------------------------------------------------------------------------

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
        bar = _progress(h * w, progress, "fast sampling" + (" (CUDA graphs)" if cuda_graphs else ""))
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
