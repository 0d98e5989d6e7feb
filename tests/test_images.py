import io

import numpy as np
import pytest
from PIL import Image

from helpers.core.images import BadInputError, fit_to, load_image, stamp_random_weights


def _save(tmp_path, name, image, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_rgba_composited_on_white(tmp_path):
    path = _save(tmp_path, "a.png", Image.new("RGBA", (20, 10), (255, 0, 0, 0)))
    image, notes = load_image(path)
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (255, 255, 255)
    assert any("transparency" in n for n in notes)


def test_grey_palette_cmyk_bilevel(tmp_path):
    cases = {
        "g.png": Image.new("L", (16, 16), 128),
        "p.png": Image.new("RGB", (16, 16), (10, 200, 30)).convert("P"),
        "c.jpg": Image.new("CMYK", (16, 16), (0, 255, 255, 0)),
        "b.png": Image.new("1", (16, 16), 1),
    }
    for name, source in cases.items():
        image, notes = load_image(_save(tmp_path, name, source))
        assert image.mode == "RGB", name
        assert notes, name
    assert load_image(tmp_path / "g.png")[0].getpixel((3, 3)) == (128, 128, 128)
    r, g, b = load_image(tmp_path / "c.jpg")[0].getpixel((3, 3))
    assert r > 200 and g < 60 and b < 60  # CMYK (0, 255, 255, 0) is red


def test_16_bit_scaled_not_clipped(tmp_path):
    array = np.full((16, 16), 65535 // 2, dtype=np.uint16)
    array[0, 0] = 65535
    path = _save(tmp_path, "d.png", Image.fromarray(array))
    image, notes = load_image(path)
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert abs(image.getpixel((5, 5))[0] - 128) <= 1
    assert any("16-bit" in n for n in notes)


def test_exif_rotation_applied(tmp_path):
    source = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = source.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    path = _save(tmp_path, "r.jpg", source, exif=exif)
    image, notes = load_image(path)
    assert image.size == (20, 40)
    assert any("EXIF" in n for n in notes)


@pytest.mark.parametrize("make, problem", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("hello, I am text"), "not an image"),
])
def test_bad_files_named_with_problem(tmp_path, make, problem):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(BadInputError) as info:
        load_image(path)
    assert str(path) in str(info.value) and problem in str(info.value)
    assert "\n" not in str(info.value)


def test_truncated_file(tmp_path):
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).convert("RGB").save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(BadInputError, match="truncated|damaged|could not read"):
        load_image(path)


def test_too_small_refused(tmp_path):
    with pytest.raises(BadInputError, match="at least"):
        load_image(_save(tmp_path, "t.png", Image.new("RGB", (3, 3))))


def test_fit_to_covers_and_crops():
    image = Image.new("RGB", (300, 300), (9, 9, 9))
    fitted, notes = fit_to(image, 128, 64)
    assert fitted.size == (128, 64) and "centre-cropped" in notes[0]
    same, notes = fit_to(fitted, 128, 64)
    assert same is fitted and notes == []


def test_stamp_changes_bottom_band_only():
    image = Image.new("RGB", (128, 64), (40, 80, 120))
    stamped = np.asarray(stamp_random_weights(image))
    assert (stamped[:20] == (40, 80, 120)).all()
    assert (stamped[-3:] != (40, 80, 120)).any()


@pytest.mark.parametrize("side", [64, 96, 200])
def test_stamp_fits_small_pictures(side):
    """The label is never cut at the right edge: on small pictures the font shrinks and the text wraps."""
    from PIL import ImageDraw

    from helpers.core.images import RANDOM_WEIGHTS_STAMP, _fit_lines

    image = Image.new("RGB", (side, side), (40, 80, 120))
    stamped = np.asarray(stamp_random_weights(image))
    rows = np.any(stamped != (40, 80, 120), axis=(1, 2))
    assert rows[-1] and rows.sum() <= 0.45 * side, "a band along the bottom, not the whole picture"
    assert (stamped[rows][:, -2:] == 0).all(), "no letter reaches the right edge"
    lines, _ = _fit_lines(ImageDraw.Draw(image), RANDOM_WEIGHTS_STAMP, side - 4, max(8, side // 14))
    assert " ".join(lines) == RANDOM_WEIGHTS_STAMP, "every word of the label is there"
