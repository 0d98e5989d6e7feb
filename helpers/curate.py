"""Curation (notebook 04, ``python -m helpers curate``): score samples, drop near-duplicates, keep the best.

Reads ``outputs/samples/*.png`` and writes ``outputs/curated/``: the kept images, ``scores.json``
(every sample's scores and why it was kept or dropped) and ``ranked_grid.png`` (a figure).

Four scores per sample, each cheap and explainable:

- **bits/dim** under the trained PixelCNN++ (EMA weights): the model's own surprise at the
  picture. Lower = more typical of what it learned. (Known flaw: flat, simple images are
  "likely" too; the other scores balance that.)
- **sharpness**: variance of the Laplacian of the grey image (0..255 scale). A blurred copy scores lower.
- **colourfulness** (Hasler and Suesstrunk, 2003): spread and strength of the opponent colours
  R-G and (R+G)/2-B. A grey image scores 0.
- **noise**: share of the picture's (non-constant) spectral energy above half the highest
  frequency. White noise is ~0.8; natural pictures are far lower.

They are combined into one number in [0, 1] (:func:`combined_score`); near-duplicates are found
with a perceptual hash (dHash, :func:`dhash`) and only the best of each group survives.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from helpers.core.images import BadInputError, load_image
from helpers.core.cli import int_range
from helpers.core.outputs import adopt, atomic_set, check_owned, relative_to_outputs, stage_dir
from helpers.core.profiles import Profile, get_profile

# Weights of the combined score (they sum to 1; likelihood drops out when no model is given).
WEIGHTS = {"likelihood": 0.4, "clean": 0.3, "sharpness": 0.2, "colour": 0.1}
# Colourfulness of a "moderately colourful" picture in Hasler and Suesstrunk's study (~33).
COLOUR_REFERENCE = 33.0
# High-frequency energy share of white noise (area outside half the Nyquist radius: 1 - pi/16).
WHITE_NOISE_RATIO = 1 - math.pi / 16
HASH_SIZE = 8             # dHash: 8x8 bits left-right + 8x8 bits top-bottom = 128 bits
HASH_BITS = 2 * HASH_SIZE**2
DUPLICATE_DISTANCE = 12   # two hashes within this many bits (of 128) count as near-duplicates


# --------------------------------------------------------------------------------------------
# The four scores
# --------------------------------------------------------------------------------------------

def as_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """An RGB image as float64 (H, W, 3) on the 0..255 scale."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return array


def grey(image: Image.Image | np.ndarray) -> np.ndarray:
    """Luma (ITU-R BT.601 weights) on the 0..255 scale, (H, W) float64."""
    rgb = as_array(image)
    return rgb @ np.array([0.299, 0.587, 0.114])


def laplacian(values: np.ndarray) -> np.ndarray:
    """The 4-neighbour Laplacian on the interior pixels (no padding: borders are not invented)."""
    return (values[:-2, 1:-1] + values[2:, 1:-1] + values[1:-1, :-2] + values[1:-1, 2:]
            - 4 * values[1:-1, 1:-1])


def sharpness(image: Image.Image | np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: high where edges are crisp, low when blurred."""
    return float(laplacian(grey(image)).var())


def colourfulness(image: Image.Image | np.ndarray) -> float:
    """Hasler and Suesstrunk's colourfulness M = sigma_rgyb + 0.3 * mu_rgyb (0 for any grey image)."""
    rgb = as_array(image)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    sigma = math.hypot(rg.std(), yb.std())
    mu = math.hypot(rg.mean(), yb.mean())
    return float(sigma + 0.3 * mu)


def noise_ratio(image: Image.Image | np.ndarray) -> float:
    """Share of spectral energy (DC removed) above half the Nyquist frequency, 0..1.

    White noise spreads its energy evenly, so it lands near ``1 - pi/16 ~ 0.80``; pictures keep
    most of theirs at low frequencies. A constant image has no energy at all: 0.
    """
    values = grey(image)
    values = values - values.mean()
    power = np.abs(np.fft.fft2(values)) ** 2
    fy = np.fft.fftfreq(values.shape[0])[:, None]
    fx = np.fft.fftfreq(values.shape[1])[None, :]
    radius = np.sqrt(fx**2 + fy**2) / 0.5  # 1.0 = Nyquist along an axis
    total = power.sum()
    if total <= 1e-12 * values.size:
        return 0.0
    return float(power[radius > 0.5].sum() / total)


@dataclass
class Likelihood:
    """The PixelCNN++ that scores samples, with what it expects (channels, size)."""

    model: Any
    image_shape: tuple[int, int, int]   # (C, H, W)
    device: str = "cpu"
    source: str = "your"                # whose checkpoint: "your" (the learner's) or "the course's"


def bits_per_dim(images: Sequence[Image.Image], likelihood: Likelihood, batch_size: int = 64) -> np.ndarray:
    """Each image's negative log-likelihood under the model, in bits per sub-pixel.

    Images are converted to the model's channels (grey or RGB) and size (Lanczos) first;
    8 bits/dim is what a uniform guess over 256 levels costs. A class-conditional model scores
    log p(x) = log (1/K) sum_y p(x | y), the image under any of its K classes (:func:`class_marginal_nll`).
    """
    import torch

    from helpers.pixelcnnpp import discretized_mix_logistic_nll

    channels, height, width = likelihood.image_shape
    batch = []
    for image in images:
        picture = image.convert("L" if channels == 1 else "RGB")
        if picture.size != (width, height):
            picture = picture.resize((width, height), Image.Resampling.LANCZOS)
        array = np.asarray(picture, dtype=np.float32).reshape(height, width, channels)
        batch.append(array.transpose(2, 0, 1) / 127.5 - 1.0)
    x_all = torch.from_numpy(np.stack(batch))
    out = []
    with torch.no_grad():
        for start in range(0, len(x_all), batch_size):
            x = x_all[start:start + batch_size].to(likelihood.device)
            nats = class_marginal_nll(likelihood.model, x)
            out.append(nats.double().cpu().numpy() / (channels * height * width * math.log(2)))
    return np.concatenate(out)


def class_marginal_nll(model, x):
    """Negative log-likelihood in nats of each image x (B, C, H, W): -log p(x), with p(x) = mean over the
    classes of p(x | class) for a class-conditional model (one pass per class), p(x) itself otherwise."""
    import torch

    from helpers.pixelcnnpp import discretized_mix_logistic_nll

    classes = getattr(model, "num_classes", None)
    if classes is None:
        return discretized_mix_logistic_nll(x, model(x))
    per_class = torch.stack([discretized_mix_logistic_nll(x, model(x, torch.full((len(x),), k, device=x.device)))
                             for k in range(classes)])
    return -(torch.logsumexp(-per_class.double(), dim=0) - math.log(classes))


# --------------------------------------------------------------------------------------------
# Combining the scores
# --------------------------------------------------------------------------------------------

def goodness(scores: dict[str, float], sharpness_reference: float) -> dict[str, float]:
    """Each score mapped to [0, 1], 1 = good.

    - likelihood: ``1 - bpd / 8`` (8 bits/dim = no better than uniform noise)
    - clean: ``1 - noise / 0.80`` (0.80 = white noise)
    - sharpness: ``s / (s + s_ref)`` (s_ref = the set's median), *times clean*: otherwise noise,
      all edges, would look like the sharpest picture of all
    - colour: ``M / (M + 33)`` (33 = "moderately colourful")
    """
    clean = float(np.clip(1 - scores["noise"] / WHITE_NOISE_RATIO, 0, 1))
    s = scores["sharpness"]
    out = {
        "clean": clean,
        "sharpness": clean * (s / (s + sharpness_reference) if s + sharpness_reference > 0 else 0.0),
        "colour": scores["colourfulness"] / (scores["colourfulness"] + COLOUR_REFERENCE),
    }
    if scores.get("bits_per_dim") is not None:
        out["likelihood"] = float(np.clip(1 - scores["bits_per_dim"] / 8, 0, 1))
    return out


def combined_score(good: dict[str, float]) -> float:
    """Weighted mean of the goodness values present (weights :data:`WEIGHTS`, renormalised)."""
    used = {k: w for k, w in WEIGHTS.items() if k in good}
    return float(sum(good[k] * w for k, w in used.items()) / sum(used.values()))


def score_images(images: Sequence[Image.Image], likelihood: Likelihood | None = None) -> list[dict[str, float]]:
    """Raw scores, goodness values and the combined score for every image."""
    scores = [{"sharpness": sharpness(im), "colourfulness": colourfulness(im), "noise": noise_ratio(im)}
              for im in images]
    if likelihood is not None:
        for entry, bpd in zip(scores, bits_per_dim(images, likelihood)):
            entry["bits_per_dim"] = float(bpd)
    reference = float(np.median([s["sharpness"] for s in scores])) if scores else 0.0
    for entry in scores:
        good = goodness(entry, reference)
        entry["goodness"] = good
        entry["combined"] = combined_score(good)
    return scores


# --------------------------------------------------------------------------------------------
# Near-duplicates
# --------------------------------------------------------------------------------------------

def dhash(image: Image.Image | np.ndarray, size: int = HASH_SIZE) -> np.ndarray:
    """Difference hash in both directions: shrink the grey image, then record whether each pixel is
    brighter than its right neighbour (size x size bits) and than the one below (size x size bits).

    ``2 * size**2`` bits that survive resizing, small colour shifts and mild noise. (The classic
    dHash looks only left-right, and then every picture with purely vertical structure, such as
    a sky gradient, hashes to zeros.)
    """
    values = grey(image).astype(np.float32)
    picture = Image.fromarray(values, mode="F")
    wide = np.asarray(picture.resize((size + 1, size), Image.Resampling.BILINEAR))
    tall = np.asarray(picture.resize((size, size + 1), Image.Resampling.BILINEAR))
    return np.concatenate([(wide[:, 1:] > wide[:, :-1]).ravel(), (tall[1:, :] > tall[:-1, :]).ravel()])


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    """Number of differing bits between two hashes."""
    return int(np.count_nonzero(a != b))


def near_duplicates(hashes: Sequence[np.ndarray], order: Sequence[int],
                    threshold: int = DUPLICATE_DISTANCE) -> dict[int, int]:
    """Walk the images best first; one within ``threshold`` bits of an earlier keeper is its duplicate.

    Returns {index of duplicate: index of the better image it repeats}.
    """
    keepers: list[int] = []
    duplicates: dict[int, int] = {}
    for index in order:
        twin = next((k for k in keepers if hamming(hashes[index], hashes[k]) <= threshold), None)
        if twin is None:
            keepers.append(index)
        else:
            duplicates[index] = twin
    return duplicates


# --------------------------------------------------------------------------------------------
# Samples in, curated folder out
# --------------------------------------------------------------------------------------------

def sample_paths(folder: str | Path | None = None) -> list[Path]:
    """The samples in ``folder`` and nothing else: never the contact sheet or another file.

    A folder written by the sampling stage has a ``samples.json``: exactly the files it lists.
    Any other folder (your own pictures): every visible .png except a contact sheet (``grid.png``).
    """
    from helpers.sample import GRID, RECORD

    folder = Path(folder) if folder else stage_dir("samples")
    record = folder / RECORD
    if record.exists():
        try:
            listed = [Path(str(e["file"])).name for e in json.loads(record.read_text())["images"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise BadInputError(record, f"cannot read the list of samples ({type(err).__name__}: {err})") from None
        return sorted(folder / name for name in set(listed) if (folder / name).is_file())
    return sorted(p for p in folder.glob("*.png") if not p.name.startswith(".") and p.name != GRID)


def sample_metadata(folder: Path) -> dict[str, dict[str, Any]]:
    """What the sampling stage recorded per image (seed, temperature, ...), keyed by file name.

    Reads any JSON in the folder that lists entries with a file name ("file", "name" or "path").
    """
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        shared = {k: v for k, v in data.items() if not isinstance(v, (list, dict))} if isinstance(data, dict) else {}
        entries = data if isinstance(data, list) else next(
            (v for v in data.values() if isinstance(v, list) and v and isinstance(v[0], dict)), []) \
            if isinstance(data, dict) else []
        for item in entries:
            if not isinstance(item, dict):
                continue
            name = item.get("file") or item.get("name") or item.get("path")
            if isinstance(name, str):
                found[Path(name).name] = {**shared, **item}
    return found


def ensure_samples(profile: Profile, folder: Path | None = None) -> list[Path]:
    """The samples in outputs/samples, or new ones from the sampling stage of notebook 03 when there
    are none (``helpers.sample.generate_samples``, which trains the tiny PixelCNN++ first if needed)."""
    folder = folder or stage_dir("samples")
    found = sample_paths(folder)
    if found:
        return found
    from helpers.core.standins import standin_notice
    from helpers.sample import generate_samples

    n = profile.settings("sample")["n_images"]
    standin_notice("samples", folder, f"sampling {n} now from the PixelCNN++ as stand-ins")
    generate_samples(out_dir=folder, profile=profile)
    return sample_paths(folder)


def load_likelihood(profile: Profile, with_info: bool = False):
    """The trained PixelCNN++ (EMA weights; trains the tiny one if there is none); with ``with_info``, also
    its checkpoint's info (path, step, ...)."""
    from helpers.train import ensure_model

    model, info = ensure_model(profile)
    likelihood = Likelihood(model, tuple(info["image_shape"]), profile.device, info.get("source", "your"))
    return (likelihood, info) if with_info else likelihood


def checkpoint_check(samples: Path, info: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint that scores (path, step, sha256 of its EMA weights), for the record; says in one line
    when the samples' record names another one (or the weights changed after the samples were drawn)."""
    from helpers.sample import RECORD, weights_sha256

    path = Path(info.get("path", ""))
    weights = path / "ema.safetensors"
    digest = weights_sha256(info)
    scorer = {"checkpoint": relative_to_outputs(path), "step": info.get("step"), "sha256": digest}
    try:
        drew = json.loads((samples / RECORD).read_text())
    except (OSError, ValueError):
        return scorer
    if not isinstance(drew, dict) or "checkpoint" not in drew:
        return scorer
    why = []
    if drew.get("checkpoint_sha256") and drew["checkpoint_sha256"] != digest:
        why.append("its weights differ")
    if Path(str(drew.get("checkpoint"))).name != path.name or drew.get("step") != info.get("step"):
        why.append(f"the samples name {drew.get('checkpoint')} at step {drew.get('step')}")
    elif weights.is_file() and weights.stat().st_mtime > (samples / RECORD).stat().st_mtime:
        why.append("its weights were written after the samples were drawn (trained again?)")
    if why:
        print(f"note: scoring with {scorer['checkpoint']} (step {scorer['step']}), not the checkpoint that drew "
              f"these samples: {'; '.join(why)}; bits/dim may mislead (sample again to match)")
        scorer["differs_from_samples"] = "; ".join(why)
    return scorer


@dataclass
class Curation:
    """What :func:`curate` decided, sample by sample (best first)."""

    records: list[dict[str, Any]]
    folder: Path
    kept: list[Path] = field(default_factory=list)

    def kept_records(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r["kept"]]


def judge_digits(images: Sequence[Image.Image], scores: list[dict[str, Any]]) -> None:
    """Add what the digit judge (:mod:`helpers.core.judge`) sees in each image: ``digit`` and ``digit_confidence``."""
    import torch

    from helpers.core.judge import judge

    grey_images = torch.from_numpy(np.stack([np.asarray(im.convert("L")) for im in images]))
    digits, confidences = judge(grey_images.unsqueeze(1))
    for entry, digit, confidence in zip(scores, digits, confidences):
        entry.update(digit=int(digit), digit_confidence=float(confidence))


def rank_and_select(names: Sequence[str], images: Sequence[Image.Image], scores: list[dict[str, Any]],
                    keep: int, threshold: int = DUPLICATE_DISTANCE, digit: int | None = None) -> list[dict[str, Any]]:
    """Sort by combined score, drop near-duplicates, keep the best ``keep``: one record per image.
    With ``digit``, only images the judge recognises as that digit (confidence >= 0.8) can be kept
    (the scores must hold ``digit`` and ``digit_confidence``: :func:`judge_digits`)."""
    from helpers.core.judge import THRESHOLD
    order = sorted(range(len(images)), key=lambda i: (-scores[i]["combined"], names[i]))
    hashes = [dhash(im) for im in images]
    duplicates = near_duplicates(hashes, order, threshold)
    records, kept = [], 0
    for rank, index in enumerate(order, 1):
        record = {"rank": rank, "file": names[index], **scores[index],
                  "dhash": "".join("1" if b else "0" for b in hashes[index])}
        if digit is not None and not (record["digit"] == digit and record["digit_confidence"] >= THRESHOLD):
            record.update(kept=False, reason=f"not judged a {digit} (the judge sees a {record['digit']}, "
                                             f"confidence {record['digit_confidence']:.2f})")
        elif index in duplicates:
            twin = duplicates[index]
            record.update(kept=False, reason=f"near-duplicate of {names[twin]} "
                                             f"({hamming(hashes[index], hashes[twin])} bits apart)")
        elif kept < keep:
            kept += 1
            record.update(kept=True, reason=f"kept: #{kept} by combined score")
        else:
            record.update(kept=False, reason=f"below the top {keep}")
        records.append(record)
    return records


def curate(samples: str | Path | None = None, out: str | Path | None = None, keep: int | None = None,
           profile: Profile | None = None, threshold: int | None = None,
           likelihood: Likelihood | None | bool = True, selected: Sequence[str] | None = None,
           digit: int | None = None) -> Curation:
    """Score every sample, drop near-duplicates, keep the best ``keep`` in ``out`` (default outputs/curated).

    ``likelihood``: True = load the trained PixelCNN++ (or train the tiny one); a
    :class:`Likelihood`; or False/None to score without bits/dim. ``selected``: file names chosen by
    hand (the notebook's widget); when given, exactly those are kept, in score order. ``digit``: keep
    only samples the digit judge recognises as that digit (0-9), so the video half animates it.
    """
    profile = profile or get_profile()
    settings = profile.settings("curate")
    keep = settings["keep"] if keep is None else keep
    threshold = settings.get("duplicate_bits", DUPLICATE_DISTANCE) if threshold is None else threshold
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    if digit is not None and not 0 <= int(digit) <= 9:
        raise ValueError(f"digit must be 0-9, got {digit}")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise BadInputError(out, "is a file, not a folder for the curated set")
    out_dir = Path(out) if out else stage_dir("curated")
    folder = Path(samples) if samples else stage_dir("samples")
    if samples is not None and not folder.is_dir():
        raise BadInputError(folder, "no such folder of samples")
    paths = sample_paths(folder) if samples is not None else ensure_samples(profile, folder)
    if not paths:
        raise BadInputError(folder, "no .png samples in this folder")
    images = [load_image(p)[0] for p in paths]  # bad files fail here, before anything is written
    names = [p.name for p in paths]
    adopt(out_dir, "curate", "scores.json",  # a curated set written before manifests: its own record names it
          lambda data: [r["file"] for r in data["records"] if r.get("kept")] + ["ranked_grid.png"])
    check_owned(out_dir, "curate", [*names, "scores.json", "ranked_grid.png"], "--out", inputs=paths)
    scored_with = None
    if likelihood is True:
        likelihood, scored_with = load_likelihood(profile, with_info=True)
        scored_with = checkpoint_check(folder, scored_with)
    scores = score_images(images, likelihood or None)
    if digit is not None:
        judge_digits(images, scores)
    records = rank_and_select(names, images, scores, keep, threshold, digit)
    if selected is not None:
        unknown = sorted(set(selected) - set(names))
        if unknown:
            raise ValueError(f"selected file(s) not among the samples: {', '.join(unknown)}")
        for record in records:
            chosen = record["file"] in selected
            record["kept"] = chosen
            record["reason"] = "chosen by hand" if chosen else "not chosen by hand"
    meta = sample_metadata(folder)
    for record in records:
        record["sample"] = meta.get(record["file"], {})
    result = Curation(records, out_dir)
    with atomic_set(out_dir, "curate") as tmp:  # beside other files: only its own previous set is replaced
        by_name = dict(zip(names, paths))
        for record in result.kept_records():
            shutil.copyfile(by_name[record["file"]], tmp / record["file"])
        (tmp / "scores.json").write_text(json.dumps({
            "samples": relative_to_outputs(folder), "keep": keep, "duplicate_distance_bits": threshold,
            "weights": WEIGHTS, "with_likelihood": likelihood is not None and likelihood is not False,
            "scored_with": scored_with,
            "likelihood_checkpoint": likelihood.source if isinstance(likelihood, Likelihood) else None,
            "digit": digit,
            "records": records}, indent=2, default=float) + "\n")
        figure = ranked_grid(records, dict(zip(names, images)), n=min(len(records), 32))
        figure.savefig(tmp / "ranked_grid.png", dpi=100, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(figure)
    result.kept = [out_dir / r["file"] for r in result.kept_records()]
    return result


def read_scores(folder: str | Path | None = None) -> dict[str, Any]:
    """``curated/scores.json`` as written by :func:`curate`."""
    folder = Path(folder) if folder else stage_dir("curated")
    path = folder / "scores.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no curation yet (run: python -m helpers curate)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BadInputError(path, f"not valid JSON ({err.msg})") from None


# --------------------------------------------------------------------------------------------
# Figures and the interactive selection
# --------------------------------------------------------------------------------------------

def ranked_grid(records: Sequence[dict[str, Any]], images: dict[str, Image.Image], n: int = 16, columns: int = 8):
    """A matplotlib figure: the first ``n`` records in rank order, each titled with its scores.

    Green title = kept, red = dropped (duplicate or below the top-k).
    """
    import matplotlib.pyplot as plt

    shown = list(records)[:n]
    rows = max(1, math.ceil(len(shown) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 2.55), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, record in zip(axes.ravel(), shown):
        ax.imshow(images[record["file"]], interpolation="nearest")
        bpd = f"bpd {record['bits_per_dim']:.2f}\n" if record.get("bits_per_dim") is not None else ""
        tag = " dup" if record["reason"].startswith("near-duplicate") else ""
        ax.set_title(f"#{record['rank']}{tag} score {record['combined']:.2f}\n{bpd}"
                     f"sharp {record['sharpness']:.0f} col {record['colourfulness']:.0f}\n"
                     f"noise {record['noise']:.2f}", fontsize=7,
                     color="darkgreen" if record["kept"] else "firebrick")
    figure.suptitle("Samples ranked by combined score (green: kept; red: dropped, 'dup' = near-duplicate)",
                    fontsize=10)
    figure.tight_layout()
    return figure


def selection_widget(records: Sequence[dict[str, Any]], images: dict[str, Image.Image], columns: int = 6,
                     scale: int = 4):
    """An ipywidgets grid of toggle buttons (accept/reject) with a sort menu.

    Returns ``(widget, selected)``: display ``widget``; ``selected()`` gives the accepted file names.
    Starts with the automatic choice accepted, so running it unattended (CI) changes nothing.
    """
    import io

    import ipywidgets as widgets

    state = {r["file"]: bool(r["kept"]) for r in records}
    by_name = {r["file"]: r for r in records}

    def tile(name: str):
        image = images[name]
        buffer = io.BytesIO()
        image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST).save(buffer, "PNG")
        record = by_name[name]
        button = widgets.ToggleButton(value=state[name], description="accept" if state[name] else "reject",
                                      tooltip=f"{name}: {record['reason']}",
                                      layout=widgets.Layout(width="110px"))

        def flip(change):
            state[name] = change["new"]
            button.description = "accept" if change["new"] else "reject"
            count.value = f"{sum(state.values())} accepted"

        button.observe(flip, names="value")
        label = widgets.HTML(f"<small>#{record['rank']} {record['combined']:.2f}</small>")
        return widgets.VBox([widgets.Image(value=buffer.getvalue(), format="png",
                                           layout=widgets.Layout(width="110px")), label, button])

    sort = widgets.Dropdown(options=[("combined score", "combined"), ("bits/dim (low first)", "bits_per_dim"),
                                     ("sharpness", "sharpness"), ("colourfulness", "colourfulness"),
                                     ("noise (low first)", "noise")], value="combined", description="sort by")
    count = widgets.Label(f"{sum(state.values())} accepted")
    grid = widgets.GridBox(layout=widgets.Layout(grid_template_columns=f"repeat({columns}, 120px)"))

    def redraw(*_):
        key = sort.value
        low_first = key in ("bits_per_dim", "noise")
        ordered = sorted(records, key=lambda r: (r.get(key) is None, (r.get(key) or 0) * (1 if low_first else -1)))
        grid.children = [tile(r["file"]) for r in ordered]

    sort.observe(redraw, names="value")
    redraw()
    widget = widgets.VBox([widgets.HBox([sort, count]), grid])
    return widget, lambda: [name for name, accepted in state.items() if accepted]


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", default=None, help="folder of sample PNGs (default: outputs/samples; "
                                                          "made from the trained model if empty)")
    parser.add_argument("--out", default=None, help="folder for the curated set (default: outputs/curated); other "
                        "files there stay: only the set curate wrote there before (.curate.files.json) is replaced, "
                        "and a file of the same name it did not write is refused (exit 2)")
    parser.add_argument("--keep", type=int_range(1, 100_000), default=None, help="how many to keep (default: the profile's)")
    parser.add_argument("--duplicate-bits", type=int_range(0, HASH_BITS), default=None,
                        help="dHash distance (of 128 bits) that counts as a near-duplicate (default: the profile's)")
    parser.add_argument("--no-likelihood", action="store_true", help="score without the PixelCNN++'s bits/dim")
    parser.add_argument("--digit", type=int_range(0, 9), default=None,
                        help="keep only samples the digit judge recognises as this digit (0-9)")


def run(args: argparse.Namespace) -> int:
    if args.duplicate_bits is not None and not 0 <= args.duplicate_bits <= HASH_BITS:
        raise ValueError(f"--duplicate-bits must be between 0 and {HASH_BITS}, got {args.duplicate_bits}")
    profile = get_profile(args.profile)
    print(profile.banner())
    result = curate(args.samples, args.out, args.keep, profile, args.duplicate_bits,
                    likelihood=not args.no_likelihood, digit=args.digit)
    dropped = sum(1 for r in result.records if r["reason"].startswith("near-duplicate"))
    scores = read_scores(result.folder)
    if scores.get("likelihood_checkpoint"):
        print(f"bits/dim from {scores['likelihood_checkpoint']} PixelCNN++ checkpoint")
    other = "" if args.digit is None else (
        f"; {sum(r['reason'].startswith('not judged') for r in result.records)} not judged a {args.digit}")
    print(f"scored {len(result.records)} samples; {dropped} near-duplicate(s) dropped{other}; "
          f"kept {len(result.kept)} in {result.folder} (scores.json, ranked_grid.png)")
    for record in result.kept_records()[:5]:
        bpd = f", {record['bits_per_dim']:.2f} bits/dim" if record.get("bits_per_dim") is not None else ""
        print(f"  #{record['rank']} {record['file']}: score {record['combined']:.3f}{bpd}")
    return 0
