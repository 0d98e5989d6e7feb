"""Tiny twin of LTX-Video (LTXConditionPipeline), random weights, built offline.

The twin keeps the real model's *shape rules* so the lessons teach them honestly: the VAE
compresses 32x in space and 8x in time (frames must be 8k+1, sides multiples of 32), the
scheduler is a flow-matching Euler scheduler with the real resolution-dependent shift, and the
text encoder is a T5 encoder fed by a T5 tokenizer. Everything else is tiny: a few thousand
weights, 64x64 at 9 frames in a second or two on a CPU.
"""

from __future__ import annotations

# Words the tiny tokenizer knows as whole pieces; anything else falls back to single letters.
_WORDS = ("slow dolly in out zoom pan tilt soft lighting light camera motion static still "
          "sunset planet shapes sky water cinematic smooth gentle wind clouds drift").split()


def t5_tokenizer(model_max_length: int = 128):
    """A small T5 tokenizer (Unigram, like the real SentencePiece one), made in code, no download."""
    import transformers

    letters = "abcdefghijklmnopqrstuvwxyz0123456789.,-'!?"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [("\u2581" + w, -3.0) for w in _WORDS]
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


def build():
    import torch
    from diffusers import (AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXConditionPipeline,
                           LTXVideoTransformer3DModel)
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
