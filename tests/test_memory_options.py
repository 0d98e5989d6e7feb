"""The memory fixes of the plan, run on the tiny twins on CPU through the same code as on a GPU: layerwise casting
(LTX-Video's T4 plan), model offload with resident components (a ring of hooks), freeing pipelines and disk."""

from __future__ import annotations

import gc
import types
import weakref

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.animate.ltx import animate_ltx
from helpers.core import device
from helpers.core.profiles import get_profile


@pytest.fixture()
def tiny():
    return get_profile("tiny")


def _frames(pipe, profile):
    frames, _ = animate_ltx([Image.new("RGB", (64, 64), (120, 30, 200))], profile=profile, pipe=pipe)
    return np.stack([np.asarray(f, dtype=np.float64) for f in frames])


def test_layerwise_casting_on_the_t4_plan_stores_float8_and_computes_float32(tiny, monkeypatch):
    assert device.layerwise_plan("ltx", ["layerwise_casting"]) == {}  # no GPU class: the bf16 plan, no casting
    monkeypatch.setenv("COURSE_GPU_CLASS", "t4")
    assert device.layerwise_plan("ltx", ["layerwise_casting"]) == {"transformer": "float8_e4m3fn"}
    cast = device.load("ltx-video", tiny, "layerwise_casting")
    dtypes = {p.dtype for p in cast.transformer.parameters()}
    assert dtypes == {torch.float8_e4m3fn, torch.float32}, dtypes  # skipped layers (norms...) in the compute dtype
    assert cast.transformer._course_compute_dtype == torch.float32
    plain = device.load("ltx-video", tiny, "none")
    a, b = _frames(cast, tiny), _frames(plain, tiny)
    assert a.shape == b.shape and np.isfinite(a).all()
    assert np.abs(a - b).mean() < 2.0, "float8 storage changes the frames by rounding only (8-bit levels)"


def test_offload_models_keeps_residents_and_closes_the_ring(tiny):
    pipe = device.load("ltx-video", tiny, "none")
    device.offload_models(pipe, "cpu", ["text_encoder"])
    hooks = pipe._course_offload_hooks
    assert [h.model for h in hooks] == [pipe.transformer, pipe.vae]  # diffusers' order, the resident left out
    assert hooks[0].hook.prev_module_hook is hooks[-1] and hooks[1].hook.prev_module_hook is hooks[0]
    assert not hasattr(pipe.text_encoder, "_hf_hook") and pipe._exclude_from_cpu_offload == ["text_encoder"]
    assert np.isfinite(_frames(pipe, tiny)).all()  # the pipeline runs with the hooks in place


def test_free_pipeline_releases_an_offloaded_pipeline_without_waiting_for_the_garbage_collector(tiny, monkeypatch):
    """Colab's path: layerwise casting (diffusers' hook registries) and the offload ring (accelerate's hooks) both
    link models into reference cycles; freed, the models must go at once, while another name still holds the pipeline
    and with the cyclic garbage collector off (it would otherwise free them only at some later collection)."""
    monkeypatch.setenv("COURSE_GPU_CLASS", "t4")
    pipe = device.load("ltx-video", tiny, "layerwise_casting")
    device.offload_models(pipe, "cpu", ["text_encoder"])
    assert np.isfinite(_frames(pipe, tiny)).all()  # the hooks have run once, as in a notebook
    alias = pipe
    models = {name: weakref.ref(getattr(pipe, name)) for name in ("transformer", "vae", "text_encoder")}
    gc.collect()
    gc.disable()
    try:
        pipe = device.free_pipeline(pipe)
        alive = [name for name, ref in models.items() if ref() is not None]
    finally:
        gc.enable()
    assert pipe is None and alive == [], f"still in memory after free_pipeline: {alive}"
    assert alias.transformer is None and alias._course_offload_hooks == []


def test_make_room_deletes_the_oldest_unneeded_downloads_only_while_short(monkeypatch, capsys):
    deleted = []

    def repo(name, gb, accessed):
        revision = types.SimpleNamespace(commit_hash=name + "-rev")
        return types.SimpleNamespace(repo_id=name, size_on_disk=gb * 1e9, last_accessed=accessed, revisions=[revision])

    cache = types.SimpleNamespace(repos=[repo("old", 30, 1), repo("newer", 20, 2), repo("needed", 9, 0)])
    cache.delete_revisions = lambda *revs: types.SimpleNamespace(execute=lambda: deleted.extend(revs))
    monkeypatch.setattr("huggingface_hub.scan_cache_dir", lambda: cache)
    monkeypatch.setattr("shutil.disk_usage", lambda path: types.SimpleNamespace(free=15e9))
    real = types.SimpleNamespace(random_weights=False)
    # needs 40 GB more for "big" (+ "needed" is cached): 15 free -> 25 short -> delete "old" (30) only
    assert device.make_room({"needed": 9.0, "big": 40.0}, real) == ["old"]
    assert deleted == ["old-rev"] and "deleted old" in capsys.readouterr().out
    deleted.clear()
    assert device.make_room({"needed": 9.0}, real) == [] and deleted == []  # enough room: nothing deleted
    assert device.make_room({"big": 400.0}, get_profile("tiny")) == []      # tiny downloads nothing
