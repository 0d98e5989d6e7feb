"""Keyframes (notebook 04, ``python -m helpers keyframes``): choose, harmonise, upscale, name.

Reads the curated samples (``outputs/curated/scores.json``; runs curation first if there is
none) and writes ``outputs/keyframes/frame_0001.png ...`` plus ``provenance.json`` (which
sample each frame came from, its scores, seed and every operation applied) and ``palettes.png``.

1. **Choose** 1-5 keyframes, diverse yet coherent: greedy max-min distance between small grey
   thumbnails (structure), among candidates whose colour palette stays within
   ``max_palette_distance`` of the first (best-scored) keyframe's.
2. **Harmonise** colours: Reinhard colour transfer, i.e. each keyframe's per-channel mean and
   standard deviation in CIE Lab moved towards the first keyframe's (``colour_strength``).
3. **Upscale** from sample size to video size (Lanczos by default; nearest/bicubic to compare),
   then **pad** to the video's aspect ratio (blurred copy, reflection or edge), never stretch.

A 16x16 digit blown up to 144 pixels looks blocky: that is the honest result of the tiny
profile. Flux.1 (notebook 05) is the step that turns rough keyframes into rich ones.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageFilter

from helpers.core.images import BadInputError, load_image
from helpers.core.cli import float_range, int_range
from helpers.core.outputs import (adopt, atomic_set, check_owned, file_digest, relative_to_outputs, set_members,
                                   stage_dir, write_json)
from helpers.core.profiles import Profile, get_profile

UPSCALERS = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
             "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}
PADS = ("blur", "reflect", "edge")
FRAME_GLOB = "frame_[0-9][0-9][0-9][0-9].png"


def frame_name(index: int) -> str:
    """``frame_0001.png`` for index 1: zero-padded so files sort in order everywhere."""
    if not 1 <= index <= 9999:
        raise ValueError(f"frame index must be in 1..9999, got {index}")
    return f"frame_{index:04d}.png"


# --------------------------------------------------------------------------------------------
# Colour: sRGB <-> CIE Lab (D65), palettes, Reinhard transfer
# --------------------------------------------------------------------------------------------

_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_WHITE = np.array([0.95047, 1.0, 1.08883])  # D65


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB on the 0..255 scale (..., 3) -> CIE Lab (L 0..100, a/b about -128..127)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab -> sRGB on the 0..255 scale (float, clipped to the gamut)."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * _WHITE
    linear = np.clip(xyz @ np.linalg.inv(_RGB_TO_XYZ).T, 0, 1)
    c = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(c * 255.0, 0, 255)


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def palette(image: Image.Image, size: int = 5, seed: int = 0, max_pixels: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The image's ``size`` main colours: k-means in Lab. Returns (colours Lab (k, 3), weights (k,)),
    heaviest first. Fewer colours come back when the image has fewer distinct ones."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    pixels = rgb_to_lab(_rgb(image).reshape(-1, 3))
    rng = np.random.default_rng(seed)
    if len(pixels) > max_pixels:
        pixels = pixels[rng.choice(len(pixels), max_pixels, replace=False)]
    k = int(min(size, len(np.unique(np.round(pixels, 3), axis=0))))
    with threadpool_limits(1):  # a few thousand pixels: threads only add start-up cost (and contention)
        km = KMeans(n_clusters=k, n_init=1, random_state=seed).fit(pixels)  # k-means++ start
    weights = np.bincount(km.labels_, minlength=k) / len(pixels)
    order = np.argsort(-weights)
    return km.cluster_centers_[order], weights[order]


def palette_distance(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """How far apart two palettes are: each colour's distance (CIE76 dE) to the nearest colour of
    the other palette, weighted by its share, averaged both ways. 0 for equal palettes."""
    (ca, wa), (cb, wb) = a, b
    d = np.linalg.norm(ca[:, None, :] - cb[None, :, :], axis=-1)
    return float(0.5 * (wa @ d.min(axis=1) + wb @ d.min(axis=0)))


def colour_transfer(image: Image.Image, reference: Image.Image, strength: float = 1.0) -> Image.Image:
    """Reinhard et al. (2001) colour transfer in CIE Lab: per channel, shift and scale the image's
    values so their mean and standard deviation become the reference's; ``strength`` blends
    (0 = unchanged, 1 = full transfer). A channel with no spread (e.g. a/b of a grey image)
    only takes the reference's mean."""
    if not 0 <= strength <= 1:
        raise ValueError(f"colour strength must be in [0, 1], got {strength}")
    src, ref = rgb_to_lab(_rgb(image)), rgb_to_lab(_rgb(reference))
    out = lab_to_rgb(match_moments(src, ref, strength))
    return Image.fromarray(np.round(out).astype(np.uint8))


def match_moments(values: np.ndarray, reference: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Per channel (last axis): ``(x - mean) / std * std_ref + mean_ref``, blended by ``strength``.

    The arithmetic of Reinhard transfer, on arrays (any colour space). A channel without spread
    keeps its (zero) spread and only moves its mean.
    """
    flat, ref = values.reshape(-1, values.shape[-1]), reference.reshape(-1, reference.shape[-1])
    mu_s, sd_s, mu_r, sd_r = flat.mean(0), flat.std(0), ref.mean(0), ref.std(0)
    scale = np.where(sd_s > 1e-6, sd_r / np.maximum(sd_s, 1e-6), 1.0)
    moved = (values - mu_s) * scale + mu_r
    return (1 - strength) * values + strength * moved


def lab_stats(image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation in Lab."""
    lab = rgb_to_lab(_rgb(image)).reshape(-1, 3)
    return lab.mean(0), lab.std(0)


# --------------------------------------------------------------------------------------------
# Choosing keyframes
# --------------------------------------------------------------------------------------------

def structure_feature(image: Image.Image, size: int = 12) -> np.ndarray:
    """A grey thumbnail, zero-mean and unit-length: compares layout, not colour or brightness."""
    thumb = np.asarray(image.convert("L").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float64)
    thumb = thumb.ravel() - thumb.mean()
    norm = np.linalg.norm(thumb)
    return thumb / norm if norm > 1e-9 else thumb


def choose_keyframes(images: Sequence[Image.Image], scores: Sequence[float], n: int,
                     max_palette_distance: float = 40.0, palette_size: int = 5) -> tuple[list[int], list[dict[str, Any]]]:
    """Pick ``n`` images: the best-scored first, then greedily the one farthest (in structure) from
    all picked so far, among those whose palette is within ``max_palette_distance`` of the first's.

    If too few candidates pass the palette test, the closest palettes are admitted (and it says so).
    Returns (indices in order, one note per pick).
    """
    if n < 1:
        raise ValueError(f"n_keyframes must be at least 1, got {n}")
    if not images:
        raise ValueError("no images to choose keyframes from")
    n = min(n, len(images))
    features = np.stack([structure_feature(im) for im in images])
    palettes = [palette(im, palette_size) for im in images]
    first = int(np.argmax(scores))
    to_first = np.array([palette_distance(palettes[first], p) for p in palettes])
    coherent = [i for i in range(len(images)) if to_first[i] <= max_palette_distance and i != first]
    notes: list[dict[str, Any]] = [{"why": f"best combined score ({scores[first]:.3f})", "palette_distance": 0.0}]
    if len(coherent) < n - 1:
        extra = [i for i in np.argsort(to_first) if i != first and i not in coherent][: n - 1 - len(coherent)]
        coherent += [int(i) for i in extra]
        notes[0]["warning"] = (f"only {len(coherent) - len(extra)} other sample(s) within palette distance "
                               f"{max_palette_distance:g}; admitted the closest {len(extra)} beyond it")
    chosen = [first]
    while len(chosen) < n:
        distance = {i: min(float(np.linalg.norm(features[i] - features[j])) for j in chosen)
                    for i in coherent if i not in chosen}
        best = max(distance, key=lambda i: (distance[i], scores[i]))
        chosen.append(best)
        notes.append({"why": f"farthest in structure from those chosen (distance {distance[best]:.3f})",
                      "palette_distance": round(float(to_first[best]), 2)})
    return chosen, notes


# --------------------------------------------------------------------------------------------
# Upscaling and padding to the video's aspect ratio
# --------------------------------------------------------------------------------------------

def upscale(image: Image.Image, width: int, height: int, method: str = "lanczos") -> Image.Image:
    """Resize to fit inside ``width`` x ``height`` keeping the aspect ratio (no crop, no stretch)."""
    if method not in UPSCALERS:
        raise ValueError(f"unknown upscaler {method!r}; choose from {', '.join(UPSCALERS)}")
    scale = min(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, UPSCALERS[method])


def pad_to(image: Image.Image, width: int, height: int, mode: str = "blur") -> Image.Image:
    """Centre ``image`` on a ``width`` x ``height`` canvas and fill the rest.

    ``blur``: a heavily blurred copy scaled to cover the canvas (the familiar look of vertical
    video on a wide screen); ``reflect``: the picture mirrored at its borders; ``edge``: its
    border pixels repeated.
    """
    if mode not in PADS:
        raise ValueError(f"unknown padding {mode!r}; choose from {', '.join(PADS)}")
    if image.width > width or image.height > height:
        raise ValueError(f"image {image.width}x{image.height} is larger than the canvas {width}x{height}")
    left, top = (width - image.width) // 2, (height - image.height) // 2
    if mode == "blur":
        scale = max(width / image.width, height / image.height)
        cover = image.resize((math.ceil(image.width * scale), math.ceil(image.height * scale)), Image.Resampling.BILINEAR)
        cx, cy = (cover.width - width) // 2, (cover.height - height) // 2
        canvas = cover.crop((cx, cy, cx + width, cy + height)).filter(ImageFilter.GaussianBlur(max(width, height) / 40))
        canvas.paste(image, (left, top))
        return canvas
    array = np.asarray(image.convert("RGB"))
    widths = ((top, height - image.height - top), (left, width - image.width - left), (0, 0))
    if mode == "reflect":  # mirror image of the border, repeated as often as the canvas needs
        return Image.fromarray(np.pad(array, widths, mode="symmetric"))
    return Image.fromarray(np.pad(array, widths, mode="edge"))


# --------------------------------------------------------------------------------------------
# Curated set in, keyframes folder out
# --------------------------------------------------------------------------------------------

MAX_SIDE = 2048  # the largest side any video model of the course takes


def keyframe_settings(profile: Profile, **overrides: Any) -> dict[str, Any]:
    settings = profile.settings("keyframes")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if settings["width"] % 16 or settings["height"] % 16 or not (64 <= settings["width"] <= MAX_SIDE
                                                                 and 64 <= settings["height"] <= MAX_SIDE):
        raise ValueError(f"keyframe size must be multiples of 16 from 64 to {MAX_SIDE}, got "
                         f"{settings['width']}x{settings['height']}")
    if not 1 <= settings["n_keyframes"] <= 5:
        raise ValueError(f"n_keyframes must be between 1 and 5, got {settings['n_keyframes']}")
    upscale(Image.new("RGB", (1, 1)), 1, 1, settings["upscaler"])  # name checks with one clear message
    if settings["pad"] not in PADS:
        raise ValueError(f"unknown padding {settings['pad']!r}; choose from {', '.join(PADS)}")
    if not 0 <= settings["colour_strength"] <= 1:
        raise ValueError(f"colour_strength must be in [0, 1], got {settings['colour_strength']}")
    return settings


def curated_candidates(folder: Path, profile: Profile) -> tuple[list[dict[str, Any]], list[Image.Image]]:
    """Kept records from ``curated/scores.json`` and their images (curating first if needed)."""
    from helpers.curate import curate, read_scores

    if not (folder / "scores.json").exists():
        print(f"note: no curated samples in {folder} yet; running curation first")
        curate(out=folder, profile=profile)
    data = read_scores(folder)
    records = [r for r in data.get("records", []) if r.get("kept")]
    if not records:
        raise BadInputError(folder / "scores.json", "no kept samples listed")
    images = [load_image(folder / r["file"])[0] for r in records]
    return records, images


def make_keyframes(curated: str | Path | None = None, out: str | Path | None = None,
                   profile: Profile | None = None, **overrides: Any) -> list[Path]:
    """The whole stage: choose, colour-match, upscale, pad, write ``frame_0001.png ...`` + provenance."""
    profile = profile or get_profile()
    s = keyframe_settings(profile, **overrides)
    folder = Path(curated) if curated else stage_dir("curated")
    if curated is not None and not folder.is_dir():
        raise BadInputError(folder, "no such folder of curated samples")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise BadInputError(out, "is a file, not a folder for keyframes")
    records, images = curated_candidates(folder, profile)
    chosen, notes = choose_keyframes(images, [r["combined"] for r in records], s["n_keyframes"],
                                     s["max_palette_distance"], s["palette_size"])
    reference = images[chosen[0]]
    out_dir = Path(out) if out else stage_dir("keyframes")
    adopt(out_dir, "keyframes", "provenance.json",  # keyframes written before manifests: named by their record
          lambda data: [f["frame"] for f in data["frames"]] + ["palettes.png"] if data.get("refined") is False else [])
    check_owned(out_dir, "keyframes", [frame_name(i + 1) for i in range(len(chosen))] + list(OWN_FILES), "--out",
                inputs=[folder / records[i]["file"] for i in chosen])
    earlier = [p.name for p in set_members(out_dir, "keyframes") if p.match(FRAME_GLOB)]
    if earlier:
        print(f"replacing the {len(earlier)} keyframe(s) of an earlier run in {out_dir}")
    frames, provenance, before, after = [], [], [], []
    for number, (index, note) in enumerate(zip(chosen, notes), 1):
        record, image = records[index], images[index]
        operations: list[dict[str, Any]] = []
        if number > 1 and s["colour_strength"] > 0:
            image = colour_transfer(image, reference, s["colour_strength"])
            operations.append({"op": "colour_transfer", "method": "Reinhard mean/std in CIE Lab",
                               "reference": frame_name(1), "strength": s["colour_strength"]})
        before.append(images[index])
        after.append(image)
        small = image.size
        image = upscale(image, s["width"], s["height"], s["upscaler"])
        operations.append({"op": "upscale", "method": s["upscaler"], "from": list(small), "to": list(image.size)})
        if image.size != (s["width"], s["height"]):
            operations.append({"op": "pad", "mode": s["pad"], "to": [s["width"], s["height"]]})
            image = pad_to(image, s["width"], s["height"], s["pad"])
        frames.append((frame_name(number), image))
        sample = record.get("sample", {})
        provenance.append({
            "frame": frame_name(number), "sample": record["file"], "curated": relative_to_outputs(folder / record["file"]),
            "seed": sample.get("seed"), "steps": sample.get("step") or sample.get("steps"),
            "checkpoint": sample.get("checkpoint"), "sample_info": sample,
            "scores": {k: record.get(k) for k in ("combined", "bits_per_dim", "sharpness", "colourfulness", "noise")},
            "chosen_because": note, "operations": operations,
        })
    figure = palette_figure(before, after, s["palette_size"])
    _write(out_dir, frames, provenance, profile, s, figure)
    return [out_dir / name for name, _ in frames]


OWN_FILES = ("provenance.json", "palettes.png")  # written beside the frames, in the same set


def _write(out_dir: Path, frames: list[tuple[str, Image.Image]], provenance: list[dict[str, Any]],
           profile: Profile, settings: dict[str, Any], figure) -> None:
    """Write the frames, provenance and palettes as one set: it replaces the stage's previous set (frames left
    from an earlier, longer run, or stand-ins, go) and never a file the stage did not write."""
    import matplotlib.pyplot as plt

    with atomic_set(out_dir, "keyframes") as staging:
        for name, image in frames:
            image.save(staging / name)
        figure.savefig(staging / "palettes.png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        _write_provenance(staging, provenance, profile, settings)


def _write_provenance(staging: Path, provenance: list[dict[str, Any]], profile: Profile,
                      settings: dict[str, Any]) -> None:
    if profile.is_tiny:
        note = ("tiny profile: keyframes are small samples (from a briefly trained 16x16 PixelCNN++ in this "
                "profile) upscaled many times; they look blocky, which is the honest result")
    else:
        note = ""
    write_json(staging / "provenance.json", {"profile": profile.name, "settings": settings, "refined": False,
                                             "note": note, "frames": provenance})


def animation_keyframes(standins: bool = True, verbose: bool = True) -> list[Path]:
    """The pictures later stages animate (notebooks 06, 07, 10, ``animate``, ``post``, the app), in order.

    The Flux.1-refined frames in ``outputs/refined/`` when they exist, come from real weights (their
    provenance says ``random_weights: false``) and were made from the keyframes now in ``outputs/keyframes/``;
    otherwise the keyframes themselves (``standins=True``: stand-ins from the demo images when there are
    none). ``verbose``: print one line saying which, and why.
    """
    from helpers.core.standins import ensure_keyframes, keyframe_paths

    keyframes = stage_dir("keyframes")
    refined_dir = stage_dir("refined")
    refined = sorted(refined_dir.glob(FRAME_GLOB))
    why = "no refined keyframes (notebook 05 / `python -m helpers refine` makes them)"
    if refined:
        record = read_provenance(refined_dir)
        current = {p.name: p for p in keyframe_paths()}
        sources = {f.get("frame"): f.get("source_sha256") for f in record.get("frames", [])}
        if record.get("random_weights", True):
            why = f"the refined ones in {refined_dir} come from random weights (noise, not worth animating)"
        elif sorted(current) != [p.name for p in refined] or any(
                sources.get(name) != file_digest(path) for name, path in current.items()):
            why = f"the refined ones in {refined_dir} were made from other keyframes (refine again)"
        else:
            if verbose:
                print(f"animating the {len(refined)} Flux.1-refined keyframe(s) in {refined_dir} (real weights)")
            return refined
    paths = ensure_keyframes() if standins else keyframe_paths()
    if verbose and paths:
        from helpers.core.standins import is_standin

        kind = " (STAND-INS from the demo images, not your work)" if all(is_standin(p) for p in paths) else ""
        print(f"animating the {len(paths)} keyframe(s){kind} in {keyframes}: {why}")
    return paths


def read_provenance(folder: str | Path | None = None) -> dict[str, Any]:
    folder = Path(folder) if folder else stage_dir("keyframes")
    path = folder / "provenance.json"
    if not path.exists():
        return {"frames": []}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BadInputError(path, f"not valid JSON ({err.msg})") from None


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def palette_figure(before: Sequence[Image.Image], after: Sequence[Image.Image], size: int = 5):
    """Each keyframe before and after colour transfer, with its palette as a bar of swatches
    (widths = share of pixels)."""
    import matplotlib.pyplot as plt

    n = len(before)
    figure, axes = plt.subplots(n, 4, figsize=(9, 1.9 * n), squeeze=False,
                                gridspec_kw={"width_ratios": [1, 2, 1, 2]})
    for row, (b, a) in enumerate(zip(before, after)):
        for col, (image, label) in enumerate(((b, "before"), (a, "after"))):
            axes[row, 2 * col].imshow(image, interpolation="nearest")
            axes[row, 2 * col].set_title(f"frame {row + 1} {label}", fontsize=8)
            axes[row, 2 * col].axis("off")
            colours, weights = palette(image, size)
            left = 0.0
            bar = axes[row, 2 * col + 1]
            for colour, weight in zip(lab_to_rgb(colours) / 255, weights):
                bar.barh(0, weight, left=left, color=colour, edgecolor="black", linewidth=0.5)
                left += weight
            bar.set_xlim(0, 1)
            bar.set_yticks([])
            bar.set_xlabel("share of pixels", fontsize=7)
            bar.set_title(f"palette {label} (k-means in Lab, k={size})", fontsize=8)
            bar.tick_params(labelsize=6)
    figure.suptitle("Keyframe palettes before and after colour transfer to frame 1", fontsize=10)
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--curated", default=None, help="folder of curated samples with scores.json "
                                                          "(default: outputs/curated; curated first if missing)")
    parser.add_argument("--out", default=None, help="keyframes folder (default: outputs/keyframes); other files "
                        "there stay: only the set this stage wrote there before (.keyframes.files.json) is "
                        "replaced, and a file of the same name it did not write is refused (exit 2)")
    parser.add_argument("-n", "--n-keyframes", type=int_range(1, 5), default=None, help="how many keyframes, 1-5")
    parser.add_argument("--width", type=int_range(64, MAX_SIDE), default=None,
                        help=f"video width (multiple of 16, 64-{MAX_SIDE})")
    parser.add_argument("--height", type=int_range(64, MAX_SIDE), default=None,
                        help=f"video height (multiple of 16, 64-{MAX_SIDE})")
    parser.add_argument("--upscaler", choices=list(UPSCALERS), default=None, help="resampling filter")
    parser.add_argument("--pad", choices=list(PADS), default=None, help="how to fill the sides for 16:9")
    parser.add_argument("--colour-strength", type=float_range(0, 1), default=None, help="0 = no colour transfer, 1 = full")


def run(args: argparse.Namespace) -> int:
    profile = get_profile(args.profile)
    print(profile.banner())
    paths = make_keyframes(args.curated, args.out, profile, n_keyframes=args.n_keyframes, width=args.width,
                           height=args.height, upscaler=args.upscaler, pad=args.pad,
                           colour_strength=args.colour_strength)
    folder = paths[0].parent
    print(f"wrote {len(paths)} keyframe(s) to {folder}: {', '.join(p.name for p in paths)} "
          f"(+ provenance.json, palettes.png)")
    note = read_provenance(folder).get("note")
    if note:
        print(f"note: {note}")
    return 0
