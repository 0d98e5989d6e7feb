"""The machine itself: which GPU class (T4-like or bfloat16-native), how many CPU threads, and the
tolerances and float64 mode that keep asserts true on every device. Imports nothing from helpers.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

GPU_CLASSES = ("t4", "bf16")


def gpu_class() -> str | None:
    """``"t4"`` (no native bfloat16: compute capability < 8.0), ``"bf16"`` (Ampere and newer), or None
    without CUDA. ``COURSE_GPU_CLASS=t4`` makes any GPU follow the T4 plan (the GPU test mode's colab run)."""
    forced = os.environ.get("COURSE_GPU_CLASS", "").strip().lower()
    if forced:
        if forced not in GPU_CLASSES:
            raise ValueError(f"COURSE_GPU_CLASS={forced!r}: choose one of {', '.join(GPU_CLASSES)}")
        return forced
    import torch

    if not torch.cuda.is_available():
        return None
    major, _ = torch.cuda.get_device_capability(0)
    return "bf16" if major >= 8 else "t4"


# --------------------------------------------------------------------------------------------
# Checks that hold on every device
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def exact_float64() -> Iterator[None]:
    """Where a result is exact, check it exactly: TF32 off for matmul and cuDNN inside the block
    (Ampere and newer use TF32 for float32 by default), restored afterwards. Use float64 tensors inside."""
    import torch

    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def tolerance(dtype) -> dict[str, float]:
    """``rtol``/``atol`` for comparing results computed in ``dtype`` (for ``torch.allclose(**tolerance(d))``).

    float64 ~1e-10; float32 1e-4 relative (TF32 matmuls keep ~10 bits of mantissa: 1e-3 on CUDA);
    float16 ~1e-3 per operation, a few 1e-3 after a layer; bfloat16 8 bits of mantissa: ~1e-2.
    """
    import torch

    name = str(dtype).replace("torch.", "")
    if name == "float64":
        return {"rtol": 1e-9, "atol": 1e-10}
    if name == "float32":
        tf32 = torch.cuda.is_available() and torch.backends.cuda.matmul.allow_tf32
        return {"rtol": 1e-3, "atol": 1e-3} if tf32 else {"rtol": 1e-4, "atol": 1e-5}
    if name == "float16":
        return {"rtol": 5e-3, "atol": 5e-3}
    if name == "bfloat16":
        return {"rtol": 3e-2, "atol": 3e-2}
    raise ValueError(f"no tolerance for dtype {dtype}")


def configure_threads(profile) -> int:
    """Pick torch's CPU threads on purpose. The tiny models are too small to gain from threads, and on a
    loaded 2-core machine (a notebook kernel beside its test runner) extra threads oversubscribe the
    cores: one tiny PixelCNN++ pass took 66 ms with one thread and seconds with two. ``COURSE_THREADS``
    overrides. Returns the number set."""
    import torch

    wanted = os.environ.get("COURSE_THREADS")
    if wanted:
        threads = int(wanted)
    elif profile.is_tiny:
        threads = 1
    else:
        return torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()
