"""The digit judge (notebooks 02-04): a plain scikit-learn classifier that says whether images look like digits.

Bits/dim says how well a model predicts pixels; it does not say whether its samples *look* like digits.
The judge does: an SVC with an RBF kernel (probabilities calibrated by cross-validation) fitted in
a few seconds on the training split of scikit-learn's handwritten digits, 8x8 pixels, plus an 11th
class, "not a digit" (uniform noise, flat grey squares, blurred blobs), so that a smudge is not
forced into the digit it resembles least badly. It reads
grey images of any square size (resized to 8x8 first, as the digits were made) and answers, for each,
the digit it sees and how sure it is. An image counts as *recognised* when that confidence is at least
0.8: about nine real held-out digits in ten pass, and uniform noise or blank squares do not.

    fit_judge(seed=0)                                   -> the fitted judge (cached per seed)
    judge(images)                                       -> (digits, confidences), numpy arrays
    recognised_fraction(images, threshold=0.8, label=None) -> the share recognised (as ``label`` if given)

The split is the one :func:`helpers.core.data.load_data` makes for ``digits`` with the same seed, so
the judge never saw the test digits the PixelCNN++ is measured on.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from helpers.core.data import resize_square, to_pixels

THRESHOLD = 0.8  # confidence at which a sample counts as a recognised digit
SIZE = 8  # the digits' own grid


def digits_with_labels(seed: int = 0, test_fraction: float = 0.1) -> dict[str, torch.Tensor]:
    """scikit-learn's digits as uint8 (N, 1, 8, 8) images and their labels, split as ``load_data`` splits them."""
    from helpers.core.data import load_data

    data = load_data("digits", SIZE, seed=seed, test_fraction=test_fraction)
    return {"train": data.train, "test": data.test, "train_labels": data.train_labels, "test_labels": data.test_labels}


def not_digits(seed: int = 0, count: int = 300) -> np.ndarray:
    """Examples of the 11th class as (N, 64) features: uniform noise, the 17 flat grey levels, blurred noise."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    flat = np.repeat(np.linspace(0.0, 1.0, 17)[:, None], SIZE * SIZE, axis=1)
    blobs = np.stack([gaussian_filter(rng.random((SIZE, SIZE)), 1.0) for _ in range(count)]).reshape(count, -1)
    blobs = (blobs - blobs.min(1, keepdims=True)) / (np.ptp(blobs, axis=1, keepdims=True) + 1e-9)
    return np.concatenate([rng.random((count, SIZE * SIZE)), flat, blobs])


@lru_cache(maxsize=4)
def fit_judge(seed: int = 0):
    """The judge: an RBF SVC on the 64 pixels (0..1) of the training digits and of :func:`not_digits`
    (class 10), probabilities calibrated (``CalibratedClassifierCV``, 3 folds). Fitted once per seed and
    process (a few seconds)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.svm import SVC

    digits = digits_with_labels(seed)
    negatives = not_digits(seed)
    features = np.concatenate([_features(digits["train"]), negatives])
    labels = np.concatenate([digits["train_labels"].numpy(), np.full(len(negatives), 10)])
    return CalibratedClassifierCV(SVC(gamma="scale", random_state=seed), cv=3).fit(features, labels)


def _features(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) uint8 0..255 or float in [-1, 1] -> (N, 64) floats in [0, 1] of the 8x8 picture."""
    images = torch.as_tensor(images)
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"the judge reads grey images (N, 1, H, W) or (N, H, W); got shape {tuple(images.shape)}")
    pixels = images if images.dtype == torch.uint8 else to_pixels(images)
    return resize_square(pixels.cpu(), SIZE).reshape(len(pixels), -1).numpy().astype(np.float64) / 255.0


def judge(images: torch.Tensor, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """For each image, the digit 0..9 the judge sees and its confidence (that digit's probability; what
    is left goes to the "not a digit" class)."""
    probabilities = fit_judge(seed).predict_proba(_features(images))[:, :10]
    return probabilities.argmax(1), probabilities.max(1)


def recognised_fraction(images: torch.Tensor, threshold: float = THRESHOLD, label: int | None = None,
                        seed: int = 0) -> float:
    """The share of ``images`` judged a digit with confidence >= ``threshold`` (and, with ``label``, that digit)."""
    if len(images) == 0:
        raise ValueError("recognised_fraction needs at least one image")
    digits, confidences = judge(images, seed)
    sure = confidences >= threshold
    if label is not None:
        sure &= digits == int(label)
    return float(sure.mean())
