import json

import pytest

from helpers.core import registry
from helpers.core.profiles import get_profile


def test_every_entry_names_a_real_diffusers_class():
    import diffusers

    for item in registry.MODELS.values():
        assert hasattr(diffusers, item.pipeline_class), item.key
        assert "/" in item.repo_id


def test_unknown_key_lists_the_registry():
    with pytest.raises(KeyError, match="svd-xt-1-1"):
        registry.entry("sora")


def test_svd_twin_saved_and_loaded_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_TWIN", "random")   # the random-weight twin (tiny loads the trained one by default)
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

    from helpers.core.profiles import Profile
    from helpers.core.twins import full_size

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


def test_single_file_entries_name_their_file_base_repo_and_parts():
    items = [item for item in registry.MODELS.values() if item.single_file]
    assert [item.key for item in items] == ["ltx-video-distilled"]
    for item in items:
        assert item.single_file.endswith(".safetensors") and item.base_repo and item.base_repo != item.repo_id
        assert set(registry.SINGLE_FILE_PARTS[item.pipeline_class]) == {"transformer", "vae"}


def test_real_weights_path_downloads_the_single_file_and_takes_the_rest_from_the_base_repo(monkeypatch):
    """colab/full without a download: the single file is the tiny twin's, the base repo its folder."""
    import dataclasses

    import huggingface_hub

    from helpers.core.profiles import Profile

    key = "ltx-video-distilled"
    folder = registry.ensure_twin(key)
    item = registry.entry(key)
    asked = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo_id, filename: asked.append((repo_id, filename)) or str(folder / filename))
    monkeypatch.setitem(registry.MODELS, key, dataclasses.replace(item, base_repo=str(folder)))
    pipe = registry.load_pipeline(key, Profile("full", "cpu", "float32", "test"))
    assert asked == [("Lightricks/LTX-Video", "ltxv-2b-0.9.8-distilled.safetensors")]
    assert type(pipe).__name__ == "LTXConditionPipeline" and pipe.vae.config.timestep_conditioning


def test_distilled_full_size_matches_the_published_2b_file(monkeypatch):
    """On the meta device: transformer 1.92 B + VAE 1.25 B weights, which in bf16 are the ~6.34 GB of
    ltxv-2b-0.9.8-distilled.safetensors, in the layout diffusers detects for that file."""
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    from helpers.core.profiles import Profile
    from helpers.core.twins import full_size, ltx

    monkeypatch.setenv("COURSE_WEIGHTS", "random")
    pipe = registry.load_pipeline("ltx-video-distilled", Profile("full", "meta", "bfloat16", "test"))
    transformer, vae = full_size.parameter_count(pipe.transformer), full_size.parameter_count(pipe.vae)
    assert 1.90e9 < transformer < 1.95e9 and 1.24e9 < vae < 1.26e9
    assert 6.2 < 2 * (transformer + vae) / 1e9 < 6.5  # bf16: 2 bytes per weight
    assert infer_diffusers_model_type(ltx.original_checkpoint(pipe.transformer, pipe.vae)) == "ltx-video-0.9.5"
    assert pipe.vae_spatial_compression_ratio == 32 and pipe.vae_temporal_compression_ratio == 8


def test_tiny_loads_the_trained_svd_twin_unless_told_otherwise(monkeypatch):
    from helpers.core.profiles import get_profile

    assert registry.trained_twin_path("svd-xt-1-1") is not None
    assert registry.is_trained_twin(registry.load_pipeline("svd-xt-1-1", get_profile("tiny")))
    monkeypatch.setenv("COURSE_TWIN", "random")
    assert registry.trained_twin_path("svd-xt-1-1") is None
    assert not registry.is_trained_twin(registry.load_pipeline("svd-xt-1-1", get_profile("tiny")))
