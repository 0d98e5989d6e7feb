"""Datasets for PixelCNN++: offline sources, image folders, splits, ranges, clear errors."""

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.core.data import (ImageData, image_grid, load_data, load_folder, resize_square, set_channels, split,
                          to_model_range, to_pixels)
from helpers.core.images import BadInputError


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", image_size=16, seed=0)


def test_digits_offline_default(digits):
    assert isinstance(digits, ImageData)
    assert digits.image_shape == (1, 16, 16)
    assert digits.train.dtype == torch.uint8 and digits.test.dtype == torch.uint8
    assert len(digits.train) + len(digits.test) == 1797
    assert len(digits.test) == 180  # 10% test
    # real digits: dark background, bright strokes, and the full 0..255 range is reached
    assert digits.train.min() == 0 and digits.train.max() == 255
    assert (digits.train == 0).float().mean() > 0.2


def test_split_is_fixed_by_seed_and_disjoint(digits):
    again = load_data("digits", image_size=16, seed=0)
    assert torch.equal(again.train, digits.train) and torch.equal(again.test, digits.test)
    other = load_data("digits", image_size=16, seed=1)
    assert not torch.equal(other.test, digits.test)
    images = torch.arange(50, dtype=torch.uint8).view(50, 1, 1, 1)
    train, test = split(images, 0.2, seed=3)
    ids_train, ids_test = set(train.flatten().tolist()), set(test.flatten().tolist())
    assert len(test) == 10 and len(train) == 40
    assert not ids_train & ids_test and ids_train | ids_test == set(range(50))


def test_model_range_round_trip():
    pixels = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    x = to_model_range(pixels)
    assert x.dtype == torch.float32 and x.min() == -1.0 and x.max() == 1.0
    assert torch.equal(to_pixels(x), pixels)
    # neighbouring levels are 2/255 apart, as the discretized likelihood assumes
    assert torch.allclose(x.flatten().diff(), torch.full((255,), 2 / 255))


def test_dataset_and_plain_dataloader(digits):
    loader = torch.utils.data.DataLoader(digits.train_dataset(), batch_size=32, shuffle=True)
    batch = next(iter(loader))
    assert batch.shape == (32, 1, 16, 16) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1


def test_photos_option_is_rgb_and_deterministic():
    a = load_data("photos", image_size=8, max_images=60, seed=0)
    b = load_data("photos", image_size=8, max_images=60, seed=0)
    assert a.image_shape == (3, 8, 8) and len(a.train) == 54 and len(a.test) == 6
    assert torch.equal(a.train, b.train)
    assert not torch.equal(a.train[:, 0], a.train[:, 1])  # colour, not grey


def _write(path, array, mode):
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode).save(path)


def test_folder_resizes_crops_and_skips_bad_files(tmp_path):
    # wide RGB images: red | green | blue thirds -> the centre crop keeps green
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, :20, 0], wide[:, 20:40, 1], wide[:, 40:, 2] = 255, 255, 255
    for i in range(4):
        _write(tmp_path / f"wide_{i}.png", wide, "RGB")
    _write(tmp_path / "sub_grey.jpg", np.full((30, 30), 128), "L")  # grey file becomes RGB in a colour folder
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    (tmp_path / "readme.txt").write_text("not an image")
    notes: list[str] = []
    images = load_folder(tmp_path, image_size=10, notes=notes)
    assert images.shape == (5, 3, 10, 10)
    centre = images[1:].float().mean(dim=(0, 2, 3))  # sorted by name: sub_grey.jpg, then wide_*
    assert centre[1] > 200 and centre[0] < 30 and centre[2] < 30
    text = " ".join(notes)
    assert "skipped 1 unreadable" in text and "broken.png" in text and "ignored 1 file" in text
    data = load_data(tmp_path, image_size=10, seed=0)
    assert len(data.train) + len(data.test) == 5 and len(data.test) == 1


def test_folder_of_grey_images_is_grey(tmp_path):
    for i in range(3):
        _write(tmp_path / f"g{i}.png", np.full((16, 16, 3), 40 * i), "RGB")  # RGB files with grey content
    assert load_folder(tmp_path, image_size=8).shape == (3, 1, 8, 8)
    assert load_folder(tmp_path, image_size=8, channels=3).shape == (3, 3, 8, 8)


def test_empty_or_unusable_folder_is_a_clear_error(tmp_path):
    with pytest.raises(BadInputError, match="no images in this folder"):
        load_data(tmp_path)
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(BadInputError, match="no readable images"):
        load_data(tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'cifar-100'"):
        load_data("cifar-100")
    with pytest.raises(ValueError, match="image_size"):
        load_data("digits", image_size=2)


def test_downloaded_datasets_say_how_to_get_torchvision():
    pytest.importorskip("torch")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r'pip install "torchvision==0\.\d+\.\*"'):
            load_data("cifar10")
    else:
        pytest.skip("torchvision is installed here: the download path is exercised on Colab")


def test_the_torchvision_hint_pins_the_release_made_for_the_installed_torch():
    """An unpinned `pip install torchvision` can pull another torch over Colab's CUDA build (pytorch/vision's
    README: torch 2.N pairs with torchvision 0.(N+15))."""
    from helpers.core.data import torchvision_pin

    assert torchvision_pin("2.13.0+cpu") == "torchvision==0.28.*"
    assert torchvision_pin("2.4.1+cu121") == "torchvision==0.19.*" and torchvision_pin("2.9.0") == "torchvision==0.24.*"


def test_resize_and_channels():
    images = torch.zeros(2, 3, 12, 20, dtype=torch.uint8)
    images[..., 4:16] = 200
    out = resize_square(images, 6)
    assert out.shape == (2, 3, 6, 6) and out.dtype == torch.uint8 and (out == 200).all()
    grey = set_channels(torch.full((1, 3, 2, 2), 100, dtype=torch.uint8), 1)
    assert grey.shape == (1, 1, 2, 2) and (grey == 100).all()
    assert set_channels(grey, 3).shape == (1, 3, 2, 2)


def test_image_grid(digits):
    grid = image_grid(digits.train[:6], nrow=3, scale=2, padding=1)
    assert grid.size == ((3 * 17 + 1) * 2, (2 * 17 + 1) * 2) and grid.mode == "L"
    assert image_grid(to_model_range(digits.train[:4])).mode == "L"
