"""Curation scores, near-duplicates, the curated folder and the command line."""

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from helpers import curate
from helpers.core.cli import main
from helpers.core.demo_images import demo_image


def crop(name: str, left: int = 80) -> Image.Image:
    """A 96x96 piece of a bundled demo image, starting ``left`` pixels in (0, 80 or 160)."""
    top = {0: 0, 80: 24, 160: 48}[left]
    return demo_image(name).crop((left, top, left + 96, top + 96))


def noise(seed: int = 0, size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_blurred_copy_is_less_sharp():
    picture = crop("shapes")
    blurred = picture.filter(ImageFilter.GaussianBlur(2))
    assert curate.sharpness(blurred) < 0.5 * curate.sharpness(picture)


def test_laplacian_of_a_ramp_is_zero_and_of_a_point_is_minus_four():
    ramp = np.tile(np.arange(10.0), (10, 1))
    assert np.allclose(curate.laplacian(ramp), 0)
    point = np.zeros((5, 5))
    point[2, 2] = 1
    assert curate.laplacian(point)[1, 1] == -4


def test_grey_has_no_colour_and_colour_has_some():
    grey = Image.new("RGB", (32, 32), (120, 120, 120))
    ramp = Image.fromarray(np.tile(np.linspace(0, 255, 32, dtype=np.uint8)[None, :, None], (32, 1, 3)))
    assert curate.colourfulness(grey) == pytest.approx(0.0, abs=1e-9)
    assert curate.colourfulness(ramp) == pytest.approx(0.0, abs=1e-9)  # grey levels, still no colour
    assert curate.colourfulness(crop("sunset")) > 20
    # Hasler-Suesstrunk by hand for a two-colour image: half pure red, half pure green.
    two = np.zeros((2, 2, 3))
    two[0, :, 0] = 255
    two[1, :, 1] = 255
    rg, yb = np.array([255, 255, -255, -255.0]), np.full(4, 127.5)  # yb = (R+G)/2 - B
    expected = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    assert curate.colourfulness(two) == pytest.approx(expected)


def test_noise_ratio_separates_noise_from_pictures():
    assert curate.noise_ratio(noise()) == pytest.approx(curate.WHITE_NOISE_RATIO, abs=0.05)
    assert curate.noise_ratio(crop("sunset")) < 0.2
    assert curate.noise_ratio(Image.new("RGB", (16, 16), (9, 9, 9))) == 0.0


def test_noise_ranks_last_without_and_with_a_likelihood():
    images = [crop("sunset"), crop("planet"), crop("shapes"), noise(), crop("shapes").filter(ImageFilter.BLUR)]
    scores = curate.score_images(images)
    assert int(np.argmin([s["combined"] for s in scores])) == 3
    # With bits/dim: noise costs ~8 bits/dim, pictures far less -> still last.
    for s, bpd in zip(scores, [3.0, 3.5, 2.5, 8.0, 3.0]):
        s["bits_per_dim"] = bpd
        s["combined"] = curate.combined_score(curate.goodness(s, 100.0))
    assert int(np.argmin([s["combined"] for s in scores])) == 3
    assert all(0 <= s["combined"] <= 1 for s in scores)


def test_dhash_sees_near_duplicates_and_not_different_pictures():
    a = crop("sunset")
    shifted = Image.fromarray(np.clip(np.asarray(a, dtype=int) + 6, 0, 255).astype(np.uint8))
    assert curate.hamming(curate.dhash(a), curate.dhash(a)) == 0
    assert curate.hamming(curate.dhash(a), curate.dhash(shifted)) <= curate.DUPLICATE_DISTANCE
    assert curate.hamming(curate.dhash(a), curate.dhash(crop("shapes"))) > curate.DUPLICATE_DISTANCE


def test_near_duplicates_keep_the_better_one():
    hashes = [np.zeros(64, bool), np.zeros(64, bool), np.ones(64, bool)]
    hashes[1][:3] = True
    assert curate.near_duplicates(hashes, order=[1, 0, 2]) == {0: 1}


def write_samples(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images, 1):
        image.save(folder / f"sample_{index:04d}.png")


def test_curate_writes_kept_images_scores_and_grid(outputs):
    pictures = [crop("sunset"), crop("planet", 0), crop("shapes"), crop("sunset", 160), crop("planet", 160), noise()]
    pictures.insert(2, pictures[0].copy())  # an exact duplicate of the first
    write_samples(outputs / "samples", pictures)
    result = curate.curate(keep=5, likelihood=False)
    data = json.loads((outputs / "curated" / "scores.json").read_text())
    records = {r["file"]: r for r in data["records"]}
    first, copy = records["sample_0001.png"], records["sample_0003.png"]
    assert first["kept"] != copy["kept"] and "near-duplicate" in (copy if first["kept"] else first)["reason"]
    assert not records["sample_0007.png"]["kept"]                # the noise
    assert records["sample_0007.png"]["rank"] == len(pictures)
    kept = sorted(p.name for p in (outputs / "curated").glob("sample_*.png"))
    assert kept == sorted(r["file"] for r in data["records"] if r["kept"]) and len(kept) == 5
    assert [p.name for p in result.kept] == [r["file"] for r in data["records"] if r["kept"]]
    assert (outputs / "curated" / "ranked_grid.png").stat().st_size > 1000


def test_hand_selection_is_respected(outputs):
    write_samples(outputs / "samples", [crop("sunset"), crop("planet"), crop("shapes")])
    result = curate.curate(keep=1, likelihood=False, selected=["sample_0002.png", "sample_0003.png"])
    assert sorted(p.name for p in result.kept) == ["sample_0002.png", "sample_0003.png"]
    with pytest.raises(ValueError, match="not among"):
        curate.curate(likelihood=False, selected=["nope.png"])


def test_cli_bad_input_exit_code_two_and_nothing_written(outputs, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "sample_0001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    assert main(["curate", "--samples", str(broken), "--no-likelihood"]) == 2
    err = capsys.readouterr().err
    assert "sample_0001.png" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (outputs / "curated" / "scores.json").exists()
    assert main(["curate", "--samples", str(tmp_path / "missing"), "--no-likelihood"]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["curate", "--samples", str(empty), "--no-likelihood"]) == 2
    assert main(["curate", "--keep", "0", "--no-likelihood"]) == 2


def test_bits_per_dim_is_the_models_nll_in_bits_per_subpixel():
    """Runs once helpers.pixelcnnpp exists (the contract of COURSE_DESIGN.md)."""
    pixelcnnpp = pytest.importorskip("helpers.pixelcnnpp")
    import math

    import torch

    torch.manual_seed(0)
    model = pixelcnnpp.PixelCNNpp(in_channels=1, nr_resnet=1, nr_filters=8, nr_logistic_mix=2, dropout=0.0).eval()
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (8, 8), dtype=np.uint8), np.full((8, 8), 128, np.uint8)]
    images = [Image.fromarray(a, "L").convert("RGB") for a in arrays]
    bpd = curate.bits_per_dim(images, curate.Likelihood(model, (1, 8, 8)))
    x = torch.from_numpy(np.stack(arrays)[:, None].astype(np.float32) / 127.5 - 1.0)
    with torch.no_grad():
        expected = pixelcnnpp.discretized_mix_logistic_nll(x, model(x)).double().numpy() / (64 * math.log(2))
    assert np.allclose(bpd, expected, rtol=1e-5)
    assert bpd.shape == (2,) and np.all(bpd > 0)


def test_digit_keeps_only_what_the_judge_recognises_as_that_digit(tmp_path):
    import torch

    from helpers.core.judge import digits_with_labels
    from helpers.core.profiles import get_profile

    digits = digits_with_labels(seed=0)
    folder = tmp_path / "samples"
    folder.mkdir()
    chosen = torch.cat([digits["test"][digits["test_labels"] == 3][:6], digits["test"][digits["test_labels"] == 7][:6]])
    for i, image in enumerate(chosen):
        Image.fromarray(image[0].numpy(), "L").save(folder / f"sample_{i + 1:05d}.png")
    result = curate.curate(folder, tmp_path / "curated", keep=12, profile=get_profile("tiny"), likelihood=False, digit=3)
    kept = {r["file"] for r in result.kept_records()}
    assert 4 <= len(kept) <= 6 and kept <= {f"sample_{i + 1:05d}.png" for i in range(6)}
    assert all(r["reason"].startswith("not judged a 3") for r in result.records if r["file"] not in kept
               and int(r["file"][7:12]) > 6)
    with pytest.raises(ValueError, match="digit must be 0-9"):
        curate.curate(folder, tmp_path / "c2", keep=2, profile=get_profile("tiny"), likelihood=False, digit=11)
