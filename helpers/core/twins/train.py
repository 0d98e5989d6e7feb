"""Train the small SVD twin on moving digits: ``python -m helpers.core.twins.train svd --seed 0``.

Three stages, all on the CPU, all reproducible from ``--seed``:

1. the VAE (AutoencoderKLTemporalDecoder) learns to encode 32x32 frames to 16x16x4 latents and decode
   them (reconstruction + a small KL term); its ``scaling_factor`` is then set so latents have unit std;
2. the UNet (UNetSpatioTemporalConditionModel) learns SVD's task exactly as the pipeline poses it at
   inference: noisy latents (EDM: ``x + sigma * noise``, fed scaled by ``1 / sqrt(sigma^2 + 1)`` with
   timestep ``0.25 * log(sigma)``) concatenated with the unscaled latents of the noise-augmented first
   frame, the CLIP image embedding as cross-attention context, and ``added_time_ids`` =
   [fps - 1, motion_bucket_id, noise_aug_strength]; target: SVD's v-prediction. 10 % of the clips drop
   the image conditioning (zeros, as the pipeline's unconditional half), so classifier-free guidance works.
3. the temporal decoder alone (the encoder, so the UNet's latent space, stays as it is) on colour,
   grey-on-black (the PixelCNN++'s keyframes) and still clips, each cut into decode chunks of a length
   drawn from 1 to 8 frames, decoded as the pipeline's ``decode_chunk_size`` does: without it the decoder
   made the first and last frame of every chunk brighter (a flicker with the period of the chunk size) and
   missed the conditioning picture by 16-19 dB (issue 39). It runs in two parts: ``decoder_steps`` on the reconstruction alone, then ``steady_steps`` with the
   error of each frame's mean colour weighted ``brightness_weight`` times more (a seam is such an error:
   small in the pixel loss, plain to the eye).

``--from FOLDER`` runs stage 3 on a twin already trained by stages 1-2 (a fine-tune; its record names
the twin it started from).

The CLIP image encoder keeps its random weights (frozen): its embedding is a fixed random projection
of the picture. Output: a pipeline folder (``save_pretrained``) with ``training.json`` (settings, losses,
time, sha256 of every weight file) and ``loss.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from helpers.core.twins import clips
from helpers.core.twins.record import save

DEFAULTS = dict(seed=0, vae_steps=400, unet_steps=1100, batch=4, frames=8, vae_lr=1e-3, unet_lr=4e-4,
                kl_weight=1e-6, p_mean=1.0, p_std=1.6, drop_conditioning=0.1, max_noise_aug=0.3,
                decoder_steps=600, decoder_lr=5e-4, grey_share=0.4, still_share=0.25, steady_steps=900,
                steady_lr=3e-4, brightness_weight=30.0)
STAGE_3 = ("decoder_steps", "decoder_lr", "grey_share", "still_share", "steady_steps", "steady_lr", "brightness_weight")


def default_out() -> Path:
    from helpers.core.demo_images import data_dir

    return data_dir() / "twins" / "svd-digits"


def _frames_tensor(rng: np.random.Generator, size: int, frames: int, grey_share: float = 0.0,
                   still_share: float = 0.0):
    import torch

    data = clips.batch(rng, size, frames, grey_share, still_share)
    return (torch.from_numpy(data["frames"]), torch.from_numpy(data["fps"]),
            torch.from_numpy(data["motion_bucket_id"]))


def train_vae(pipe, settings: dict[str, Any], rng: np.random.Generator, progress: bool = True) -> list[float]:
    """Stage 1: reconstruction + KL on clips; returns the loss per step. Sets vae.config.scaling_factor."""
    import torch
    from tqdm.auto import tqdm

    vae, frames = pipe.vae, settings["frames"]
    optimizer = torch.optim.AdamW(vae.parameters(), lr=settings["vae_lr"], weight_decay=0.0)
    losses = []
    vae.train()
    for _ in tqdm(range(settings["vae_steps"]), desc="VAE", disable=not progress):
        x, _, _ = _frames_tensor(rng, settings["batch"], frames)
        flat = x.flatten(0, 1)
        posterior = vae.encode(flat).latent_dist
        recon = vae.decode(posterior.sample(), num_frames=frames).sample
        loss = torch.nn.functional.mse_loss(recon, flat) + settings["kl_weight"] * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    vae.eval()
    with torch.no_grad():
        x, _, _ = _frames_tensor(rng, 16, frames)
        std = float(vae.encode(x.flatten(0, 1)).latent_dist.mode().std())
    vae.register_to_config(scaling_factor=1.0 / std)
    return losses


def decode_in_chunks(vae, latents, chunk: int):
    """Decode (batch, frames, C, h, w) unscaled latents ``chunk`` frames at a time, as the pipeline's
    ``decode_chunk_size`` does (each chunk is one call with ``num_frames`` = its length)."""
    import torch

    b, f = latents.shape[:2]
    pieces = []
    for k in range(0, f, chunk):
        part = latents[:, k:k + chunk]
        image = vae.decode(part.flatten(0, 1), num_frames=part.shape[1]).sample
        pieces.append(image.view(b, part.shape[1], *image.shape[1:]))
    return torch.cat(pieces, 1)


def train_decoder(pipe, settings: dict[str, Any], rng: np.random.Generator, progress: bool = True,
                  part: str = "decoder") -> list[float]:
    """Stage 3: the temporal decoder alone (the encoder, hence the UNet's latent space, stays as it is)
    on colour, grey-on-black and still clips, cut into decode chunks of 1 to ``frames`` frames drawn at
    random: every chunk must start and end at the frame's true brightness (no seam at a chunk's edge).
    ``part``: "decoder" (pixel MSE, ``decoder_steps``) or "steady" (plus ``brightness_weight`` times the
    MSE of each frame's mean colour, ``steady_steps``)."""
    import torch
    from tqdm.auto import tqdm

    vae, frames, steps = pipe.vae, settings["frames"], settings[f"{part}_steps"]
    weight = settings["brightness_weight"] if part == "steady" else 0.0
    if steps == 0:
        return []
    vae.requires_grad_(False)
    vae.decoder.requires_grad_(True)
    optimizer = torch.optim.AdamW(vae.decoder.parameters(), lr=settings[f"{part}_lr"], weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)))
    losses = []
    vae.train()
    for _ in tqdm(range(steps), desc=part, disable=not progress):
        x, _, _ = _frames_tensor(rng, settings["batch"], frames, settings["grey_share"], settings["still_share"])
        with torch.no_grad():
            latents = vae.encode(x.flatten(0, 1)).latent_dist.sample()
        latents = latents.view(*x.shape[:2], *latents.shape[1:])
        recon = decode_in_chunks(vae, latents, int(rng.integers(1, frames + 1)))
        loss = torch.nn.functional.mse_loss(recon, x)
        if weight:
            loss = loss + weight * torch.nn.functional.mse_loss(recon.mean((3, 4)), x.mean((3, 4)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    vae.eval()
    vae.requires_grad_(False)
    return losses


def _conditioning(pipe, x, rng_torch, settings):
    """What the pipeline feeds the UNet besides the noisy latents: image latents, embedding, aug strength."""
    import torch
    import torch.nn.functional as F

    first = x[:, 0]
    aug = settings["max_noise_aug"] * torch.rand(len(x), generator=rng_torch) ** 2
    noisy_first = first + aug[:, None, None, None] * torch.randn(first.shape, generator=rng_torch)
    with torch.no_grad():
        image_latents = pipe.vae.encode(noisy_first).latent_dist.mode()   # unscaled, as in the pipeline
        clip_in = F.interpolate((first + 1) / 2, size=(224, 224), mode="bicubic", align_corners=True)
        mean = torch.tensor(pipe.feature_extractor.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(pipe.feature_extractor.image_std).view(1, 3, 1, 1)
        embeddings = pipe.image_encoder((clip_in - mean) / std).image_embeds.unsqueeze(1)
    keep = (torch.rand(len(x), generator=rng_torch) >= settings["drop_conditioning"]).float()
    image_latents = image_latents * keep[:, None, None, None]
    embeddings = embeddings * keep[:, None, None]
    return image_latents, embeddings, aug


def unet_loss(pipe, x, fps, bucket, rng_torch, settings):
    """SVD's training loss for one batch of clips ``x`` (batch, frames, 3, H, W) in [-1, 1]."""
    import torch

    b, f = x.shape[:2]
    with torch.no_grad():
        latents = pipe.vae.encode(x.flatten(0, 1)).latent_dist.mode() * pipe.vae.config.scaling_factor
    latents = latents.view(b, f, *latents.shape[1:])
    image_latents, embeddings, aug = _conditioning(pipe, x, rng_torch, settings)
    sigma = torch.exp(settings["p_mean"] + settings["p_std"] * torch.randn(b, generator=rng_torch)).clamp(0.002, 700)
    s = sigma.view(b, 1, 1, 1, 1)
    noisy = latents + s * torch.randn(latents.shape, generator=rng_torch)
    model_in = torch.cat([noisy / torch.sqrt(s ** 2 + 1), image_latents.unsqueeze(1).expand(-1, f, -1, -1, -1)], 2)
    added = torch.stack([fps - 1, bucket, aug], 1)
    v = pipe.unet(model_in, 0.25 * torch.log(sigma), encoder_hidden_states=embeddings, added_time_ids=added).sample
    # The scheduler turns v into x0 as x0 = -v * s / sqrt(s^2 + 1) + noisy / (s^2 + 1): the v that gives x0 is
    target = (noisy / (s ** 2 + 1) - latents) * torch.sqrt(s ** 2 + 1) / s
    return torch.nn.functional.mse_loss(v, target)


def train_unet(pipe, settings: dict[str, Any], rng: np.random.Generator, progress: bool = True) -> list[float]:
    """Stage 2: the UNet with SVD's conditioning; cosine learning-rate decay; returns the loss per step."""
    import torch
    from tqdm.auto import tqdm

    rng_torch = torch.Generator().manual_seed(settings["seed"])
    optimizer = torch.optim.AdamW(pipe.unet.parameters(), lr=settings["unet_lr"], weight_decay=0.0)
    steps = settings["unet_steps"]
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)))
    losses = []
    pipe.unet.train()
    bar = tqdm(range(steps), desc="UNet", disable=not progress)
    for _ in bar:
        x, fps, bucket = _frames_tensor(rng, settings["batch"], settings["frames"])
        loss = unet_loss(pipe, x, fps, bucket, rng_torch, settings)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(pipe.unet.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    pipe.unet.eval()
    return losses


def decoder_stage(pipe, settings: dict[str, Any], progress: bool = True) -> list[float]:
    """Stage 3's two parts, each on a data stream of its own (so either can run alone in a fine-tune)."""
    return (train_decoder(pipe, settings, np.random.default_rng([settings["seed"], 3]), progress, "decoder")
            + train_decoder(pipe, settings, np.random.default_rng([settings["seed"], 5]), progress, "steady"))


def train_svd(out: Path | None = None, progress: bool = True, **overrides: Any) -> Path:
    """Train the SVD twin from ``--seed``; write the pipeline, training.json and loss.png into ``out``."""
    import torch

    from helpers.core.twins.svd import build_small

    settings = {**DEFAULTS, **overrides}
    out = Path(out) if out else default_out()
    torch.set_flush_denormal(True)   # tiny gradients late in training must not fall onto the CPU's slow path
    torch.manual_seed(settings["seed"])
    rng = np.random.default_rng(settings["seed"])
    pipe = build_small(settings["seed"], settings["frames"])
    pipe.image_encoder.requires_grad_(False)
    start = time.perf_counter()
    vae_losses = train_vae(pipe, settings, rng, progress)
    pipe.vae.requires_grad_(False)
    vae_seconds = time.perf_counter() - start
    unet_losses = train_unet(pipe, settings, rng, progress)
    decoder_losses = decoder_stage(pipe, settings, progress)
    seconds = time.perf_counter() - start
    save(pipe, out, settings, vae_losses, unet_losses, vae_seconds, seconds, decoder_losses=decoder_losses)
    return out


def finetune_svd(base: Path, out: Path | None = None, progress: bool = True, **overrides: Any) -> Path:
    """Stage 3 alone (the temporal decoder) on the twin in ``base``: the same stage, data streams and
    settings as the last part of :func:`train_svd`. The record names the twin it started from."""
    import torch
    from diffusers import StableVideoDiffusionPipeline

    base = Path(base)
    base_record = json.loads((base / "training.json").read_text())
    earlier = {key: value for key, value in base_record["settings"].items() if key not in STAGE_3}
    settings = {**DEFAULTS, **earlier, **overrides}   # stages 1-2 as the base was trained; stage 3 as asked
    out = Path(out) if out else default_out()
    torch.set_flush_denormal(True)
    torch.manual_seed(settings["seed"])
    pipe = StableVideoDiffusionPipeline.from_pretrained(base, local_files_only=True)
    start = time.perf_counter()
    decoder_losses = decoder_stage(pipe, settings, progress)
    seconds = time.perf_counter() - start
    extra = {"command": f"python -m helpers.core.twins.train svd --seed {settings['seed']} --from {base} "
                        f"--decoder-steps {settings['decoder_steps']} --steady-steps {settings['steady_steps']}",
             "from": {key: base_record[key] for key in ("command", "settings", "seconds", "threads", "from", "sha256")
                      if key in base_record},
             "vae_loss_first_last": base_record.get("vae_loss_first_last"),
             "unet_loss_first_last": base_record.get("unet_loss_first_last"), "vae_seconds": 0.0}
    save(pipe, out, settings, [], [], 0.0, seconds, decoder_losses=decoder_losses, extra=extra)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=["svd", "ltx"], help="which twin to train")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument("--vae-steps", type=int, default=None, help="VAE steps (default: svd 400, ltx 1500)")
    parser.add_argument("--steps", "--unet-steps", type=int, default=None,
                        help="denoiser steps (default: svd's UNet 1100, ltx's transformer 5000)")
    parser.add_argument("--batch", type=int, default=None, help="clips per step (default: 4)")
    parser.add_argument("--clips", type=int, default=None, help="ltx: clips drawn once and trained on (default 3000)")
    parser.add_argument("--decoder-steps", type=int, default=None, help="svd: temporal-decoder steps (default 600)")
    parser.add_argument("--from", dest="base", type=Path, default=None,
                        help="svd: fine-tune the twin in this folder: run stage 3 (its decoder) only")
    parser.add_argument("--steady-steps", type=int, default=None,
                        help="svd: steps of stage 3's second part, brightness weighted (default 900)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder to write (default data/twins/svd-digits or data/twins/ltx-digits)")
    args = parser.parse_args(argv)
    given = {"seed": args.seed}
    if args.vae_steps is not None:
        given["vae_steps"] = args.vae_steps
    if args.batch is not None:
        given["batch"] = args.batch
    if args.model == "svd":
        if args.steps is not None:
            given["unet_steps"] = args.steps
        if args.decoder_steps is not None:
            given["decoder_steps"] = args.decoder_steps
        if args.steady_steps is not None:
            given["steady_steps"] = args.steady_steps
        out = finetune_svd(args.base, args.out, **given) if args.base else train_svd(args.out, **given)
    else:
        from helpers.core.twins.train_ltx import train_ltx

        if args.steps is not None:
            given["transformer_steps"] = args.steps
        if args.clips is not None:
            given["clips"] = args.clips
        out = train_ltx(args.out, **given)
    record = json.loads((out / "training.json").read_text())
    stage, losses = next((name, record[key]) for name, key in (("decoder", "decoder_loss_first_last"),
                                                               ("denoiser", "unet_loss_first_last")) if record.get(key))
    print(f"wrote {out} in {record['seconds']:.0f} s: {stage} loss {losses[0]:.3f} -> {losses[1]:.3f} "
          f"(loss curve: {out / 'loss.png'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
