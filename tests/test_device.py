"""helpers.core.device: the dtype plan, the output check after every generation, checks that hold on every device."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.core import device, hardware
from helpers.core.device import GenerationError, check_output, output_problem
from helpers.core.profiles import Profile, get_profile


@pytest.fixture
def tiny_profile(outputs, monkeypatch):
    monkeypatch.delenv("COURSE_DTYPE", raising=False)
    return get_profile("tiny")


def noise(seed: int = 0, size=(32, 24)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


# --------------------------------------------------------------------------------------------
# The detector, on CPU
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("frames, problem", [
    ([noise(0), noise(1)], None),
    ([Image.new("RGB", (16, 16), (0, 0, 0))] * 3, "all black"),
    ([Image.new("RGB", (16, 16), (1, 1, 1))], "all black"),             # 8-bit NaN often lands at 0 or 1
    ([Image.new("RGB", (16, 16), (90, 90, 90))] * 2, "constant"),
    ([np.full((8, 8, 3), np.nan, np.float32)], "NaN"),
    (torch.full((2, 3, 8, 8), float("nan")), "NaN"),
    (np.concatenate([np.random.default_rng(0).random((1, 8, 8, 3)), np.full((1, 8, 8, 3), np.inf)]), "NaN"),
    ([], "empty (no frames)"),
])
def test_output_problem_names_what_is_wrong(frames, problem):
    assert output_problem(frames) == problem


def test_one_black_frame_or_two_flat_colours_is_not_a_failure():
    # a fade to black, or a cut between two flat slides, is a legitimate video
    assert output_problem([noise(0), Image.new("RGB", (32, 24))]) is None
    assert output_problem([Image.new("RGB", (8, 8), (10, 20, 30)), Image.new("RGB", (8, 8), (200, 20, 30))]) is None


def test_check_output_passes_good_frames_through_and_names_the_fix():
    frames = [noise(3)]
    assert check_output(frames, "frames") is frames
    with pytest.raises(GenerationError) as err:
        check_output([Image.new("RGB", (8, 8))], "LTX-Video's frames", family_name="ltx")
    message = str(err.value)
    assert "LTX-Video's frames came out all black" in message and "dtype='float32'" in message
    assert "\n" not in message


def _nan_forward(module, args, output):
    if isinstance(output, tuple):
        return (torch.full_like(output[0], float("nan")),) + tuple(output[1:])
    if hasattr(output, "sample"):
        output.sample = torch.full_like(output.sample, float("nan"))
        return output
    return torch.full_like(output, float("nan"))


def test_a_nan_denoiser_stops_svd_with_one_clear_message(tiny_profile):
    from helpers import animate

    settings = animate.svd_settings(tiny_profile)
    pipe = animate.load_svd(tiny_profile, settings)
    pipe.unet.register_forward_hook(_nan_forward)
    with pytest.raises(GenerationError, match="Stable Video Diffusion's frames came out"):
        animate.animate_image(noise(0, (128, 64)), tiny_profile, pipe=pipe)


def test_a_nan_transformer_stops_flux_before_any_frame_is_written(tiny_profile, tmp_path):
    from helpers import flux

    settings = flux.flux_settings(tiny_profile)
    pipe = flux.load_flux(settings["model"], tiny_profile)
    pipe.transformer.register_forward_hook(_nan_forward)
    with pytest.raises(GenerationError, match="Flux img2img's picture came out"):
        flux.refine_image(pipe, noise(1, (256, 144)), "a keyframe", settings)


# --------------------------------------------------------------------------------------------
# The dtype plan
# --------------------------------------------------------------------------------------------

def cuda_profile(name: str = "colab") -> Profile:
    return Profile(name, "cuda", "float16", "test")


def test_t4_plan_follows_the_documented_recipes(monkeypatch):
    monkeypatch.setenv("COURSE_GPU_CLASS", "t4")
    assert device.component_dtypes("svd", cuda_profile()) == {"*": "float16"}
    flux_plan = device.component_dtypes("flux", cuda_profile())
    assert flux_plan["*"] == "float16" and flux_plan["text_encoder"] == flux_plan["text_encoder_2"] == "float32"
    assert device.component_dtypes("ltx", cuda_profile()) == {"*": "float32"}  # fp16 gives black frames
    monkeypatch.setenv("COURSE_GPU_CLASS", "bf16")
    assert device.component_dtypes("flux", cuda_profile("full")) == {"*": "bfloat16"}
    assert device.component_dtypes("ltx", cuda_profile("full")) == {"*": "bfloat16"}


def test_a_learner_can_force_one_dtype_and_typos_are_refused(monkeypatch):
    monkeypatch.setenv("COURSE_GPU_CLASS", "t4")
    assert device.component_dtypes("flux", cuda_profile(), "bfloat16") == {"*": "bfloat16"}
    with pytest.raises(ValueError, match="dtype must be one of"):
        device.component_dtypes("flux", cuda_profile(), "fp16")
    monkeypatch.setenv("COURSE_GPU_CLASS", "v100")
    with pytest.raises(ValueError, match="COURSE_GPU_CLASS"):
        hardware.gpu_class()


def test_every_registry_pipeline_with_a_twin_has_a_plan():
    from helpers.core.registry import MODELS

    for item in MODELS.values():
        if item.twin is not None:
            fam = device.family(item.pipeline_class)
            assert set(device.DTYPE_PLANS[fam]) == set(hardware.GPU_CLASSES)
            assert fam in device.FIXES and fam in device.NF4_COMPONENTS


def test_memory_options_are_checked():
    assert device.parse_memory("nf4+model_offload") == ["nf4", "model_offload"]
    assert device.parse_memory(None) == ["none"]
    with pytest.raises(ValueError, match="unknown memory option"):
        device.parse_memory("model_offload+turbo")


def test_the_t4_flux_recipe_runs_mixed_dtypes(tiny_profile, monkeypatch):
    """float16 denoiser and VAE beside float32 text encoders (diffusers' fp16 recipe for Turing GPUs):
    without the input-casting hooks this raises 'mat1 and mat2 must have the same dtype'."""
    from helpers import flux

    plan = {"*": "float16", "text_encoder": "float32", "text_encoder_2": "float32"}
    monkeypatch.setattr(device, "component_dtypes", lambda *a, **k: dict(plan))
    settings = flux.flux_settings(tiny_profile)
    pipe = flux.load_flux(settings["model"], tiny_profile)
    assert pipe.transformer.dtype == torch.float16 and pipe.text_encoder_2.dtype == torch.float32
    out = flux.refine_image(pipe, noise(2, (256, 144)), "a keyframe", settings)
    assert out.size == (256, 144) and output_problem([out]) is None


def test_course_dtype_puts_the_tiny_twins_in_half_precision(monkeypatch):
    from helpers import animate

    monkeypatch.setenv("COURSE_DTYPE", "bfloat16")
    profile = get_profile("tiny")
    assert profile.dtype == torch.bfloat16
    pipe = animate.load_svd(profile, animate.svd_settings(profile))
    assert pipe.unet.dtype == torch.bfloat16 and pipe.vae.dtype == torch.bfloat16
    monkeypatch.setenv("COURSE_DTYPE", "half")
    with pytest.raises(ValueError, match="COURSE_DTYPE"):
        get_profile("tiny")


def test_gpu_test_mode_needs_no_dataset_download(monkeypatch):
    monkeypatch.setenv("COURSE_WEIGHTS", "random")
    settings = cuda_profile("colab").settings("pixelcnnpp")
    assert settings["dataset"] == "photos" and settings["steps"] <= 50
    monkeypatch.delenv("COURSE_WEIGHTS")
    assert cuda_profile("colab").settings("pixelcnnpp")["dataset"] == "cifar10"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="NF4 in memory needs CUDA and bitsandbytes")
def test_nf4_in_memory_quantises_every_linear():  # pragma: no cover - runs in the GPU job
    bnb = pytest.importorskip("bitsandbytes")

    class Pipe:
        text_encoder = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.GELU(), torch.nn.Linear(64, 8)).cuda()

    x = torch.randn(4, 64, device="cuda")
    before = Pipe.text_encoder(x)
    device.quantise_nf4_in_memory(Pipe, ["text_encoder"], {"*": "float32"})
    assert all(isinstance(m, bnb.nn.Linear4bit) for m in Pipe.text_encoder if not isinstance(m, torch.nn.GELU))
    assert torch.allclose(Pipe.text_encoder(x), before, atol=0.2)  # 4-bit weights: close, not equal


# --------------------------------------------------------------------------------------------
# Checks that hold on every device
# --------------------------------------------------------------------------------------------

def test_exact_float64_turns_tf32_off_and_restores_it():
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    with hardware.exact_float64():
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False


def test_tolerances_fit_their_dtypes():
    a = torch.linspace(-3, 3, 1000, dtype=torch.float64)
    for dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        rounded = a.to(dtype).to(torch.float64)
        assert torch.allclose(rounded, a, **hardware.tolerance(dtype)), dtype  # one rounding fits
    assert not torch.allclose(a.to(torch.bfloat16).double(), a, **hardware.tolerance(torch.float32))
    order = [hardware.tolerance(d)["rtol"] for d in (torch.float64, torch.float32, torch.float16, torch.bfloat16)]
    assert order == sorted(order)


def test_tiny_uses_one_thread_unless_told(monkeypatch, tiny_profile):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("COURSE_THREADS", raising=False)
        assert hardware.configure_threads(tiny_profile) == 1
        monkeypatch.setenv("COURSE_THREADS", "2")
        assert hardware.configure_threads(tiny_profile) == 2
    finally:
        torch.set_num_threads(before)


def test_the_command_line_reports_a_failed_generation_in_one_line(outputs, monkeypatch, capsys, tmp_path):
    from helpers import animate
    from helpers.core.cli import main

    def failing(pipe, image, settings, seed=0):
        return check_output([Image.new("RGB", (8, 8))], "Stable Video Diffusion's frames", family_name="svd")

    monkeypatch.setattr(animate.svd, "svd_frames", failing)
    image = tmp_path / "in.png"
    noise(0, (64, 64)).save(image)
    out = tmp_path / "out.mp4"
    assert main(["animate", str(image), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: Stable Video Diffusion's frames came out all black")
    assert "Traceback" not in err and not out.exists()
