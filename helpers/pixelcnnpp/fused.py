"""The CPU fast sampler's small per-pixel work in C (``fused.c``), compiled once per machine.

Why: a pixel step of the fast sampler (notebook 03) is a few small matrix products and, between them, small
elementwise work on 16 rows or so: a gated block's gate x + a * sigmoid(b), the next layer's concat_elu, and the
pixel draw. As PyTorch calls that is dozens of dispatches of a few microseconds each per pixel, about a third of
a CPU sampling run. Each of those becomes one C loop here (:class:`FusedKernels`): ``gate`` and ``store`` (a
block's tail), ``draw`` (the draw after PyTorch's exp and tanh).

:func:`kernels` compiles the C file with the machine's C compiler (``cc``, or ``$CC``) into a cache folder the
first time (a fraction of a second) and loads it with ctypes; where there is no compiler (e.g. Windows without
build tools), or with ``COURSE_C_KERNELS=0``, it returns None and the sampler keeps PyTorch's operations.

Only float32 on the CPU: float64 (the tests' exact comparisons) and CUDA (CUDA graphs) use PyTorch's operations.
The draw does the same float operations in the same order as ``draw_with_noise``, so it draws the same pixels;
the tails compute exp themselves (within a few units in the last place of PyTorch's; the tests compare both).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch

from helpers.core.outputs import cache_dir

SOURCE = Path(__file__).with_name("fused.c")
FLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-trapping-math", "-fno-math-errno"]
MAX_CHANNELS = 4096  # the longest row the C loops take (a local buffer there)

Op = Callable[[], object]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor()


def build(compiler: str) -> Path | None:
    """Compile fused.c for this machine (``-march=native`` where the compiler knows it), or None."""
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join(FLAGS).encode() + platform.machine().encode() + _cpu_name().encode())
    try:
        folder = cache_dir()  # $COURSE_CACHE or ~/.cache/pixels-to-motion, where the tiny twins are kept too
    except Exception:  # a file in the way, a read-only home: PyTorch's operations then
        return None
    target = folder / f"fused-{key.hexdigest()[:16]}{'.dll' if os.name == 'nt' else '.so'}"
    if target.exists():
        return target
    for native in (["-march=native"], []):  # e.g. a compiler that does not know -march=native: plain -O3
        built = None
        try:
            with tempfile.NamedTemporaryFile(dir=target.parent, suffix=target.suffix, delete=False) as handle:
                built = Path(handle.name)
            done = subprocess.run([compiler, *FLAGS, *native, str(SOURCE), "-o", str(built)], capture_output=True, timeout=60)
            if done.returncode == 0:
                os.replace(built, target)  # whole or not at all, if two processes build at once
                return target
        except (OSError, subprocess.SubprocessError):  # no compiler, a read-only home: PyTorch's operations then
            pass
        finally:
            if built is not None:
                built.unlink(missing_ok=True)
    return None


@lru_cache(maxsize=1)
def kernels() -> "FusedKernels | None":
    """The compiled kernels, built on first use; None without a C compiler (or with ``COURSE_C_KERNELS=0``)."""
    if os.environ.get("COURSE_C_KERNELS", "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None
    path = build(compiler)
    if path is None:
        return None
    try:
        return FusedKernels(ctypes.CDLL(str(path)))
    except OSError:
        return None


class FusedKernels:
    """``store``, ``gate`` and ``draw`` as recorded operations: each binds its tensors' addresses and strides
    once, in an int64 array, and a call runs one C loop."""

    def __init__(self, library: ctypes.CDLL):
        self.store_rows, self.gate_rows, self.draw_pixels = library.store_rows, library.gate_rows, library.draw_pixels
        for fn in (self.store_rows, self.gate_rows, self.draw_pixels):
            fn.argtypes, fn.restype = [ctypes.c_void_p], None

    @staticmethod
    def fits(*tensors: torch.Tensor | None) -> bool:
        """Whether these views can be handed to the C loops: float32 CPU rows (B, [n,] C), values of a row
        contiguous, at most ``MAX_CHANNELS`` long."""
        return all(t.dtype == torch.float32 and t.device.type == "cpu" and t.dim() in (2, 3) and t.stride(-1) == 1
                   and t.shape[-1] <= MAX_CHANNELS for t in tensors if t is not None)

    @staticmethod
    def _args(rows: torch.Tensor, channels: int, *tensors: torch.Tensor | None) -> ctypes.Array:
        """The int64 argument array: batch, positions, channels, then per tensor its address and strides."""
        batch, positions = rows.shape[0], rows.shape[1] if rows.dim() == 3 else 1
        # the C loops write through raw addresses: every tensor must have the rows and the row length they assume
        assert all(t.shape[:-1] == rows.shape[:-1] and t.shape[-1] in (channels, 2 * channels)
                   for t in tensors if t is not None), "rows of different shapes"
        values = [batch, positions, channels]
        for t in tensors:
            if t is None:
                values += [0, 0, 0]
            else:
                values += [t.data_ptr(), t.stride(0), t.stride(1) if t.dim() == 3 else 0]
        return (ctypes.c_int64 * len(values))(*values)

    def store(self, x: torch.Tensor, raw: torch.Tensor | None, ce: torch.Tensor | None) -> Op:
        """raw = x (if given) and ce = [elu(x), elu(-x)] (if given), rows (B, [n,] C) / (B, [n,] 2C)."""
        return _bound(self.store_rows, self._args(x, x.shape[-1], x, raw, ce), (x, raw, ce))

    def gate(self, ab: torch.Tensor, res: torch.Tensor, raw: torch.Tensor | None, ce: torch.Tensor | None) -> Op:
        """x = res + a * sigmoid(b) ((a, b) the halves of ab), raw = x and ce = concat_elu(x) where given."""
        return _bound(self.gate_rows, self._args(res, res.shape[-1], ab, res, raw, ce), (ab, res, raw, ce))

    def draw(self, params: torch.Tensor, scales: torch.Tensor, coeffs: torch.Tensor, gumbel: torch.Tensor,
             logistic: torch.Tensor, out: torch.Tensor, temperature: torch.Tensor) -> Op:
        """Draw one pixel per row of ``params`` (B, P) into ``out`` (B, C): the component by Gumbel-max on
        logits / T + gumbel (B, M), then each colour from its mean, ``scales`` (B, C, M) x T x ``logistic``
        (B, C) and ``coeffs`` (B, 3, M), rounded to the grid; ``temperature``: a one-element tensor."""
        batch, channels, m = scales.shape
        for t in (params, scales, coeffs, gumbel, logistic, out):  # the C loop reads and writes raw addresses
            assert t.dtype == torch.float32 and t.device.type == "cpu" and t.stride(-1) == 1 and t.shape[0] == batch
        assert params.shape[1] >= (1 + channels * (2 if channels == 1 else 3)) * m and coeffs.shape[1:] == (channels, m)
        assert gumbel.shape[1] == m and logistic.shape[1] == channels == out.shape[1] and channels in (1, 3)
        assert scales.stride(-2) == m and coeffs.stride(-2) == m and temperature.dtype == torch.float32
        values = [batch, m, channels, params.data_ptr(), params.stride(0), scales.data_ptr(), scales.stride(0),
                  coeffs.data_ptr(), coeffs.stride(0), gumbel.data_ptr(), gumbel.stride(0),
                  logistic.data_ptr(), logistic.stride(0), out.data_ptr(), out.stride(0), temperature.data_ptr()]
        args = (ctypes.c_int64 * len(values))(*values)
        return _bound(self.draw_pixels, args, (params, scales, coeffs, gumbel, logistic, out, temperature))


class _bound:
    """A C call with its argument array bound; it holds the array and the tensors whose addresses the array
    holds, so that they live as long as the recorded call does."""

    __slots__ = ("fn", "address", "args", "keep")

    def __init__(self, fn, args: ctypes.Array, keep: tuple):
        self.fn, self.address, self.args, self.keep = fn, ctypes.addressof(args), args, keep

    def __call__(self) -> None:
        self.fn(self.address)
