"""Stable Video Diffusion (notebook 06): one segment, the speed options, and long videos made of
chained segments with colour correction and crossfades.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from PIL import Image

from helpers.core.images import enlarge_for_label, fit_to, stamp_random_weights, stamp_trained_twin
from helpers.core.registry import is_trained_twin
from helpers.core.profiles import Profile, get_profile
from helpers.core.device import borrowed, check_output, load, parse_memory
from helpers.core.blend import crossfade, match_colors

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
# diffusers' attention processors that call torch's scaled_dot_product_attention (flash / memory-efficient kernels).
SDPA_PROCESSORS = ("AttnProcessor2_0",)


# --------------------------------------------------------------------------------------------
# Stable Video Diffusion: one segment
# --------------------------------------------------------------------------------------------

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
    return check_output(list(result.frames[0]), "Stable Video Diffusion's frames", pipe, "svd")


def svd_settings(profile: Profile, **overrides: Any) -> dict[str, Any]:
    """The profile's ``svd`` block with ``overrides`` applied (unknown names are refused)."""
    settings = profile.settings("svd")
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown SVD setting(s) {sorted(unknown)}; known: {', '.join(settings)}")
    settings.update(overrides)
    return settings


def load_svd(profile: Profile, settings: dict[str, Any]):
    """The SVD pipeline of ``settings["model"]`` with the memory and speed options of ``settings``."""
    check_speed_options(settings)  # a refused combination fails before any weights load
    pipe = load(settings["model"], profile, settings["memory"], settings.get("dtype", "auto"), variant="fp16")
    return apply_speed_options(pipe, settings)


# --------------------------------------------------------------------------------------------
# Speed options: SDPA attention, channels-last UNet, torch.compile
# --------------------------------------------------------------------------------------------

def attention_processors(module) -> set[str]:
    """The class names of ``module``'s attention processors (``{"AttnProcessor2_0"}``: all SDPA)."""
    return {type(processor).__name__ for processor in module.attn_processors.values()}


def use_sdpa(module) -> None:
    """Make every attention layer of ``module`` use torch's scaled_dot_product_attention.

    It is diffusers' default with torch 2, but ``set_default_attn_processor()`` (or a library that
    installs its own processors) switches to the plain matmul-softmax path, which is slower and
    keeps the whole attention matrix in memory.
    """
    if attention_processors(module) - set(SDPA_PROCESSORS):
        from diffusers.models.attention_processor import AttnProcessor2_0

        module.set_attn_processor(AttnProcessor2_0())


def channels_last(module) -> int:
    """Store every 4-D weight of ``module`` (its 2-D convolutions) channels-last (NHWC); returns how many.

    ``module.to(memory_format=torch.channels_last)``, the usual one-liner, fails on SVD's UNet: its
    temporal layers are 3-D convolutions whose 5-D weights have no channels-last layout. So only the
    4-D weights move. The numbers are the same; only their order in memory changes, which lets cuDNN
    pick its NHWC kernels (tensor cores in float16) for the convolutions.
    """
    import torch

    moved = 0
    for parameter in module.parameters():
        if parameter.dim() == 4:
            parameter.data = parameter.data.contiguous(memory_format=torch.channels_last)
            moved += 1
    return moved


def check_speed_options(settings: dict[str, Any]) -> None:
    """Refuse speed options that cannot work, in one line, before anything loads."""
    if not settings.get("compile"):
        return
    mode = settings.get("compile_mode")
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    # diffusers' guide "Compiling and offloading quantized models" (docs/source/en/optimization/speed-memory-optims.md,
    # v0.39.0) compiles a model under enable_model_cpu_offload in the default mode. reduce-overhead and max-autotune
    # record CUDA graphs, which replay fixed GPU addresses: a UNet that moves to the CPU between calls breaks them.
    # Sequential offload (hooks on every layer) is not in that guide: refused.
    options = parse_memory(settings["memory"])
    if "sequential_offload" in options:
        raise ValueError("compile is not combined with sequential_offload (per-layer hooks move every weight); "
                         "use model_offload with compile_mode='default', or set compile=False")
    if "model_offload" in options and mode != "default":
        raise ValueError(f"compile_mode={mode!r} records CUDA graphs, which cannot follow a UNet that model_offload "
                         "moves to the CPU between calls: use compile_mode='default' (diffusers compiles under model "
                         "offload that way), drop the offload option, or set compile=False")


def apply_speed_options(pipe, settings: dict[str, Any]):
    """SDPA attention everywhere, then the ``channels_last`` and ``compile`` settings on the UNet.

    compile is ``torch.compile(unet, mode=compile_mode, fullgraph=True)`` as in diffusers' SVD guide:
    lazy, so the first call compiles (slow) and later calls of the same size are faster.
    """
    import torch

    check_speed_options(settings)
    for module in (pipe.unet, pipe.vae):
        use_sdpa(module)
    if settings.get("channels_last"):
        channels_last(pipe.unet)
    if settings.get("compile"):
        pipe.unet = torch.compile(pipe.unet, mode=settings["compile_mode"], fullgraph=True)
    return pipe


def animate_image(image: Image.Image, profile: Profile | None = None, seed: int = 0,
                  pipe=None, **overrides: Any) -> tuple[list[Image.Image], dict[str, Any]]:
    """One image -> frames with SVD. Returns (frames, the settings used).

    ``overrides`` replace the profile's ``svd`` settings (e.g. ``num_frames=14``).
    In ``tiny`` the frames are stamped as coming from random weights.
    """
    profile = profile or get_profile()
    settings = svd_settings(profile, **overrides)
    fitted, _ = fit_to(image, settings["width"], settings["height"])
    with borrowed(pipe, lambda: load_svd(profile, settings)) as (pipe, _):  # one it loads, it frees
        frames = svd_frames(pipe, fitted, settings, seed)
        return label_frames(frames, pipe, profile), settings


def label_frames(frames: list[Image.Image], pipe, profile: Profile, enlarge: bool = True) -> list[Image.Image]:
    """What made the frames, on the frames (SVD and LTX-Video): nothing for real weights; in tiny, a trained
    twin's frames labelled SMALL TWIN TRAINED ON DIGITS (with ``enlarge``, first enlarged, nearest, so a
    32 px frame can carry its label), a random-weight twin's labelled RANDOM WEIGHTS."""
    if not profile.random_weights:
        return frames
    if is_trained_twin(pipe):
        return [stamp_trained_twin(enlarge_for_label(f) if enlarge else f) for f in frames]
    return [stamp_random_weights(f) for f in frames]


def guidance_ramp(min_guidance_scale: float, max_guidance_scale: float, num_frames: int):
    """Per-frame guidance scale, built exactly as ``StableVideoDiffusionPipeline`` builds it.

    Frame 0 (next to the conditioning image) gets ``min``; the last frame gets ``max``.
    """
    import torch

    return torch.linspace(min_guidance_scale, max_guidance_scale, num_frames)


# --------------------------------------------------------------------------------------------
# Long videos: chained segments, colour correction, crossfades
# --------------------------------------------------------------------------------------------

def segments_needed(total_frames: int, segment_frames: int, overlap: int) -> int:
    """How many chained segments of ``segment_frames`` (joined with ``overlap``) reach ``total_frames``."""
    if segment_frames - overlap < 1:
        raise ValueError(f"overlap ({overlap}) must be smaller than the segment length ({segment_frames})")
    return 1 + max(0, math.ceil((total_frames - segment_frames) / (segment_frames - overlap)))


def _chain(pipe, keyframe: Image.Image, total_frames: int, settings: dict[str, Any], seed: int,
           progress: bool = True, on_segment: Callable | None = None) -> list[Image.Image]:
    """Unstamped frames of chained SVD segments from one (already fitted) keyframe."""
    from tqdm.auto import tqdm

    overlap, strength = settings["overlap"], settings["color_match"]
    count = segments_needed(total_frames, settings["num_frames"], overlap)
    frames: list[Image.Image] = []
    start_image = keyframe
    for index in tqdm(range(count), desc="segments", disable=not progress or count == 1):
        raw = svd_frames(pipe, start_image, settings, seed + index)
        segment = match_colors(raw, keyframe, strength) if strength > 0 else raw
        if on_segment is not None:
            on_segment(index, raw, segment)
        frames = segment if not frames else crossfade(frames, segment, overlap)
        # The next segment starts from the first frame of the coming overlap window, so its first
        # `overlap` frames run alongside this segment's last ones (with overlap 1: the last frame).
        start_image = frames[len(frames) - max(overlap, 1)]
    return frames[:total_frames]


def animate_long(image: Image.Image, total_frames: int, profile: Profile | None = None, seed: int = 0,
                 pipe=None, progress: bool = True, on_segment: Callable | None = None,
                 **overrides: Any) -> list[Image.Image]:
    """One image -> at least ``total_frames`` frames by chaining SVD segments.

    Segment ``i`` is generated with seed ``seed + i`` from a frame of the video so far; each
    segment's colours are matched to the keyframe (strength ``color_match``) before it is
    crossfaded onto the video over ``overlap`` frames. Returns exactly ``total_frames`` frames.
    ``on_segment(index, raw_frames, corrected_frames)``, if given, sees every segment as it is made.
    """
    profile = profile or get_profile()
    settings = svd_settings(profile, **overrides)
    if total_frames < 2:
        raise ValueError(f"total_frames must be at least 2, got {total_frames}")
    fitted, _ = fit_to(image, settings["width"], settings["height"])
    with borrowed(pipe, lambda: load_svd(profile, settings)) as (pipe, _):
        frames = _chain(pipe, fitted, total_frames, settings, seed, progress, on_segment)
        return label_frames(frames, pipe, profile)


def animate_keyframes(images: Sequence[Image.Image], total_frames: int, profile: Profile | None = None,
                      seed: int = 0, pipe=None, progress: bool = True, **overrides: Any) -> list[Image.Image]:
    """Several keyframes -> one video: a chained SVD clip per keyframe, crossfaded into the next.

    Every keyframe gets an equal share of ``total_frames``; each clip is colour-matched to its
    own keyframe. Returns exactly ``total_frames`` frames.
    """
    profile = profile or get_profile()
    settings = svd_settings(profile, **overrides)
    if not images:
        raise ValueError("no keyframes to animate")
    n, overlap = len(images), settings["overlap"]
    share = max(2, math.ceil((total_frames + overlap * (n - 1)) / n))
    frames: list[Image.Image] = []
    with borrowed(pipe, lambda: load_svd(profile, settings)) as (pipe, _):
        for index, image in enumerate(images):
            fitted, _ = fit_to(image, settings["width"], settings["height"])
            clip = _chain(pipe, fitted, share, settings, seed + 1000 * index, progress)
            frames = clip if not frames else crossfade(frames, clip, min(overlap, len(clip) - 1))
        return label_frames(frames[:total_frames], pipe, profile)
