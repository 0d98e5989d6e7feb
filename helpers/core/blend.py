"""Frame blends and colour transfer shared by the video stages (animate, post, slides): motion
between frames, pulling colours back to a reference, crossfades.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image



def psnr(a, b, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB between two images (``peak``: 255 for uint8, 1 for [0, 1] floats);
    higher is closer, identical = inf."""
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(peak ** 2 / mse))


def frame_differences(frames: Sequence) -> np.ndarray:
    """Mean absolute difference between consecutive frames, in [0, 1] (one value per pair)."""
    arrays = [_as_float(f) for f in frames]
    return np.array([np.abs(b - a).mean() for a, b in zip(arrays[:-1], arrays[1:])])


def motion_score(frames: Sequence) -> float:
    """How much a clip moves: the mean of :func:`frame_differences` (0 = a still image)."""
    return float(frame_differences(frames).mean()) if len(frames) > 1 else 0.0



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
