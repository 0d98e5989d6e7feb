"""LTX-Video (notebook 07): a text prompt plus keyframes at chosen frame indices, its size rules
(sides multiples of 32, 8k+1 frames) and the fast distilled model.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from PIL import Image

from helpers.animate.svd import label_frames
from helpers.core.images import fit_to
from helpers.core.profiles import Profile, get_profile
from helpers.core.device import borrowed, check_output, load

# Each LTX backend's block of settings in helpers.core.profiles.
LTX_BLOCKS = {"ltx": "ltx", "ltx-distilled": "ltx_distilled"}
# LTX-Video's VAE compresses 32x in space and 8x in time (the first frame is kept on its own).
LTX_SPATIAL, LTX_TEMPORAL = 32, 8


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


def check_one_per_frame(placed: Sequence[tuple[Image.Image, int]]) -> None:
    """Refuse two different keyframes at one frame index (which one would the video show?)."""
    import numpy as np

    first: dict[int, tuple[int, Image.Image]] = {}
    for number, (image, index) in enumerate(placed, 1):
        if index in first:
            earlier, other = first[index]
            if other.size != image.size or not np.array_equal(np.asarray(other), np.asarray(image)):
                raise ValueError(f"keyframes {earlier} and {number} are both placed at frame {index}: give each "
                                 "its own frame (IMAGE@FRAME)")
        first.setdefault(index, (number, image))


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
            guidance_rescale=settings["guidance_rescale"],
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
    check_one_per_frame(placed)
    with borrowed(pipe, lambda: load_ltx(profile, settings)) as (pipe, _):  # one it loads, it frees
        frames = ltx_frames(pipe, placed, settings, seed)
        return label_frames(frames, pipe, profile, enlarge=False), settings  # 64 px frames carry the label as they are
