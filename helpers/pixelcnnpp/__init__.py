"""PixelCNN++ (Salimans et al. 2017), in the order notebooks 01-03 teach it.

- :mod:`.model` - causal (shifted) convolutions, gated resnets, the network (notebook 01)
- :mod:`.likelihood` - the discretized logistic mixture: NLL, bits/dim, drawing one pixel (notebook 01)
- :mod:`.sampling` - :func:`sample`, naive or fast, one generator -> the same images (notebook 03)
- :mod:`.fast_plan` - the fast sampler's plan: the cache graph, dependency times, the schedule (notebook 03)
- :mod:`.fast_sampler` - the cached sampler behind ``method="fast"``: one step, the run, CUDA graphs (notebook 03)
- :mod:`.fused` - on a CPU, each block's elementwise tail and the pixel draw as one C call (``fused.c``, notebook 03)

Everything public is importable from ``helpers.pixelcnnpp`` directly.
"""

from helpers.pixelcnnpp.fast_sampler import FastSampler
from helpers.pixelcnnpp.likelihood import (LOG_SCALE_MIN, TINY_BIN, bits_per_dim, coupled_means,
                                           discretized_logistic_log_prob, discretized_mix_logistic_log_prob,
                                           discretized_mix_logistic_nll, pixel_pmf, sample_pixel, to_grid,
                                           unpack_params)
from helpers.pixelcnnpp.model import (DownRightShiftedConv2d, DownRightShiftedConvTranspose2d, DownShiftedConv2d,
                                      DownShiftedConvTranspose2d, GatedResnet, PixelCNNpp, concat_elu, down_shift,
                                      num_params_per_pixel, right_shift)
from helpers.pixelcnnpp.sampling import sample, sample_labels

__all__ = ["FastSampler", "LOG_SCALE_MIN", "TINY_BIN", "bits_per_dim", "coupled_means",
           "discretized_logistic_log_prob", "discretized_mix_logistic_log_prob", "discretized_mix_logistic_nll",
           "pixel_pmf", "sample_pixel", "to_grid", "unpack_params", "DownRightShiftedConv2d",
           "DownRightShiftedConvTranspose2d", "DownShiftedConv2d", "DownShiftedConvTranspose2d", "GatedResnet",
           "PixelCNNpp", "concat_elu", "down_shift", "num_params_per_pixel", "right_shift", "sample", "sample_labels"]
