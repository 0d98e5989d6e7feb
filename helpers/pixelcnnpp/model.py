"""PixelCNN++ the model (notebook 01): causal shifted convolutions, gated resnets, the two streams.

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
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

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
    """x + a * sigmoid(b), where (a, b) = conv(dropout(concat_elu(conv(concat_elu(x)) + nin(concat_elu(skip)))))
    [+ class_bias[label]].

    ``num_classes``: the paper's class conditioning (openai/pixel-cnn, ``nn.py`` gated_resnet's ``h``): a
    learned vector of 2 * nr_filters per class, added to (a, b) at every position of the image."""

    def __init__(self, nr_filters: int, conv: type[nn.Module], skip_streams: int = 0, dropout: float = 0.5,
                 num_classes: int | None = None):
        super().__init__()
        self.conv_input = conv(2 * nr_filters, nr_filters)
        self.nin_skip = nn.Conv2d(2 * skip_streams * nr_filters, nr_filters, 1) if skip_streams else None
        self.dropout = nn.Dropout(dropout)
        self.conv_out = conv(2 * nr_filters, 2 * nr_filters)
        with torch.no_grad():  # the original's init_scale=0.1 on the last conv of the block
            self.conv_out.conv.weight.mul_(0.1)
            self.conv_out.conv.bias.zero_()
        # N(0, 0.05) as the original's conditional weights "hw"
        self.class_bias = nn.Parameter(0.05 * torch.randn(num_classes, 2 * nr_filters)) if num_classes else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv_input(concat_elu(x))
        if self.nin_skip is not None:
            h = h + self.nin_skip(concat_elu(skip))
        h = self.conv_out(self.dropout(concat_elu(h)))
        if self.class_bias is not None:
            h = h + self.class_bias[labels][:, :, None, None]
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
    ``num_classes``: a class-conditional model, ``model(x, labels)`` with labels (B,) in 0..num_classes-1
    (a learned per-class bias in every gated resnet, as in the paper); None: unconditional, ``model(x)``.
    """

    def __init__(self, in_channels: int = 3, nr_resnet: int = 5, nr_filters: int = 160,
                 nr_logistic_mix: int = 10, dropout: float = 0.5, num_classes: int | None = None):
        super().__init__()
        self.in_channels, self.nr_resnet, self.nr_filters = in_channels, nr_resnet, nr_filters
        self.nr_logistic_mix, self.num_classes = nr_logistic_mix, num_classes or None
        self.num_params = num_params_per_pixel(in_channels, nr_logistic_mix)
        if nr_resnet < 1 or nr_filters < 1 or nr_logistic_mix < 1:
            raise ValueError("nr_resnet, nr_filters and nr_logistic_mix must be at least 1")
        if num_classes is not None and num_classes < 0:
            raise ValueError(f"num_classes must be None or 0 (unconditional) or a number of classes, got {num_classes}")
        f, c = nr_filters, in_channels + 1  # +1: a channel of ones tells image from padding
        self.u_init = DownShiftedConv2d(c, f, (2, 3))
        self.ul_init_up = DownShiftedConv2d(c, f, (1, 3))
        self.ul_init_left = DownRightShiftedConv2d(c, f, (2, 1))

        def blocks(count: int, conv: type[nn.Module], skip: int) -> nn.ModuleList:
            return nn.ModuleList(GatedResnet(f, conv, skip, dropout, self.num_classes) for _ in range(count))

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

    def check_labels(self, labels: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """``labels`` as a long tensor (B,) for a conditional model; None for an unconditional one."""
        if self.num_classes is None:
            if labels is not None:
                raise ValueError("this model is unconditional (num_classes=None): it takes no labels")
            return None
        if labels is None:
            raise ValueError(f"this model is class-conditional ({self.num_classes} classes): call model(x, labels)")
        labels = torch.as_tensor(labels).reshape(-1)
        if labels.shape[0] != batch or labels.dtype.is_floating_point:
            raise ValueError(f"labels must be {batch} integer(s), one per image; got {labels.dtype} {tuple(labels.shape)}")
        return labels.long()  # their range is checked where they come in (sample_labels), not per pass: no GPU sync

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        self.check_input(x)
        y = self.check_labels(labels, x.shape[0])
        if y is not None:
            y = y.to(x.device)
        x = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
        # Up pass: remember every stream state for the down pass.
        u_list = [down_shift(self.u_init(x))]
        ul_list = [down_shift(self.ul_init_up(x)) + right_shift(self.ul_init_left(x))]
        for level in range(3):
            for block_u, block_ul in zip(self.up_u[level], self.up_ul[level]):
                u_list.append(block_u(u_list[-1], labels=y))
                ul_list.append(block_ul(ul_list[-1], u_list[-1], y))
            if level < 2:
                u_list.append(self.downsize_u[level](u_list[-1]))
                ul_list.append(self.downsize_ul[level](ul_list[-1]))
        # Down pass: consume them in reverse order as skip connections.
        u, ul = u_list.pop(), ul_list.pop()
        for level in range(3):
            for block_u, block_ul in zip(self.down_u[level], self.down_ul[level]):
                u = block_u(u, u_list.pop(), y)
                ul = block_ul(ul, torch.cat([u, ul_list.pop()], dim=1), y)
            if level < 2:
                u, ul = self.upsize_u[level](u), self.upsize_ul[level](ul)
        return self.nin_out(F.elu(ul))


