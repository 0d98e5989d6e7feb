"""Train the small LTX-Video twin on prompted digit clips: ``python -m helpers.core.twins.train ltx --seed 0``.

Two stages, both on the CPU, both reproducible from ``--seed``:

1. the VAE (AutoencoderKLLTXVideo, 8x in space, 2x in time) learns to encode 64x64 clips of 9 frames
   to 5 latent frames of 8x8x16 and decode them, as a plain autoencoder: its posterior std is fixed at
   0.001, so the pipeline's ``latent_dist.sample()`` of a keyframe is its mean (a noisy posterior made the
   keyframes half noise in a first attempt); its ``latents_mean`` / ``latents_std`` are then set from
   the data, as the real VAE's are, so the pipeline's normalised latents have unit scale;
2. the transformer (LTXVideoTransformer3DModel) learns rectified flow as LTXConditionPipeline poses it at
   inference. The noisy latents, the keyframe tokens, the conditioning mask and the token coordinates
   are made by the pipeline's own ``prepare_latents``: a keyframe at frame 0 replaces the first latent
   frame, a keyframe at frame k is added as extra clean tokens at frame k's position. Conditioning tokens
   get timestep 0 and the timestep-dependent noise of ``image_cond_noise_scale``; the prompt comes from
   the frozen T5 text encoder through ``encode_prompt``; the target is the velocity ``noise - x0`` on the
   tokens the pipeline denoises. Noise levels lean towards high noise (a shifted logit-normal), where the
   pipeline's schedule decides the motion. Each batch draws a keyframe layout: the first frame, the first and the
   last, the first and one in between, one later frame alone, or none (text only); 10 % of the prompts
   are dropped (empty, or the profile's negative prompt) so classifier-free guidance works.

Output: a pipeline folder (``save_pretrained``) with ``training.json`` (settings, losses, time, sha256 of
every weight file) and ``loss.png``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from helpers.core.twins import clips

DEFAULTS = dict(seed=0, clips=3000, vae_steps=1500, transformer_steps=5000, batch=4, vae_lr=2e-3,
                transformer_lr=8e-4, latent_l2=1e-4, drop_prompt=0.1, max_image_cond_noise=0.3, frame_rate=24,
                max_sequence_length=64, sigma_shift=3.0)
# Keyframe layouts a batch is trained with (probabilities): what notebook 07 asks of the model.
LAYOUTS = {"first": 0.35, "first_last": 0.3, "first_middle": 0.1, "one_later": 0.1, "none": 0.15}


def default_out() -> Path:
    from helpers.core.demo_images import data_dir

    return data_dir() / "twins" / "ltx-digits"


class ClipPool:
    """``count`` clips drawn once (drawing costs more than a training step), batches drawn from them."""

    def __init__(self, rng: np.random.Generator, count: int, progress: bool = True):
        from tqdm.auto import tqdm

        made = [clips.make_prompted_clip(rng) for _ in tqdm(range(count), desc="clips", disable=not progress)]
        self.frames = np.stack([c.frames.transpose(3, 0, 1, 2) for c in made])
        self.prompts = [c.prompt for c in made]

    def batch(self, rng: np.random.Generator, size: int):
        import torch

        rows = rng.integers(len(self.prompts), size=size)
        return torch.from_numpy(self.frames[rows]), [self.prompts[r] for r in rows]


def fix_posterior_std(vae, std: float = 1e-3) -> None:
    """Make the encoder's posterior std a constant ``std``: its one log-variance channel (the last output
    of ``conv_out``, shared by all latent channels) gets zero weights and the bias log(std^2). The pipeline
    encodes keyframes with ``latent_dist.sample()``: with this VAE that is the mean, give or take ``std``."""
    import math

    import torch

    conv = vae.encoder.conv_out.conv
    with torch.no_grad():
        conv.weight[-1].zero_()
        conv.bias[-1].fill_(math.log(std ** 2))


def train_vae(pipe, settings: dict[str, Any], rng: np.random.Generator, pool: ClipPool,
              progress: bool = True) -> list[float]:
    """Stage 1: an autoencoder on clips (reconstruction of the posterior mean, a small penalty on the
    latents' size), posterior std fixed small; then latents_mean / latents_std from 16 fresh clips."""
    import torch
    from tqdm.auto import tqdm

    vae = pipe.vae
    fix_posterior_std(vae)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=settings["vae_lr"], weight_decay=0.0)
    steps = settings["vae_steps"]
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)))
    losses = []
    vae.train()
    for _ in tqdm(range(steps), desc="VAE", disable=not progress):
        x, _ = pool.batch(rng, settings["batch"])
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.mode()).sample
        loss = torch.nn.functional.mse_loss(recon, x) + settings["latent_l2"] * posterior.mean.pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        fix_posterior_std(vae)   # AdamW's step must not move it
        losses.append(loss.item())
    vae.eval()
    with torch.no_grad():
        x, _ = pool.batch(rng, 16)
        latents = vae.encode(x).latent_dist.mode()
        vae.latents_mean.copy_(latents.mean(dim=(0, 2, 3, 4)))
        vae.latents_std.copy_(latents.std(dim=(0, 2, 3, 4)))
    return losses


def draw_layout(rng: np.random.Generator, frames: int) -> list[int]:
    """The frame indices of one batch's keyframes, drawn from LAYOUTS."""
    name = rng.choice(list(LAYOUTS), p=list(LAYOUTS.values()))
    later = int(rng.integers(1, frames))
    return {"first": [0], "first_last": [0, frames - 1], "first_middle": [0, int(rng.integers(1, frames - 1))],
            "one_later": [later], "none": []}[name]


class PromptCache:
    """T5 embeddings of every prompt the training uses (the text encoder is frozen): computed once."""

    def __init__(self, pipe, settings: dict[str, Any], negative_prompt: str):
        import torch

        self.texts = list(clips.MOTIONS) + ["", negative_prompt]
        with torch.no_grad():
            embeds, mask, _, _ = pipe.encode_prompt(self.texts, do_classifier_free_guidance=False,
                                                    max_sequence_length=settings["max_sequence_length"],
                                                    device="cpu")
        self.embeds, self.mask = embeds, mask
        self.negative_prompt = negative_prompt

    def get(self, prompts: list[str]):
        rows = [self.texts.index(p) for p in prompts]
        return self.embeds[rows], self.mask[rows]


def transformer_loss(pipe, x, prompts: list[str], keyframes: list[int], cache: PromptCache,
                     generator, settings: dict[str, Any]):
    """The rectified-flow loss of one batch, its inputs made by the pipeline's own ``prepare_latents``."""
    import torch

    b, _, f, h, w = x.shape
    vae = pipe.vae
    with torch.no_grad():
        x0 = pipe._normalize_latents(vae.encode(x).latent_dist.mode(), vae.latents_mean, vae.latents_std)
    # Noise levels: logit-normal, shifted towards high noise (as LTX-Video's training), 20 % uniform. The
    # pipeline's schedule spends half its steps above sigma 0.97: that is where the motion is decided.
    u = torch.rand(b, generator=generator)
    s = torch.sigmoid(torch.randn(b, generator=generator))
    shift = settings["sigma_shift"]
    sigma = torch.where(torch.rand(b, generator=generator) < 0.8, shift * s / (1 + (shift - 1) * s), u)
    sigma = sigma.clamp(0.02, 1.0)
    conditions = [x[:, :, k:k + 1] for k in keyframes]
    latents, mask, coords, extra = pipe.prepare_latents(
        conditions, [1.0] * len(keyframes), keyframes, batch_size=b, num_channels_latents=x0.shape[1],
        height=h, width=w, num_frames=f, sigma=sigma.view(b, 1, 1, 1, 1), latents=x0, generator=generator,
        device=torch.device("cpu"), dtype=torch.float32)
    t = (sigma * 1000.0).view(b, 1)
    if mask is not None:
        # image_cond_noise_scale: hard-conditioning tokens get noise_scale * noise * t^2, as at inference
        scale = settings["max_image_cond_noise"] * torch.rand(b, 1, 1, generator=generator)
        hard = (mask > 1.0 - 1e-6).unsqueeze(-1)
        noise = torch.randn(latents.shape, generator=generator)
        latents = torch.where(hard, latents + scale * noise * sigma.view(b, 1, 1) ** 2, latents)
        t = torch.minimum(t, (1 - mask) * 1000.0)
    coords = coords.float()
    coords[:, 0] = coords[:, 0] / settings["frame_rate"]
    dropped = torch.rand(b, generator=generator) < settings["drop_prompt"]
    texts = [("" if torch.rand(1, generator=generator) < 0.5 else cache.negative_prompt) if d else p
             for p, d in zip(prompts, dropped)]
    embeds, text_mask = cache.get(texts)
    pred = pipe.transformer(hidden_states=latents, encoder_hidden_states=embeds, timestep=t,
                            encoder_attention_mask=text_mask, video_coords=coords, return_dict=False)[0]
    x0_packed = pipe._pack_latents(x0)
    main = latents[:, extra:]
    s = sigma.view(b, 1, 1)
    noise = (main - (1 - s) * x0_packed) / s    # the noise prepare_latents drew, recovered
    target = noise - x0_packed
    keep = torch.ones(main.shape[:2]) if mask is None else (mask[:, extra:] < 1.0 - 1e-6).float()
    per_token = ((pred[:, extra:] - target) ** 2).mean(-1)
    return (per_token * keep).sum() / keep.sum().clamp(min=1.0)


def train_transformer(pipe, settings: dict[str, Any], rng: np.random.Generator, pool: ClipPool,
                      negative_prompt: str, progress: bool = True) -> list[float]:
    """Stage 2: the transformer, AdamW with cosine learning-rate decay; returns the loss per step."""
    import torch
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(settings["seed"])
    cache = PromptCache(pipe, settings, negative_prompt)
    model = pipe.transformer
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["transformer_lr"], weight_decay=0.0)
    steps = settings["transformer_steps"]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: min(1.0, (k + 1) / 50) * 0.5 * (1 + math.cos(math.pi * k / steps)))
    losses = []
    model.train()
    bar = tqdm(range(steps), desc="transformer", disable=not progress)
    for _ in bar:
        x, prompts = pool.batch(rng, settings["batch"])
        loss = transformer_loss(pipe, x, prompts, draw_layout(rng, x.shape[2]), cache, generator, settings)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    model.eval()
    return losses


def train_ltx(out: Path | None = None, progress: bool = True, **overrides: Any) -> Path:
    """Train the LTX twin from ``--seed``; write the pipeline, training.json and loss.png into ``out``."""
    import torch

    from helpers.core.profiles import STAGE_SETTINGS
    from helpers.core.twins.ltx import build_small
    from helpers.core.twins.record import save

    settings = {**DEFAULTS, **overrides}
    out = Path(out) if out else default_out()
    torch.set_flush_denormal(True)
    torch.manual_seed(settings["seed"])
    rng = np.random.default_rng(settings["seed"])
    pipe = build_small(settings["seed"])
    pipe.text_encoder.requires_grad_(False)
    start = time.perf_counter()
    pool = ClipPool(rng, settings["clips"], progress)
    vae_losses = train_vae(pipe, settings, rng, pool, progress)
    pipe.vae.requires_grad_(False)
    vae_seconds = time.perf_counter() - start
    negative = STAGE_SETTINGS["ltx"]["tiny"]["negative_prompt"]
    losses = train_transformer(pipe, settings, rng, pool, negative, progress)
    seconds = time.perf_counter() - start
    save(pipe, out, settings, vae_losses, losses, vae_seconds, seconds, model="ltx")
    return out
