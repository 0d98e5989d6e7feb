"""Image to video (notebooks 00, 06, 07): ``python -m helpers animate [IMAGE] [--out OUT.mp4]``.

Three backends:

- ``svd``: Stable Video Diffusion XT 1.1. One image in, ``num_frames`` frames out. Read any image
  safely, fit it to the model's size, run the pipeline (tiny twin offline, real weights in
  colab/full) with the profile's memory options, write an H.264 / yuv420p MP4 atomically.
  Longer videos: :func:`animate_long` chains segments (a frame near the end of one segment is the
  image of the next), pulls each segment's colours back to the keyframe (:func:`match_colors`)
  and crossfades over every join (:func:`crossfade`).
- ``ltx``: LTX-Video through diffusers' ``LTXConditionPipeline``: a text prompt for motion and
  atmosphere plus one or more keyframes placed at chosen frame indices (:func:`animate_ltx`).
  Its size rules (sides multiples of 32, 8k+1 frames) are checked by :func:`ltx_check_size`.
- ``ltx-distilled``: the same with LTX-Video 0.9.8 distilled 2B, the fast choice: 8 steps on the
  schedule it was distilled for and no classifier-free guidance (the profile's ``ltx_distilled`` block).

SVD's speed options (:func:`apply_speed_options`, the ``svd`` block's ``channels_last`` and ``compile``)
are applied when the pipeline loads; attention always runs through torch's scaled_dot_product_attention.

Without an IMAGE argument the command animates the keyframes in ``outputs/keyframes`` (stand-ins
are made when there are none) into ``outputs/videos/animation.mp4``. In ``tiny`` every frame is
labelled as coming from random weights.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from helpers.cli import float_range, int_range
from helpers.images import fit_to, load_image, stamp_random_weights
from helpers.profiles import Profile, get_profile
from helpers.device import MEMORY_OPTIONS, apply_memory_options, check_output, load, parse_memory  # noqa: F401
from helpers.video import write_mp4

BACKENDS = ("svd", "ltx", "ltx-distilled")
# Each LTX backend's block of settings in helpers.profiles.
LTX_BLOCKS = {"ltx": "ltx", "ltx-distilled": "ltx_distilled"}
# torch.compile modes (torch docs): "reduce-overhead" adds CUDA graphs, "max-autotune" also tunes kernels.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
# diffusers' attention processors that call torch's scaled_dot_product_attention (flash / memory-efficient kernels).
SDPA_PROCESSORS = ("AttnProcessor2_0",)
# LTX-Video's VAE compresses 32x in space and 8x in time (the first frame is kept on its own).
LTX_SPATIAL, LTX_TEMPORAL = 32, 8
# Ranges of the command line's numbers, checked before any model loads.
MAX_FRAMES = 257        # frames of one generation (LTX-Video's longest; SVD-XT is trained on 25)
MAX_TOTAL_FRAMES = 2000  # frames of a chained or keyframed video (--long, --seconds)
MAX_STEPS = 200
MAX_SIDE = 2048


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
    offload = [o for o in parse_memory(settings["memory"]) if o.endswith("offload")]
    if offload:
        raise ValueError(f"compile does not work with {offload[0]}: the UNet moves to the CPU between calls, "
                         "which a compiled graph cannot follow; drop the offload option or set compile=False")


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
    if pipe is None:
        pipe = load_svd(profile, settings)
    fitted, _ = fit_to(image, settings["width"], settings["height"])
    frames = svd_frames(pipe, fitted, settings, seed)
    if profile.random_weights:
        frames = [stamp_random_weights(f) for f in frames]
    return frames, settings


def guidance_ramp(min_guidance_scale: float, max_guidance_scale: float, num_frames: int):
    """Per-frame guidance scale, built exactly as ``StableVideoDiffusionPipeline`` builds it.

    Frame 0 (next to the conditioning image) gets ``min``; the last frame gets ``max``.
    """
    import torch

    return torch.linspace(min_guidance_scale, max_guidance_scale, num_frames)


def frame_differences(frames: Sequence) -> np.ndarray:
    """Mean absolute difference between consecutive frames, in [0, 1] (one value per pair)."""
    arrays = [_as_float(f) for f in frames]
    return np.array([np.abs(b - a).mean() for a, b in zip(arrays[:-1], arrays[1:])])


def motion_score(frames: Sequence) -> float:
    """How much a clip moves: the mean of :func:`frame_differences` (0 = a still image)."""
    return float(frame_differences(frames).mean()) if len(frames) > 1 else 0.0


# --------------------------------------------------------------------------------------------
# Long videos: chained segments, colour correction, crossfades
# --------------------------------------------------------------------------------------------

def _as_float(frame) -> np.ndarray:
    """An RGB frame (PIL image or uint8 array) as float64 in [0, 1]."""
    if isinstance(frame, Image.Image):
        frame = np.asarray(frame.convert("RGB"))
    array = np.asarray(frame)
    return array.astype(np.float64) / 255.0 if array.dtype == np.uint8 else array.astype(np.float64)


def _as_image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8), "RGB")


def match_colors(frames: Sequence, reference, strength: float = 1.0) -> list[Image.Image]:
    """Pull every frame's colours towards ``reference`` (e.g. the keyframe).

    Per RGB channel, each frame's mean and standard deviation are matched to the reference's
    (a Reinhard-style colour transfer). ``strength`` blends between the frame (0) and the fully
    matched frame (1): below 1 keeps some of the lighting changes the model made on purpose.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, got {strength}")
    ref = _as_float(reference).reshape(-1, 3)
    ref_mean, ref_std = ref.mean(axis=0), ref.std(axis=0)
    out = []
    for frame in frames:
        x = _as_float(frame)
        flat = x.reshape(-1, 3)
        mean, std = flat.mean(axis=0), flat.std(axis=0)
        matched = (x - mean) / np.maximum(std, 1e-6) * ref_std + ref_mean
        out.append(_as_image((1.0 - strength) * x + strength * matched))
    return out


def mean_color_distance(frames: Sequence, reference) -> float:
    """Mean over frames of the Euclidean distance between a frame's mean RGB and the reference's (0-1 units)."""
    ref = _as_float(reference).reshape(-1, 3).mean(axis=0)
    return float(np.mean([np.linalg.norm(_as_float(f).reshape(-1, 3).mean(axis=0) - ref) for f in frames]))


def crossfade_weights(overlap: int) -> np.ndarray:
    """Weight of the *second* clip in each of the ``overlap`` blended frames: (i + 1) / (overlap + 1)."""
    return np.arange(1, overlap + 1, dtype=np.float64) / (overlap + 1)


def crossfade(first: Sequence, second: Sequence, overlap: int) -> list[Image.Image]:
    """Join two clips, blending the last ``overlap`` frames of ``first`` with the first ``overlap`` of ``second``.

    The result has ``len(first) + len(second) - overlap`` frames; blended frame i is
    ``(1 - w_i) * first[-overlap + i] + w_i * second[i]`` with ``w_i = (i + 1) / (overlap + 1)``,
    so neither clip's own end frame is repeated and the weights never reach 0 or 1.
    """
    if overlap < 0 or overlap > min(len(first), len(second)):
        raise ValueError(f"overlap must be between 0 and {min(len(first), len(second))}, got {overlap}")
    def as_255(frame) -> np.ndarray:  # blend on the 8-bit scale, so the result is exact
        return np.asarray(frame.convert("RGB") if isinstance(frame, Image.Image) else frame, dtype=np.float64)

    def to_image(array: np.ndarray) -> Image.Image:
        return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8), "RGB")

    head = [to_image(as_255(f)) for f in first[:len(first) - overlap]]
    blended = [to_image((1.0 - w) * as_255(a) + w * as_255(b))
               for w, a, b in zip(crossfade_weights(overlap), first[len(first) - overlap:], second[:overlap])]
    tail = [to_image(as_255(f)) for f in second[overlap:]]
    return head + blended + tail


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
    if pipe is None:
        pipe = load_svd(profile, settings)
    fitted, _ = fit_to(image, settings["width"], settings["height"])
    frames = _chain(pipe, fitted, total_frames, settings, seed, progress, on_segment)
    return [stamp_random_weights(f) for f in frames] if profile.random_weights else frames


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
    if pipe is None:
        pipe = load_svd(profile, settings)
    frames: list[Image.Image] = []
    for index, image in enumerate(images):
        fitted, _ = fit_to(image, settings["width"], settings["height"])
        clip = _chain(pipe, fitted, share, settings, seed + 1000 * index, progress)
        frames = clip if not frames else crossfade(frames, clip, min(overlap, len(clip) - 1))
    frames = frames[:total_frames]
    return [stamp_random_weights(f) for f in frames] if profile.random_weights else frames


# --------------------------------------------------------------------------------------------
# LTX-Video: prompt + keyframes at frame indices
# --------------------------------------------------------------------------------------------

def _nearest_multiple(value: int, step: int) -> tuple[int, int]:
    """(nearest valid, the other neighbour) among multiples of ``step`` that are >= ``step``."""
    low = max(step, value // step * step)
    high = low + step if low <= value else low
    nearest = low if value - low <= high - value else high
    return nearest, high if nearest == low else low


def ltx_check_size(width: int, height: int, num_frames: int) -> None:
    """Raise ValueError (one line, with the nearest valid values) unless LTX-Video can make this size.

    LTX-Video's VAE compresses 32x in space and 8x in time after the first frame, so the width
    and height must be multiples of 32 and the frame count must be 8k + 1 (9, 17, ..., 97, 121, ...).
    """
    problems = []
    for name, value in (("width", width), ("height", height)):
        if value < LTX_SPATIAL or value % LTX_SPATIAL:
            nearest, other = _nearest_multiple(value, LTX_SPATIAL)
            problems.append(f"{name}={value} is not a multiple of {LTX_SPATIAL}: use {nearest} (or {other})")
    if num_frames < LTX_TEMPORAL + 1 or (num_frames - 1) % LTX_TEMPORAL:
        nearest, other = _nearest_multiple(num_frames - 1, LTX_TEMPORAL)
        problems.append(f"num_frames={num_frames} is not 8k+1: use {nearest + 1} (or {other + 1})")
    if problems:
        raise ValueError("LTX-Video size rules: " + "; ".join(problems))


def ltx_frames_for(seconds: float, frame_rate: float) -> int:
    """The valid LTX frame count (8k + 1, at least 9) nearest to ``seconds`` at ``frame_rate``.

    >>> ltx_frames_for(4, 24)   # 96 frames asked -> 97
    97
    """
    if seconds <= 0 or frame_rate <= 0:
        raise ValueError(f"seconds and frame rate must be positive, got {seconds} s at {frame_rate} fps")
    k = max(1, round((seconds * frame_rate - 1) / LTX_TEMPORAL))
    return LTX_TEMPORAL * k + 1


def ltx_frames_at_least(frames: int) -> int:
    """The smallest valid LTX frame count (8k + 1, at least 9) that is >= ``frames``."""
    return LTX_TEMPORAL * max(1, math.ceil((frames - 1) / LTX_TEMPORAL)) + 1


def parse_keyframe(spec: str) -> tuple[str, int]:
    """``"IMAGE@FRAME"`` -> (path, frame index). ``@-1`` or ``@end`` means the last frame."""
    path, sep, frame = spec.rpartition("@")
    if not sep or not path:
        raise ValueError(f"--keyframe {spec!r}: write IMAGE@FRAME, e.g. keyframes/frame_0002.png@48")
    if frame.strip().lower() in ("end", "last"):
        return path, -1
    try:
        return path, int(frame)
    except ValueError:
        raise ValueError(f"--keyframe {spec!r}: the frame after '@' must be a whole number or 'end'") from None


def resolve_frame_index(index: int, num_frames: int) -> int:
    """A keyframe's frame index in [0, num_frames), with negative indices counted from the end."""
    resolved = index + num_frames if index < 0 else index
    if not 0 <= resolved < num_frames:
        raise ValueError(f"keyframe at frame {index} is outside the video (frames 0..{num_frames - 1})")
    return resolved


def evenly_spaced(count: int, num_frames: int) -> list[int]:
    """``count`` frame indices from the first to the last frame, evenly spaced."""
    if count == 1:
        return [0]
    return [round(i * (num_frames - 1) / (count - 1)) for i in range(count)]


def ltx_settings(profile: Profile, distilled: bool = False, **overrides: Any) -> dict[str, Any]:
    """The profile's ``ltx`` block (``ltx_distilled`` with ``distilled=True``) with ``overrides`` applied
    (unknown names are refused)."""
    settings = profile.settings(LTX_BLOCKS["ltx-distilled" if distilled else "ltx"])
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown LTX setting(s) {sorted(unknown)}; known: {', '.join(settings)}")
    settings.update(overrides)
    return settings


def ltx_timesteps(settings: dict[str, Any]) -> list[float] | None:
    """The custom schedule handed to the pipeline, or None for its own linear-quadratic one.

    A distilled model's ``timesteps`` (the schedule it was distilled for) are used when their count is
    ``num_inference_steps``; another step count gets the pipeline's schedule of that many steps.
    """
    timesteps = settings.get("timesteps")
    if timesteps and len(timesteps) == settings["num_inference_steps"]:
        return [float(t) for t in timesteps]
    return None


def load_ltx(profile: Profile, settings: dict[str, Any]):
    """The LTX-Video pipeline with the memory options of ``settings``."""
    return load(settings["model"], profile, settings["memory"], settings.get("dtype", "auto"))


def ltx_frames(pipe, keyframes: Sequence[tuple[Image.Image, int]], settings: dict[str, Any],
               seed: int = 0) -> list[Image.Image]:
    """Run a loaded LTXConditionPipeline: one ``LTXVideoCondition`` per (image, frame index)."""
    import torch
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition
    from diffusers.utils import logging as diffusers_logging

    conditions = [LTXVideoCondition(image=image, frame_index=index, strength=settings["strength"])
                  for image, index in keyframes]
    generator = torch.Generator(device="cpu").manual_seed(seed)
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # a note about the pipeline's own timestep list, not ours
    try:
        result = pipe(
            conditions=conditions or None, prompt=settings["prompt"], negative_prompt=settings["negative_prompt"],
            width=settings["width"], height=settings["height"], num_frames=settings["num_frames"],
            frame_rate=settings["frame_rate"], num_inference_steps=settings["num_inference_steps"],
            timesteps=ltx_timesteps(settings), guidance_scale=settings["guidance_scale"],
            image_cond_noise_scale=settings["image_cond_noise_scale"], decode_timestep=settings["decode_timestep"],
            decode_noise_scale=settings["decode_noise_scale"], max_sequence_length=settings["max_sequence_length"],
            generator=generator,
        )
    finally:
        diffusers_logging.set_verbosity(verbosity)
    return check_output(list(result.frames[0]), "LTX-Video's frames", pipe, "ltx")


def animate_ltx(keyframes: Sequence, prompt: str | None = None, profile: Profile | None = None, seed: int = 0,
                pipe=None, distilled: bool = False, **overrides: Any) -> tuple[list[Image.Image], dict[str, Any]]:
    """Keyframes (+ a prompt) -> frames with LTX-Video. Returns (frames, the settings used).

    ``keyframes``: images (spread evenly from the first to the last frame) or (image, frame index)
    pairs; a negative index counts from the end. ``prompt`` describes motion and atmosphere
    (default: the profile's). ``distilled``: LTX-Video 0.9.8 distilled (the ``ltx_distilled`` block)
    instead of 0.9.5. ``overrides`` replace the block's settings.
    """
    profile = profile or get_profile()
    settings = ltx_settings(profile, distilled, **overrides)
    if prompt is not None:
        settings["prompt"] = prompt
    ltx_check_size(settings["width"], settings["height"], settings["num_frames"])
    if not 0.0 <= settings["strength"] <= 1.0:
        raise ValueError(f"strength must be between 0 and 1, got {settings['strength']}")
    pairs = list(keyframes)
    if pairs and isinstance(pairs[0], Image.Image):
        pairs = list(zip(pairs, evenly_spaced(len(pairs), settings["num_frames"])))
    placed = []
    for image, index in pairs:
        fitted, _ = fit_to(image, settings["width"], settings["height"])
        placed.append((fitted, resolve_frame_index(index, settings["num_frames"])))
    if pipe is None:
        pipe = load_ltx(profile, settings)
    frames = ltx_frames(pipe, placed, settings, seed)
    if profile.random_weights:
        frames = [stamp_random_weights(f) for f in frames]
    return frames, settings


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", nargs="?", help="the still image to animate (any format PIL reads); "
                        "leave it out to animate the keyframes in outputs/keyframes")
    parser.add_argument("--out", help="where to write the video (.mp4); default outputs/videos/animation.mp4 "
                        "(animation_ltx.mp4 / animation_ltx-distilled.mp4 for the LTX backends), "
                        "or outputs/videos/IMAGE_NAME.mp4 for an image")
    parser.add_argument("--backend", choices=BACKENDS, default="svd",
                        help="svd: Stable Video Diffusion (image only); ltx: LTX-Video 0.9.5 (prompt + keyframes); "
                        "ltx-distilled: LTX-Video 0.9.8 distilled, the fast one (8 steps, no CFG)")
    parser.add_argument("--seed", type=int_range(0, 2**63 - 1), default=0, help="random seed (same seed, same video)")
    parser.add_argument("--num-frames", "--frames", type=int_range(2, MAX_FRAMES), dest="num_frames",
                        help=f"frames per generation, 2-{MAX_FRAMES} (SVD-XT is trained on 25; LTX needs 8k+1)")
    parser.add_argument("--steps", type=int_range(1, MAX_STEPS), dest="num_inference_steps",
                        help=f"denoising steps, 1-{MAX_STEPS}")
    parser.add_argument("--long", type=int_range(2, MAX_TOTAL_FRAMES), metavar="N",
                        help="at least N frames: chained SVD segments (svd) or one longer generation (ltx)")
    parser.add_argument("--seconds", type=float_range(0, 120, low_open=True),
                        help="video length in seconds, up to 120 (frames = seconds x frame rate)")
    parser.add_argument("--width", type=int_range(16, MAX_SIDE),
                        help="video width (svd: a multiple of 8, best 64; ltx: of 32)")
    parser.add_argument("--height", type=int_range(16, MAX_SIDE),
                        help="video height (svd: a multiple of 8, best 64; ltx: of 32)")
    svd = parser.add_argument_group("svd only")
    svd.add_argument("--motion-bucket-id", type=int_range(1, 255),
                     help="more motion with higher values (1-255, default 127)")
    svd.add_argument("--fps", type=int_range(1, 60),
                     help="frame rate the model is conditioned on, 1-60 (not the export rate)")
    svd.add_argument("--export-fps", type=float_range(0, 120, low_open=True), help="frame rate of the written MP4")
    svd.add_argument("--decode-chunk-size", type=int_range(1, MAX_FRAMES),
                     help="frames decoded at once (less memory, more flicker)")
    svd.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                     help="UNet convolutions in channels-last layout (default: the profile's; on for GPUs)")
    svd.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                     help="torch.compile the UNet: a slow first call, then faster (pays off over many clips)")
    ltx = parser.add_argument_group("ltx and ltx-distilled only")
    ltx.add_argument("--prompt", help='motion and atmosphere, e.g. "slow dolly-in, soft lighting"')
    ltx.add_argument("--keyframe", action="append", default=[], metavar="IMAGE@FRAME",
                     help="an image placed at a frame index (repeatable; @-1 or @end = last frame)")
    ltx.add_argument("--strength", type=float_range(0, 1), help="how strongly keyframes hold (0-1, default 1)")


def _default_out(args: argparse.Namespace) -> Path:
    from helpers.outputs import stage_dir

    if args.image:
        return stage_dir("videos") / f"{Path(args.image).stem}.mp4"
    return stage_dir("videos") / ("animation.mp4" if args.backend == "svd" else f"animation_{args.backend}.mp4")


def _check_flags(args: argparse.Namespace) -> None:
    if args.backend == "svd":
        used = [f for f, v in (("--prompt", args.prompt), ("--keyframe", args.keyframe),
                               ("--strength", args.strength)) if v not in (None, [])]
        if used:
            raise ValueError(f"{', '.join(used)} need --backend ltx or ltx-distilled (SVD takes one image and no text)")
    else:
        used = [f for f, v in (("--motion-bucket-id", args.motion_bucket_id), ("--fps", args.fps),
                               ("--decode-chunk-size", args.decode_chunk_size), ("--compile", args.compile),
                               ("--channels-last", args.channels_last)) if v is not None]
        if used:
            raise ValueError(f"{', '.join(used)} are SVD options; LTX-Video does not take them")
    for name in ("num_frames", "long", "num_inference_steps"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "num_inference_steps" else 2):
            raise ValueError(f"--{name.replace('_', '-')} is too small: {value}")
    if args.seconds is not None and args.seconds <= 0:
        raise ValueError(f"--seconds must be positive, got {args.seconds}")


def _load_inputs(args: argparse.Namespace) -> tuple[list[Image.Image], list[int | None]]:
    """The images to animate and their frame indices (None = place automatically). Bad input fails here."""
    images, indices = [], []
    if args.image:
        image, notes = load_image(args.image)
        for note in notes:
            print(f"note: {args.image}: {note}")
        images.append(image)
        indices.append(0 if args.keyframe else None)
    for spec in args.keyframe:
        path, index = parse_keyframe(spec)
        image, notes = load_image(path)
        for note in notes:
            print(f"note: {path}: {note}")
        images.append(image)
        indices.append(index)
    if not images:
        from helpers.keyframes import animation_keyframes

        for path in animation_keyframes():  # refined (real weights) or the keyframes; says which
            image, _ = load_image(path)
            images.append(image)
            indices.append(None)
    return images, indices


def run(args: argparse.Namespace) -> int:
    _check_flags(args)
    if args.out is not None and Path(args.out).suffix.lower() != ".mp4":
        raise ValueError(f"{args.out}: the output must end in .mp4")
    images, indices = _load_inputs(args)  # bad input fails here, before any model loads
    out = Path(args.out) if args.out else _default_out(args)
    profile = get_profile(args.profile)
    print(profile.banner())
    start = time.perf_counter()
    if args.backend == "svd":
        frames, settings = _run_svd(args, profile, images)
        fps = settings["export_fps"]
    else:
        frames, settings = _run_ltx(args, profile, images, indices)
        fps = settings["frame_rate"]
    write_mp4(frames, out, fps=fps)
    tiny = " (random weights: shows the pipeline runs, not a real result)" if profile.random_weights else ""
    print(f"wrote {out}: {len(frames)} frames at {settings['width']}x{settings['height']}, "
          f"{fps:g} fps, in {time.perf_counter() - start:.1f} s{tiny}")
    return 0


def _run_svd(args, profile: Profile, images: list[Image.Image]):
    names = ("num_frames", "num_inference_steps", "motion_bucket_id", "fps", "export_fps",
             "decode_chunk_size", "width", "height", "channels_last", "compile")
    overrides = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    for n in ("width", "height"):
        if n in overrides and (overrides[n] < 16 or overrides[n] % 8):
            raise ValueError(f"--{n} must be a multiple of 8 and at least 16, got {overrides[n]}")
        if n in overrides and overrides[n] % 64:
            print(f"note: --{n} {overrides[n]} is not a multiple of 64; SVD works best at 1024x576")
    settings = svd_settings(profile, **overrides)
    total = args.long
    if args.seconds is not None:
        total = max(total or 0, math.ceil(args.seconds * settings["export_fps"]))
    if total is not None and total > MAX_TOTAL_FRAMES:
        raise ValueError(f"--seconds {args.seconds:g} at --export-fps {settings['export_fps']:g} makes {total} "
                         f"frames; the most is {MAX_TOTAL_FRAMES}")
    if len(images) == 1 and total is None:
        return animate_image(images[0], profile, seed=args.seed, **overrides)
    if total is None:  # several keyframes: one segment each, crossfaded
        total = len(images) * settings["num_frames"] - (len(images) - 1) * settings["overlap"]
    pipe = load_svd(profile, settings)
    if len(images) == 1:
        frames = animate_long(images[0], total, profile, seed=args.seed, pipe=pipe, **overrides)
    else:
        frames = animate_keyframes(images, total, profile, seed=args.seed, pipe=pipe, **overrides)
    return frames, settings


def _run_ltx(args, profile: Profile, images: list[Image.Image], indices: list[int | None]):
    distilled = args.backend == "ltx-distilled"
    overrides = {n: getattr(args, n) for n in ("num_frames", "num_inference_steps", "width", "height", "strength")
                 if getattr(args, n) is not None}
    settings = ltx_settings(profile, distilled, **overrides)
    if args.seconds is not None and args.num_frames is None:
        overrides["num_frames"] = ltx_frames_for(args.seconds, settings["frame_rate"])
    if args.long is not None:
        overrides["num_frames"] = max(overrides.get("num_frames", 0), ltx_frames_at_least(args.long))
    settings = ltx_settings(profile, distilled, **overrides)
    if settings["num_frames"] > MAX_FRAMES:
        raise ValueError(f"--seconds/--long ask for {settings['num_frames']} frames; LTX-Video makes at most "
                         f"{MAX_FRAMES} in one generation")
    ltx_check_size(settings["width"], settings["height"], settings["num_frames"])
    n = settings["num_frames"]
    automatic = iter(evenly_spaced(len(images), n))
    keyframes = []
    for image, index in zip(images, indices):
        spot = next(automatic)
        keyframes.append((image, resolve_frame_index(spot if index is None else index, n)))
    return animate_ltx(keyframes, args.prompt, profile, seed=args.seed, distilled=distilled, **overrides)
