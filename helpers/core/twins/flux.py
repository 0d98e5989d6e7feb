"""Tiny twins of FLUX.1 (text-to-image, img2img, Kontext, Fill), random weights, built offline.

The twins keep the real model's *layout* so the lessons teach it honestly:

- the VAE has 16 latent channels, compresses 8x in space (four resolution levels) and uses the
  real latent normalisation (``scaling_factor=0.3611``, ``shift_factor=0.1159`` from the
  FLUX.1 VAE config); the transformer sees 2x2 patches of latents, so sides are multiples of 16;
- two text encoders as in Flux: a CLIP text model (its pooled vector) and a T5 encoder (its
  token sequence), with tokenizers made in code (no download);
- the scheduler is FLUX.1 [schnell]'s: flow-matching Euler with ``shift=1.0`` and no
  resolution-dependent shift (its published ``scheduler_config.json``);
- Fill's transformer takes 384 input channels, like FLUX.1 Fill: 64 (packed noisy latents) +
  64 (packed latents of the masked image) + 256 (the mask, one channel per pixel of an 8x8
  block, packed 2x2).

Everything else is tiny (a few hundred thousand weights): 128x64 with 2 steps takes well under
a second on a CPU. Seeds are fixed, so a twin is the same on every machine.
"""

from __future__ import annotations

from pathlib import Path

# Words the tiny CLIP tokenizer knows whole; others are spelled out letter by letter.
_CLIP_WORDS = ("a the of in and with at on photo painting cinematic light soft warm cold sunset "
               "sky sea city forest mountain night day digit number portrait landscape style "
               "detailed sharp colourful colorful wide shot keyframe").split()

# FLUX.1 VAE latent normalisation (black-forest-labs/FLUX.1-schnell, vae/config.json).
VAE_SCALING_FACTOR = 0.3611
VAE_SHIFT_FACTOR = 0.1159


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: every byte maps to a printable character."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def clip_tokenizer(model_max_length: int = 77):
    """A small byte-level BPE CLIP tokenizer: the byte alphabet plus merges for a few words."""
    from transformers import CLIPTokenizer

    alphabet = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in ["<|startoftext|>", "<|endoftext|>"] + alphabet + [c + "</w>" for c in alphabet]:
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in _CLIP_WORDS:
        # Merge left to right: "s u" -> "su", "su n" -> "sun", ..., the last piece carries </w>.
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            merge = (current, piece)
            current += piece
            if merge not in merges:
                merges.append(merge)
            vocab.setdefault(current, len(vocab))
    if transformers_major() >= 5:
        return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)
    # transformers 4: the tokenizer is read from its two files, as from_pretrained would.
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        vocab_file, merges_file = Path(folder) / "vocab.json", Path(folder) / "merges.txt"
        vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")
        return CLIPTokenizer(vocab_file=str(vocab_file), merges_file=str(merges_file),
                             model_max_length=model_max_length)


def transformers_major() -> int:
    """The major version of transformers (4 or 5): tokenizers are built differently in each."""
    import transformers

    return int(transformers.__version__.split(".")[0])


def t5_tokenizer(model_max_length: int = 512):
    """The course's small offline T5 tokenizer (Unigram, like the real SentencePiece one)."""
    from helpers.core.twins.ltx import t5_tokenizer as make

    return make(model_max_length=model_max_length)


def components(in_channels: int = 64, guidance_embeds: bool = False) -> dict:
    """Every part of a tiny Flux pipeline. ``in_channels`` 64 for text/img2img/Kontext, 384 for Fill."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    tokenizer, tokenizer_2 = clip_tokenizer(), t5_tokenizer()
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=77, projection_dim=32, hidden_act="gelu",
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ))
    torch.manual_seed(0)
    text_encoder_2 = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer_2), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    ))
    torch.manual_seed(0)
    # Real: 19 double + 38 single blocks, 24 heads x 128 (rope axes 16/56/56), T5 4096, CLIP 768.
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=in_channels, out_channels=64, num_layers=1, num_single_layers=1,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=guidance_embeds, axes_dims_rope=(4, 6, 6),
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=4, sample_size=64, use_quant_conv=False,
        use_post_quant_conv=False, scaling_factor=VAE_SCALING_FACTOR, shift_factor=VAE_SHIFT_FACTOR,
    )
    # FLUX.1 [schnell]'s scheduler: flow-matching Euler, shift 1.0, no dynamic (resolution) shift.
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False)
    return dict(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer)


def build_text2img():
    """FluxPipeline (FLUX.1 [schnell] / [dev] text-to-image)."""
    from diffusers import FluxPipeline

    return FluxPipeline(**components())


def build_img2img():
    """FluxImg2ImgPipeline: start from a picture's noised latents instead of pure noise."""
    from diffusers import FluxImg2ImgPipeline

    return FluxImg2ImgPipeline(**components())


def build_kontext():
    """FluxKontextPipeline: the input image's latents ride along as extra tokens (guidance-distilled, like dev)."""
    from diffusers import FluxKontextPipeline

    return FluxKontextPipeline(**components(guidance_embeds=True))


def build_fill():
    """FluxFillPipeline: noisy latents + masked-image latents + mask = 384 input channels."""
    from diffusers import FluxFillPipeline

    return FluxFillPipeline(**components(in_channels=384, guidance_embeds=True))
