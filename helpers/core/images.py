"""Reading any image safely, fitting it to a model's size, and labelling random-weight output.

:func:`load_image` accepts whatever PIL reads (RGBA, grey, palette, CMYK, 16-bit, EXIF-rotated,
tiny, huge, odd sizes) and returns an 8-bit RGB image plus short notes on what it changed.
Files that are missing, empty, truncated or not images raise :class:`BadInputError`, which the
command line turns into exit code 2 and one line naming the file and the problem.
"""

from __future__ import annotations

from typing import Any

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from helpers.core.drawing import load_font

# Images up to this many pixels are read; a larger one is refused from its header, before a pixel is
# decoded (PIL's own guard warns above Image.MAX_IMAGE_PIXELS and refuses only above twice that, so it is
# set to half of this while an image is opened: both say the same limit).
MAX_PIXELS = 250_000_000
# A side shorter than this cannot hold a picture worth animating.
MIN_SIDE = 8


class BadInputError(Exception):
    """An input the course cannot use. ``str(err)`` is one line: 'PATH: problem'."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


def check_file(path: str | os.PathLike, kind: str) -> Path:
    """``path`` as a Path if it is a non-empty file; else a one-line :class:`BadInputError`.

    ``kind`` names what was expected, for the message: "an image file", "a video file", ...
    """
    path = Path(path)
    if not path.exists():
        raise BadInputError(path, "no such file")
    if path.is_dir():
        raise BadInputError(path, f"is a folder, not {kind}")
    if path.stat().st_size == 0:
        raise BadInputError(path, "the file is empty (0 bytes)")
    return path


def load_image(path: str | os.PathLike) -> tuple[Image.Image, list[str]]:
    """Read ``path`` as an 8-bit RGB image. Returns (image, notes of what was converted)."""
    path = check_file(path, "an image file")
    previous_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS // 2  # PIL refuses above twice its limit: exactly MAX_PIXELS
    too_large = BadInputError(path, f"the image is larger than {MAX_PIXELS // 1_000_000} megapixels")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:  # lazy: only the header is read so far
                if opened.width * opened.height > MAX_PIXELS:
                    width, height = opened.size
                    raise BadInputError(path, f"the image is {width}x{height} ({width * height / 1e6:.0f} "
                                              f"megapixels), larger than {MAX_PIXELS // 1_000_000} megapixels")
                opened.load()
                image, notes = to_rgb(opened)
    except Image.DecompressionBombError:
        raise too_large from None
    except UnidentifiedImageError:
        if _looks_like_image(path):
            raise BadInputError(path, "the image file is truncated or damaged") from None
        raise BadInputError(path, "not an image PIL can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        message = str(err).lower()
        if "truncated" in message or "broken data" in message or "premature end" in message:
            raise BadInputError(path, "the image file is truncated or damaged") from None
        raise BadInputError(path, f"could not read the image ({err})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
    if min(image.size) < MIN_SIDE:
        raise BadInputError(path, f"the image is {image.width}x{image.height}; each side needs at least {MIN_SIDE} pixels")
    return image, notes


# The first bytes of common image formats: a file that starts like one but does not open is damaged.
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


def _looks_like_image(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(16)
    return head.startswith(_SIGNATURES)


def to_rgb(image: Image.Image) -> tuple[Image.Image, list[str]]:
    """Convert any PIL image to 8-bit RGB, saying what was done."""
    notes: list[str] = []
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
        notes.append(f"animated file with {image.n_frames} frames: used the first")
    transposed = ImageOps.exif_transpose(image)
    if transposed is not None and transposed is not image and _orientation(image) not in (None, 1):
        notes.append("rotated upright using its EXIF orientation")
        image = transposed
    mode = image.mode
    if mode == "RGB":
        return image.copy(), notes
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if mode.startswith("I;16") else (float(array.min()), float(array.max()))
        if mode == "I" and array.max() <= 65535 and array.min() >= 0:
            lo, hi = 0.0, 65535.0
        scaled = np.clip((array - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        notes.append(f"{mode} ({'16-bit' if hi == 65535.0 else 'high dynamic range'}) grey scaled to 8-bit RGB")
        return Image.fromarray(scaled, "L").convert("RGB"), notes
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        notes.append("transparency composited onto white")
        return Image.alpha_composite(background, rgba).convert("RGB"), notes
    names = {"L": "greyscale", "1": "black-and-white", "P": "palette", "CMYK": "CMYK",
             "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}
    notes.append(f"{names.get(mode, mode)} converted to RGB")
    return image.convert("RGB"), notes


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - a damaged EXIF block simply means "no rotation"
        return None


def fit_to(image: Image.Image, width: int, height: int) -> tuple[Image.Image, list[str]]:
    """Resize to cover ``width`` x ``height`` and centre-crop the rest (no distortion)."""
    if image.size == (width, height):
        return image, []
    fitted = ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    src_ratio, dst_ratio = image.width / image.height, width / height
    crop = "" if abs(src_ratio - dst_ratio) < 1e-3 else ", centre-cropped to the model's aspect ratio"
    return fitted, [f"resized from {image.width}x{image.height} to {width}x{height}{crop}"]


def _wrap(draw: ImageDraw.ImageDraw, words: list[str], font, width: int) -> list[str]:
    lines: list[str] = []
    for word in words:
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and draw.textlength(trial, font=font) <= width:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines


def _fit_lines(draw: ImageDraw.ImageDraw, text: str, width: int, size: int) -> tuple[list[str], Any]:
    """One line at the largest font (``size`` down to 6 px) where it fits ``width``; else wrapped at
    spaces into at most three lines; else, at 6 px, the lines that fit."""
    words = text.split()
    for max_lines in (1, 3):
        for px in range(size, 5, -1):
            font = load_font(px)
            lines = _wrap(draw, words, font, width)
            if len(lines) <= max_lines and all(draw.textlength(line, font=font) <= width for line in lines):
                return lines, font
    font = load_font(6)
    kept = [line for line in _wrap(draw, words, font, width) if draw.textlength(line, font=font) <= width][:3]
    return kept or [words[0]], font


def stamp(image: Image.Image, text: str) -> Image.Image:
    """Return a copy with ``text`` on a dark band along the bottom edge.

    The text fits the width: on a small picture the font shrinks and the text wraps at spaces (down to
    6 px and three lines), so a 64 px picture still says RANDOM WEIGHTS in full."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    lines, font = _fit_lines(draw, text, out.width - 4, max(8, out.height // 14))
    boxes = [draw.textbbox((0, 0), line, font=font) for line in lines]
    line_height = max(b[3] for b in boxes) - min(b[1] for b in boxes) + 1
    top = min(b[1] for b in boxes)
    band = line_height * len(lines) + 3
    draw.rectangle([0, out.height - band, out.width, out.height], fill=(0, 0, 0))
    for k, line in enumerate(lines):
        draw.text((2, out.height - band + 1 + k * line_height - top), line, fill=(255, 210, 0), font=font)
    return out


RANDOM_WEIGHTS_STAMP = "RANDOM WEIGHTS (tiny profile) - not a real result"


def stamp_random_weights(image: Image.Image) -> Image.Image:
    """Label an image made by a random-weight tiny pipeline, on the image itself."""
    return stamp(image, RANDOM_WEIGHTS_STAMP)


TRAINED_TWIN_STAMP = "SMALL TWIN TRAINED ON DIGITS by this course (tiny) - not the real model"


def stamp_trained_twin(image: Image.Image) -> Image.Image:
    """Label an image made by a tiny twin the course trained itself (real learned behaviour, tiny model)."""
    return stamp(image, TRAINED_TWIN_STAMP)


def enlarge_for_label(image: Image.Image, min_width: int = 128) -> Image.Image:
    """``image`` enlarged by a whole factor (nearest neighbour: every pixel becomes a block) to at least
    ``min_width`` pixels wide, so a label fits under a 32 px picture; wider pictures come back unchanged."""
    factor = -(-min_width // image.width)
    return image if factor <= 1 else image.resize((image.width * factor, image.height * factor), Image.NEAREST)


# The labels of the tiny profile's models, by kind: what post keeps on a clip that carries one.
MODEL_STAMPS = {"random": stamp_random_weights, "trained": stamp_trained_twin}


def stamp_band_height(size: tuple[int, int], kind: str = "random") -> int:
    """Rows at the bottom that the ``kind`` label (:data:`MODEL_STAMPS`) covers at this size."""
    grey = Image.new("RGB", size, (128, 128, 128))
    changed = np.any(np.asarray(MODEL_STAMPS[kind](grey)) != 128, axis=(1, 2))
    rows = np.flatnonzero(changed)
    return int(size[1] - rows[0]) if rows.size else 0
