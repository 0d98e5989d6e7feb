"""The ``sample`` stage: many images from the trained PixelCNN++ into ``outputs/samples/``.

``python -m helpers sample`` loads the latest checkpoint (EMA weights; trains the small tiny model
first if there is none), draws the profile's ``n_images`` in chunks of ``batch_size`` and writes
``sample_00001.png ...``, ``samples.json`` (how each image was made) and ``grid.png``.
A class-conditional model draws the class asked for (``--label 3``: threes) or, without one, the
classes in turn (image i is class i mod 10); ``samples.json`` records each image's class.
``--checkpoint course`` samples the course's own trained checkpoint (``data/checkpoints``).

Resumable and reproducible: chunk k is drawn with its own generator seeded ``seed * 1_000_000 + k``,
so an interrupted run continues with the first incomplete chunk and ends with the same images
as an uninterrupted one. Re-running with other settings (seed, batch size, temperature, method,
model, e.g. after more training) replaces the folder's samples, saying so in one line: the new run is
drawn in a hidden ``.samples.next`` folder beside it (itself resumable) and swapped in when complete,
so the folder never mixes two runs. Because it is replaced whole, a folder that holds files this stage did not
write (a user's notes beside the samples) is refused before any work, with one line. ``samples.json`` stores the checkpoint relative to the outputs
folder, so a moved or copied outputs folder still resumes.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from helpers.core.cli import float_range, int_range
from helpers.core.outputs import clean_stale, relative_to_outputs, save_image, stage_dir, write_json
from helpers.core.profiles import Profile, get_profile

METHODS = ("fast", "naive")
RECORD = "samples.json"
GRID = "grid.png"


def sample_name(index: int) -> str:
    """File name of the image with 0-based ``index``: sample_00001.png, ..."""
    return f"sample_{index + 1:05d}.png"


def chunk_seed(seed: int, chunk: int) -> int:
    """The generator seed of chunk ``chunk`` (0-based) of a run with ``seed``."""
    return seed * 1_000_000 + chunk


def to_picture(image: torch.Tensor) -> Image.Image:
    """One image (C, H, W) in [-1, 1] -> an 8-bit PIL image (grey "L" or "RGB")."""
    pixels = ((image.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    if pixels.shape[0] == 1:
        return Image.fromarray(pixels[0].numpy(), "L")
    return Image.fromarray(pixels.permute(1, 2, 0).numpy(), "RGB")


def model_label(info: dict[str, Any] | None, profile: Profile | None) -> str:
    """What to say about where the samples come from, e.g. 'tiny model, trained for 150 steps'."""
    step = (info or {}).get("step")
    trained = f"trained for {step} steps" if step is not None else "training steps unknown"
    if profile is not None and profile.is_tiny:
        return f"tiny model, {trained}"
    if profile is not None and profile.random_weights:
        return f"GPU test mode, {trained}"
    return f"PixelCNN++, {trained}"


def _check(n: int, batch_size: int, temperature: float, method: str) -> None:
    if n < 1:
        raise ValueError(f"the number of images must be at least 1, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def _read_record(path: Path) -> dict[str, Any] | None:
    """The folder's record, or None when there is none or it is unreadable (its run is then unknown)."""
    import json

    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def run_changes(record: dict[str, Any] | None, run: dict[str, Any]) -> list[str]:
    """What differs between a folder's record and the run about to be drawn ([] = the same run)."""
    if record is None:
        return ["no readable samples.json"]
    return [f"{k} {_short(record.get(k))} -> {_short(v)}" for k, v in run.items() if record.get(k) != v]


def _short(value: Any) -> str:
    return Path(value).name if isinstance(value, str) and "/" in value else repr(value)


def _has_samples(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("sample_*.png"))


def check_samples_folder(target: Path) -> None:
    """Refuse (one line, before any work) a folder that holds files this stage did not write: the samples folder
    is replaced as a whole when another run is drawn, so it must hold only this stage's files
    (``sample_NNNNN.png`` with their ``samples.json``, ``grid.png``, and the stage's own temporary files)."""
    import re

    from helpers.core.outputs import EnvironmentProblem, is_partial

    if not target.is_dir():
        return
    ours = re.compile(r"sample_\d{5}\.png")
    has_record = _read_record(target / RECORD) is not None
    foreign = sorted(p.name for p in target.iterdir()
                     if not (is_partial(p) or (p.name in (RECORD, GRID) and p.is_file())
                             or (ours.fullmatch(p.name) and p.is_file() and has_record)))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise EnvironmentProblem(target, f"holds {shown}, which the sample stage did not write (a new run replaces "
                                 "this folder as a whole)", "give --out-dir a folder of its own, or move them away")


def weights_sha256(info: dict[str, Any]) -> str | None:
    """The sha256 of the EMA weights that draw (so a later stage can tell a retrained checkpoint apart)."""
    from helpers.core.outputs import file_digest

    weights = Path(str(info.get("path", ""))) / "ema.safetensors"
    return file_digest(weights) if weights.is_file() else None


def _swap_in(new: Path, folder: Path) -> None:
    """Put the complete folder ``new`` in the place of ``folder`` (two renames; the old one goes)."""
    old = folder.parent / f".{folder.name}.old.partial"
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)


def generate_samples(model=None, n: int | None = None, out_dir: str | Path | None = None,
                     batch_size: int | None = None, temperature: float | None = None,
                     method: str | None = None, seed: int = 0, image_shape: Sequence[int] | None = None,
                     profile: Profile | str | None = None, info: dict[str, Any] | None = None,
                     progress: bool = True, label: int | None = None) -> list[Path]:
    """Draw ``n`` images into ``out_dir`` (default ``outputs/samples``); returns their paths.

    ``label``: the class every image is drawn as (a class-conditional model only).

    Every argument left as None comes from the profile's ``sample`` block; ``model=None`` loads
    the trained PixelCNN++ with ``helpers.train.ensure_model`` (``info`` and ``image_shape``
    come with it). Chunks already on disk are kept and skipped (see the module docstring). One run
    writes a folder at a time: a second one is refused, naming the first."""
    from helpers.core.outputs import writer_lock

    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    n, batch_size, temperature, method = _settings(profile, n, batch_size, temperature, method)
    if model is None:
        from helpers.train import ensure_model

        model, info = ensure_model(profile)
    info = info or {}
    check_label(model, label)
    image_shape = tuple(int(s) for s in (image_shape or info.get("image_shape") or ()))
    if len(image_shape) != 3:
        raise ValueError("image_shape (C, H, W) is needed when the model comes without its checkpoint info")
    target = _target(out_dir)
    check_samples_folder(target)  # a user's file in it would go with the folder: refused before any work
    run = {"seed": seed, "batch_size": batch_size, "temperature": temperature, "method": method,
           "image_shape": list(image_shape), "checkpoint": relative_to_outputs(info.get("path", "")),
           "step": info.get("step"), "checkpoint_sha256": weights_sha256(info), "label": label}
    with writer_lock(target, "the samples folder", "wait for it to finish, or sample into another --out-dir"):
        folder = _folder_for(target, run)
        label = model_label(info, profile)
        _draw(model, folder, n, run, label, progress)
        paths = _finish(folder, n, run, label)
        if folder != target:
            _swap_in(folder, target)
    return [target / p.name for p in paths]


def check_label(model, label: int | None) -> None:
    """A label needs a class-conditional model, and one of its classes."""
    classes = getattr(model, "num_classes", None)
    if label is None:
        return
    if classes is None:
        raise ValueError(f"--label {label}: this checkpoint's model is unconditional (trained without classes); "
                         "sample without --label, or use --checkpoint course")
    if not 0 <= int(label) < classes:
        raise ValueError(f"--label {label}: this model knows the classes 0..{classes - 1}")


def image_labels(model, first: int, count: int, label: int | None) -> torch.Tensor | None:
    """The classes of images ``first .. first + count - 1``: the asked one, else image i is class i mod
    num_classes (so a chunk's classes depend on its place only); None for an unconditional model."""
    classes = getattr(model, "num_classes", None)
    if classes is None:
        return None
    if label is not None:
        return torch.full((count,), int(label), dtype=torch.long)
    return torch.arange(first, first + count) % classes


def _settings(profile: Profile, n, batch_size, temperature, method) -> tuple[int, int, float, str]:
    """The sampling settings, each from the profile's ``sample`` block when None; checked."""
    settings = profile.settings("sample")
    n = settings["n_images"] if n is None else int(n)
    batch_size = settings["batch_size"] if batch_size is None else int(batch_size)
    temperature = settings["temperature"] if temperature is None else float(temperature)
    method = settings["method"] if method is None else method
    _check(n, batch_size, temperature, method)
    return n, batch_size, temperature, method


def _target(out_dir: str | Path | None) -> Path:
    target = Path(out_dir) if out_dir else stage_dir("samples")
    if target.exists() and not target.is_dir():
        from helpers.core.images import BadInputError

        raise BadInputError(target, "is a file, not a folder for samples")
    return target


def _folder_for(target: Path, run: dict[str, Any]) -> Path:
    """Where this run draws: ``target`` itself, or, when another run's samples are there, the hidden
    staging folder beside it (kept from an interrupted replacement by the same run, else started anew)."""
    target.mkdir(parents=True, exist_ok=True)
    clean_stale(target)
    clean_stale(target.parent)
    staging = target.parent / f".{target.name}.next"
    folder = target
    if _has_samples(target) and (changed := run_changes(_read_record(target / RECORD), run)):
        folder = staging  # another run's samples are there: draw this run beside them, swap it in when complete
        if _has_samples(staging) and run_changes(_read_record(staging / RECORD), run):
            shutil.rmtree(staging)
        old = len(list(target.glob("sample_*.png")))
        print(f"replacing the {old} samples in {target} (another run: {'; '.join(changed)}); "
              "they stay until all new ones are drawn")
    elif staging.exists():
        shutil.rmtree(staging)  # a replacement that was abandoned: nothing of it is needed
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _draw(model, folder: Path, n: int, run: dict[str, Any], label: str, progress: bool) -> None:
    """Draw every chunk not yet on disk into ``folder``, updating the record after each chunk."""
    from tqdm.auto import tqdm

    from helpers.pixelcnnpp import sample

    batch_size, temperature, seed = run["batch_size"], run["temperature"], run["seed"]
    record = _read_record(folder / RECORD) if _has_samples(folder) else None
    entries = {e["file"]: e for e in (record or {}).get("images", [])}
    device = next(model.parameters()).device
    done = sum(1 for i in range(n) if (folder / sample_name(i)).exists())
    bar = tqdm(total=n, initial=done, unit="img", desc=f"sampling ({run['method']})", disable=not progress)
    for chunk in range(math.ceil(n / batch_size)):
        first, last = chunk * batch_size, min(n, (chunk + 1) * batch_size)
        if all((folder / sample_name(i)).exists() for i in range(first, last)):
            continue
        generator = torch.Generator(device=device).manual_seed(chunk_seed(seed, chunk))
        # A chunk always draws batch_size images, so its images do not depend on n.
        labels = image_labels(model, first, batch_size, run.get("label"))
        images = sample(model, batch_size, tuple(run["image_shape"]), temperature=temperature,
                        generator=generator, method=run["method"], labels=labels)[: last - first]
        for offset, image in enumerate(images):
            name = sample_name(first + offset)
            if not (folder / name).exists():
                save_image(to_picture(image), folder / name)
                bar.update(1)
            entries[name] = {"file": name, "index": first + offset, "chunk": chunk,
                             "chunk_seed": chunk_seed(seed, chunk), "temperature": temperature,
                             "label": None if labels is None else int(labels[offset])}
        write_json(folder / RECORD, {**run, "model": label, "n_images": len(entries),
                                     "images": [entries[k] for k in sorted(entries)]})
    bar.close()


def _finish(folder: Path, n: int, run: dict[str, Any], label: str) -> list[Path]:
    """Drop images beyond ``n`` (a longer earlier run of the same settings), write the final record and grid."""
    paths = [folder / sample_name(i) for i in range(n)]
    for extra in folder.glob("sample_*.png"):
        if extra not in paths:
            extra.unlink()
    record = _read_record(folder / RECORD) or {}
    names = {p.name for p in paths}
    images = [e for e in record.get("images", []) if e["file"] in names]
    write_json(folder / RECORD, {**run, "model": label, "n_images": n, "images": sorted(images, key=lambda e: e["file"])})
    save_grid(paths[:64], folder / GRID, label)
    return paths


def save_grid(paths: Sequence[Path], out: Path, label: str) -> Path:
    """Up to 64 samples side by side, enlarged, with ``label`` on the picture."""
    import numpy as np

    from helpers.core.data import image_grid

    pictures = [Image.open(p).convert("RGB") for p in paths]
    arrays = torch.stack([torch.from_numpy(np.asarray(p).copy()).permute(2, 0, 1) for p in pictures])
    grid = image_grid(arrays, scale=max(1, 64 // max(pictures[0].size)))
    return save_image(label_below(grid, label), out)


def label_below(image: Image.Image, text: str) -> Image.Image:
    """A copy of ``image`` with a dark band underneath that holds ``text`` (nothing is covered)."""
    from PIL import ImageDraw, ImageFont

    size = max(8, min(image.height // 20, int(image.width / (0.6 * max(len(text), 1)))))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    band = size + 8
    out = Image.new("RGB", (image.width, image.height + band), (0, 0, 0))
    out.paste(image.convert("RGB"), (0, 0))
    ImageDraw.Draw(out).text((4, image.height + 3), text, fill=(255, 210, 0), font=font)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int_range(1, 100_000), help="how many images, 1-100000 (default: the profile's n_images)")
    parser.add_argument("--batch-size", type=int_range(1, 4096),
                        help="images drawn at once, 1-4096 (default: the profile's batch_size)")
    parser.add_argument("--temperature", type=float_range(0, 10, low_open=True),
                        help="T > 0: logits / T and logistic scales x T; 1 = the model's distribution, "
                             "lower = safer, higher = wilder (default: the profile's)")
    parser.add_argument("--method", choices=METHODS, help="fast (cached) or naive (one full pass per pixel)")
    parser.add_argument("--seed", type=int_range(0, 2**31 - 1), default=0, help="same seed, same images (default 0)")
    parser.add_argument("--out-dir", help="folder for the images, holding nothing else (default: outputs/samples); a folder with files this stage did not write is refused")
    parser.add_argument("--checkpoint", help="a checkpoint folder, or 'course' for the course's trained one "
                        "(default: your latest in outputs/checkpoints)")
    parser.add_argument("--label", type=int_range(0, 999),
                        help="draw only this class, e.g. --label 3 for threes (a class-conditional model)")


def run(args: argparse.Namespace) -> int:
    profile = get_profile(args.profile)
    print(profile.banner())
    if profile.is_tiny:
        print("note: the PixelCNN++ is the exception: it is really trained (briefly, on small offline data), "
              "so its samples are real results of a small model")
    settings = profile.settings("sample")
    n = settings["n_images"] if args.n is None else args.n
    batch_size = settings["batch_size"] if args.batch_size is None else args.batch_size
    temperature = settings["temperature"] if args.temperature is None else args.temperature
    method = args.method or settings["method"]
    _check(n, batch_size, temperature, method)  # before any model is loaded or trained
    if args.checkpoint:
        from helpers.train import load_checkpoint

        model, info = load_checkpoint(args.checkpoint, device=profile.device)
    else:
        from helpers.train import ensure_model

        model, info = ensure_model(profile)
    check_label(model, args.label)
    print(f"using {info.get('source', 'your')} checkpoint: {info['path']}")
    paths = generate_samples(model, n, args.out_dir, batch_size, temperature, method, args.seed,
                             info["image_shape"], profile=profile, info=info, label=args.label)
    asked = "" if args.label is None else f", all of class {args.label}"
    print(f"wrote {len(paths)} samples ({model_label(info, profile)}, temperature {temperature}, "
          f"{method} sampler, seed {args.seed}{asked}) and {GRID} to {paths[0].parent}")
    return 0
