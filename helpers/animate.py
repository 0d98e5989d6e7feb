"""Image to video (notebooks 00, 06, 07): ``python -m helpers animate IMAGE --out OUT.mp4``.

The Stable Video Diffusion path: read any image safely, fit it to the model's size, run the
pipeline (tiny twin offline, real weights in colab/full) with the profile's memory options,
and write an H.264 / yuv420p MP4 atomically. In ``tiny`` every frame is labelled as coming
from random weights.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from PIL import Image

from helpers.images import fit_to, load_image, stamp_random_weights
from helpers.profiles import Profile, get_profile
from helpers.registry import load_pipeline
from helpers.video import write_mp4

MEMORY_OPTIONS = ("none", "model_offload", "sequential_offload", "forward_chunking")


def apply_memory_options(pipe, memory: str, profile: Profile):
    """Put ``pipe`` on the profile's device with memory savers, e.g. ``"model_offload+forward_chunking"``.

    - ``none``: everything on the GPU (fastest; needs the most memory)
    - ``model_offload``: each whole model moves to the GPU only while it runs (small slowdown)
    - ``sequential_offload``: layer by layer (fits almost anywhere; several times slower)
    - ``forward_chunking``: the UNet's feed-forward layers run in chunks (less peak memory)
    """
    options = [o for o in memory.split("+") if o]
    unknown = [o for o in options if o not in MEMORY_OPTIONS]
    if unknown:
        raise ValueError(f"unknown memory option(s) {unknown}; choose from {', '.join(MEMORY_OPTIONS)}")
    if profile.device == "cpu" or "none" in options or not {"model_offload", "sequential_offload"} & set(options):
        pipe.to(profile.device)
    if profile.device != "cpu":
        if "sequential_offload" in options:
            pipe.enable_sequential_cpu_offload()
        elif "model_offload" in options:
            pipe.enable_model_cpu_offload()
    if "forward_chunking" in options and hasattr(pipe.unet, "enable_forward_chunking"):
        pipe.unet.enable_forward_chunking()
    return pipe


def svd_frames(pipe, image: Image.Image, settings: dict[str, Any], seed: int = 0) -> list[Image.Image]:
    """Run a loaded SVD pipeline on one image with ``settings`` (the profile's ``svd`` block)."""
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed)
    result = pipe(
        image, height=settings["height"], width=settings["width"], num_frames=settings["num_frames"],
        num_inference_steps=settings["num_inference_steps"], fps=settings["fps"],
        motion_bucket_id=settings["motion_bucket_id"], noise_aug_strength=settings["noise_aug_strength"],
        min_guidance_scale=settings["min_guidance_scale"], max_guidance_scale=settings["max_guidance_scale"],
        decode_chunk_size=settings["decode_chunk_size"], generator=generator,
    )
    return list(result.frames[0])


def animate_image(image: Image.Image, profile: Profile | None = None, seed: int = 0,
                  pipe=None, **overrides: Any) -> tuple[list[Image.Image], dict[str, Any]]:
    """One image -> frames with SVD. Returns (frames, the settings used).

    ``overrides`` replace the profile's ``svd`` settings (e.g. ``num_frames=14``).
    In ``tiny`` the frames are stamped as coming from random weights.
    """
    profile = profile or get_profile()
    settings = profile.settings("svd")
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown SVD setting(s) {sorted(unknown)}; known: {', '.join(settings)}")
    settings.update(overrides)
    if pipe is None:
        pipe = apply_memory_options(load_pipeline(settings["model"], profile), settings["memory"], profile)
    fitted, _ = fit_to(image, settings["width"], settings["height"])
    frames = svd_frames(pipe, fitted, settings, seed)
    if profile.is_tiny:
        frames = [stamp_random_weights(f) for f in frames]
    return frames, settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the still image to animate (any format PIL reads)")
    parser.add_argument("--out", required=True, help="where to write the video (.mp4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same video)")
    parser.add_argument("--num-frames", type=int, help="frames to generate (SVD-XT is trained on 25)")
    parser.add_argument("--steps", type=int, dest="num_inference_steps", help="denoising steps")
    parser.add_argument("--motion-bucket-id", type=int, help="more motion with higher values (1-255, default 127)")
    parser.add_argument("--fps", type=int, help="frame rate the model is conditioned on (not the export rate)")
    parser.add_argument("--export-fps", type=float, help="frame rate of the written MP4")
    parser.add_argument("--decode-chunk-size", type=int, help="frames decoded at once (less memory, more flicker)")
    parser.add_argument("--width", type=int, help="video width (a multiple of 8)")
    parser.add_argument("--height", type=int, help="video height (a multiple of 8)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"{out}: the output must end in .mp4")
    image, notes = load_image(args.image)  # bad input fails here, before any model loads
    profile = get_profile(args.profile)
    print(profile.banner())
    for note in notes:
        print(f"note: {args.image}: {note}")
    names = ("num_frames", "num_inference_steps", "motion_bucket_id", "fps", "export_fps",
             "decode_chunk_size", "width", "height")
    overrides = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    for n in ("width", "height"):
        if n in overrides and (overrides[n] < 16 or overrides[n] % 8):
            raise ValueError(f"--{n} must be a multiple of 8 and at least 16, got {overrides[n]}")
    if overrides.get("num_frames", 2) < 2:
        raise ValueError("--num-frames must be at least 2")
    start = time.perf_counter()
    frames, settings = animate_image(image, profile, seed=args.seed, **overrides)
    write_mp4(frames, out, fps=settings["export_fps"])
    tiny = " (random weights: shows the pipeline runs, not a real result)" if profile.is_tiny else ""
    print(f"wrote {out}: {len(frames)} frames at {settings['width']}x{settings['height']}, "
          f"{settings['export_fps']:g} fps, in {time.perf_counter() - start:.1f} s{tiny}")
    return 0
