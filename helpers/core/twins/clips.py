"""Moving-digit clips, made by the course itself: the training data of the trained SVD twin.

Each clip is one of scikit-learn's 8x8 digits, upscaled and tinted, sliding in a straight line over a
tinted background (``style="colour"``), or a soft grey digit on black, as the course's PixelCNN++ makes
them (``style="grey"``). Its conditioning means what SVD's means:

* ``fps``: the clip's frame rate (3-12);
* ``motion_bucket_id`` (0-255): how fast the digit moves, in pixels per *second*
  (255 = :data:`MAX_SPEED`); per frame it moves ``speed / fps`` pixels, so at the same motion bucket a
  lower fps gives bigger steps between frames, as in SVD;
* ``noise_aug_strength``: chosen by the training loop (the noise added to the conditioning frame).

Everything is a pure function of a seed, so the data (and the twin trained on it) is the same on every
machine.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

SIZE = 32            # clips are SIZE x SIZE pixels
DIGIT = 14           # the 8x8 digit is drawn at DIGIT x DIGIT pixels
MAX_SPEED = 8.0      # pixels per second at motion_bucket_id 255
FPS_RANGE = (3, 12)  # frame rates the twin was trained on (inclusive)


@dataclass(frozen=True)
class Clip:
    frames: np.ndarray       # (frames, SIZE, SIZE, 3) float32 in [-1, 1]
    digit: int               # which digit (0-9)
    fps: int
    motion_bucket_id: int
    step: tuple[float, float]  # pixels per frame (dx, dy)


@functools.lru_cache(maxsize=1)
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits as (images in [0, 1] of shape (n, 8, 8), labels), read once."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.images / 16.0).astype(np.float32), data.target.astype(np.int64)


def draw_digit(image: np.ndarray, top_left: tuple[float, float], background: np.ndarray,
               ink: np.ndarray, size: int = SIZE, digit: float = DIGIT) -> np.ndarray:
    """A ``size`` x ``size`` RGB frame in [0, 1]: the 8x8 ``image`` drawn at ``digit`` px with its top-left
    corner at ``top_left`` (x, y; sub-pixel, bilinear), in colour ``ink`` over ``background``."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    u = (xs - top_left[0] + 0.5) * 8.0 / digit - 0.5   # position in the 8x8 digit's pixel grid
    v = (ys - top_left[1] + 0.5) * 8.0 / digit - 0.5
    padded = np.pad(image, 1)                           # zeros around: outside the digit is background
    u, v = np.clip(u + 1, 0, 9), np.clip(v + 1, 0, 9)
    x0, y0 = np.floor(u).astype(int).clip(0, 8), np.floor(v).astype(int).clip(0, 8)
    fx, fy = u - x0, v - y0
    alpha = (padded[y0, x0] * (1 - fx) * (1 - fy) + padded[y0, x0 + 1] * fx * (1 - fy)
             + padded[y0 + 1, x0] * (1 - fx) * fy + padded[y0 + 1, x0 + 1] * fx * fy)[..., None]
    return background * (1 - alpha) + ink * alpha


def soften(frame: np.ndarray) -> np.ndarray:
    """A (H, W, 3) frame blurred by a 3x3 binomial filter: the soft edges of an upscaled PixelCNN++ sample."""
    padded = np.pad(frame, ((1, 1), (1, 1), (0, 0)), mode="edge")
    rows = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    return 0.25 * rows[:, :-2] + 0.5 * rows[:, 1:-1] + 0.25 * rows[:, 2:]


def make_clip(rng: np.random.Generator, frames: int = 8, fps: int | None = None,
              motion_bucket_id: int | None = None, index: int | None = None, style: str = "colour") -> Clip:
    """One clip drawn from ``rng``; ``fps``, ``motion_bucket_id`` and the digit ``index`` may be fixed.

    ``style``: "colour" (a tinted digit on a tinted background) or "grey" (a soft grey digit on black).
    """
    images, labels = digits()
    index = int(rng.integers(len(images))) if index is None else index
    fps = int(rng.integers(FPS_RANGE[0], FPS_RANGE[1] + 1)) if fps is None else fps
    bucket = int(rng.integers(0, 256)) if motion_bucket_id is None else motion_bucket_id
    per_frame = bucket / 255 * MAX_SPEED / fps
    angle = rng.uniform(0, 2 * np.pi)
    step = (per_frame * np.cos(angle), per_frame * np.sin(angle))
    travel = np.abs(np.array(step)) * (frames - 1)
    room = np.maximum(SIZE - DIGIT - travel, 0)
    start = [rng.uniform(0, r) + (t if s < 0 else 0) for r, t, s in zip(room, travel, step)]
    if style == "grey":
        background = np.full(3, rng.uniform(0.0, 0.08), np.float32)
        ink = np.full(3, rng.uniform(0.55, 1.0), np.float32)
    else:
        background = rng.uniform(0.0, 0.45, 3).astype(np.float32)
        ink = rng.uniform(0.6, 1.0, 3).astype(np.float32)
    clip = np.stack([draw_digit(images[index], (start[0] + k * step[0], start[1] + k * step[1]), background, ink)
                     for k in range(frames)])
    if style == "grey":
        clip = np.stack([soften(frame) for frame in clip])
    return Clip(clip.astype(np.float32) * 2 - 1, int(labels[index]), fps, bucket, (float(step[0]), float(step[1])))


def batch(rng: np.random.Generator, size: int, frames: int = 8, grey_share: float = 0.0,
          still_share: float = 0.0) -> dict[str, np.ndarray]:
    """``size`` clips: frames (size, frames, 3, SIZE, SIZE) in [-1, 1], fps and motion buckets.

    ``grey_share``: the share of grey-on-black clips; ``still_share``: of clips that do not move (bucket 0).
    At 0 (the default) neither is drawn and the stream of clips is the original twin's.
    """
    def one() -> Clip:
        style = "grey" if grey_share and rng.random() < grey_share else "colour"
        bucket = 0 if still_share and rng.random() < still_share else None
        return make_clip(rng, frames, motion_bucket_id=bucket, style=style)

    clips = [one() for _ in range(size)]
    return {"frames": np.stack([c.frames.transpose(0, 3, 1, 2) for c in clips]),
            "fps": np.array([c.fps for c in clips], np.float32),
            "motion_bucket_id": np.array([c.motion_bucket_id for c in clips], np.float32)}


# --------------------------------------------------------------------------------------------
# Prompted clips for the LTX-Video twin: the motion is said in words
# --------------------------------------------------------------------------------------------

LTX_SIZE = 64          # LTX twin clips are LTX_SIZE x LTX_SIZE (a multiple of 32, as LTX-Video needs)
LTX_FRAMES = 9         # 8k + 1 frames, as LTX-Video needs
LTX_DIGIT = 24         # the digit's size in pixels (zooms go from 16 to 40)
# What a prompt can say, and how the digit moves: (dx, dy) per unit of speed, or a zoom factor.
MOTIONS = {"the digit moves left": (-1, 0), "the digit moves right": (1, 0), "the digit moves up": (0, -1),
           "the digit moves down": (0, 1), "the digit zooms in": "in", "the digit zooms out": "out"}


@dataclass(frozen=True)
class PromptedClip:
    frames: np.ndarray    # (frames, LTX_SIZE, LTX_SIZE, 3) float32 in [-1, 1]
    digit: int
    prompt: str           # one of MOTIONS
    centres: np.ndarray   # (frames, 2): the digit's centre (x, y) in each frame
    sizes: np.ndarray     # (frames,): the digit's size in pixels in each frame


def make_prompted_clip(rng: np.random.Generator, frames: int = LTX_FRAMES, prompt: str | None = None,
                       index: int | None = None, travel_px: float | None = None) -> PromptedClip:
    """A digit that moves (or zooms) as ``prompt`` says, in a straight line at constant speed.

    A slide covers ``travel_px`` pixels from the first frame to the last (default: 12-32, at random); a
    zoom takes the digit from 16 to 40 pixels (or back). Everything else is drawn from ``rng``.
    """
    images, labels = digits()
    index = int(rng.integers(len(images))) if index is None else index
    prompt = str(rng.choice(list(MOTIONS))) if prompt is None else prompt
    if prompt not in MOTIONS:
        raise ValueError(f"unknown motion {prompt!r}; the twin knows: {', '.join(MOTIONS)}")
    motion = MOTIONS[prompt]
    t = np.linspace(0.0, 1.0, frames)
    if isinstance(motion, str):
        small, large = rng.uniform(14, 20), rng.uniform(34, 42)
        sizes = small + (large - small) * (t if motion == "in" else 1 - t)
        centre = rng.uniform(LTX_SIZE / 2 - 4, LTX_SIZE / 2 + 4, 2)
        centres = np.repeat(centre[None], frames, 0)
    else:
        travel_px = rng.uniform(12, 32) if travel_px is None else travel_px
        sizes = np.full(frames, LTX_DIGIT, dtype=np.float64)
        direction = np.array(motion, dtype=np.float64)
        margin = LTX_DIGIT / 2 + 1
        low = np.where(direction < 0, margin + travel_px, margin)
        high = np.where(direction > 0, LTX_SIZE - margin - travel_px, LTX_SIZE - margin)
        start = rng.uniform(low, np.maximum(high, low))
        centres = start[None] + t[:, None] * travel_px * direction[None]
    background = rng.uniform(0.0, 0.45, 3).astype(np.float32)
    ink = rng.uniform(0.6, 1.0, 3).astype(np.float32)
    clip = np.stack([draw_digit(images[index], tuple(c - s / 2), background, ink, LTX_SIZE, s)
                     for c, s in zip(centres, sizes)])
    return PromptedClip(clip.astype(np.float32) * 2 - 1, int(labels[index]), prompt, centres, sizes)


def to_image(frame: np.ndarray):
    """A (SIZE, SIZE, 3) frame in [-1, 1] as a PIL image."""
    from PIL import Image

    return Image.fromarray(((frame + 1) * 127.5).round().clip(0, 255).astype(np.uint8))


# --------------------------------------------------------------------------------------------
# Measuring what a model made: where the digit is, how far it travelled, which digit it is
# --------------------------------------------------------------------------------------------

def ink(frame: np.ndarray) -> np.ndarray:
    """How far each pixel of an (H, W, 3) frame in [0, 1] is from the background colour (the median of
    the border pixels): the digit's ink map, (H, W) in [0, ~1.7]."""
    border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
    return np.linalg.norm(frame - np.median(border, axis=0), axis=-1)


def centroid(frame: np.ndarray) -> np.ndarray:
    """The digit's centre (x, y) in pixels: the ink-weighted mean position (faint ink below half the
    strongest is ignored, so background noise does not pull it to the middle)."""
    weight = ink(frame)
    weight = np.where(weight >= 0.5 * weight.max(), weight, 0.0)
    ys, xs = np.mgrid[0:frame.shape[0], 0:frame.shape[1]]
    return np.array([(xs * weight).sum(), (ys * weight).sum()]) / max(weight.sum(), 1e-8)


def travel(frames: np.ndarray) -> float:
    """How far (pixels) the digit's centre moved from the first frame to the last: the motion we measure."""
    return float(np.linalg.norm(centroid(frames[-1]) - centroid(frames[0])))


def digit_features(frame: np.ndarray) -> np.ndarray:
    """The 64 features the digit classifier reads: the ink inside the digit's bounding box, resized to 8x8."""
    from PIL import Image

    weight = ink(frame)
    ys, xs = np.nonzero(weight >= 0.5 * weight.max())
    if ys.size == 0:
        return np.zeros(64, np.float32)
    box = weight[ys.min():ys.max() + 1, xs.min():xs.max() + 1] / max(weight.max(), 1e-8)
    small = Image.fromarray((box * 255).astype(np.uint8)).resize((8, 8), Image.BILINEAR)
    return np.asarray(small, np.float32).ravel() / 255.0


def digit_classifier(seed: int = 0):
    """A logistic regression that names the digit in a frame, fitted in a few seconds on every one of
    scikit-learn's digits drawn as in the clips (random place and colours)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    images, labels = digits()
    features = []
    for image in images:
        top_left = rng.uniform(0, SIZE - DIGIT, 2)
        frame = draw_digit(image, tuple(top_left), rng.uniform(0.0, 0.45, 3), rng.uniform(0.6, 1.0, 3))
        features.append(digit_features(frame))
    return LogisticRegression(max_iter=3000).fit(np.stack(features), labels)


# --------------------------------------------------------------------------------------------
# The SVD twin's three quality figures (tests/test_twins_learned.py, benchmarks/svd_twin_quality.py)
# --------------------------------------------------------------------------------------------

HELD_OUT = (1001, 1002, 1003, 1004)   # clip seeds no training draws from (training uses seed 0's streams)
STYLES = ("grey", "colour")            # the course's keyframes: PixelCNN++ grey-on-black, Flux's coloured ones
SLOW, FAST = 10, 250                   # the motion buckets compared


def held_out_keyframes(seeds=HELD_OUT, styles=STYLES) -> list[Clip]:
    """The held-out clips (one per seed and style) whose first frame is the picture to animate."""
    return [make_clip(np.random.default_rng(seed), style=style) for style in styles for seed in seeds]


def brightness_swing(frames: np.ndarray, of: str = "range") -> float:
    """The largest frame-to-frame change of mean brightness of ``frames`` in [0, 1]: what a periodic flicker
    (a seam every ``decode_chunk_size`` frames) shows up in. As a share of the brightness range
    (``of="range"``: 0.03 = 3 % = 7.7 levels of 255) or of the clip's own mean brightness (``of="mean"``,
    which makes a small change on a dark picture a large share)."""
    means = np.asarray(frames, np.float64).reshape(len(frames), -1).mean(1)
    return float(np.abs(np.diff(means)).max() / (1.0 if of == "range" else max(means.mean(), 1e-8)))
