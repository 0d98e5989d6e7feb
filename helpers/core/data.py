"""Datasets for PixelCNN++ (notebook 02, ``python -m helpers train --data ...``).

One rule: **one domain, one size**. Every source below becomes a uint8 tensor of shape
(N, C, H, W) with square images of ``image_size`` pixels, split into train and test with a
fixed seed. :func:`to_model_range` maps pixels to [-1, 1], the range the model reads.

Sources (``load_data(source, ...)``):

- ``"digits"``  offline default: scikit-learn's bundled handwritten digits (1,797 grey 8x8
  images, 17 grey levels), upsampled to ``image_size``. Nothing to download; learns in a minute.
- ``"photos"``  offline option: RGB patches cut from the two photographs bundled with
  scikit-learn (``china.jpg``, ``flower.jpg``); train patches from the left 80% of each photo,
  test patches from the right 20%, so the two never overlap.
- ``"mnist"``, ``"cifar10"``, ``"celeba"``  downloaded with torchvision (Colab has it; elsewhere
  the release made for the installed torch, :func:`torchvision_pin`). Never needed offline.
- a folder path: every image in it (searched recursively), resized to cover ``image_size`` and
  centre-cropped. Unreadable files are skipped and counted; an empty folder is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from helpers.core.images import BadInputError, fit_to, load_image
from helpers.core.outputs import cache_dir

BUILTIN = ("digits", "photos")
DOWNLOADED = ("mnist", "cifar10", "celeba")
SOURCES = BUILTIN + DOWNLOADED


@dataclass
class ImageData:
    """A prepared dataset: uint8 (N, C, H, W) train and test images plus what was done to them."""

    name: str
    train: torch.Tensor
    test: torch.Tensor
    notes: list[str] = field(default_factory=list)
    # int64 class of each image (digits, MNIST, CIFAR-10), or None for unlabelled sources
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    num_classes: int | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.train.shape[1:])  # type: ignore[return-value]

    def train_dataset(self, labels: bool = False) -> "ImageDataset":
        """Images in [-1, 1]; with ``labels``, (image, class) pairs (for a class-conditional model)."""
        return ImageDataset(self.train, self.train_labels if labels else None)

    def test_dataset(self, labels: bool = False) -> "ImageDataset":
        return ImageDataset(self.test, self.test_labels if labels else None)

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return (f"ImageData({self.name!r}: {len(self.train)} train + {len(self.test)} test images, "
                f"{'grey' if c == 1 else 'RGB'} {h}x{w})")


class ImageDataset(torch.utils.data.Dataset):
    """uint8 images in, float images in [-1, 1] out (with ``labels``: (image, label) pairs): what a plain
    DataLoader needs."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"expected uint8 images of shape (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        if self.labels is None:
            return to_model_range(self.images[index])
        return to_model_range(self.images[index]), self.labels[index]


def to_model_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0..255 -> float32 in [-1, 1] (0 -> -1, 255 -> 1)."""
    return pixels.float() / 127.5 - 1.0


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] -> uint8 pixels 0..255 (rounded to the nearest level)."""
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def load_data(source: str | os.PathLike = "digits", image_size: int = 16, channels: int | None = None,
              seed: int = 0, test_fraction: float = 0.1, max_images: int | None = None) -> ImageData:
    """Prepare ``source`` (a name in :data:`SOURCES` or a folder) as square ``image_size`` images.

    ``channels``: 1 (grey) or 3 (RGB); ``None`` keeps the source's own (a folder counts as grey
    when every image in it is grey). ``seed`` fixes the train/test split (and the photo patches);
    ``max_images`` caps how many images are used (handy for quick runs on big folders).
    """
    if image_size < 4 or image_size > 512:
        raise ValueError(f"image_size must be between 4 and 512 pixels, got {image_size}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    name = str(source)
    key = name.lower().replace("-", "").replace("_", "")
    notes: list[str] = []
    labels: tuple = (None, None, None)
    if key == "digits":
        images, classes = _digits(image_size, notes)
        train, test = split(images, test_fraction, seed, max_images)
        labels = (*split(classes, test_fraction, seed, max_images), 10)
    elif key == "photos":
        count = max_images or 2400
        train = _photo_patches(image_size, int(count * (1 - test_fraction)), seed, part="train")
        test = _photo_patches(image_size, max(1, int(count * test_fraction)), seed + 1, part="test")
        notes.append(f"{image_size}x{image_size} patches from scikit-learn's china.jpg and flower.jpg "
                     "(halved first); train from the left 80% of each photo, test from the right 20%")
    elif key in ("mnist", "cifar10", "celeba"):
        train, test, labels = _download(key, image_size, seed, test_fraction, max_images, notes)
    else:
        folder = Path(name).expanduser()
        if not folder.exists():
            raise ValueError(f"unknown dataset {name!r}: choose {', '.join(SOURCES)} or give a folder of images")
        if not folder.is_dir():
            raise BadInputError(folder, "is a file; --data takes a dataset name or a folder of images")
        images = load_folder(folder, image_size, channels, max_images, notes)
        train, test = split(images, test_fraction, seed)
        name = str(folder)
    if channels is not None:
        train, test = set_channels(train, channels), set_channels(test, channels)
    return ImageData(name, train, test, notes, *labels)


def split(images: torch.Tensor, test_fraction: float, seed: int,
          max_images: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle with ``seed`` (same seed, same split), keep ``max_images``, cut off a test part."""
    if len(images) < 2:
        raise ValueError(f"need at least 2 images to make a train and a test set, got {len(images)}")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    if max_images:
        order = order[:max(2, max_images)]
    n_test = min(max(1, round(len(order) * test_fraction)), len(order) - 1)
    return images[order[n_test:]].clone(), images[order[:n_test]].clone()


def resize_square(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, C, h, w) -> uint8 (N, C, size, size): centre-crop to a square, then resize.

    Bilinear with antialiasing, so shrinking averages pixels instead of skipping them.
    """
    h, w = images.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    images = images[..., top:top + side, left:left + side]
    if side == size:
        return images.contiguous()
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                        antialias=side > size)
    return out.round().clamp(0, 255).to(torch.uint8)


def set_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Grey -> RGB by repeating; RGB -> grey by luminance (ITU-R 601, as PIL's "L")."""
    have = images.shape[1]
    if have == channels:
        return images
    if channels == 3:
        return images.repeat(1, 3, 1, 1)
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)


def _digits(image_size: int, notes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 digits as uint8 images of ``image_size`` and their labels 0..9."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    raw = torch.from_numpy(digits.images).float()  # (1797, 8, 8), values 0..16
    pixels = (raw * (255.0 / 16.0)).round().to(torch.uint8).unsqueeze(1)
    how = "their own grid" if image_size == 8 else f"upsampled to {image_size}x{image_size} (bilinear)"
    notes.append(f"scikit-learn digits: {len(raw)} grey 8x8 images (17 levels), {how}")
    return resize_square(pixels, image_size), torch.from_numpy(digits.target).long()


def _photo_patches(image_size: int, count: int, seed: int, part: str) -> torch.Tensor:
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    patches = []
    photos = []
    for array in load_sample_images().images:  # two (427, 640, 3) uint8 photos
        photo = Image.fromarray(array)
        photos.append(np.asarray(photo.resize((photo.width // 2, photo.height // 2), Image.Resampling.LANCZOS)))
    for index in range(count):
        array = photos[index % len(photos)]
        cut = int(array.shape[1] * 0.8)
        lo, hi = (0, cut - image_size) if part == "train" else (cut, array.shape[1] - image_size)
        x = int(rng.integers(lo, hi + 1))
        y = int(rng.integers(0, array.shape[0] - image_size + 1))
        patches.append(array[y:y + image_size, x:x + image_size])
    return torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).contiguous()


def image_suffixes() -> set[str]:
    """File name endings PIL can open (.png, .jpg, .webp, ...)."""
    return {suffix.lower() for suffix in Image.registered_extensions()}


def load_folder(folder: str | os.PathLike, image_size: int, channels: int | None = None,
                max_images: int | None = None, notes: list[str] | None = None) -> torch.Tensor:
    """Every image under ``folder`` as uint8 (N, C, image_size, image_size).

    Files whose name does not end like an image are ignored; image files that cannot be read
    are skipped and counted (the first is named). No readable image at all is an error.
    """
    from tqdm.auto import tqdm

    folder = Path(folder)
    notes = notes if notes is not None else []
    suffixes = image_suffixes()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    candidates = [p for p in files if p.suffix.lower() in suffixes]
    if len(files) > len(candidates):
        notes.append(f"ignored {len(files) - len(candidates)} file(s) that are not images by their name")
    if max_images:
        candidates = candidates[:max_images]
    arrays, skipped = [], []
    for path in tqdm(candidates, desc=f"reading {folder.name}", disable=len(candidates) < 500):
        try:
            image, _ = load_image(path)
        except BadInputError as err:
            skipped.append(err)
            continue
        fitted, _ = fit_to(image, image_size, image_size)
        arrays.append(np.asarray(fitted))
    if skipped:
        notes.append(f"skipped {len(skipped)} unreadable image file(s), e.g. {skipped[0]}")
    if not arrays:
        problem = ("no readable images in this folder" if candidates else
                   "no images in this folder (looked for .png, .jpg, .jpeg, .webp, .bmp, ...)")
        raise BadInputError(folder, problem)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    grey = bool((images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all())
    if channels is None:
        channels = 1 if grey else 3
    notes.append(f"{len(arrays)} image(s) from {folder}, resized and centre-cropped to "
                 f"{image_size}x{image_size}, {'grey' if channels == 1 else 'RGB'}")
    return set_channels(images, channels)


def torchvision_pin(torch_version: str | None = None) -> str:
    """The torchvision release made for this torch: torch 2.N pairs with torchvision 0.(N+15) (the compatibility
    table in pytorch/vision's README: 2.13 -> 0.28, ..., 2.4 -> 0.19, 2.0 -> 0.15). Pinned, so pip keeps the installed
    torch (Colab's CUDA build included: ``torch==2.13.*`` is satisfied by 2.13.0+cu126) instead of replacing it."""
    major, minor = (int(part) for part in (torch_version or torch.__version__).split("+")[0].split(".")[:2])
    return f"torchvision==0.{minor + 15}.*" if major == 2 else "torchvision"


def torchvision_hint() -> str:
    return ("it is downloaded with torchvision, which is not installed here: "
            f"`pip install \"{torchvision_pin()}\"` (the release made for this torch {torch.__version__}; "
            "Colab already has it), or pass --data a folder of images")


def _download(key: str, image_size: int, seed: int, test_fraction: float, max_images: int | None,
              notes: list[str]) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """MNIST / CIFAR-10 (official train/test split, with their 10 classes) or CelebA (a seeded split,
    unlabelled) via torchvision: train, test, (train labels, test labels, number of classes)."""
    try:
        import torchvision
    except ImportError:
        raise ValueError(f"dataset {key!r}: {torchvision_hint()}") from None
    root = cache_dir() / "datasets"
    try:
        if key == "celeba":
            torchvision.datasets.CelebA(str(root), split="all", download=True)
            images = load_folder(root / "celeba" / "img_align_celeba", image_size, 3, max_images, notes)
            return (*split(images, test_fraction, seed), (None, None, None))
        cls = torchvision.datasets.MNIST if key == "mnist" else torchvision.datasets.CIFAR10
        parts = [cls(str(root), train=train, download=True) for train in (True, False)]
    except (OSError, RuntimeError) as err:
        raise ValueError(f"could not download {key!r} into {root} ({err}); "
                         "check the connection, or pass --data a folder of images") from None
    tensors = []
    for part in parts:
        data = torch.as_tensor(np.asarray(part.data))
        data = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)  # grey / HWC -> NCHW
        tensors.append(resize_square(data.contiguous(), image_size))
    (train, test), (train_y, test_y) = tensors, [torch.as_tensor(part.targets).long() for part in parts]
    if max_images:
        keep = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:max_images]
        train, train_y = train[keep], train_y[keep]
        test, test_y = test[:max(1, int(max_images * test_fraction))], test_y[:max(1, int(max_images * test_fraction))]
    notes.append(f"{key}: official train/test split, resized to {image_size}x{image_size}")
    return train.clone(), test.clone(), (train_y.clone(), test_y.clone(), 10)


def image_grid(images: torch.Tensor, nrow: int | None = None, scale: int = 4, padding: int = 1) -> Image.Image:
    """A grid of images (uint8 0..255 or float in [-1, 1], shape (N, C, H, W)) as a PIL image.

    ``scale`` enlarges each pixel to a ``scale`` x ``scale`` block (nearest), so tiny images stay crisp.
    """
    if images.dtype != torch.uint8:
        images = to_pixels(images)
    n, c, h, w = images.shape
    nrow = nrow or max(1, int(np.ceil(np.sqrt(n))))
    ncol = int(np.ceil(n / nrow))
    grid = np.full((ncol * (h + padding) + padding, nrow * (w + padding) + padding, c), 255, np.uint8)
    for index, image in enumerate(images.permute(0, 2, 3, 1).cpu().numpy()):
        row, col = divmod(index, nrow)
        y, x = padding + row * (h + padding), padding + col * (w + padding)
        grid[y:y + h, x:x + w] = image
    picture = Image.fromarray(grid[..., 0] if c == 1 else grid, "L" if c == 1 else "RGB")
    return picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
