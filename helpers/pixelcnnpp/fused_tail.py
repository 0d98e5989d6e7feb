"""The CPU fast sampler's elementwise tails as one C loop each (``fused_tail.c``), compiled once per machine.

Why: after each small matrix product a pixel step runs a gated block's gate and the next layer's concat_elu
on 16 rows or so; as PyTorch calls that is four dispatches of a few microseconds each per block and pixel,
about a fifth of a CPU sampling run. :func:`tails` compiles the C file with the machine's C compiler (``cc``,
or ``$CC``) into a cache folder the first time (a fraction of a second) and returns the two kernels; where
there is no compiler (e.g. Windows without build tools) it returns None and the sampler keeps PyTorch's
operations: the same images, a little slower.

Only float32 on the CPU: float64 (the tests' exact comparisons) and CUDA (CUDA graphs) use PyTorch's operations.
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

SOURCE = Path(__file__).with_name("fused_tail.c")
FLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-trapping-math", "-fno-math-errno"]
MAX_CHANNELS = 1024  # as in the C file

Op = Callable[[], object]


def cache_dir() -> Path:
    """Where the compiled library is kept: ``$PIXELS_TO_MOTION_CACHE``, else ~/.cache/pixels-to-motion."""
    root = os.environ.get("PIXELS_TO_MOTION_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "pixels-to-motion")
    return Path(root)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags")):
                return line
    except OSError:
        pass
    return platform.processor()


def build(compiler: str) -> Path | None:
    """Compile fused_tail.c for this machine (``-march=native`` where the compiler knows it), or None."""
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + " ".join(FLAGS).encode() + platform.machine().encode() + _cpu_name().encode())
    target = cache_dir() / f"fused_tail-{key.hexdigest()[:16]}{'.dll' if os.name == 'nt' else '.so'}"
    if target.exists():
        return target
    for native in (["-march=native"], []):  # e.g. a compiler that does not know -march=native: plain -O3
        built = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
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
def tails() -> "FusedTails | None":
    """The compiled kernels, built on first use; None without a C compiler (or with PIXELS_TO_MOTION_FUSED=0)."""
    if os.environ.get("PIXELS_TO_MOTION_FUSED", "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None
    path = build(compiler)
    if path is None:
        return None
    try:
        return FusedTails(ctypes.CDLL(str(path)))
    except OSError:
        return None


class FusedTails:
    """``store`` and ``gate`` as recorded operations: each binds its tensors' addresses and strides once,
    in an int64 array, and a call runs one C loop."""

    def __init__(self, library: ctypes.CDLL):
        self.store_rows, self.gate_rows = library.store_rows, library.gate_rows
        for fn in (self.store_rows, self.gate_rows):
            fn.argtypes, fn.restype = [ctypes.c_void_p], None

    @staticmethod
    def fits(*tensors: torch.Tensor | None) -> bool:
        """Whether these views can be handed to the C loops: float32 CPU rows (B, [n,] C), values of a row contiguous."""
        given = [t for t in tensors if t is not None]
        return all(t.dtype == torch.float32 and t.device.type == "cpu" and t.dim() in (2, 3) and t.stride(-1) == 1
                   for t in given) and given[0].shape[-1] <= 2 * MAX_CHANNELS

    @staticmethod
    def _args(rows: torch.Tensor, channels: int, *tensors: torch.Tensor | None) -> ctypes.Array:
        """The int64 argument array: batch, positions, channels, then per tensor its address and strides."""
        batch, positions = rows.shape[0], rows.shape[1] if rows.dim() == 3 else 1
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


class _bound:
    """A C call with its argument array bound; it holds the array and the tensors whose addresses the array
    holds, so that they live as long as the recorded call does."""

    __slots__ = ("fn", "address", "args", "keep")

    def __init__(self, fn, args: ctypes.Array, keep: tuple):
        self.fn, self.address, self.args, self.keep = fn, ctypes.addressof(args), args, keep

    def __call__(self) -> None:
        self.fn(self.address)
