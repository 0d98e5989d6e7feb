"""What a trained twin leaves beside its weights: ``training.json`` (settings, losses, time, sha256 of every
weight file) and ``loss.png``; shared by the SVD (:mod:`train`) and LTX-Video (:mod:`train_ltx`) trainings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

WHAT = {"svd": "small SVD twin trained on moving digits by this course (not the real SVD)",
        "ltx": "small LTX-Video twin trained on prompted digit clips by this course (not the real LTX-Video)"}
DENOISER = {"svd": "UNet: v-prediction MSE", "ltx": "transformer: flow-matching velocity MSE"}


def save(pipe, out: Path, settings, vae_losses, unet_losses, vae_seconds: float, seconds: float,
         model: str = "svd", decoder_losses: list[float] | None = None, extra: dict | None = None) -> None:
    """save_pretrained (safetensors), the training record with hashes, and the loss curves.

    ``decoder_losses``: the SVD twin's third stage (its temporal decoder alone); ``extra``: fields that
    replace or join the record's (a fine-tune's own ``command`` and the twin it started ``from``)."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(out, safe_serialization=True)
    if model == "svd":
        portable_index(out)
    hashes = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in sorted(out.rglob("*.safetensors"))}
    record = {"what": WHAT[model],
              "command": f"python -m helpers.core.twins.train {model} --seed {settings['seed']}",
              "settings": settings, "torch": torch.__version__, "seconds": round(seconds, 1),
              "vae_seconds": round(vae_seconds, 1), "threads": torch.get_num_threads(),
              "vae_loss_first_last": first_last(vae_losses, 20), "unet_loss_first_last": first_last(unet_losses, 50),
              "sha256": hashes}
    if decoder_losses:
        record["decoder_loss_first_last"] = first_last(decoder_losses, 20)
    record.update(extra or {})
    record["sha256"] = record.pop("sha256")   # the hashes stay last, as before
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    plot_losses(vae_losses, unet_losses, out / "loss.png", DENOISER[model], decoder_losses)


def first_last(losses: list[float], n: int) -> list[float] | None:
    """The mean of the first and of the last ``n`` losses (None for a stage this run did not train)."""
    return [round(np.mean(losses[:n]), 5), round(np.mean(losses[-n:]), 5)] if losses else None


def portable_index(out: Path) -> None:
    """Name the image processor as the real SVD repository does (CLIPImageProcessor): transformers 5 without
    torchvision saves its PIL variant's name, which transformers 4 cannot load."""
    index_path = out / "model_index.json"
    index = json.loads(index_path.read_text())
    index["feature_extractor"] = ["transformers", "CLIPImageProcessor"]
    index_path.write_text(json.dumps(index, indent=2) + "\n")


def plot_losses(vae_losses: list[float], unet_losses: list[float], path: Path,
                denoiser: str = DENOISER["svd"], decoder_losses: list[float] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def smooth(values, n=25):
        return np.convolve(values, np.ones(n) / n, mode="valid") if len(values) > n else np.asarray(values)

    panels = [(values, title) for values, title in ((vae_losses, "VAE: reconstruction + KL"), (unet_losses, denoiser),
              (decoder_losses, "temporal decoder: chunked reconstruction")) if values]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3), squeeze=False)
    for ax, (values, title) in zip(axes[0], panels):
        ax.plot(values, alpha=0.3, label="per step")
        ax.plot(smooth(values), label="moving mean (25)")
        ax.set_xlabel("training step"); ax.set_ylabel("loss"); ax.set_yscale("log"); ax.set_title(title); ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
