"""Flux.1 tiny twins (helpers.twins.flux) and keyframe refinement (helpers.flux)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import registry
from helpers.profiles import get_profile

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
