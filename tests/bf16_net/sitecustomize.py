"""Loaded at start-up by every Python process of `make test-notebooks-half` (its PYTHONPATH), never by a lesson.

The bfloat16 net runs notebooks 05-07 with the tiny twins in bfloat16 to catch float32-only asserts and
dtype mismatches before a GPU sees them. On a CPU where oneDNN has no bfloat16 convolution (no AVX-512,
e.g. an AVX2-only AMD EPYC; ``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` is False), PyTorch runs
bf16 convolutions on its reference path (``aten::_slow_conv2d_forward`` / ``slow_conv3d_forward``):
profiled on SVD's tiny twin they were 93 % of the time and made one call 25x slower than in float32
(docs/benchmarks.md, issue 27).

There, and only there, a convolution, linear layer or attention whose inputs are all bfloat16 is
computed in float32 from those same bfloat16 values and its result rounded to bfloat16: what a GPU's bf16
kernels do (float32 accumulation, bf16 output). Without the shim, once convolutions were fixed, bf16
matrix products (addmm, mm) and CPU flash attention were the next 77 % of the time. Everything the net checks stays as it was: every tensor the
notebook sees is bfloat16, every other op runs in bfloat16, and a dtype mismatch (bf16 input, float32
weight) still raises PyTorch's own error, because mixed calls go to the original function.
COURSE_BF16_NET_SHIM=0 turns this off; =1 forces it on (to test it on any CPU).
"""

import os


def _install() -> None:
    mode = os.environ.get("COURSE_BF16_NET_SHIM", "auto")
    if mode == "0" or os.environ.get("COURSE_DTYPE") != "bfloat16":
        return
    import torch
    import torch.nn.functional as F

    if mode != "1" and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return  # oneDNN has bf16 convolutions on this CPU: nothing to do

    def all_bf16_on_cpu(tensors) -> bool:
        present = [t for t in tensors if t is not None]
        return all(t.device.type == "cpu" and t.dtype == torch.bfloat16 for t in present)

    def via_float32(original, n_tensors: int):
        """``original`` with its first ``n_tensors`` arguments (when all bf16) computed in float32."""
        def op(*args, **kwargs):
            head = list(args[:n_tensors])
            extra = {k: v for k, v in kwargs.items() if k in ("bias", "attn_mask") and torch.is_tensor(v)}
            floating = [v for v in extra.values() if v.is_floating_point()]
            if len(head) < 2 or not all_bf16_on_cpu(head + floating):
                return original(*args, **kwargs)
            kwargs.update({k: v.float() for k, v in extra.items() if v.is_floating_point()})
            head = [None if t is None else t.float() for t in head]
            return original(*head, *args[n_tensors:], **kwargs).to(torch.bfloat16)

        op.__name__, op.__doc__ = original.__name__, original.__doc__
        return op

    for name in ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                 "linear"):
        setattr(F, name, via_float32(getattr(F, name), 3))  # input, weight, bias
    F.scaled_dot_product_attention = via_float32(F.scaled_dot_product_attention, 3)  # query, key, value
    os.environ["COURSE_BF16_NET_SHIM_ACTIVE"] = "1"  # for the record (tests, benchmarks)


_install()
