"""Tiny twins of LTX-Video (LTXConditionPipeline), random weights, built offline.

The twins keep the real models' *shape rules* so the lessons teach them honestly: the VAE
compresses 32x in space and 8x in time (frames must be 8k+1, sides multiples of 32), the
scheduler is a flow-matching Euler scheduler, and the text encoder is a T5 encoder fed by a T5
tokenizer. Everything else is tiny: 64x64 at 9 frames in a second or two on a CPU.

Two twins:

- :func:`build`, LTX-Video 0.9.5 (``ltx-video``): saved and loaded with save/from_pretrained.
- :func:`build_distilled`, LTX-Video 0.9.8 distilled 2B (``ltx-video-distilled``). The real model is
  one file in the original LTX-Video key layout (``model.diffusion_model.*`` for the transformer,
  ``vae.*`` for a VAE of 0.9.5's layout), loaded with ``from_single_file``. The twin is saved the
  same way: :func:`write_single_file` writes its transformer and VAE under the original names
  (:func:`original_key`, the inverse of diffusers' ``convert_ltx_*_checkpoint_to_diffusers``), so
  the tiny profile exercises the same conversion offline. Its VAE has 0.9.5's block layout
  (``LTXVideo095DownBlock3D``, spatial/temporal/spatiotemporal downsamplers, timestep-conditioned
  decoder); the last encoder block keeps 0.9.5's 2048 channels, the width by which diffusers tells
  that layout apart, which makes this VAE 3 M weights instead of a few thousand.
"""

from __future__ import annotations

import re
from pathlib import Path

# Words the tiny tokenizer knows as whole pieces; anything else falls back to single letters.
_WORDS = ("slow dolly in out zoom pan tilt soft lighting light camera motion static still "
          "sunset planet shapes sky water cinematic smooth gentle wind clouds drift").split()


# The words of the trained twin's prompts (helpers/core/twins/clips.MOTIONS).
DIGIT_WORDS = "the digit moves left right up down zooms in out".split()


def t5_tokenizer(model_max_length: int = 128, words: tuple[str, ...] | list[str] = tuple(_WORDS)):
    """A small T5 tokenizer (Unigram, like the real SentencePiece one), made in code, no download.

    ``words`` are whole pieces; anything else is spelled out in single letters."""
    import transformers

    letters = "abcdefghijklmnopqrstuvwxyz0123456789.,-'!?"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + w, -3.0) for w in words]
    pieces += [(c, -5.0) for c in letters] + [("\u2581" + c, -5.5) for c in letters]
    cls = transformers.T5TokenizerFast
    if int(transformers.__version__.split(".")[0]) >= 5:  # the T5 tokenizer takes its Unigram vocabulary
        return cls(vocab=pieces, extra_ids=0, model_max_length=model_max_length)
    else:  # transformers 4: wrap a `tokenizers` object
        from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
        from tokenizers.models import Unigram

        tok = Tokenizer(Unigram(pieces, unk_id=2))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581")
        tok.decoder = decoders.Metaspace(replacement="\u2581")
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
        return cls(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                   extra_ids=0, model_max_length=model_max_length)


def _text_encoder_and_transformer() -> tuple:
    """(tokenizer, T5 text encoder, transformer) shared by both twins; seeded, so the same every time."""
    import torch
    from diffusers import LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    tokenizer = t5_tokenizer()
    torch.manual_seed(0)
    text_encoder = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))
    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
        attention_head_dim=8, cross_attention_dim=32, num_layers=1, caption_channels=32,
    )
    return tokenizer, text_encoder, transformer


def build():
    """LTX-Video 0.9.5's twin (``ltx-video``)."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline

    tokenizer, text_encoder, transformer = _text_encoder_and_transformer()
    torch.manual_seed(0)
    # Same compression as the real VAE: patch 4 x three 2x down-samplings = 32x in space; 2^3 = 8x in time.
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False, False, False, False, False), upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1), timestep_conditioning=False, patch_size=4, patch_size_t=1,
        encoder_causal=True, decoder_causal=False,
    )
    # Flow-matching Euler. LTXConditionPipeline computes its own (linear-quadratic) timestep schedule
    # and hands it to the scheduler, so no resolution-dependent shift is configured here.
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    return LTXConditionPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                                tokenizer=tokenizer, transformer=transformer)


def build_small(seed: int = 0):
    """The trained twin's architecture (``python -m helpers.core.twins.train ltx``), random weights.

    Same classes and pipeline as LTX-Video 0.9.5; what differs is said here. The VAE compresses 8x in
    space (patch 4, one 2x down-sampling) and 2x in time (the first frame kept on its own, as in the real
    VAE), so 64x64 clips of 9 frames become 5 latent frames of 8x8 tokens that a small transformer (4
    layers, width 96) learns in minutes on a CPU; the real VAE's 32x / 8x would leave 2 latent frames of
    2x2 tokens. The course still keeps the real model's size rules (sides
    multiples of 32, 8k+1 frames). Keyframes at any frame enter as in the real model: frame 0 replaces the
    first latent frame, the others are extra tokens at their frame's position. The T5 text encoder (2
    layers, random weights, frozen) knows the words of the clips' prompts (clips.MOTIONS).
    """
    import torch
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline, \
        LTXVideoTransformer3DModel
    from transformers import T5Config, T5EncoderModel

    tokenizer = t5_tokenizer(words=DIGIT_WORDS)
    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(32,),
        down_block_types=("LTXVideoDownBlock3D",), spatio_temporal_scaling=(True,), layers_per_block=(1, 1),
        decoder_block_out_channels=(32,), decoder_layers_per_block=(1, 1), decoder_spatio_temporal_scaling=(True,),
        decoder_inject_noise=(False, False), upsample_residual=(False,), upsample_factor=(1,),
        timestep_conditioning=False, patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False,
    )
    transformer = LTXVideoTransformer3DModel(
        in_channels=16, out_channels=16, patch_size=1, patch_size_t=1, num_attention_heads=4,
        attention_head_dim=24, cross_attention_dim=96, num_layers=4, caption_channels=64,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    return LTXConditionPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                                tokenizer=tokenizer, transformer=transformer)


def build_distilled():
    """LTX-Video 0.9.8 distilled 2B's twin (``ltx-video-distilled``): a VAE with 0.9.5's layout."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline

    tokenizer, text_encoder, transformer = _text_encoder_and_transformer()
    torch.manual_seed(1)
    # 0.9.5's layout (diffusers' convert_ltx_to_diffusers.py, version 0.9.5) at tiny widths: patch 4, then
    # spatial, temporal and two spatiotemporal downsamplers = 32x in space, 8x in time. Each downsampler
    # needs in_channels x stride >= out_channels; the last width stays 2048 as in the real VAE.
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 32, 64, 256, 2048),
        down_block_types=("LTXVideo095DownBlock3D",) * 4,
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        layers_per_block=(1, 1, 1, 0, 0), spatio_temporal_scaling=(True, True, True, True),
        decoder_block_out_channels=(8, 16, 32), decoder_layers_per_block=(1, 1, 1, 1),
        decoder_spatio_temporal_scaling=(True, True, True), decoder_inject_noise=(False, False, False, False),
        upsample_residual=(True, True, True), upsample_factor=(2, 2, 2), timestep_conditioning=True,
        patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False,
        # stated, as 0.9.5's config does: counted from the flags, the temporal-only level would make it 64x
        spatial_compression_ratio=32, temporal_compression_ratio=8,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    return LTXConditionPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                                tokenizer=tokenizer, transformer=transformer)


# ----------------------------------------------------------------------------------------------
# One file in the original LTX-Video layout (what Lightricks publishes, e.g. ltxv-2b-0.9.8-distilled)


def original_key(part: str, key: str) -> str:
    """The name of a diffusers ``transformer`` / ``vae`` weight in an original LTX-Video single file.

    The inverse of diffusers' ``convert_ltx_transformer_checkpoint_to_diffusers`` and, for a VAE of
    0.9.5's layout, ``convert_ltx_vae_checkpoint_to_diffusers``. In the original VAE the encoder's
    down_blocks alternate resnets (2i) and downsamplers (2i + 1) with the mid block last; the decoder
    starts with the mid block, then upsampler (2i + 1) and resnets (2i + 2) per level.
    """
    if part == "transformer":
        for diffusers_name, original in (("proj_in", "patchify_proj"), ("time_embed", "adaln_single"),
                                         ("norm_q", "q_norm"), ("norm_k", "k_norm")):
            key = key.replace(diffusers_name, original)
        return "model.diffusion_model." + key
    if part != "vae":
        raise ValueError(f"no original layout for {part!r}: the single file holds the transformer and the vae")
    coder, _, rest = key.partition(".")
    if coder == "encoder" and rest.startswith("mid_block."):
        rest = f"down_blocks.{2 * 4}." + rest[len("mid_block."):]
    elif coder == "encoder":
        rest = re.sub(r"^down_blocks\.(\d+)\.(downsamplers\.0\.)?",
                      lambda m: f"down_blocks.{2 * int(m[1]) + (1 if m[2] else 0)}.", rest)
    elif coder == "decoder" and rest.startswith("mid_block."):
        rest = "up_blocks.0." + rest[len("mid_block."):]
    elif coder == "decoder":
        rest = re.sub(r"^up_blocks\.(\d+)\.(upsamplers\.0\.)?",
                      lambda m: f"up_blocks.{2 * int(m[1]) + (1 if m[2] else 2)}.", rest)
        rest = re.sub(r"^(time_embedder|scale_shift_table)", r"last_\1", rest)
    else:  # latents_mean / latents_std
        rest, coder = key, ""
    rest = rest.replace("resnets.", "res_blocks.").replace("conv_shortcut.conv", "conv_shortcut")
    rest = rest.replace("norm3.", "norm3.norm.").replace("latents_mean", "per_channel_statistics.mean-of-means")
    rest = rest.replace("latents_std", "per_channel_statistics.std-of-means")
    return "vae." + (f"{coder}.{rest}" if coder else rest)


def original_checkpoint(transformer, vae) -> dict:
    """The transformer's and VAE's weights under their original single-file names."""
    checkpoint = {original_key("transformer", k): v for k, v in transformer.state_dict().items()}
    checkpoint.update({original_key("vae", k): v for k, v in vae.state_dict().items()})
    return checkpoint


def write_single_file(pipeline, folder: Path, name: str) -> Path:
    """Save ``pipeline``'s transformer + VAE as one original-layout file ``folder / name``.

    Their diffusers-format weights are removed from ``folder`` (their ``config.json`` stays: it is the
    ``config=`` of ``from_single_file``), so loading can only succeed through the single file.
    """
    from safetensors.torch import save_file

    path = Path(folder) / name
    tensors = {k: v.detach().contiguous() for k, v in original_checkpoint(pipeline.transformer, pipeline.vae).items()}
    save_file(tensors, str(path), metadata={"format": "pt", "what": "tiny random-weight twin, original LTX layout"})
    for part in ("transformer", "vae"):
        for weights in (Path(folder) / part).glob("*.safetensors"):
            weights.unlink()
    return path
