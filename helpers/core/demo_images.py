"""Small images the project makes itself, so every notebook runs alone and offline.

``python -m helpers.core.demo_images`` writes them into ``data/``; :func:`demo_image` reads them from
there or, when ``data/`` is absent (e.g. ``helpers`` installed on Colab with pip), draws them
again: they are pure functions of their name, so the pixels are the same either way.
Licence: CC0 (made by this project's code).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = (256, 144)  # 16:9, small enough for the tiny profile, upscalable for the others


def _sunset(w: int, h: int) -> Image.Image:
    y = np.linspace(0, 1, h)[:, None]
    sky = np.stack([0.98 - 0.3 * y, 0.55 - 0.25 * y + 0.2 * y**2, 0.35 + 0.45 * y], axis=-1)
    img = np.broadcast_to(sky, (h, w, 3)).copy()
    yy, xx = np.mgrid[0:h, 0:w]
    sun = ((xx - 0.62 * w) ** 2 + (yy - 0.52 * h) ** 2) < (0.12 * h) ** 2
    img[sun] = [1.0, 0.86, 0.45]
    hills = 0.68 * h + 0.08 * h * np.sin(np.linspace(0, 3 * math.pi, w)) + 0.04 * h * np.sin(np.linspace(0, 11, w))
    ground = yy > hills[None, :]
    img[ground] = (np.array([0.15, 0.12, 0.25]) + 0.1 * (yy[ground] / h)[:, None])
    water = yy > 0.86 * h
    img[water] = img[water] * 0.6 + np.array([0.2, 0.25, 0.45]) * 0.4
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def _planet(w: int, h: int) -> Image.Image:
    rng = np.random.default_rng(7)
    img = np.zeros((h, w, 3)) + np.array([0.02, 0.02, 0.08])
    stars = rng.integers(0, [h, w], size=(120, 2))
    img[stars[:, 0], stars[:, 1]] = rng.uniform(0.5, 1.0, size=(120, 1))
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy, r = 0.45 * w, 0.5 * h, 0.36 * h
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / r
    disk = d < 1
    bands = 0.5 + 0.5 * np.sin((yy - cy) / r * 9 + 0.8 * np.sin((xx - cx) / r * 3))
    shade = np.clip(1.1 - ((xx - cx + 0.4 * r) ** 2 + (yy - cy + 0.4 * r) ** 2) / (2.2 * r * r), 0.15, 1)
    colour = np.stack([0.85 - 0.3 * bands, 0.55 - 0.1 * bands, 0.3 + 0.25 * bands], axis=-1)
    img[disk] = (colour * shade[..., None])[disk]
    ring = (np.abs(((xx - cx) / (1.9 * r)) ** 2 + ((yy - cy) / (0.45 * r)) ** 2 - 1) < 0.08) & ~(disk & (yy < cy))
    img[ring] = [0.9, 0.8, 0.6]
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def _shapes(w: int, h: int) -> Image.Image:
    img = Image.new("RGB", (w, h), (236, 232, 220))
    draw = ImageDraw.Draw(img)
    draw.rectangle([0.08 * w, 0.2 * h, 0.38 * w, 0.75 * h], fill=(220, 70, 60))
    draw.ellipse([0.42 * w, 0.15 * h, 0.68 * w, 0.62 * h], fill=(40, 110, 200))
    draw.polygon([(0.72 * w, 0.85 * h), (0.94 * w, 0.85 * h), (0.83 * w, 0.3 * h)], fill=(245, 190, 40))
    draw.line([(0, 0.9 * h), (w, 0.9 * h)], fill=(60, 60, 60), width=3)
    return img.filter(ImageFilter.SMOOTH)


MAKERS = {"sunset": _sunset, "planet": _planet, "shapes": _shapes}
DESCRIPTIONS = {
    "sunset": "a sun setting behind hills over water (sky gradient, disc, layered silhouettes)",
    "planet": "a banded, ringed planet lit from the upper left against stars",
    "shapes": "a red square, a blue circle and a yellow triangle on paper: motion is easy to see",
}


def data_dir() -> Path:
    """The course's data folder: ``helpers/data`` in an installed wheel (package data, see setup.py),
    else ``data/`` at the root of a checkout (demo images, ``luts/``, the example storyboard)."""
    installed = Path(__file__).resolve().parents[1] / "data"
    return installed if installed.is_dir() else Path(__file__).resolve().parents[2] / "data"


def demo_image(name: str = "sunset") -> Image.Image:
    """A bundled demo image (256x144 RGB) by name: sunset, planet or shapes."""
    if name not in MAKERS:
        raise ValueError(f"unknown demo image {name!r}; choose from {', '.join(MAKERS)}")
    path = data_dir() / f"{name}.png"
    if path.exists():
        return Image.open(path).convert("RGB")
    return MAKERS[name](*SIZE)


def demo_image_path(name: str = "sunset") -> Path:
    """A file path to the demo image (written to the outputs cache if data/ is absent)."""
    path = data_dir() / f"{name}.png"
    if path.exists():
        return path
    from helpers.core.outputs import cache_dir, save_image

    target = cache_dir() / "demo-images" / f"{name}.png"
    if not target.exists():
        save_image(demo_image(name), target)
    return target


if __name__ == "__main__":
    for key, make in MAKERS.items():
        make(*SIZE).save(data_dir() / f"{key}.png")
        print(f"wrote data/{key}.png: {DESCRIPTIONS[key]}")
