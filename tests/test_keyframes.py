"""Keyframes: colour space, palettes, colour transfer, choice, upscaling, padding, names, provenance, CLI."""

import json

import numpy as np
import pytest
from PIL import Image

from helpers import keyframes as kf
from helpers.core.cli import main
from helpers.core.demo_images import demo_image


def test_lab_round_trip_and_known_values():
    rgb = np.random.default_rng(0).integers(0, 256, (50, 3)).astype(float)
    assert np.allclose(kf.lab_to_rgb(kf.rgb_to_lab(rgb)), rgb, atol=1e-6)
    assert np.allclose(kf.rgb_to_lab(np.array([255.0, 255, 255])), [100, 0, 0], atol=1e-3)
    assert np.allclose(kf.rgb_to_lab(np.array([0.0, 0, 0])), [0, 0, 0], atol=1e-6)
    # sRGB red in Lab (D65): L 53.24, a 80.09, b 67.20 (standard reference values)
    assert np.allclose(kf.rgb_to_lab(np.array([255.0, 0, 0])), [53.24, 80.09, 67.20], atol=0.05)


def test_moment_matching_is_exact_in_float64():
    rng = np.random.default_rng(2)
    values, reference = rng.normal(5, 2, (40, 30, 3)), rng.normal([50, -10, 20], [9, 3, 0.5], (20, 10, 3))
    moved = kf.match_moments(values, reference).reshape(-1, 3)
    assert np.allclose(moved.mean(0), reference.reshape(-1, 3).mean(0))
    assert np.allclose(moved.std(0), reference.reshape(-1, 3).std(0))
    flat = np.zeros((4, 4, 3))  # no spread: only the mean moves
    assert np.allclose(kf.match_moments(flat, reference), reference.reshape(-1, 3).mean(0))
    assert np.array_equal(kf.match_moments(values, reference, 0.0), values)


def test_colour_transfer_moves_mean_and_std_to_the_reference():
    source, reference = demo_image("shapes"), demo_image("sunset")
    moved = kf.colour_transfer(source, reference, strength=1.0)
    mu_r, sd_r = kf.lab_stats(reference)
    mu_m, sd_m = kf.lab_stats(moved)
    mu_s, sd_s = kf.lab_stats(source)
    # on 8-bit images, rounding and gamut clipping leave a little: far closer than before
    assert np.abs(mu_m - mu_r).max() < 3.0 < np.abs(mu_s - mu_r).max()
    assert np.all(np.abs(sd_m - sd_r) < 0.25 * np.abs(sd_s - sd_r) + 0.5)
    assert np.array_equal(np.asarray(kf.colour_transfer(source, reference, 0.0)), np.asarray(source))
    half = kf.lab_stats(kf.colour_transfer(source, reference, 0.5))[0]
    assert np.all(np.abs(half - (mu_s + mu_r) / 2) < 3.0)
    with pytest.raises(ValueError):
        kf.colour_transfer(source, reference, 1.5)


def test_palette_finds_the_colours_and_their_shares():
    array = np.zeros((10, 10, 3), np.uint8)
    array[:, :7] = (255, 0, 0)
    array[:, 7:] = (0, 0, 255)
    colours, weights = kf.palette(Image.fromarray(array), size=5)
    assert len(colours) == 2  # only two distinct colours
    assert np.allclose(weights, [0.7, 0.3])
    assert np.allclose(kf.lab_to_rgb(colours[0]), [255, 0, 0], atol=1)
    p = (colours, weights)
    assert kf.palette_distance(p, p) == pytest.approx(0.0)
    grey = kf.palette(Image.new("RGB", (8, 8), (128, 128, 128)))
    assert kf.palette_distance(p, grey) > 50


def test_choice_is_diverse_and_keeps_palettes_coherent():
    base = demo_image("shapes").resize((32, 18))
    mirrored = base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)  # same palette, other layout
    nudged = Image.fromarray(np.clip(np.asarray(base, int) + 3, 0, 255).astype(np.uint8))  # same layout
    off_palette = demo_image("planet").resize((32, 18))  # other colours
    images, scores = [base, nudged, mirrored, off_palette], [0.9, 0.8, 0.5, 0.7]
    chosen, notes = kf.choose_keyframes(images, scores, n=2, max_palette_distance=15)
    assert chosen == [0, 2], "best first, then the most different layout with a similar palette"
    chosen, notes = kf.choose_keyframes(images, scores, n=4, max_palette_distance=15)
    assert sorted(chosen) == [0, 1, 2, 3] and "warning" in notes[0]
    with pytest.raises(ValueError):
        kf.choose_keyframes(images, scores, n=0)


def test_upscale_keeps_aspect_and_pad_fills_to_16_9():
    square = Image.fromarray(np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8))
    big = kf.upscale(square, 256, 144, "lanczos")
    assert big.size == (144, 144)
    for mode in kf.PADS:
        padded = kf.pad_to(big, 256, 144, mode)
        assert padded.size == (256, 144)
        assert np.array_equal(np.asarray(padded)[:, 56:200], np.asarray(big)), mode  # centred, untouched
    reflected = np.asarray(kf.pad_to(big, 256, 144, "reflect"))
    assert np.array_equal(reflected[:, 55], reflected[:, 56])          # mirror at the border
    assert np.array_equal(reflected[:, 0], np.asarray(big)[:, 55])
    nearest = np.asarray(kf.upscale(square, 160, 160, "nearest"))
    assert np.array_equal(nearest[::10, ::10], np.asarray(square))      # nearest = copies of pixels
    with pytest.raises(ValueError):
        kf.upscale(square, 64, 64, "magic")


def test_frame_names_sort_in_order():
    names = [kf.frame_name(i) for i in (1, 2, 10, 100)]
    assert names[0] == "frame_0001.png" and names == sorted(names)
    with pytest.raises(ValueError):
        kf.frame_name(0)


def write_curated(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for index, (image, score) in enumerate(images, 1):
        name = f"sample_{index:04d}.png"
        image.save(folder / name)
        records.append({"file": name, "kept": True, "combined": score, "rank": index,
                        "sample": {"seed": 7, "step": 300}})
    (folder / "scores.json").write_text(json.dumps({"records": records}))


def test_make_keyframes_writes_frames_provenance_and_replaces_old_ones(outputs):
    pictures = [demo_image(n).crop((0, 0, 32, 32)) for n in ("sunset", "planet", "shapes")]
    write_curated(outputs / "curated", zip(pictures, [0.5, 0.9, 0.7]))
    folder = outputs / "keyframes"
    kf.make_keyframes(n_keyframes=3, max_palette_distance=1000)  # an earlier, longer run of the stage
    paths = kf.make_keyframes(n_keyframes=2, max_palette_distance=1000)
    assert [p.name for p in paths] == ["frame_0001.png", "frame_0002.png"]
    assert sorted(p.name for p in folder.glob(kf.FRAME_GLOB)) == ["frame_0001.png", "frame_0002.png"]
    assert all(Image.open(p).size == (256, 144) for p in paths)
    prov = json.loads((folder / "provenance.json").read_text())
    first = prov["frames"][0]
    assert first["sample"] == "sample_0002.png" and first["seed"] == 7 and first["steps"] == 300
    ops = [o["op"] for o in prov["frames"][1]["operations"]]
    assert ops == ["colour_transfer", "upscale", "pad"]
    assert [o["op"] for o in first["operations"]] == ["upscale", "pad"]  # the reference keeps its colours
    assert (folder / "palettes.png").exists()


def test_cli_exit_codes(outputs, tmp_path, capsys):
    assert main(["keyframes", "--curated", str(tmp_path / "nowhere")]) == 2
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "scores.json").write_text("{not json")
    assert main(["keyframes", "--curated", str(bad)]) == 2
    assert "scores.json" in capsys.readouterr().err
    write_curated(outputs / "curated", [(demo_image("sunset").crop((0, 0, 32, 32)), 0.5)])
    assert main(["keyframes", "--width", "250"]) == 2
    assert main(["keyframes", "-n", "9"]) == 2
    assert not list((outputs / "keyframes").glob(kf.FRAME_GLOB))
    assert main(["keyframes", "-n", "1"]) == 0
    assert (outputs / "keyframes" / "frame_0001.png").exists()
