"""Tiny twins of Stable Video Diffusion (StableVideoDiffusionPipeline).

:func:`build` makes the random-weight twin; :func:`build_small` the architecture of the twin that
``python -m helpers.core.twins.train svd`` trains on moving digits (helpers/core/twins/clips.py), shipped
in data/twins/svd-digits. Its UNet has 64 channels per level: with 32 channels, GroupNorm's 32 groups
hold one channel each and normalise away the per-channel shift that carries the timestep and the
added_time_ids (fps, motion_bucket_id, noise_aug_strength), so those inputs would change nothing.
"""

from __future__ import annotations


def _image_processor():
    try:  # transformers >= 5 without torchvision
        from transformers import CLIPImageProcessorPil as CLIPImageProcessor
    except ImportError:
        from transformers import CLIPImageProcessor
    return CLIPImageProcessor(crop_size=224, size=224)


def svd_scheduler():
    """The real SVD-XT scheduler configuration (EDM-style v-prediction, Karras sigmas)."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        prediction_type="v_prediction", interpolation_type="linear", sigma_min=0.002, sigma_max=700.0,
        steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True,
    )


def build_small(seed: int = 0, num_frames: int = 8):
    """The trained twin's architecture, random weights (about 3 M parameters): 32x32 frames, latents 16x16."""
    import torch
    from diffusers import AutoencoderKLTemporalDecoder, StableVideoDiffusionPipeline, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=16, in_channels=8, out_channels=4, block_out_channels=(64, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32, num_attention_heads=(2, 2), addition_time_embed_dim=32,
        projection_class_embeddings_input_dim=96, num_frames=num_frames,
    )
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        latent_channels=4, layers_per_block=1, sample_size=32,
    )
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
        image_size=224, intermediate_size=37, patch_size=32,
    ))
    return StableVideoDiffusionPipeline(vae=vae, image_encoder=image_encoder, unet=unet,
                                        scheduler=svd_scheduler(), feature_extractor=_image_processor())


def build():
    """The random-weight twin (what every other tiny stage uses too): seconds to build, no learning."""
    import torch
    from diffusers import (AutoencoderKLTemporalDecoder, StableVideoDiffusionPipeline,
                           UNetSpatioTemporalConditionModel)
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel(
        sample_size=16, in_channels=8, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32, num_attention_heads=(2, 4), addition_time_embed_dim=32,
        projection_class_embeddings_input_dim=96, num_frames=25,
    )
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=(32, 64), down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        latent_channels=4, layers_per_block=1, sample_size=32,
    )
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
        image_size=224, intermediate_size=37, patch_size=32,  # SVD resizes to 224 itself
    ))
    return StableVideoDiffusionPipeline(vae=vae, image_encoder=image_encoder, unet=unet,
                                        scheduler=svd_scheduler(), feature_extractor=_image_processor())
