"""Training PixelCNN++ (notebook 02, ``python -m helpers train``).

One loop serves the notebook and the command line:

- **Adam** with the original PixelCNN++ momenta (beta1 0.95, beta2 0.9995) and an
  **exponential learning-rate decay applied every step**: lr_t = lr * lr_decay**t.
- **EMA** (Polyak) weights, ``torch.optim.swa_utils.AveragedModel``; they are what we evaluate,
  sample from and hand to later notebooks.
- **Gradient clipping** (global norm), **bf16 autocast on a bf16-capable GPU only** (never on CPU,
  never fp16: the logistic-mixture likelihood is delicate), optional ``torch.compile``.
- **Class-conditional** when the data has classes (digits, MNIST, CIFAR-10) and ``conditional`` is on:
  the model learns p(image | class) (``PixelCNNpp(num_classes=...)``), so a learner can ask for a digit.
- **accelerate** runs the same loop on one CPU, one GPU or many (``accelerate launch -m helpers train``).
- **Checkpoints** that continue the same run: weights and EMA weights in safetensors, plus the
  optimizer state, every process's RNG states (torch CPU/CUDA, numpy, python), the step, the
  data order (epoch, batch) and the config; written atomically into ``outputs/checkpoints/pixelcnnpp``.
  Nothing is unpickled: the small state file is read with ``torch.load(weights_only=True)``.

``train(profile, steps=...)`` counts steps from the start of the run: ``steps=600`` after a
run that stopped at 300 trains 300 more.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from helpers.core.data import ImageData, image_grid, load_data, to_pixels
from helpers.core.cli import float_range, int_range
from helpers.core.outputs import atomic_dir, atomic_path, clean_stale, stage_dir
from helpers.core.profiles import Profile, get_profile

MODEL_KEYS = ("nr_resnet", "nr_filters", "nr_logistic_mix", "dropout")
# Settings that must match for a checkpoint to be resumed (the rest may change between sessions).
RUN_KEYS = MODEL_KEYS + ("dataset", "image_size", "in_channels", "seed", "num_classes")
ADAM_BETAS = (0.95, 0.9995)  # as in the original PixelCNN++ (openai/pixel-cnn, train.py)
CHECKPOINT_GLOB = "step_*"
STATE_FILE = "training_state.pt"


COURSE_CHECKPOINT = "course"  # the name that picks the course's shipped checkpoint (load_checkpoint, --checkpoint)


def course_checkpoint_dir() -> Path:
    """``data/checkpoints/pixelcnnpp-digits``: the class-conditional digits model the course trained and ships
    (made by ``python tools/train_course_checkpoint.py``; its command, settings and results in training.json)."""
    from helpers.core.demo_images import data_dir

    return data_dir() / "checkpoints" / "pixelcnnpp-digits"


def default_checkpoint_dir() -> Path:
    """``outputs/checkpoints/pixelcnnpp`` (or under ``$COURSE_OUTPUTS``)."""
    return stage_dir("checkpoints") / "pixelcnnpp"


def list_checkpoints(out_dir: str | Path | None = None) -> list[Path]:
    """Complete checkpoints in ``out_dir``, oldest first (half-written ones are never listed)."""
    folder = Path(out_dir) if out_dir else default_checkpoint_dir()
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob(CHECKPOINT_GLOB) if (p / "meta.json").exists() and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def latest_checkpoint(out_dir: str | Path | None = None) -> Path | None:
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


@dataclass
class Progress:
    """What the loop tells a callback at every evaluation."""

    step: int
    steps: int
    train_bpd: float
    test_bpd: float
    lr: float
    images_per_s: float
    history: list[dict[str, float]]
    image_shape: tuple[int, int, int]
    samples: torch.Tensor | None = None  # uint8 (n, C, H, W) from the EMA model, every few evaluations
    notes: list[str] = field(default_factory=list)


def train_settings(profile: Profile, **overrides: Any) -> dict[str, Any]:
    """The profile's ``pixelcnnpp`` block with ``overrides`` applied (unknown keys are an error)."""
    settings = profile.settings("pixelcnnpp")
    unknown = sorted(k for k, v in overrides.items() if k not in settings and v is not None)
    if unknown:
        raise ValueError(f"unknown training setting(s) {unknown}; known: {', '.join(settings)}")
    for key, value in overrides.items():
        old = settings.get(key)
        if value is None or old is None:
            continue
        if isinstance(old, bool) and not isinstance(value, bool):
            raise ValueError(f"setting {key}: expected True or False, got {value!r}")
        if isinstance(old, int) and not isinstance(old, bool) and not isinstance(value, int):
            raise ValueError(f"setting {key}: expected an integer, got {value!r}")
        if isinstance(old, float) and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                           and math.isfinite(value)):
            raise ValueError(f"setting {key}: expected a number, got {value!r}")
        if isinstance(old, str) and not isinstance(value, str):
            raise ValueError(f"setting {key}: expected text, got {value!r}")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("steps", "batch_size", "eval_every", "image_size", "nr_filters", "nr_logistic_mix"):
        if int(settings[key]) < 1:
            raise ValueError(f"{key} must be at least 1, got {settings[key]}")
    if not 0 < settings["lr"] < 1:
        raise ValueError(f"lr must be between 0 and 1, got {settings['lr']}")
    if not 0 <= settings["dropout"] < 1:
        raise ValueError(f"dropout must be in [0, 1), got {settings['dropout']}")
    check_ranges(settings)
    return settings


# setting -> (low, high, low_open, high_open, what it means): checked before any work (train_settings)
RANGES: dict[str, tuple[float, float, bool, bool, str]] = {
    "ema": (0, 1, False, True, "the EMA decay: the share of the old average kept each step"),
    "lr_decay": (0, 1, True, False, "the learning rate is multiplied by it every step; above 1 it grows until "
                                    "the loss is nan"),
    "clip_grad": (0, math.inf, False, True, "the gradient norm limit (0: no clipping)"),
    "nr_resnet": (1, math.inf, False, True, "gated resnets per block"),
    "keep_checkpoints": (1, math.inf, False, True, "checkpoints kept"),
    "samples_every": (0, math.inf, False, True, "evaluations between sample grids (0: none)"),
    "sample_n": (1, math.inf, False, True, "images in a sample grid"),
    "checkpoint_every": (1, math.inf, False, True, "steps between checkpoints"),
    "seed": (0, 2**31 - 1, False, False, "the random seed"),
}


def check_ranges(settings: dict[str, Any]) -> None:
    """A ValueError naming the setting for any value of :data:`RANGES` outside its range (``--set KEY=VALUE``)."""
    for key, (low, high, low_open, high_open, meaning) in RANGES.items():
        value = settings.get(key)
        if value is None:
            continue
        below = value <= low if low_open else value < low
        above = value >= high if high_open else value > high
        if below or above or not math.isfinite(value):
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise ValueError(f"setting {key} must be in {interval}, got {value!r} ({meaning}); "
                             f"change it (--set {key}=...) or leave the profile's value")
    if settings.get("in_channels") not in (1, 3):
        raise ValueError(f"setting in_channels must be 1 or 3, got {settings.get('in_channels')!r}")


def build_model(config: dict[str, Any]):
    """A fresh PixelCNN++ for ``config`` (a training config or checkpoint config)."""
    from helpers.pixelcnnpp import PixelCNNpp

    return PixelCNNpp(in_channels=config["in_channels"], num_classes=config.get("num_classes"),
                      **{k: config[k] for k in MODEL_KEYS})


def learning_rate(config: dict[str, Any], step: int) -> float:
    """Exponential decay applied every step, as in the original: lr * lr_decay ** step."""
    return config["lr"] * config["lr_decay"] ** step


def _rng_state() -> dict[str, Any]:
    """This process's random states, as tensors / lists / ints only (no pickle needed to read)."""
    numpy_state = np.random.get_state(legacy=False)
    version, python_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy_key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
        "numpy_pos": int(numpy_state["state"]["pos"]),
        "numpy_gauss": [int(numpy_state["has_gauss"]), float(numpy_state["gauss"])],
        "python": [version, list(python_state), gauss],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state({"bit_generator": "MT19937",
                         "state": {"key": state["numpy_key"].numpy().astype(np.uint32), "pos": state["numpy_pos"]},
                         "has_gauss": state["numpy_gauss"][0], "gauss": state["numpy_gauss"][1]})
    version, python_state, gauss = state["python"]
    random.setstate((version, tuple(python_state), gauss))


def save_checkpoint(folder: Path, model, ema, optimizer, meta: dict[str, Any], rng_states: list[dict]) -> Path:
    """Write one checkpoint folder atomically: it appears complete or not at all."""
    from safetensors.torch import save_model

    with atomic_dir(folder) as tmp:
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        save_model(ema.module, str(tmp / "ema.safetensors"), metadata={"format": "pt"})
        torch.save({"optimizer": optimizer.state_dict(), "ema_n_averaged": ema.n_averaged.cpu(),
                    "rng": rng_states}, tmp / STATE_FILE)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def read_meta(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a PixelCNN++ checkpoint folder ({err})") from None
    missing = [key for key in ("config", "image_shape", "step") if not isinstance(meta, dict) or key not in meta]
    if missing:
        raise damaged(path / "meta.json", f"has no {', '.join(repr(k) for k in missing)}")
    return meta


def damaged(file: Path, problem: str, cause: str = "this checkpoint is damaged (a copy or a save cut short?)"):
    """A one-line :class:`BadInputError` for a damaged checkpoint file, pointing to the checkpoint beside it."""
    from helpers.core.images import BadInputError

    folder = file.parent
    others = [p for p in list_checkpoints(folder.parent) if p != folder]
    hint = (f"the checkpoint {others[-1]} beside it may be intact: delete {folder} to use it" if others
            else "train again (python -m helpers train --no-resume)")
    return BadInputError(file, f"{problem}: {cause}; {hint}")


def read_checkpoint_file(file: Path, read: Callable[[Path], Any]) -> Any:
    """``read(file)``; any failure (truncated, foreign, missing) becomes :func:`damaged`'s one line."""
    try:
        return read(file)
    except Exception as err:  # safetensors' and torch's own errors for a truncated or foreign file
        problem = " ".join(str(err).split()).split(". ")[0][:200] or type(err).__name__  # its first sentence
        raise damaged(file, f"cannot be read ({problem})") from None


def check_finite_weights(model: torch.nn.Module, file: Path) -> None:
    """A one-line :class:`BadInputError` when ``file``'s weights hold nan or inf (a diverged run saved them)."""
    bad = [name for name, weight in model.state_dict().items()
           if weight.is_floating_point() and not bool(torch.isfinite(weight).all())]
    if bad:
        raise damaged(file, f"holds nan/inf weights ({len(bad)} tensors, e.g. {bad[0]})",
                      "the run that saved it diverged, and sampling from it would give black images")


def load_checkpoint(path: str | Path | None = None, device: str | torch.device = "cpu",
                    ema: bool = True) -> tuple[Any, dict[str, Any]]:
    """A trained PixelCNN++ in eval mode (EMA weights unless ``ema=False``) and its info.

    ``path``: a checkpoint folder, a folder of checkpoints (its latest is used), ``"course"`` for the
    course's shipped one (:func:`course_checkpoint_dir`), or ``None`` for the latest in
    ``outputs/checkpoints/pixelcnnpp``. Weights are read from safetensors.
    The info dict holds ``config``, ``image_shape`` (C, H, W), ``step``, ``test_bpd``,
    ``history``, ``path`` and ``source`` ("the course's" or "your", as in "your checkpoint").
    """
    from safetensors.torch import load_model

    course = str(path) == COURSE_CHECKPOINT
    path = course_checkpoint_dir() if course else Path(path) if path else default_checkpoint_dir()
    if not (path / "meta.json").exists():
        latest = latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"{path}: no PixelCNN++ checkpoint here (train one: python -m helpers train)")
        path = latest
    meta = read_meta(path)
    model = build_model(meta["config"])
    weights = path / ("ema.safetensors" if ema else "model.safetensors")
    read_checkpoint_file(weights, lambda file: load_model(model, str(file), device=str(device)))
    check_finite_weights(model, weights)
    model.to(device).eval()
    info = {"config": meta["config"], "image_shape": tuple(meta["image_shape"]), "step": meta["step"],
            "test_bpd": meta.get("test_bpd"), "history": meta.get("history", []), "path": path,
            "dataset": meta["config"].get("dataset"),
            "source": "the course's" if course or path == course_checkpoint_dir() else "your"}
    return model, info


def ensure_model(profile: Profile | str | None = None) -> tuple[Any, dict[str, Any]]:
    """The latest trained PixelCNN++ (EMA weights, eval mode), training a tiny one if none exists.

    For learners who open notebook 03 or 04 first: with no checkpoint in
    ``outputs/checkpoints/pixelcnnpp`` it trains the tiny-profile model for the tiny step budget
    (about a minute on a CPU) and says so in one line.
    """
    from helpers.core.standins import standin_notice

    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    if latest_checkpoint() is None:
        tiny = get_profile("tiny").settings("pixelcnnpp")
        standin_notice("PixelCNN++ checkpoint", default_checkpoint_dir(), f"training the small tiny-profile model on "
                       f"{tiny['dataset']} for {tiny['steps']} steps (about a minute on a CPU) as a stand-in")
        train(get_profile("tiny"), progress=False)
    return load_checkpoint(None, device=profile.device)


def fingerprint(module: torch.nn.Module) -> str:
    """A short hash of every weight and buffer: equal on all processes when they train one model."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _mixed_precision(profile: Profile) -> str:
    """bf16 autocast only on a GPU that has bf16 (Ampere or newer); full precision elsewhere."""
    return "bf16" if profile.device == "cuda" and profile.dtype_name == "bfloat16" else "no"


def _fresh_accelerator_state() -> None:
    """In a single process, forget an earlier Accelerator's device and precision (a notebook may
    train on the GPU after a CPU stand-in). Launched runs (WORLD_SIZE > 1) keep their state."""
    from accelerate.state import AcceleratorState

    if int(os.environ.get("WORLD_SIZE", "1")) == 1 and AcceleratorState._shared_state:
        AcceleratorState._reset_state(reset_partial_state=True)


def _prepare_data(data: ImageData | str | None, settings: dict[str, Any]) -> ImageData:
    if isinstance(data, ImageData):
        return data
    source = data or settings["dataset"]
    channels = settings["in_channels"] if str(source) == settings["dataset"] else None
    return load_data(source, settings["image_size"], channels=channels, seed=settings["seed"])


def _check_same_run(meta: dict[str, Any], config: dict[str, Any], folder: Path) -> None:
    old = meta["config"]
    changed = [f"{k} {old.get(k)!r} -> {config.get(k)!r}" for k in RUN_KEYS if old.get(k) != config.get(k)]
    if changed:
        raise ValueError(f"{folder} holds a different run ({'; '.join(changed)}): pass --no-resume "
                         "(resume=False) to start over there, or --out-dir for a separate folder")


@torch.no_grad()
def evaluate(model, loader, accelerator, image_shape: tuple[int, int, int]) -> float:
    """Mean test bits/dim of ``model`` over ``loader`` (all processes' shares gathered)."""
    from helpers.pixelcnnpp import discretized_mix_logistic_nll

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        x, labels = batch if isinstance(batch, (list, tuple)) else (batch, None)
        x = x.to(next(model.parameters()).dtype)
        with accelerator.autocast():
            params = model(x, labels)
        nll = accelerator.gather_for_metrics(discretized_mix_logistic_nll(x, params.float()))
        total += nll.double().sum().item()
        count += nll.numel()
    model.train(was_training)
    return total / (count * math.log(2) * math.prod(image_shape))


@dataclass
class _Run:
    """Everything one training run holds: set up by :func:`_start_run`, advanced by :func:`_loop`."""

    accelerator: Any
    config: dict[str, Any]
    image_shape: tuple[int, int, int]
    model: Any
    forward: Any
    ema: Any
    optimizer: Any
    train_loader: Any
    test_loader: Any
    out_dir: Path
    resume: bool
    start: Path | None
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    first_save: bool = True

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process


def train(profile: Profile | str | None = None, steps: int | None = None, data: ImageData | str | None = None,
          out_dir: str | Path | None = None, resume: bool = True,
          callback: Callable[[Progress], None] | None = None, progress: bool = True, **overrides: Any) -> Path:
    """Train PixelCNN++ up to ``steps`` total steps and return the last checkpoint's folder.

    ``profile``: a Profile or its name (default: the current one); its ``pixelcnnpp`` block gives
    every setting, ``overrides`` (e.g. ``batch_size=32, nr_filters=64``) replace some.
    ``data``: a dataset name, a folder of images, or an :class:`ImageData` (default: the profile's).
    ``resume``: continue the run in ``out_dir`` if it has checkpoints (same model, same data).
    ``callback(progress)`` is called at every evaluation (see :class:`Progress`; e.g. :class:`LivePlot`).
    One run writes a checkpoint folder at a time: a second one is refused, naming the first.
    """
    from helpers.core.outputs import writer_lock

    profile = profile if isinstance(profile, Profile) else get_profile(profile)
    settings = train_settings(profile, steps=steps, **overrides)
    settings.setdefault("seed", 0)
    out_dir = Path(out_dir) if out_dir else default_checkpoint_dir()
    if out_dir.exists() and not out_dir.is_dir():
        from helpers.core.images import BadInputError

        raise BadInputError(out_dir, "is a file, not a folder for checkpoints")
    first_process = int(os.environ.get("RANK", "0")) == 0  # `accelerate launch`: one lock for the whole run
    lock = writer_lock(out_dir, "the checkpoint folder", "wait for it to finish, or train into another --out-dir")
    with lock if first_process else contextlib.nullcontext():
        clean_stale(out_dir)  # what a finished or killed run was writing
        run = _start_run(profile, settings, data, out_dir, resume, progress)
        if run.step >= run.config["steps"]:
            if run.main:
                print(f"nothing to do: the run in {out_dir} is already at step {run.step} "
                      f"(asked for {run.config['steps']})")
            return run.start  # type: ignore[return-value]
        last = _loop(run, callback, progress)
    if run.main and progress:
        print(f"step {run.step}: test bits/dim {run.history[-1]['test_bpd']:.3f} (uniform over 256 levels: 8.000); "
              f"checkpoint {last}")
    return last


def _start_run(profile: Profile, settings: dict[str, Any], data, out_dir: Path, resume: bool, progress: bool) -> _Run:
    """Accelerator, data, model, EMA, optimizer and loaders, resumed from the latest checkpoint when asked."""
    from accelerate import Accelerator, DataLoaderConfiguration

    _fresh_accelerator_state()
    accelerator = Accelerator(
        cpu=profile.device == "cpu", mixed_precision=_mixed_precision(profile),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=settings["seed"]))
    dataset = _prepare_data(data, settings)
    config = {**settings, "dataset": dataset.name, "in_channels": dataset.image_shape[0],
              "image_size": dataset.image_shape[1],
              "num_classes": dataset.num_classes if settings.get("conditional") else None}
    if accelerator.is_main_process and progress:
        print(profile.banner())
        print(f"PixelCNN++ is trained here from scratch on {dataset!r}: its samples show what this model "
              "learned, not random weights.")
        for note in dataset.notes:
            print(f"note: {note}")
    start = latest_checkpoint(out_dir) if resume else None
    meta: dict[str, Any] = read_meta(start) if start else {}
    if start:
        _check_same_run(meta, config, start)
    run = _build(accelerator, config, dataset, start, out_dir, resume)
    if start:
        _restore(run, meta)
    return run


def _build(accelerator, config: dict[str, Any], dataset: ImageData, start: Path | None, out_dir: Path,
           resume: bool) -> _Run:
    """The model and its EMA (the same initial weights on every process, then a dropout stream per
    process), the optimizer and the loaders, prepared by accelerate."""
    from accelerate.utils import set_seed
    from safetensors.torch import load_model
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    torch.manual_seed(config["seed"])
    model = build_model(config)
    if start:
        read_checkpoint_file(start / "model.safetensors", lambda file: load_model(model, str(file)))
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config["ema"]), use_buffers=True)
    if start:
        read_checkpoint_file(start / "ema.safetensors", lambda file: load_model(ema.module, str(file)))
    set_seed(config["seed"], device_specific=True)

    def loader(images, shuffle: bool, drop_last: bool):  # own generators: never draws from dropout's RNG
        return torch.utils.data.DataLoader(images, batch_size=config["batch_size"], shuffle=shuffle,
                                           drop_last=drop_last, generator=torch.Generator().manual_seed(config["seed"]))

    if len(dataset.train) < config["batch_size"] * accelerator.num_processes:
        raise ValueError(f"batch size {config['batch_size']} x {accelerator.num_processes} process(es) is larger "
                         f"than the {len(dataset.train)} training images; use a smaller --batch-size")
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"], betas=ADAM_BETAS)
    labels = config.get("num_classes") is not None  # (image, class) batches for a conditional model
    model, optimizer, train_loader, test_loader = accelerator.prepare(
        model, optimizer, loader(dataset.train_dataset(labels), True, True),
        loader(dataset.test_dataset(labels), False, False))
    ema.to(accelerator.device)
    forward = torch.compile(model) if config["compile"] else model
    return _Run(accelerator, config, dataset.image_shape, model, forward, ema, optimizer, train_loader,
                test_loader, out_dir, resume, start)


def _restore(run: _Run, meta: dict[str, Any]) -> None:
    """Optimizer, EMA count, step, history and every process's RNG state from the checkpoint ``run.start``."""
    state = read_checkpoint_file(run.start / STATE_FILE,
                                 lambda file: torch.load(file, map_location="cpu", weights_only=True))
    run.optimizer.load_state_dict(state["optimizer"])
    run.ema.n_averaged.copy_(state["ema_n_averaged"])
    run.step, run.history = meta["step"], meta.get("history", [])
    processes = run.accelerator.num_processes
    if len(state["rng"]) == processes:
        _set_rng_state(state["rng"][run.accelerator.process_index])
    elif run.main:
        print(f"note: the run was saved by {len(state['rng'])} process(es), now {processes}: "
              "dropout draws fresh random numbers from here on")
    if run.main:
        print(f"resuming {run.start} at step {run.step} (test bits/dim {meta.get('test_bpd')})")


def _batches(run: _Run):
    """Endless batches in a fixed order: epoch e is shuffled with seed + e, wherever we resume."""
    epoch, skip = divmod(run.step, len(run.train_loader))
    while True:
        run.train_loader.set_epoch(epoch)
        # Skip by reading: accelerate's skip_first_batches forgets set_epoch's order in accelerate 1.14
        # (Colab's version in 2026-08), so a resumed run would see other batches than a straight one.
        yield from itertools.islice(run.train_loader, skip, None)
        epoch, skip = epoch + 1, 0


def _loop(run: _Run, callback: Callable[[Progress], None] | None, progress: bool) -> Path:
    """The training loop: a step per batch; evaluate, report and save every ``eval_every`` steps."""
    from tqdm.auto import tqdm

    total, config = run.config["steps"], run.config
    last = run.out_dir / f"step_{run.step:07d}" if run.start else None
    bar = tqdm(total=total, initial=run.step, desc="training PixelCNN++", unit="step",
               disable=not (run.main and progress))
    run.model.train()
    running, seen, t0 = 0.0, 0, time.perf_counter()
    with bar:  # closed (its line ended) however the loop ends, so a message after it starts a line of its own
        for batch in _batches(run):
            lr = learning_rate(config, run.step)
            loss = _step(run, batch, lr)
            if not math.isfinite(loss.item()):  # stop at the first one: nothing after it is saved
                raise ValueError(not_finite(f"the loss at step {run.step} is {loss.item()}", config, lr, last))
            running += loss
            seen += 1
            bar.update(1)
            if run.step % config["eval_every"] == 0 or run.step == total:
                test_bpd = _evaluate_and_report(run, running / seen, seen, t0, lr, callback, bar)
                if run.step % config.get("checkpoint_every", config["eval_every"]) == 0 or run.step == total:
                    last = _save(run, test_bpd)
                running, seen, t0 = 0.0, 0, time.perf_counter()
            if run.step >= total:
                break
    return last  # type: ignore[return-value]


def _step(run: _Run, batch, lr: float) -> torch.Tensor:
    """One optimisation step at learning rate ``lr`` on a batch of images (or of (images, classes));
    returns the batch's loss in bits per dimension."""
    from helpers.pixelcnnpp import discretized_mix_logistic_nll

    for group in run.optimizer.param_groups:
        group["lr"] = lr
    x, labels = batch if isinstance(batch, (list, tuple)) else (batch, None)
    x = x.to(next(run.model.parameters()).dtype)
    params = run.forward(x, labels)
    dims_ln2 = math.prod(run.image_shape) * math.log(2)
    loss = discretized_mix_logistic_nll(x, params.float()).mean() / dims_ln2  # bits per dimension
    run.accelerator.backward(loss)
    if run.config.get("clip_grad"):
        run.accelerator.clip_grad_norm_(run.model.parameters(), run.config["clip_grad"])
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.ema.update_parameters(run.accelerator.unwrap_model(run.model))
    run.step += 1
    return loss.detach().double()


def _evaluate_and_report(run: _Run, train_mean: torch.Tensor, seen: int, t0: float, lr: float,
                         callback: Callable[[Progress], None] | None, bar) -> float:
    """Test bits/dim of the EMA weights (and samples for the callback), added to the history and shown."""
    accelerator, config, total = run.accelerator, run.config, run.config["steps"]
    train_bpd = accelerator.reduce(train_mean, "mean").item()
    images_per_s = seen * config["batch_size"] * accelerator.num_processes / (time.perf_counter() - t0)
    cuda = [accelerator.device.index or 0] if accelerator.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # evaluation and samples never disturb training's RNG
        test_bpd = evaluate(run.ema.module, run.test_loader, accelerator, run.image_shape)
        evaluations = len(run.history) + 1
        samples = None
        every = config.get("samples_every", 0)
        if callback is not None and run.main and every and (evaluations % every == 0 or run.step == total):
            samples = sample_grid_images(run.ema.module, run.image_shape, config.get("sample_n", 16), config["seed"])
    run.history.append({"step": run.step, "train_bpd": train_bpd, "test_bpd": test_bpd, "lr": lr,
                        "images_per_s": images_per_s})
    bar.set_postfix(train_bpd=f"{train_bpd:.3f}", test_bpd=f"{test_bpd:.3f}")
    if callback is not None and run.main:
        callback(Progress(run.step, total, train_bpd, test_bpd, lr, images_per_s, list(run.history),
                          run.image_shape, samples))
    return test_bpd


def _save(run: _Run, test_bpd: float) -> Path:
    """A checkpoint of the run at this step (every process's RNG state; written by the main process)."""
    from accelerate.utils import gather_object

    accelerator, config, step = run.accelerator, run.config, run.step
    rng_states = gather_object([_rng_state()])
    replicas = gather_object([fingerprint(accelerator.unwrap_model(run.model))])
    folder = run.out_dir / f"step_{step:07d}"
    weights = itertools.chain(accelerator.unwrap_model(run.model).parameters(), run.ema.module.parameters())
    if not math.isfinite(test_bpd) or not all(bool(torch.isfinite(w).all()) for w in weights):
        last = latest_checkpoint(run.out_dir)
        raise ValueError(not_finite(f"at step {step} the weights or the test bits/dim ({test_bpd}) are not finite",
                                    config, learning_rate(config, step), last))
    if run.main:
        if not run.resume and run.first_save:
            for old in list_checkpoints(run.out_dir):  # --no-resume: this run replaces the old one
                shutil.rmtree(old, ignore_errors=True)
        run.first_save = False
        per_epoch = len(run.train_loader)
        data_state = {"epoch": step // per_epoch, "batch": step % per_epoch, "batch_size": config["batch_size"],
                      "num_processes": accelerator.num_processes, "data_seed": config["seed"]}
        meta_out = {"step": step, "test_bpd": test_bpd, "config": config, "image_shape": list(run.image_shape),
                    "data_state": data_state, "history": run.history, "torch": torch.__version__,
                    "replicas": {"processes": accelerator.num_processes, "fingerprints": replicas,
                                 "identical": len(set(replicas)) == 1},
                    "saved": time.strftime("%Y-%m-%d %H:%M:%S")}
        if len(set(replicas)) > 1:
            print(f"warning: the {len(replicas)} processes hold different weights at step {step}")
        save_checkpoint(folder, accelerator.unwrap_model(run.model), run.ema, run.optimizer, meta_out, rng_states)
        for old in list_checkpoints(run.out_dir)[:-config.get("keep_checkpoints", 2)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return folder


def not_finite(what: str, config: dict[str, Any], lr: float, last: Path | None) -> str:
    """The one line for a run stopped by a nan/inf: what happened, the settings to change, what was kept."""
    kept = f"the last good checkpoint {last} is kept" if last else "no checkpoint was saved"
    return (f"training stopped: {what} (learning rate {lr:.3g}, lr={config['lr']:g}, lr_decay={config['lr_decay']:g}, "
            f"clip_grad={config.get('clip_grad')}); lower --lr, keep lr_decay <= 1 or set clip_grad, then run "
            f"again; {kept}")


@torch.no_grad()
def sample_grid_images(model, image_shape: tuple[int, int, int], n: int = 16, seed: int = 0) -> torch.Tensor:
    """``n`` samples from ``model`` as uint8, with their own generator (the training RNG is untouched);
    a class-conditional model draws the classes in turn (0, 1, 2, ...)."""
    from helpers.pixelcnnpp import sample

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    images = sample(model, n, image_shape, generator=generator, method="fast")
    model.train(was_training)
    return to_pixels(images).cpu()


class LivePlot:
    """A notebook callback: bits/dim curves (train and test) and the latest samples, redrawn in place."""

    def __init__(self, title: str = "PixelCNN++ training"):
        self.title = title
        self.handle = None
        self.samples: torch.Tensor | None = None
        self.last: Progress | None = None

    def figure(self, progress: Progress):
        import matplotlib.pyplot as plt

        if progress.samples is not None:
            self.samples = progress.samples
        steps = [h["step"] for h in progress.history]
        fig, axes = plt.subplots(1, 2 if self.samples is not None else 1, figsize=(10 if self.samples is not None else 6, 3.6),
                                 squeeze=False)
        ax = axes[0, 0]
        ax.plot(steps, [h["train_bpd"] for h in progress.history], "o-", label="train (raw weights, mean of batches)")
        ax.plot(steps, [h["test_bpd"] for h in progress.history], "s-", label="test (EMA weights)")
        ax.axhline(8.0, color="grey", ls=":", label="uniform guess (8 bits)")
        ax.set_ylim(0, max(8.5, *[h["test_bpd"] + 0.5 for h in progress.history]))
        ax.set_xlabel("training step")
        ax.set_ylabel("bits per dimension (lower is better)")
        ax.set_title(f"{self.title}: step {progress.step}/{progress.steps}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        if self.samples is not None:
            axes[0, 1].imshow(image_grid(self.samples, scale=1), cmap="gray", vmin=0, vmax=255,
                              interpolation="nearest")
            axes[0, 1].set_title("samples from the EMA weights")
            axes[0, 1].axis("off")
        fig.tight_layout()
        return fig

    def __call__(self, progress: Progress) -> None:
        import matplotlib.pyplot as plt

        self.last = progress
        fig = self.figure(progress)
        try:
            from IPython.display import display

            if self.handle is None:
                self.handle = display(fig, display_id=True)
            else:
                self.handle.update(fig)
        except ImportError:
            pass
        plt.close(fig)


def save_sample_grid(samples: torch.Tensor, path: str | Path) -> Path:
    """Write uint8 samples as an enlarged PNG grid, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image_grid(samples, scale=4).save(tmp, format="PNG")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int_range(1, 10_000_000), help="total training steps of the run (resuming counts from its start)")
    parser.add_argument("--data", help="digits | photos | mnist | cifar10 | celeba | a folder of images "
                                       "(default: the profile's dataset)")
    parser.add_argument("--image-size", type=int_range(2, 1024), help="side of the square training images in pixels")
    parser.add_argument("--batch-size", type=int_range(1, 65_536), help="images per step per process")
    parser.add_argument("--lr", type=float_range(0, 1, low_open=True), help="initial learning rate (decays by lr_decay every step)")
    parser.add_argument("--seed", type=int_range(0, 2**31 - 1), help="seed for weights, data order and dropout")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="continue the run in --out-dir if it has checkpoints (default); --no-resume starts "
                             "over and replaces them at the first save")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the model (faster on a GPU after a slow first step)")
    parser.add_argument("--out-dir", help="checkpoint folder (default: outputs/checkpoints/pixelcnnpp)")
    parser.add_argument("--samples", type=int_range(0, 256), default=16, help="sample grid written beside the checkpoint (0: none)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other setting of the profile's pixelcnnpp block, e.g. --set nr_filters=64 "
                             "(repeatable)")


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``["nr_filters=64", "dropout=0.1"]`` -> ``{"nr_filters": 64, "dropout": 0.1}``."""
    import ast

    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set nr_filters=64")
        try:
            values[key.strip()] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            values[key.strip()] = text.strip()
    return values


def run(args: argparse.Namespace) -> int:
    profile = get_profile(args.profile)
    overrides = {**parse_sets(args.set), "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                 "compile": args.compile, "image_size": args.image_size}
    last = train(profile, steps=args.steps, data=args.data, out_dir=args.out_dir, resume=args.resume,
                 **overrides)
    from accelerate import PartialState

    if args.samples and PartialState().is_main_process:
        model, info = load_checkpoint(last, device=profile.device)
        with torch.random.fork_rng(devices=[]):
            samples = sample_grid_images(model, info["image_shape"], args.samples, info["config"]["seed"])
        path = save_sample_grid(samples, last.parent / f"samples_step_{info['step']:07d}.png")
        print(f"wrote {path}: {args.samples} samples from the EMA weights at step {info['step']}")
    return 0
