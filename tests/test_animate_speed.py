"""SVD's speed options (notebook 06): channels-last UNet, torch.compile, SDPA attention. CPU, tiny twin.

No timing here: speed is measured side by side in benchmarks/bench_animate.py (docs/benchmarks.md).
These tests check that each option does what it says and keeps the numbers.
"""

import copy

import pytest
import torch

from helpers import animate
from helpers.core.profiles import STAGE_SETTINGS, get_profile

TINY = get_profile("tiny")
SMALL = dict(num_frames=4, width=64, height=32, num_inference_steps=1)


@pytest.fixture(scope="module")
def svd_pipe():
    return animate.load_svd(TINY, animate.svd_settings(TINY, **SMALL))


def unet_inputs(unet, dtype):
    """One denoising call's inputs for the tiny UNet: 2 videos of 4 latent frames."""
    generator = torch.Generator().manual_seed(0)
    config = unet.config
    sample = torch.randn(2, 4, config.in_channels, 4, 8, generator=generator, dtype=dtype)
    context = torch.randn(2, 1, config.cross_attention_dim, generator=generator, dtype=dtype)
    time_ids = torch.tensor([[5.0, 127.0, 0.02]] * 2, dtype=dtype)
    return dict(sample=sample, timestep=torch.tensor(10.0, dtype=dtype), encoder_hidden_states=context,
                added_time_ids=time_ids)


def test_channels_last_moves_the_2d_convolutions_and_keeps_the_numbers():
    from helpers.core.hardware import exact_float64, tolerance
    from helpers.core.twins import svd

    with exact_float64():
        eager = svd.build().unet.double()
        fast = copy.deepcopy(eager)
        moved = animate.channels_last(fast)
        four_d = [p for p in fast.parameters() if p.dim() == 4]
        five_d = [p for p in fast.parameters() if p.dim() == 5]
        assert moved == len(four_d) > 0 and five_d, "SVD's UNet has 2-D and (temporal) 3-D convolutions"
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in four_d)
        assert not all(p.is_contiguous(memory_format=torch.channels_last) for p in eager.parameters() if p.dim() == 4)
        assert all(p.is_contiguous() for p in five_d)  # 3-D convolutions: no channels-last layout, left alone
        inputs = unet_inputs(eager, torch.float64)
        with torch.no_grad():
            want, got = eager(**inputs).sample, fast(**inputs).sample
        assert torch.allclose(got, want, **tolerance(torch.float64))


def test_the_usual_one_liner_fails_on_svd_which_is_why_channels_last_exists(svd_pipe):
    with pytest.raises(RuntimeError, match="rank 4"):
        copy.deepcopy(svd_pipe.unet).to(memory_format=torch.channels_last)


def test_load_svd_applies_channels_last_and_keeps_sdpa_attention():
    pipe = animate.load_svd(TINY, animate.svd_settings(TINY, **SMALL, channels_last=True))
    weights = [p for p in pipe.unet.parameters() if p.dim() == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert animate.attention_processors(pipe.unet) == {"AttnProcessor2_0"}
    assert animate.attention_processors(pipe.vae) == {"AttnProcessor2_0"}


def test_sdpa_comes_back_when_something_chose_the_slow_path(svd_pipe):
    unet = copy.deepcopy(svd_pipe.unet)
    unet.set_default_attn_processor()           # what some recipes call: the plain matmul-softmax path
    assert animate.attention_processors(unet) == {"AttnProcessor"}
    animate.use_sdpa(unet)
    assert animate.attention_processors(unet) == {"AttnProcessor2_0"}


def test_compile_wraps_the_unet_as_diffusers_shows_without_running_it(monkeypatch):
    """Compiling the tiny UNet takes ~2 minutes on 2 CPU cores, so the test checks the wiring only."""
    seen = {}
    real_compile = torch.compile

    def spy(module, **kwargs):
        seen.update(kwargs, module=type(module).__name__)
        return real_compile(module, **kwargs)   # lazy: nothing is compiled until the first call

    monkeypatch.setattr(torch, "compile", spy)
    settings = animate.svd_settings(TINY, **SMALL, compile=True, compile_mode="max-autotune")
    pipe = animate.load_svd(TINY, settings)
    assert seen == {"mode": "max-autotune", "fullgraph": True, "module": "UNetSpatioTemporalConditionModel"}
    assert type(pipe.unet).__name__ == "OptimizedModule"
    assert type(pipe.unet._orig_mod).__name__ == "UNetSpatioTemporalConditionModel"


def test_compile_in_the_default_mode_is_allowed_under_model_offload():
    """diffusers' "Compiling and offloading quantized models" guide compiles under enable_model_cpu_offload (default
    mode); only the CUDA-graph modes cannot follow a UNet that moves between CPU and GPU."""
    animate.svd.check_speed_options(dict(compile=True, compile_mode="default", memory="model_offload+forward_chunking"))


@pytest.mark.parametrize("overrides, needle", [
    (dict(compile=True, memory="model_offload+forward_chunking"), "model_offload"),
    (dict(compile=True, memory="sequential_offload"), "sequential_offload"),
    (dict(compile=True, compile_mode="fastest"), "compile_mode"),
])
def test_impossible_speed_options_are_refused_in_one_line_before_loading(monkeypatch, overrides, needle):
    monkeypatch.setattr(animate.svd, "load", lambda *a, **k: pytest.fail("nothing may load"))
    with pytest.raises(ValueError) as err:
        animate.load_svd(TINY, animate.svd_settings(TINY, **overrides))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_every_profile_ships_speed_options_that_work_together():
    for name, block in STAGE_SETTINGS["svd"].items():
        animate.check_speed_options(block)   # raises on a refused combination
        assert block["compile_mode"] in animate.COMPILE_MODES, name
    assert not STAGE_SETTINGS["svd"]["tiny"]["channels_last"] and not STAGE_SETTINGS["svd"]["tiny"]["compile"]


def test_cli_speed_flags_reach_the_settings_and_stay_svd_only(tmp_path, outputs, capsys, monkeypatch):
    from PIL import Image

    from helpers.core.cli import main

    Image.new("RGB", (32, 32), (10, 20, 30)).save(tmp_path / "ok.png")
    seen = {}

    def fake_animate_image(image, profile, seed=0, **overrides):
        seen.update(overrides)
        frames = [Image.new("RGB", (64, 32), (40 * i, 0, 0)) for i in range(2)]
        return frames, animate.svd_settings(profile, **overrides)

    monkeypatch.setattr(animate.cli, "animate_image", fake_animate_image)
    code = main(["animate", str(tmp_path / "ok.png"), "--channels-last", "--no-compile",
                 "--out", str(tmp_path / "v.mp4")])
    assert code == 0 and seen["channels_last"] is True and seen["compile"] is False
    code = main(["animate", "--backend", "ltx", "--compile", "--out", str(tmp_path / "w.mp4")])
    assert code == 2 and "SVD options" in capsys.readouterr().err
