import json

import pytest

from helpers import registry
from helpers.profiles import get_profile


def test_every_entry_names_a_real_diffusers_class():
    import diffusers

    for item in registry.MODELS.values():
        assert hasattr(diffusers, item.pipeline_class), item.key
        assert "/" in item.repo_id


def test_unknown_key_lists_the_registry():
    with pytest.raises(KeyError, match="svd-xt-1-1"):
        registry.entry("sora")


def test_svd_twin_saved_and_loaded_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = registry.ensure_twin("svd-xt-1-1")
    index = json.loads((path / "model_index.json").read_text())
    assert index["_class_name"] == "StableVideoDiffusionPipeline"
    assert list(path.glob("unet/*.safetensors")), "weights are saved as safetensors"
    pipe = registry.load_pipeline("svd-xt-1-1", get_profile("tiny"))
    assert type(pipe).__name__ == "StableVideoDiffusionPipeline"
    # the twin is deterministic: building it again gives the same weights
    import torch

    again = registry._resolve(registry.entry("svd-xt-1-1").twin)()
    first = next(iter(pipe.unet.state_dict().values()))
    assert torch.equal(first, next(iter(again.unet.state_dict().values())))


def test_model_without_twin_says_so():
    with pytest.raises(ValueError, match="no tiny twin"):
        registry.ensure_twin("wan-flf2v")


def test_gpu_test_mode_builds_published_sizes_without_downloads(monkeypatch):
    """COURSE_WEIGHTS=random: full-size architectures (built on the meta device here: no memory)."""
    import torch

    from helpers.profiles import Profile
    from helpers.twins import full_size

    monkeypatch.setenv("COURSE_WEIGHTS", "random")
    profile = Profile("full", "meta", "float16", "test")
    assert profile.random_weights and "RANDOM WEIGHTS" in profile.banner()
    assert profile.settings("svd")["num_inference_steps"] == 2  # steps capped ...
    assert profile.settings("svd")["width"] == 1024             # ... sizes kept
    pipe = registry.load_pipeline("svd-xt-1-1", profile)
    billions = full_size.parameter_count(pipe.unet) / 1e9
    assert 1.50 < billions < 1.55, billions  # SVD's UNet: 1.5B parameters
    assert next(pipe.unet.parameters()).dtype == torch.float16
    ltx = registry.load_pipeline("ltx-video", profile)
    assert 1.85 < full_size.parameter_count(ltx.transformer) / 1e9 < 2.0  # the "2B" LTX-Video
    assert 4.6 < full_size.parameter_count(ltx.text_encoder) / 1e9 < 4.8  # T5-XXL encoder
    flux = registry.load_pipeline("flux-fill-dev", profile)
    assert type(flux).__name__ == "FluxFillPipeline"
    assert 11.8 < full_size.parameter_count(flux.transformer) / 1e9 < 12.0  # FLUX.1's 12B transformer
    assert flux.transformer.config.in_channels == 384 and flux.transformer.config.guidance_embeds
