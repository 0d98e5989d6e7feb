"""LTX-Video 0.9.8 distilled (notebook 07, the app): one original-layout file, 8 steps, no CFG. CPU, tiny twin."""

import numpy as np
import pytest
import torch

from helpers import animate
from helpers.core import registry
from helpers.core.profiles import LTX_DISTILLED_TIMESTEPS, get_profile

TINY = get_profile("tiny")
KEY = "ltx-video-distilled"


@pytest.fixture(scope="module")
def twin_folder():
    return registry.ensure_twin(KEY)


def test_the_twin_is_one_file_in_the_original_layout(twin_folder):
    from safetensors.torch import load_file
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    item = registry.entry(KEY)
    checkpoint = load_file(str(twin_folder / item.single_file))
    # the names Lightricks' files use, not diffusers' ones
    assert "model.diffusion_model.patchify_proj.weight" in checkpoint
    assert "vae.decoder.last_scale_shift_table" in checkpoint
    assert "vae.encoder.down_blocks.7.conv.conv.weight" in checkpoint  # the last downsampler (2i + 1)
    assert not any(k.startswith(("transformer.", "proj_in", "vae.decoder.mid_block")) for k in checkpoint)
    # diffusers recognises the layout as the one of the real 2B 0.9.8 distilled file (0.9.5's VAE layout)
    assert infer_diffusers_model_type(checkpoint) == "ltx-video-0.9.5"
    # only the configs of the transformer and VAE stay in diffusers format: loading must use the single file
    for part in ("transformer", "vae"):
        assert (twin_folder / part / "config.json").exists() and not list((twin_folder / part).glob("*.safetensors"))


def test_from_single_file_gives_back_exactly_the_twin(twin_folder):
    from helpers.core.twins import ltx

    pipe = registry.load_pipeline(KEY, TINY)
    built = ltx.build_distilled()  # seeded: the same weights as the saved twin
    for part in ("transformer", "vae"):
        loaded, want = getattr(pipe, part).state_dict(), getattr(built, part).state_dict()
        assert set(loaded) == set(want), part
        assert all(torch.equal(loaded[k], want[k]) for k in want), part
    assert (pipe.vae_spatial_compression_ratio, pipe.vae_temporal_compression_ratio) == (32, 8)


def test_original_key_inverts_diffusers_conversion_and_refuses_other_parts():
    from diffusers.loaders.single_file_utils import (convert_ltx_transformer_checkpoint_to_diffusers,
                                                     convert_ltx_vae_checkpoint_to_diffusers)

    from helpers.core.twins import ltx

    pipe = ltx.build_distilled()
    checkpoint = ltx.original_checkpoint(pipe.transformer, pipe.vae)
    vae = convert_ltx_vae_checkpoint_to_diffusers(dict(checkpoint))
    transformer = convert_ltx_transformer_checkpoint_to_diffusers(
        {k: v for k, v in checkpoint.items() if not k.startswith("vae.")})
    assert set(vae) == set(pipe.vae.state_dict()) and set(transformer) == set(pipe.transformer.state_dict())
    with pytest.raises(ValueError, match="text_encoder"):
        ltx.original_key("text_encoder", "encoder.block.0.weight")


def count_transformer_calls(pipe):
    batches = []
    handle = pipe.transformer.register_forward_hook(
        lambda module, args, kwargs, out: batches.append(kwargs["hidden_states"].shape[0]), with_kwargs=True)
    return batches, handle


def test_distilled_runs_its_8_step_schedule_without_cfg_and_dev_uses_cfg():
    from helpers.core.demo_images import demo_image

    image = demo_image("sunset")
    runs = {}
    for distilled in (False, True):
        settings = animate.ltx_settings(TINY, distilled)
        pipe = animate.load_ltx(TINY, settings)
        batches, handle = count_transformer_calls(pipe)
        frames, used = animate.animate_ltx([image], None, TINY, pipe=pipe, distilled=distilled)
        handle.remove()
        runs[distilled] = (batches, pipe.scheduler.timesteps.tolist(), frames, used)
    dev_batches, _, _, dev = runs[False]
    fast_batches, fast_timesteps, frames, fast = runs[True]
    assert dev["guidance_scale"] > 1 and dev_batches == [2] * dev["num_inference_steps"]  # CFG: two videos per call
    assert fast["model"] == KEY and fast["guidance_scale"] == 1.0
    assert fast_batches == [1] * 8                                  # no CFG: one transformer pass per step
    assert np.allclose(fast_timesteps, LTX_DISTILLED_TIMESTEPS)     # the schedule it was distilled for
    assert len(frames) == fast["num_frames"] and frames[0].size == (fast["width"], fast["height"])


def test_another_step_count_uses_the_pipeline_schedule():
    settings = animate.ltx_settings(TINY, distilled=True)
    assert animate.ltx_timesteps(settings) == list(LTX_DISTILLED_TIMESTEPS)
    assert animate.ltx_timesteps(dict(settings, num_inference_steps=4)) is None
    assert animate.ltx_timesteps(animate.ltx_settings(TINY)) is None   # 0.9.5: always the pipeline's


def test_cli_distilled_backend(tmp_path, outputs, capsys):
    from helpers.core.cli import main
    from helpers.core.demo_images import demo_image
    from helpers.core.video import probe

    demo_image("planet").save(tmp_path / "a.png")
    code = main(["animate", "--backend", "ltx-distilled", "--keyframe", f"{tmp_path / 'a.png'}@0",
                 "--prompt", "slow dolly-in"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    info = probe(outputs / "videos" / "animation_ltx-distilled.mp4")
    assert info["frames"] == 9 and (info["width"], info["height"]) == (64, 64)
    assert "random weights" in captured.out.lower()
