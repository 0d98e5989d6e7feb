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
