"""Train the small SVD twin on moving digits: ``python -m helpers.core.twins.train svd --seed 0``.

Two stages, both on the CPU, both reproducible from ``--seed``:

1. the VAE (AutoencoderKLTemporalDecoder) learns to encode 32x32 frames to 16x16x4 latents and decode
   them (reconstruction + a small KL term); its ``scaling_factor`` is then set so latents have unit std;
2. the UNet (UNetSpatioTemporalConditionModel) learns SVD's task exactly as the pipeline poses it at
   inference: noisy latents (EDM: ``x + sigma * noise``, fed scaled by ``1 / sqrt(sigma^2 + 1)`` with
   timestep ``0.25 * log(sigma)``) concatenated with the unscaled latents of the noise-augmented first
   frame, the CLIP image embedding as cross-attention context, and ``added_time_ids`` =
   [fps - 1, motion_bucket_id, noise_aug_strength]; target: SVD's v-prediction. 10 % of the clips drop
   the image conditioning (zeros, as the pipeline's unconditional half), so classifier-free guidance works.

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
                kl_weight=1e-6, p_mean=1.0, p_std=1.6, drop_conditioning=0.1, max_noise_aug=0.3)


def default_out() -> Path:
    from helpers.core.demo_images import data_dir

    return data_dir() / "twins" / "svd-digits"


def _frames_tensor(rng: np.random.Generator, size: int, frames: int):
    import torch

    data = clips.batch(rng, size, frames)
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
    seconds = time.perf_counter() - start
    save(pipe, out, settings, vae_losses, unet_losses, vae_seconds, seconds)
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
        out = train_svd(args.out, **given)
    else:
        from helpers.core.twins.train_ltx import train_ltx

        if args.steps is not None:
            given["transformer_steps"] = args.steps
        if args.clips is not None:
            given["clips"] = args.clips
        out = train_ltx(args.out, **given)
    record = json.loads((out / "training.json").read_text())
    print(f"wrote {out} in {record['seconds']:.0f} s: denoiser loss {record['unet_loss_first_last'][0]:.3f} -> "
          f"{record['unet_loss_first_last'][1]:.3f} (loss curve: {out / 'loss.png'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
