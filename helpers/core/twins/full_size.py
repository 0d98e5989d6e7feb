"""Full-size architectures with random weights: the GPU test mode (``COURSE_WEIGHTS=random``).

The course's GPU checks need the real code paths (fp16/bf16, offload, chunking, compile) at the
real sizes, on a machine that cannot download weights. These builders make each pipeline from its
published configuration with random weights, directly on the target device and dtype. Nothing
they produce is a real picture; they measure time and memory.

Configurations: the diffusers classes' defaults where those are the published models (the SVD
UNet, the Flux transformer, the LTX-Video transformer), and the published sub-model configs
otherwise (cited at each builder). Tokenizers are the small offline ones of the tiny twins:
token ids stay inside the full vocabularies, which is all a timing run needs.
"""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def building_on(device: str, dtype) -> Iterator[None]:
    """Create modules directly on ``device`` in ``dtype`` (no full-size fp32 copy in RAM)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def _t5_xxl():
    """T5 v1.1 XXL encoder (google/t5-v1_1-xxl config): 4.7B parameters."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24,
                                   num_heads=64, feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                                   is_gated_act=True, dense_act_fn="gelu_new"))


def svd(device: str = "cuda", dtype=None):
    """Stable Video Diffusion XT at full size (UNet 1.5B; temporal VAE decoder; CLIP ViT-H/14 image encoder)."""
    import torch
    from diffusers import (AutoencoderKLTemporalDecoder, StableVideoDiffusionPipeline,
                           UNetSpatioTemporalConditionModel)
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from helpers.core.twins import svd as tiny

    twin = tiny.build()  # scheduler and feature extractor are the real configurations already
    with building_on(device, dtype or torch.float16):
        unet = UNetSpatioTemporalConditionModel()  # the defaults are SVD's published config
        vae = AutoencoderKLTemporalDecoder(
            block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 4, sample_size=768, scaling_factor=0.18215)
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(  # laion ViT-H/14
            hidden_size=1280, intermediate_size=5120, projection_dim=1024, num_hidden_layers=32,
            num_attention_heads=16, image_size=224, patch_size=14, hidden_act="gelu"))
    return StableVideoDiffusionPipeline(vae=vae, image_encoder=image_encoder, unet=unet,
                                        scheduler=twin.scheduler, feature_extractor=twin.feature_extractor)


def flux_components(device: str = "cuda", dtype=None, guidance_embeds: bool = False) -> dict:
    """FLUX.1 [schnell/dev] components at full size: transformer 12B, T5-XXL, CLIP-L, the 16-channel VAE."""
    import torch
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from helpers.core.twins import flux as tiny

    twin = tiny.build_text2img()  # offline tokenizers and the real scheduler configuration
    with building_on(device, dtype or torch.bfloat16):
        # defaults: 19 double + 38 single blocks, 3072 wide; dev/Kontext/Fill also embed the guidance scale
        transformer = FluxTransformer2DModel(guidance_embeds=guidance_embeds)
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=16, layers_per_block=2,
                            block_out_channels=(128, 256, 512, 512),
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
                            use_post_quant_conv=False)
        text_encoder = CLIPTextModel(CLIPTextConfig(  # openai/clip-vit-large-patch14 text tower
            vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
            num_attention_heads=12, max_position_embeddings=77, projection_dim=768))
        text_encoder_2 = _t5_xxl()
    return dict(transformer=transformer, vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                tokenizer=twin.tokenizer, tokenizer_2=twin.tokenizer_2, scheduler=twin.scheduler)


def flux(device: str = "cuda", dtype=None, pipeline_class: str = "FluxPipeline", guidance_embeds: bool = False):
    """A full-size Flux pipeline of ``pipeline_class`` (FluxPipeline, FluxImg2ImgPipeline, ...)."""
    import diffusers

    parts = flux_components(device, dtype, guidance_embeds)
    if pipeline_class == "FluxFillPipeline":  # Fill takes image + mask latents: 384 input channels
        import torch
        from diffusers import FluxTransformer2DModel

        with building_on(device, dtype or torch.bfloat16):
            parts["transformer"] = FluxTransformer2DModel(in_channels=384, out_channels=64, guidance_embeds=True)
    return getattr(diffusers, pipeline_class)(**parts)


def ltx(device: str = "cuda", dtype=None):
    """LTX-Video at full size: transformer 1.9B (class defaults = the published 2B config), T5-XXL,
    and the video VAE with the 0.9.1 configuration from diffusers' conversion script (0.9.5's VAE
    differs in block layout; compression 32x space / 8x time is the same)."""
    return _ltx_pipeline(device, dtype, dict(
        latent_channels=128, block_out_channels=(128, 256, 512, 512), decoder_block_out_channels=(256, 512, 1024),
        layers_per_block=(4, 3, 3, 3, 4), decoder_layers_per_block=(5, 6, 7, 8),
        spatio_temporal_scaling=(True, True, True, False), decoder_spatio_temporal_scaling=(True, True, True),
        decoder_inject_noise=(False, True, True, True), upsample_residual=(True, True, True),
        upsample_factor=(2, 2, 2), timestep_conditioning=True, patch_size=4, patch_size_t=1))


def ltx_distilled(device: str = "cuda", dtype=None):
    """LTX-Video 0.9.8 distilled 2B at full size: the same 1.9B transformer, T5-XXL, and the VAE of 0.9.5's
    layout (diffusers' scripts/convert_ltx_to_diffusers.py, get_vae_config("0.9.5")), which is what
    diffusers' single-file loader detects in ltxv-2b-0.9.8-distilled.safetensors."""
    return _ltx_pipeline(device, dtype, dict(
        latent_channels=128, block_out_channels=(128, 256, 512, 1024, 2048),
        down_block_types=("LTXVideo095DownBlock3D",) * 4,
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        decoder_block_out_channels=(256, 512, 1024), layers_per_block=(4, 6, 6, 2, 2),
        decoder_layers_per_block=(5, 5, 5, 5), spatio_temporal_scaling=(True, True, True, True),
        decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(False, False, False, False),
        upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=True,
        patch_size=4, patch_size_t=1, spatial_compression_ratio=32, temporal_compression_ratio=8))


def _ltx_pipeline(device: str, dtype, vae_config: dict):
    """An LTXConditionPipeline with the default (2B) transformer, T5-XXL and a VAE of ``vae_config``."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, LTXConditionPipeline, LTXVideoTransformer3DModel

    from helpers.core.twins import ltx as tiny

    twin = tiny.build()
    with building_on(device, dtype or torch.bfloat16):
        transformer = LTXVideoTransformer3DModel()
        vae = AutoencoderKLLTXVideo(**vae_config)
        text_encoder = _t5_xxl()
    return LTXConditionPipeline(scheduler=twin.scheduler, vae=vae, text_encoder=text_encoder,
                                tokenizer=twin.tokenizer, transformer=transformer)


def parameter_count(module) -> int:
    return sum(p.numel() for p in module.parameters())
