"""The memory plan's RAM figure against reality, on a CPU: build the full-size SVD-XT and LTX-Video architectures
with random weights, put them through the colab profile's code path (the T4 dtype plan, layerwise casting, the
memory options), and compare the measured resident memory with helpers.core.plan's RAM figure.

Each model runs in a process of its own (``--model all`` starts them one after the other), so every peak is its
own; the baseline (Python, torch, diffusers imported) is subtracted. Steps that need CUDA are skipped and named:
model offload's hooks (on a CPU everything stays in RAM, which is where the plan puts offloaded weights anyway)
and NF4 quantisation (bitsandbytes needs CUDA; the NF4 part the plan keeps on the GPU is not built here).

    nice -n 10 python benchmarks/plan_rss_check.py --model all      # ~9 GB peak for LTX-Video, one model at a time

Random weights: nothing here makes a picture; it measures memory.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOLERANCE = 0.15


def rss() -> tuple[int, int]:
    """(current, peak) resident set size of this process, bytes (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def give_back_freed() -> None:
    """Return freed heap pages to the OS (glibc keeps some), so RSS shows what is alive."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def build_svd(_=None):
    """SVD-XT as the colab profile loads it: float16 everywhere (T4 plan), forward chunking; offload skipped."""
    import torch

    from helpers.core import device
    from helpers.core.twins import full_size

    plan = device.DTYPE_PLANS["svd"]["t4"]
    pipe = full_size.svd("cpu", torch.float16)  # the dtype from_pretrained(torch_dtype=float16, variant="fp16") gives
    device.cast_components(pipe, plan)
    device.cast_inputs_to_component_dtype(pipe)
    pipe.unet.enable_forward_chunking()
    return pipe, ["model_offload (CUDA only: the weights stay in RAM, where the plan puts offloaded ones)"]


def build_ltx(vae_config: dict):
    """LTX-Video (0.9.5 layout) as the colab profile loads it on the T4 plan: transformer loaded in bf16 then stored in
    float8 (layerwise casting, float32 compute), VAE float32 with tiling; the NF4 T5 (kept on the GPU) is skipped."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, LTXVideoTransformer3DModel

    from helpers.core import device
    from helpers.core.twins import full_size

    with full_size.building_on("cpu", getattr(torch, device.LAYERWISE_LOAD_DTYPE)):
        transformer = LTXVideoTransformer3DModel()
    with full_size.building_on("cpu", torch.float32):
        vae = AutoencoderKLLTXVideo.from_config(vae_config)
    storage = device.LAYERWISE_CASTING["ltx"]["t4"]["transformer"]
    device.layerwise_cast(transformer, storage, torch.float32)
    vae.enable_tiling()
    vae.use_framewise_decoding = True
    return (transformer, vae), ["text_encoder: NF4 needs CUDA (bitsandbytes); the plan keeps it on the GPU",
                                         "model_offload (CUDA only)"]


def _ltx_vae_config() -> dict:
    """The 0.9.5-layout VAE configuration of helpers.core.twins.full_size.ltx_distilled (read from a meta build)."""
    import torch

    from helpers.core.twins import full_size

    return dict(full_size.ltx_distilled("meta", torch.bfloat16).vae.config)


def measure(model: str) -> dict:
    import torch  # noqa: F401 - the baseline includes torch, diffusers and helpers, as in a notebook
    import diffusers  # noqa: F401

    from helpers.core.plan import GiB, stage_plan

    config = _ltx_vae_config() if model == "ltx" else None  # read before the baseline: not part of the model
    import gc

    gc.collect()
    give_back_freed()
    base = rss()[0]
    reset_peak()
    start = time.perf_counter()
    built, skipped = (build_svd if model == "svd" else build_ltx)(config)
    give_back_freed()
    now, peak = rss()
    planned = stage_plan("svd" if model == "svd" else "ltx", "colab", "t4")
    parts = {p.name: p for p in planned.parts}
    if model == "svd":
        plan_weights = plan_load = sum(p.bytes for p in parts.values() if p.where == "offload")
    else:  # what this script builds: the transformer and the VAE (the NF4 T5 lives on the GPU)
        plan_weights = parts["transformer"].bytes + parts["vae"].bytes
        plan_load = parts["transformer"].load_ram + parts["vae"].load_ram
    result = {"model": model, "seconds": round(time.perf_counter() - start, 1), "baseline_gib": base / GiB,
              "steady_measured_gib": (now - base) / GiB, "steady_planned_gib": plan_weights / GiB,
              "peak_measured_gib": (peak - base) / GiB, "peak_planned_gib": plan_load / GiB, "skipped": skipped}
    result["steady_ratio"] = result["steady_measured_gib"] / result["steady_planned_gib"]
    result["peak_ratio"] = result["peak_measured_gib"] / result["peak_planned_gib"]
    result["within_15_percent"] = all(abs(result[k] - 1) <= TOLERANCE for k in ("steady_ratio", "peak_ratio"))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("svd", "ltx", "all"), default="all")
    args = parser.parse_args(argv)
    if args.model != "all":
        print(json.dumps(measure(args.model), indent=1))
        return 0
    for model in ("svd", "ltx"):  # one at a time, each in a fresh process: never two models in RAM at once
        subprocess.run([sys.executable, __file__, "--model", model], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
