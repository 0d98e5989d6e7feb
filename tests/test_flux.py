"""Flux.1 tiny twins (helpers.core.twins.flux) and keyframe refinement (helpers.flux)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.core import registry
from helpers.core.profiles import get_profile

TINY = dict(height=64, width=128, num_inference_steps=2, max_sequence_length=32)


@pytest.fixture(scope="module")
def schnell():
    pipe = registry.load_pipeline("flux-schnell", get_profile("tiny"))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_twin_keeps_the_real_flux_layout(schnell):
    index = json.loads((registry.twin_path("flux-schnell") / "model_index.json").read_text())
    assert index["_class_name"] == "FluxPipeline"
    assert schnell.vae.config.latent_channels == 16
    assert schnell.vae_scale_factor == 8
    assert schnell.vae.config.scaling_factor == pytest.approx(0.3611)
    assert schnell.vae.config.shift_factor == pytest.approx(0.1159)
    assert schnell.transformer.config.in_channels == 64  # 16 channels x 2x2 patches
    assert schnell.scheduler.config.shift == 1.0 and not schnell.scheduler.config.use_dynamic_shifting
    # tokenizers came back from disk (built offline): known words stay whole
    assert "sunset</w>" in schnell.tokenizer.tokenize("a sunset")
    assert "\u2581sunset" in schnell.tokenizer_2.tokenize("a sunset")


def test_text2img_size_and_seed(schnell):
    def make(seed):
        out = schnell("a sunset over the sea", generator=torch.Generator().manual_seed(seed),
                      output_type="np", **TINY)
        return out.images[0]

    a, b, c = make(0), make(0), make(1)
    assert a.shape == (64, 128, 3)
    assert np.array_equal(a, b), "same seed, same image"
    assert not np.allclose(a, c), "another seed, another image"


@pytest.mark.parametrize("key, cls", [("flux-schnell-img2img", "FluxImg2ImgPipeline"),
                                      ("flux-kontext-dev", "FluxKontextPipeline"),
                                      ("flux-fill-dev", "FluxFillPipeline")])
def test_image_conditioned_twins_run(key, cls):
    pipe = registry.load_pipeline(key, get_profile("tiny"))
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe).__name__ == cls
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8))
    kwargs = dict(prompt="a sunset", image=image, generator=torch.Generator().manual_seed(0), **TINY)
    if key == "flux-schnell-img2img":
        kwargs["strength"] = 0.6
    if key == "flux-kontext-dev":
        kwargs.update(_auto_resize=False, max_area=128 * 64)
    if key == "flux-fill-dev":
        assert pipe.transformer.config.in_channels == 384  # latents + masked-image latents + 8x8 mask
        mask = Image.new("L", (128, 64), 0)
        mask.paste(255, (0, 0, 32, 64))
        kwargs["mask_image"] = mask
    assert pipe(**kwargs).images[0].size == (128, 64)


# --------------------------------------------------------------------------------------------
# helpers.flux: the refine stage
# --------------------------------------------------------------------------------------------

from helpers import flux  # noqa: E402
from helpers.core.cli import main  # noqa: E402
from helpers.core.demo_images import demo_image  # noqa: E402


def test_effective_start_follows_diffusers_rounding():
    assert flux.effective_start(1.0, 4) == 1.0
    assert flux.effective_start(0.6, 4) == 0.75 == flux.effective_start(0.74, 4)
    assert flux.effective_start(0.5, 4) == 0.5
    assert flux.effective_start(0.0, 4) == 0.0


def test_size_rules():
    flux.check_size(256, 144)
    for width, height in ((250, 144), (256, 32)):
        with pytest.raises(ValueError, match="multiple of 16"):
            flux.check_size(width, height)


def test_structural_similarity():
    picture = demo_image("shapes")
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (144, 256, 3), dtype=np.uint8))
    from PIL import ImageFilter

    assert flux.structural_similarity(picture, picture) == pytest.approx(1.0)
    blurred = flux.structural_similarity(picture, picture.filter(ImageFilter.GaussianBlur(3)))
    assert 0.3 < blurred < 0.99
    assert flux.structural_similarity(picture, noise) < 0.1


def test_outpaint_canvas_marks_only_the_margins():
    canvas, mask = flux.outpaint_canvas(Image.new("RGB", (32, 32), (200, 0, 0)), 256, 144)
    m = np.asarray(mask)
    assert canvas.size == mask.size == (256, 144)
    assert (m[:, 56:200] == 0).all() and (m[:, :56] == 255).all() and (m[:, 200:] == 255).all()
    assert tuple(np.asarray(canvas)[72, 128]) == (200, 0, 0)


def write_frames(folder, count=2):
    from helpers.keyframes import frame_name, pad_to, upscale

    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for index, name in enumerate(["sunset", "planet", "shapes"][:count], 1):
        small = demo_image(name).crop((0, 0, 32, 32))
        image = pad_to(upscale(small, 256, 144), 256, 144, "blur")
        image.save(folder / frame_name(index))
        frames.append({"frame": frame_name(index), "sample": f"sample_{index:04d}.png",
                       "operations": [{"op": "upscale", "to": [144, 144]}, {"op": "pad", "to": [256, 144]}]})
    (folder / "provenance.json").write_text(json.dumps({"refined": False, "frames": frames}))


def test_refine_writes_its_own_folder_and_leaves_the_keyframes_byte_identical(outputs):
    folder = outputs / "keyframes"
    write_frames(folder)
    before = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}   # frames and provenance.json
    paths = flux.refine_keyframes(profile=get_profile("tiny"), seed=3)
    assert {p.name: p.read_bytes() for p in sorted(folder.iterdir())} == before   # keyframes/ untouched
    assert not (folder / "original").exists()
    assert [p.parent for p in paths] == [outputs / "refined"] * 2
    assert [p.name for p in paths] == ["frame_0001.png", "frame_0002.png"]
    assert all(Image.open(p).size == (256, 144) for p in paths)
    assert all(p.read_bytes() != before[p.name] for p in paths)
    prov = json.loads((outputs / "refined" / "provenance.json").read_text())
    assert prov["random_weights"] is True and prov["mode"] == "img2img"
    record = prov["frames"][1]
    assert record["source"] == "keyframes/frame_0002.png" and record["source_sha256"] == flux.file_digest(
        folder / "frame_0002.png")
    op = record["operations"][-1]
    assert op["op"] == "flux_img2img" and op["seed"] == 4 and op["random_weights"] is True
    assert [o["op"] for o in prov["frames"][0]["operations"]] == ["upscale", "pad", "flux_img2img"]
    first = [p.read_bytes() for p in paths]
    # again: same keyframes, same seed -> the same frames, provenance replaced (not stacked)
    flux.refine_keyframes(profile=get_profile("tiny"), seed=3)
    assert [p.read_bytes() for p in paths] == first
    ops = json.loads((outputs / "refined" / "provenance.json").read_text())["frames"][0]["operations"]
    assert [o["op"] for o in ops] == ["upscale", "pad", "flux_img2img"]
    # fewer keyframes now: the extra refined frame goes
    (folder / "frame_0002.png").unlink()
    flux.refine_keyframes(profile=get_profile("tiny"), seed=3)
    assert sorted(p.name for p in (outputs / "refined").glob("frame_*.png")) == ["frame_0001.png"]
    with pytest.raises(ValueError, match="own folder"):
        flux.refine_keyframes(profile=get_profile("tiny"), out=folder)


def test_animation_keyframes_are_the_originals_in_tiny_and_refined_ones_from_real_weights(outputs, capsys):
    from helpers.keyframes import animation_keyframes

    folder = outputs / "keyframes"
    write_frames(folder)
    assert animation_keyframes() == sorted(folder.glob("frame_*.png"))
    assert "no refined keyframes" in capsys.readouterr().out
    flux.refine_keyframes(profile=get_profile("tiny"))
    assert animation_keyframes() == sorted(folder.glob("frame_*.png"))     # random weights: not animated
    assert "random weights" in capsys.readouterr().out
    # provenance saying real weights (what colab/full write): the refined frames are animated
    prov_path = outputs / "refined" / "provenance.json"
    prov = json.loads(prov_path.read_text())
    prov_path.write_text(json.dumps(dict(prov, random_weights=False)))
    assert animation_keyframes() == sorted((outputs / "refined").glob("frame_*.png"))
    assert "Flux.1-refined" in capsys.readouterr().out
    # the keyframes change after refining: the refined frames are stale, the keyframes are animated
    Image.new("RGB", (256, 144), (10, 200, 30)).save(folder / "frame_0001.png")
    assert animation_keyframes(verbose=False) == sorted(folder.glob("frame_*.png"))
    assert capsys.readouterr().out == ""


def test_animation_keyframes_make_stand_ins_only_when_asked(outputs):
    from helpers.keyframes import animation_keyframes

    assert animation_keyframes(standins=False, verbose=False) == []
    made = animation_keyframes(verbose=False)
    assert [p.name for p in made] == ["frame_0001.png", "frame_0002.png"] and made[0].parent.name == "keyframes"


def test_fill_redraws_the_padding_and_keeps_the_picture(outputs):
    folder = outputs / "keyframes"
    write_frames(folder, count=1)
    original = np.asarray(Image.open(folder / "frame_0001.png").convert("RGB"))
    (path,) = flux.refine_keyframes(profile=get_profile("tiny"), mode="fill", prompt="a wide sunset")
    refined = np.asarray(Image.open(path).convert("RGB"))
    top = slice(0, 120)  # above the random-weights stamp along the bottom edge
    assert np.array_equal(refined[top, 56:200], original[top, 56:200])   # the picture is kept
    assert not np.array_equal(refined[top, :56], original[top, :56])     # the padding is redrawn


def test_cli_says_where_the_refined_frames_went(outputs, capsys):
    write_frames(outputs / "keyframes", count=1)
    assert main(["refine"]) == 0
    out = capsys.readouterr().out
    assert str(outputs / "refined") in out and "unchanged" in out and "keeps animating the keyframes" in out


def test_cli_bad_input(outputs, tmp_path, capsys):
    assert main(["refine", "--keyframes", str(tmp_path / "nowhere")]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["refine", "--keyframes", str(empty)]) == 2
    folder = outputs / "keyframes"
    write_frames(folder, count=1)
    assert main(["refine", "--strength", "1.5"]) == 2
    (folder / "frame_0002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)  # truncated
    before = (folder / "frame_0001.png").read_bytes()
    assert main(["refine"]) == 2
    err = capsys.readouterr().err
    assert "frame_0002.png" in err and "Traceback" not in err
    assert (folder / "frame_0001.png").read_bytes() == before and not list((outputs / "refined").glob("*.png"))
