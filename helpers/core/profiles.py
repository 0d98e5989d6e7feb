"""Profiles: one switch that decides device, dtype, sizes, step counts and memory options.

``tiny``  any CPU, offline: tiny random-weight pipelines, seconds per step (CI, ``make demo``).
``colab`` one ~16 GB GPU with ~12 GB of system RAM (free Colab T4): real weights, memory savers.
``full``  one >= 40 GB GPU (A100/H100): real weights, no offload, full resolution.

Chosen by ``--profile`` on the command line, else the ``COURSE_PROFILE`` environment variable,
else detected: no CUDA -> tiny; CUDA with less than 24 GB -> colab; otherwise full.
Every stage reads its knobs from :data:`STAGE_SETTINGS` through :meth:`Profile.settings`.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any

PROFILES = ("tiny", "colab", "full")

RANDOM_WEIGHTS_NOTE = (
    "tiny profile: Flux.1 and LTX-Video distilled have RANDOM WEIGHTS, built offline in code: their pictures "
    "and videos show that the pipeline runs, not what the real model makes. SVD and LTX-Video (0.9.5) are small "
    "twins this course trained on moving digits (real learned motion of tiny models, not the real ones). "
    "The PixelCNN++ of notebooks 01-04 is really trained."
)

GPU_TEST_NOTE = (
    "GPU test mode (COURSE_WEIGHTS=random): full-size architectures with RANDOM WEIGHTS, no downloads. "
    "It measures time and memory of the real code paths; its pictures and videos are noise."
)
# In GPU test mode sizes stay real, but these counts are capped (steps, not sizes, are reduced).
GPU_TEST_CAPS = {"num_inference_steps": 2, "steps": 50, "n_images": 16, "eval_every": 25}
# ... and nothing is downloaded: the dataset is built from data shipped with scikit-learn (RGB photo
# patches at the profile's size) instead of CIFAR-10.
GPU_TEST_OVERRIDES = {"dataset": "photos"}
DTYPES = ("float32", "float16", "bfloat16")
# The schedule LTX-Video 0.9.7/0.9.8 distilled was distilled for (diffusers' LTX-Video docs), on the 0-1000 scale.
LTX_DISTILLED_TIMESTEPS = (1000.0, 993.0, 987.0, 981.0, 975.0, 909.0, 725.0, 0.03)

# Every size, step count and memory option of every stage, per profile, in one place.
# A notebook's `parameters` cell reads its stage's block; the command line does the same.
# In the model stages (flux, svd, ltx, slides):
#   memory: options joined by "+", see helpers.core.device.apply_memory_options ("nf4": 4-bit weights for
#     the big parts, helpers.core.device.NF4_COMPONENTS; "model_offload": each model on the GPU only while it runs);
#   dtype: "auto" follows helpers.core.device.DTYPE_PLANS - the recipe for this GPU class, with its sources
#     (a T4 has no native bfloat16: Flux runs float16 with float32 text encoders, LTX-Video float32,
#     SVD float16); "float16" / "bfloat16" / "float32" force one dtype for every component.
STAGE_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    # PixelCNN++ model and training (notebooks 01-02, `python -m helpers train`).
    # lr_decay multiplies the learning rate every step; ema is the Polyak decay of the averaged
    # weights used for tests and samples; clip_grad caps the gradient norm; eval_every counts
    # steps between test bits/dim (a checkpoint is written at each); samples_every counts evals.
    "pixelcnnpp": {
        # tiny: sized to train in about a minute on 2 CPU cores (see docs/benchmarks.md): the digits on
        # their own 8x8 grid (upsampled 16x16 digits: three pixels in four are interpolations, cheap to
        # predict, and the samples stay smudges), class-conditional, the learning rate decayed to 5 % of
        # its start over the 600 steps (0.995 ** 600 = 0.05). conditional: learn p(image | class) when
        # the data has classes (digits, MNIST, CIFAR-10).
        "tiny": dict(dataset="digits", image_size=8, in_channels=1, nr_resnet=1, nr_filters=16,
                     nr_logistic_mix=5, dropout=0.0, batch_size=32, steps=600, lr=5e-3,
                     lr_decay=0.995, ema=0.99, clip_grad=1.0, eval_every=50, samples_every=4,
                     sample_n=16, keep_checkpoints=2, seed=0, compile=False, conditional=True),
        "colab": dict(dataset="cifar10", image_size=32, in_channels=3, nr_resnet=3, nr_filters=96,
                      nr_logistic_mix=10, dropout=0.5, batch_size=32, steps=20_000, lr=2e-4,
                      lr_decay=0.999995, ema=0.9995, clip_grad=1.0, eval_every=1000, samples_every=5,
                      sample_n=16, keep_checkpoints=2, seed=0, compile=False, conditional=True),
        "full": dict(dataset="cifar10", image_size=32, in_channels=3, nr_resnet=5, nr_filters=160,
                     nr_logistic_mix=10, dropout=0.5, batch_size=64, steps=200_000, lr=2e-4,
                     lr_decay=0.999995, ema=0.9995, clip_grad=1.0, eval_every=2000, samples_every=5,
                     sample_n=16, keep_checkpoints=2, seed=0, compile=True, conditional=True),
    },
    # Sampling (notebook 03, `python -m helpers sample`). temperature: mixture logits / T and logistic
    # scales x T (1 = the model's distribution). method: fast (cached) or naive; same images either way.
    # The fast sampler keeps every layer's activations for the whole batch: about as much memory as one
    # forward pass (estimated ~90 MB per 32x32 RGB image at paper size; not yet measured on a GPU).
    "sample": {
        "tiny": dict(n_images=64, batch_size=32, temperature=1.0, method="fast"),
        "colab": dict(n_images=256, batch_size=64, temperature=1.0, method="fast"),
        "full": dict(n_images=1000, batch_size=256, temperature=1.0, method="fast"),
    },
    # Curation (notebook 04, `python -m helpers curate`): keep = best samples kept;
    # duplicate_bits = dHash distance (of 128 bits) under which two samples count as near-duplicates.
    "curate": {
        "tiny": dict(keep=16, duplicate_bits=12),
        "colab": dict(keep=64, duplicate_bits=12),
        "full": dict(keep=128, duplicate_bits=12),
    },
    # Keyframes (notebook 04, `python -m helpers keyframes`): width/height = the video size the
    # keyframes are upscaled (upscaler) and padded (pad: blur|reflect|edge) to; colour_strength =
    # how far each keyframe's Lab mean/std move to the first one's (0 off, 1 fully);
    # max_palette_distance = largest palette distance (CIE76 dE) a keyframe may have from the first.
    "keyframes": {
        "tiny": dict(n_keyframes=2, width=256, height=144, upscaler="lanczos", pad="blur",
                     colour_strength=0.7, palette_size=5, max_palette_distance=40.0),
        "colab": dict(n_keyframes=3, width=1024, height=576, upscaler="lanczos", pad="blur",
                      colour_strength=0.7, palette_size=5, max_palette_distance=40.0),
        "full": dict(n_keyframes=5, width=1024, height=576, upscaler="lanczos", pad="blur",
                     colour_strength=0.7, palette_size=5, max_palette_distance=40.0),
    },
    # Flux.1 keyframe refinement (notebook 05, `python -m helpers refine`): img2img at width x height
    # (sides multiples of 16), then back to the keyframe size. strength = share of the denoising
    # redone (0 keeps the keyframe, 1 ignores it); schnell is timestep-distilled (no guidance input): guidance_scale 0.
    # memory: colab cannot hold the 12B transformer in 16-bit (24 GB) in GPU or in its ~12 GB of
    # RAM, so the transformer and T5 are quantised to 4-bit NF4 (bitsandbytes) and each model is
    # moved to the GPU only while it runs (diffusers docs / HF blog: FLUX.1 in NF4 ~12.6 GB peak;
    # cited, not measured). full: bf16, everything on the GPU.
    "flux": {
        "tiny": dict(model="flux-schnell-img2img", width=256, height=144, num_inference_steps=4,
                     strength=0.6, guidance_scale=0.0, max_sequence_length=32, memory="none", dtype="auto",
                     prompt="a cinematic keyframe, soft light, detailed"),
        "colab": dict(model="flux-schnell-img2img", width=1024, height=576, num_inference_steps=4,
                      strength=0.6, guidance_scale=0.0, max_sequence_length=256, memory="nf4+model_offload", dtype="auto",
                      prompt="a cinematic keyframe, soft light, detailed"),
        "full": dict(model="flux-schnell-img2img", width=1024, height=576, num_inference_steps=4,
                     strength=0.6, guidance_scale=0.0, max_sequence_length=256, memory="none", dtype="auto",
                     prompt="a cinematic keyframe, soft light, detailed"),
    },
    # FLUX.1 Kontext [dev] (notebook 05's edits, `refine --mode kontext`): its model card and diffusers'
    # FluxKontextPipeline run 28 steps at guidance 2.5 (guidance-distilled: one pass per step), T5 512
    # tokens. Sizes: the keyframes' 16:9 at about the published 1024^2 area. Every value and departure
    # (colab's 256 tokens) is in docs/models.md; tests/test_models_doc.py holds the two together.
    "flux_kontext": {
        "tiny": dict(model="flux-kontext-dev", width=256, height=144, num_inference_steps=4, guidance_scale=2.5,
                     max_sequence_length=32, memory="none", dtype="auto",
                     prompt="make it golden hour, keep everything else"),
        "colab": dict(model="flux-kontext-dev", width=1024, height=576, num_inference_steps=28, guidance_scale=2.5,
                      max_sequence_length=256, memory="nf4+model_offload", dtype="auto",
                      prompt="make it golden hour, keep everything else"),
        "full": dict(model="flux-kontext-dev", width=1024, height=576, num_inference_steps=28, guidance_scale=2.5,
                     max_sequence_length=512, memory="none", dtype="auto",
                     prompt="make it golden hour, keep everything else"),
    },
    # FLUX.1 Fill [dev] (notebook 05's outpainting, `refine --mode fill`): model card and diffusers'
    # FluxFillPipeline: 50 steps at guidance 30, T5 512 tokens (docs/models.md).
    "flux_fill": {
        "tiny": dict(model="flux-fill-dev", width=256, height=144, num_inference_steps=4, guidance_scale=30.0,
                     max_sequence_length=32, memory="none", dtype="auto",
                     prompt="a cinematic keyframe, soft light, detailed"),
        "colab": dict(model="flux-fill-dev", width=1024, height=576, num_inference_steps=50, guidance_scale=30.0,
                      max_sequence_length=256, memory="nf4+model_offload", dtype="auto",
                      prompt="a cinematic keyframe, soft light, detailed"),
        "full": dict(model="flux-fill-dev", width=1024, height=576, num_inference_steps=50, guidance_scale=30.0,
                     max_sequence_length=512, memory="none", dtype="auto",
                     prompt="a cinematic keyframe, soft light, detailed"),
    },
    # Stable Video Diffusion (notebooks 00 and 06, `python -m helpers animate`).
    # SVD-XT 1.1 was fine-tuned at 1024x576, 25 frames, fps 6 and motion bucket 127 (model card):
    # colab keeps that size and saves memory with offload + chunking instead (diffusers docs: < 8 GB).
    # overlap / color_match: how chained segments join (animate_long), see notebook 06.
    # Speed options (helpers.animate.apply_speed_options; measured in docs/benchmarks.md):
    #   channels_last: the UNet's 2D convolution weights in NHWC layout (cuDNN's fast path for fp16 on
    #     tensor cores); same numbers, no warm-up, no extra memory. Off in tiny: on a CPU it buys nothing.
    #   compile / compile_mode: torch.compile(unet, mode=compile_mode, fullgraph=True), as diffusers' SVD
    #     guide shows ("20-25% speed-up", cited). The first call compiles (slow: 74 s for the tiny twin
    #     on one CPU thread, measured in docs/benchmarks.md; on a GPU not yet measured) and every new size
    #     compiles again, so it pays only when one process makes many clips of one size (a batch job, an
    #     app after its first request). Off by default everywhere: a notebook or `animate` run makes one
    #     to a few clips, and on colab the UNet is offloaded to the CPU between calls, which compile
    #     cannot keep (refused).
    "svd": {
        # tiny: the twin the course trained on moving digits (helpers/core/twins/train.py) works at 32x32,
        # 8 frames, as trained; its frames are enlarged 4x (nearest) to carry their label.
        "tiny": dict(model="svd-xt-1-1", width=32, height=32, num_frames=8, num_inference_steps=8,
                     fps=6, export_fps=6, motion_bucket_id=127, noise_aug_strength=0.02,
                     min_guidance_scale=1.0, max_guidance_scale=3.0, decode_chunk_size=4,
                     dtype="auto", memory="none", overlap=2, color_match=1.0,
                     channels_last=False, compile=False, compile_mode="reduce-overhead"),
        "colab": dict(model="svd-xt-1-1", width=1024, height=576, num_frames=25, num_inference_steps=25,
                      fps=6, export_fps=6, motion_bucket_id=127, noise_aug_strength=0.02,
                      min_guidance_scale=1.0, max_guidance_scale=3.0, decode_chunk_size=2,
                      dtype="auto", memory="model_offload+forward_chunking", overlap=3, color_match=1.0,
                      channels_last=True, compile=False, compile_mode="reduce-overhead"),
        "full": dict(model="svd-xt-1-1", width=1024, height=576, num_frames=25, num_inference_steps=25,
                     fps=6, export_fps=6, motion_bucket_id=127, noise_aug_strength=0.02,
                     min_guidance_scale=1.0, max_guidance_scale=3.0, decode_chunk_size=8,
                     dtype="auto", memory="none", overlap=3, color_match=1.0,
                     channels_last=True, compile=False, compile_mode="reduce-overhead"),
    },
    # Prompted / multi-keyframe video with LTX-Video 0.9.5 (notebook 07, `python -m helpers animate --backend ltx`).
    # Sizes: sides multiples of 32, frames 8k+1 (helpers.animate.ltx_check_size).
    # timesteps None: the pipeline's own linear-quadratic schedule of num_inference_steps;
    # decode_timestep 0.05 / decode_noise_scale 0.025 / guidance_rescale 0.7: Lightricks' published recipe for 0.9.5
    # (configs/ltxv-2b-0.9.5.yaml: decode_timestep, decode_noise_scale, rescaling_scale), also diffusers' LTX docs'
    # for timestep-aware VAEs (0.9.1+); the VAE decodes at that noise level (docs/models.md). Lightricks' spatiotemporal
    # guidance (stg_scale 1) is not in diffusers' LTXConditionPipeline: not run. tiny: the twin's VAE takes no
    # timestep (decode settings unused) and was measured without rescaling (guidance_rescale 0).
    # colab memory (helpers.core.plan checks it against a T4 and Colab's RAM): T5 in NF4, kept on the GPU; the
    # float32 transformer stored in float8 (layerwise casting, computes in float32) and the VAE moved to the GPU
    # only while they run; the VAE decodes in tiles of 512 px and 16 frames.
    "ltx": {
        # tiny: the twin trained on digit clips (helpers/core/twins/train_ltx.py) knows six prompts,
        # helpers.core.twins.clips.MOTIONS ("the digit moves left/right/up/down", "the digit zooms in/out").
        "tiny": dict(model="ltx-video", width=64, height=64, num_frames=9, num_inference_steps=8,
                     frame_rate=24, guidance_scale=3.0, strength=1.0, image_cond_noise_scale=0.15,
                     prompt="the digit moves right",
                     negative_prompt="worst quality, inconsistent motion, blurry, jittery, distorted",
                     max_sequence_length=64, memory="none", dtype="auto",
                     timesteps=None, decode_timestep=0.05, decode_noise_scale=0.025, guidance_rescale=0.0),
        "colab": dict(model="ltx-video", width=704, height=480, num_frames=97, num_inference_steps=30,
                      frame_rate=24, guidance_scale=3.0, strength=1.0, image_cond_noise_scale=0.15,
                      prompt="slow dolly-in, soft lighting",
                      negative_prompt="worst quality, inconsistent motion, blurry, jittery, distorted",
                      max_sequence_length=128, memory="nf4+layerwise_casting+model_offload+vae_tiling", dtype="auto",
                      timesteps=None, decode_timestep=0.05, decode_noise_scale=0.025, guidance_rescale=0.7),
        "full": dict(model="ltx-video", width=1216, height=704, num_frames=121, num_inference_steps=40,
                     frame_rate=24, guidance_scale=3.0, strength=1.0, image_cond_noise_scale=0.15,
                     prompt="slow dolly-in, soft lighting",
                     negative_prompt="worst quality, inconsistent motion, blurry, jittery, distorted",
                     max_sequence_length=256, memory="none", dtype="auto",
                     timesteps=None, decode_timestep=0.05, decode_noise_scale=0.025, guidance_rescale=0.7),
    },
    # Post-production (notebook 08, `python -m helpers post`), applied in this order:
    # crossfade_s: seconds two input clips overlap when joined (0 = a cut; also the title card's fade);
    # match_keyframe: pull colours towards outputs/keyframes/frame_0001.png, 0 (off) to 1 (animate
    #   already matches each SVD segment to its keyframe, so 0 by default);
    # deflicker: frames in the moving average that brightness is smoothed to (odd; 1 = off);
    # lut / lut_strength: a .cube look (identity, warm, teal_orange from data/luts/, or a file; "none")
    #   and how much of it, 0-1;
    # interpolate / method: frame interpolation factor (2: n -> 2n-1 frames, originals kept; 1 = off)
    #   and how in-betweens are made: flow (optical flow), blend or ffmpeg (minterpolate);
    # device: where the optical flow and the LUT run: auto (torch on the GPU when there is one, else
    #   torch on the CPU, measured faster than numpy), numpy (notebook 08's reference), cpu or cuda;
    # fps: frame rate of the final video; the interpolated clip is retimed to it, its duration kept
    #   (8 fps SVD x 2 = 16: nothing to do in tiny; 16 -> 24 on a GPU);
    # title / title_s: a title card before the video ("" = none) and its seconds;
    # formats: files written (mp4 always; gif, prores = ProRes 422 HQ .mov, webm = VP9);
    # gif_width: the GIF is scaled down to at most this many pixels wide (None = the video's width);
    #   a full-size GIF of a 1024x576 clip runs to tens of MB, 480 px keeps it chat-sized.
    "post": {
        "tiny": dict(interpolate=2, method="flow", device="auto", fps=16, crossfade_s=0.5,
                     match_keyframe=0.0, deflicker=5,
                     lut="warm", lut_strength=0.6, title="Pixels to Motion", title_s=1.0,
                     formats=("mp4", "gif", "prores"), gif_width=None),
        "colab": dict(interpolate=2, method="flow", device="auto", fps=24, crossfade_s=0.5,
                      match_keyframe=0.0, deflicker=5,
                      lut="warm", lut_strength=0.6, title="Pixels to Motion", title_s=1.5,
                      formats=("mp4", "gif", "prores", "webm"), gif_width=480),
        "full": dict(interpolate=2, method="flow", device="auto", fps=24, crossfade_s=0.5,
                     match_keyframe=0.0, deflicker=5,
                     lut="warm", lut_strength=0.6, title="Pixels to Motion", title_s=1.5,
                     formats=("mp4", "gif", "prores", "webm"), gif_width=640),
    },
    # Slides / explainer videos from independent frames (notebook 09).
    # width/height: the picture Flux draws; video_width/height: the video (pictures are fitted to it).
    "slides": {
        "tiny": dict(model="flux-schnell", width=128, height=64, num_inference_steps=2, guidance_scale=0.0,
                     max_sequence_length=32, memory="none", dtype="auto", video_width=256, video_height=144,
                     fps=12, crossfade_s=0.5),
        "colab": dict(model="flux-schnell", width=1024, height=576, num_inference_steps=4, guidance_scale=0.0,
                      max_sequence_length=256, memory="nf4+model_offload", dtype="auto", video_width=1024,
                      video_height=576, fps=24, crossfade_s=0.5),
        "full": dict(model="flux-schnell", width=1280, height=720, num_inference_steps=4, guidance_scale=0.0,
                     max_sequence_length=256, memory="none", dtype="auto", video_width=1280, video_height=720,
                     fps=24, crossfade_s=0.5),
    },
    # The video studio app (notebook 10, `python -m helpers app`): its default knobs per backend.
    # The promise: a video in under two minutes once the model is loaded. The defaults are chosen for it,
    # per profile, with the time each takes (measured in tiny, estimated elsewhere: helpers.app.promise).
    # colab: fewer frames/steps and a smaller SVD size than notebook 06. None keeps the size of the
    # svd/ltx block. ltx_distilled_*: the fast LTX-Video (8 steps, no CFG).
    "app": {
        "tiny": dict(backend="svd", svd_num_frames=4, svd_steps=8, svd_width=None, svd_height=None,
                     motion_bucket_id=127, ltx_num_frames=9, ltx_steps=8, ltx_distilled_num_frames=9,
                     ltx_distilled_steps=8, max_frames=25, port=7860),
        "colab": dict(backend="svd", svd_num_frames=14, svd_steps=15, svd_width=768, svd_height=432,
                      motion_bucket_id=127, ltx_num_frames=65, ltx_steps=20, ltx_distilled_num_frames=49,
                      ltx_distilled_steps=8, max_frames=121, port=7860),
        "full": dict(backend="svd", svd_num_frames=25, svd_steps=25, svd_width=None, svd_height=None,
                     motion_bucket_id=127, ltx_num_frames=121, ltx_steps=40, ltx_distilled_num_frames=121,
                     ltx_distilled_steps=8, max_frames=161, port=7860),
    },
}

# The fast choice: LTX-Video 0.9.8 distilled 2B (notebook 07, the studio app, `animate --backend ltx-distilled`).
# Guidance- and timestep-distilled: guidance_scale 1 (no classifier-free guidance: one transformer pass
# per step instead of two) and 8 steps on the schedule it was distilled for (diffusers' LTX-Video docs,
# 0.9.7/0.9.8 distilled: timesteps [1000, 993, 987, 981, 975, 909, 725, 0.03], decode_timestep 0.05,
# decode_noise_scale 0.025, image_cond_noise_scale 0). Another step count (4-8) uses the pipeline's
# own schedule instead (helpers.animate.ltx_timesteps). Same sizes and memory options as 0.9.5.
# The recipe: diffusers' single pass (that schedule at the target size, docs/source/en/api/pipelines/ltx_video.md
# at v0.39.0, where it is the base pass before upscaling), NOT Lightricks' published 2B multi-scale one
# (configs/ltxv-2b-0.9.8-distilled.yaml: 7 steps to 0.725 at 2/3 size, the spatial upscaler, 3 more steps).
# guidance_rescale 0.7 as diffusers' example; with guidance_scale 1 there is no CFG to rescale (no effect).
STAGE_SETTINGS["ltx_distilled"] = {
    profile: dict(block, model="ltx-video-distilled", num_inference_steps=8, guidance_scale=1.0,
                  image_cond_noise_scale=0.0, timesteps=LTX_DISTILLED_TIMESTEPS, decode_timestep=0.05,
                  decode_noise_scale=0.025)
    for profile, block in STAGE_SETTINGS["ltx"].items()
}


@dataclass(frozen=True)
class Profile:
    """The world a notebook runs in. ``reason`` says how it was chosen."""

    name: str
    device: str
    dtype_name: str
    reason: str

    @property
    def is_tiny(self) -> bool:
        return self.name == "tiny"

    @property
    def random_weights(self) -> bool:
        """True when models have random weights: always in tiny, and with COURSE_WEIGHTS=random
        (the GPU test mode: full-size architectures, random weights, no downloads)."""
        return self.is_tiny or os.environ.get("COURSE_WEIGHTS", "").lower() == "random"

    @property
    def dtype(self):
        import torch

        return getattr(torch, self.dtype_name)

    def settings(self, stage: str) -> dict[str, Any]:
        """A fresh copy of ``stage``'s knobs for this profile (safe to modify)."""
        if stage not in STAGE_SETTINGS:
            raise KeyError(f"unknown stage {stage!r}; known stages: {', '.join(STAGE_SETTINGS)}")
        settings = copy.deepcopy(STAGE_SETTINGS[stage][self.name])
        if self.random_weights and not self.is_tiny:
            # GPU test mode: real sizes, but few steps and images, so the series stays cheap; no downloads.
            for key, cap in GPU_TEST_CAPS.items():
                if key in settings:
                    settings[key] = min(settings[key], cap)
            settings.update({k: v for k, v in GPU_TEST_OVERRIDES.items() if k in settings})
        return settings

    def banner(self) -> str:
        text = f"Profile: {self.name} (device {self.device}, {self.dtype_name}) - {self.reason}"
        if self.device == "cuda":
            from helpers.core.hardware import gpu_class

            if gpu_class() == "t4":
                text += ("\nT4 plan (no native bfloat16): SVD float16, Flux float16 with float32 text encoders, "
                         "LTX-Video float32 (helpers.core.device.DTYPE_PLANS)")
        if self.is_tiny:
            text += "\n" + RANDOM_WEIGHTS_NOTE
        elif self.random_weights:
            text += "\n" + GPU_TEST_NOTE
        return text


def _gpu_memory_gb() -> float | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 1024**3


def detect_profile_name() -> tuple[str, str]:
    """(profile, reason) from the hardware alone."""
    gb = _gpu_memory_gb()
    if gb is None:
        return "tiny", "no CUDA GPU found"
    if gb < 24:
        return "colab", f"CUDA GPU with {gb:.0f} GB (< 24 GB)"
    return "full", f"CUDA GPU with {gb:.0f} GB (>= 24 GB)"


def get_profile(name: str | None = None) -> Profile:
    """Resolve the profile: ``name`` (e.g. from --profile) > $COURSE_PROFILE > detection."""
    if name:
        reason = "chosen with --profile"
    elif os.environ.get("COURSE_PROFILE"):
        name, reason = os.environ["COURSE_PROFILE"], "set by COURSE_PROFILE"
    else:
        name, reason = detect_profile_name()
    name = name.strip().lower()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}")
    forced = os.environ.get("COURSE_DTYPE", "").strip().lower()
    if forced and forced not in DTYPES:
        raise ValueError(f"COURSE_DTYPE={forced!r}: choose one of {', '.join(DTYPES)}")
    if name == "tiny":
        # COURSE_DTYPE=bfloat16 runs the tiny twins in half precision on the CPU: the net in `make test`
        # that catches float32-only asserts before a GPU ever sees them.
        return Profile(name, "cpu", forced or "float32", reason)
    if _gpu_memory_gb() is None:
        raise ValueError(
            f"profile {name!r} needs a CUDA GPU and none was found; use COURSE_PROFILE=tiny "
            "(random weights, any CPU) or run on Colab with a GPU runtime"
        )
    # T4 (compute capability 7.5) has no native bf16: fp16 there; bf16 on Ampere and newer.
    # COURSE_GPU_CLASS=t4 makes a big GPU follow the T4 plan (helpers.core.hardware.gpu_class).
    from helpers.core.hardware import gpu_class

    dtype = forced or ("float16" if gpu_class() == "t4" else "bfloat16")
    return Profile(name, "cuda", dtype, reason)


def main_banner(profile: Profile | None = None) -> Profile:
    """Print the profile banner (first thing every notebook does) and return the profile."""
    from helpers.core.hardware import configure_threads

    profile = profile or get_profile()
    configure_threads(profile)
    print(profile.banner())
    return profile
