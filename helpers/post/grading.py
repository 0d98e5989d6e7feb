"""Colour grading: 3D LUTs in the ``.cube`` format, matching a clip to its keyframe, and deflicker.

A LUT is read, written and applied with trilinear interpolation (what ffmpeg's ``lut3d`` does); the
project's own looks are made by :func:`make_lut` and shipped in ``data/luts/``. Matching the keyframe
transfers per-channel mean and spread; deflicker smooths brightness over time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from helpers.core.demo_images import data_dir  # data/ in a checkout, helpers/data when installed
from helpers.core.images import BadInputError, check_file
from helpers.core.outputs import atomic_path
from helpers.post.frames import Frames, as_frames, check_clip, pipe_ffmpeg, raw_to_frames
from helpers.post.interpolation import luma
from helpers.post.torch_path import apply_lut as apply_lut_torch, resolve_device


LUT_NAMES = {
    "identity": "changes nothing (a test of the machinery)",
    "warm": "a warmer white balance (more red, less blue), slightly richer colours, a gentle S-curve",
    "teal_orange": "the blockbuster look: shadows towards teal, highlights and skin towards orange",
}
SHIPPED_LUT_SIZE = 17  # points per axis of the .cube files in data/luts/ (17^3 = 4913 colours)


@dataclass
class Lut:
    """A 3D colour table: ``table[b, g, r]`` is the output RGB (0..1) for input (r, g, b) on a grid."""

    table: np.ndarray                   # N x N x N x 3, blue slowest, red fastest (the .cube order)
    title: str = ""
    domain_min: tuple[float, float, float] = (0.0, 0.0, 0.0)
    domain_max: tuple[float, float, float] = (1.0, 1.0, 1.0)

    @property
    def size(self) -> int:
        return self.table.shape[0]


def lut_grid(size: int) -> np.ndarray:
    """The input colours of a size-N LUT as ``table[b, g, r] = (r, g, b)`` in 0..1: the identity LUT."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 2 <= size <= 256:
        raise ValueError(f"a LUT needs 2 to 256 points per axis, got {size!r}")
    axis = np.linspace(0.0, 1.0, size)
    b, g, r = np.meshgrid(axis, axis, axis, indexing="ij")
    return np.stack([r, g, b], axis=-1)


def identity_lut(size: int = 17) -> Lut:
    """A LUT that changes nothing."""
    return Lut(lut_grid(size), title=f"identity {size}")


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def s_curve(x: np.ndarray, amount: float) -> np.ndarray:
    """``x - amount * sin(2 pi x) / (2 pi)``: keeps 0, 0.5 and 1; steeper (more contrast) in the mids."""
    return x - amount * np.sin(2 * np.pi * x) / (2 * np.pi)


def make_lut(name: str, size: int = SHIPPED_LUT_SIZE) -> Lut:
    """The project's looks, as pure functions of the input colour (so the .cube files can be rebuilt)."""
    if name not in LUT_NAMES:
        raise ValueError(f"unknown LUT {name!r}; the project's LUTs are {', '.join(LUT_NAMES)} (or give a .cube file)")
    rgb = lut_grid(size)
    y = (rgb @ np.array([0.2126, 0.7152, 0.0722]))[..., None]
    if name == "identity":
        return Lut(rgb, title=f"identity {size}")
    if name == "warm":
        out = rgb * np.array([1.06, 1.0, 0.90])                    # white balance towards warm
        out = y + 1.10 * (out - y)                                  # 10 % more saturation
        out = s_curve(np.clip(out, 0.0, 1.0), 0.15)                 # a little more contrast in the mids
    else:  # teal_orange
        shadows, highlights = 1.0 - _smoothstep(0.15, 0.6, y), _smoothstep(0.4, 0.9, y)
        out = rgb + shadows * np.array([-0.06, 0.02, 0.05]) + highlights * np.array([0.07, 0.02, -0.06])
        out = s_curve(np.clip(out, 0.0, 1.0), 0.2)
    return Lut(np.clip(out, 0.0, 1.0), title=f"pixels-to-motion {name}")


def read_cube(path: str | Path) -> Lut:
    """Read a 3D LUT in the Adobe/Resolve ``.cube`` text format; problems are one-line :class:`BadInputError`."""
    path = check_file(path, "a .cube LUT file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise BadInputError(path, "not a text file (a .cube LUT is text)") from None
    size, title, rows = None, "", []
    domain = {"DOMAIN_MIN": (0.0, 0.0, 0.0), "DOMAIN_MAX": (1.0, 1.0, 1.0)}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        key = words[0].upper()
        try:
            if key[0] in "+-.0123456789":
                if len(words) != 3:
                    raise ValueError
                rows.append([float(w) for w in words])
            elif key == "LUT_3D_SIZE":
                size = int(words[1])
            elif key == "LUT_1D_SIZE":
                raise BadInputError(path, "is a 1D LUT; only 3D LUTs (LUT_3D_SIZE) are supported")
            elif key in domain:
                domain[key] = tuple(float(w) for w in words[1:4])
                if len(domain[key]) != 3:
                    raise ValueError
            elif key == "TITLE":
                title = line[len(words[0]):].strip().strip('"')
            # other keywords (e.g. LUT_3D_INPUT_RANGE from some tools) are ignored
        except (ValueError, IndexError):
            raise BadInputError(path, f"line {number} is not a valid .cube line: {line[:60]!r}") from None
    if size is None:
        raise BadInputError(path, "no LUT_3D_SIZE line: not a 3D .cube LUT")
    if not 2 <= size <= 256:
        raise BadInputError(path, f"LUT_3D_SIZE {size} is out of range (2 to 256)")
    if len(rows) != size ** 3:
        raise BadInputError(path, f"has {len(rows)} colour rows; LUT_3D_SIZE {size} needs {size ** 3}")
    table = np.asarray(rows, dtype=np.float64).reshape(size, size, size, 3)
    if not np.all(np.isfinite(table)):
        raise BadInputError(path, "contains values that are not finite numbers")
    lo, hi = np.array(domain["DOMAIN_MIN"]), np.array(domain["DOMAIN_MAX"])
    if np.any(hi <= lo):
        raise BadInputError(path, "DOMAIN_MAX must be larger than DOMAIN_MIN on every channel")
    return Lut(table, title, tuple(lo), tuple(hi))


def write_cube(path: str | Path, lut: Lut) -> Path:
    """Write ``lut`` as a ``.cube`` file (red fastest, then green, then blue), atomically."""
    path = Path(path)
    lines = []
    if lut.title:
        lines.append(f'TITLE "{lut.title}"')
    lines.append(f"LUT_3D_SIZE {lut.size}")
    if lut.domain_min != (0.0, 0.0, 0.0) or lut.domain_max != (1.0, 1.0, 1.0):
        lines.append("DOMAIN_MIN " + " ".join(f"{v:g}" for v in lut.domain_min))
        lines.append("DOMAIN_MAX " + " ".join(f"{v:g}" for v in lut.domain_max))
    lines += [f"{r:.6f} {g:.6f} {b:.6f}" for r, g, b in lut.table.reshape(-1, 3)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def luts_dir() -> Path:
    """data/luts/ in a checkout of the repository (may not exist after a pip install)."""
    return data_dir() / "luts"


def write_project_luts(folder: str | Path | None = None) -> list[Path]:
    """(Re)write the project's shipped LUTs (every name but ``identity``) into ``folder`` (default data/luts/)."""
    folder = Path(folder) if folder else luts_dir()
    return [write_cube(folder / f"{name}.cube", make_lut(name)) for name in LUT_NAMES if name != "identity"]


def lut_path(name_or_path: str | Path) -> Path:
    """A .cube file for a project LUT name (data/luts/, or written to the cache) or an existing file."""
    from helpers.core.outputs import cache_dir

    text = str(name_or_path)
    if text in LUT_NAMES:
        shipped = luts_dir() / f"{text}.cube"
        if shipped.exists():
            return shipped
        cached = cache_dir() / "luts" / f"{text}.cube"
        if not cached.exists():
            write_cube(cached, make_lut(text))
        return cached
    path = Path(name_or_path)
    if path.suffix.lower() != ".cube" and not path.exists():
        raise ValueError(f"unknown LUT {text!r}; give a .cube file or one of {', '.join(LUT_NAMES)}")
    if not path.exists():
        raise BadInputError(path, "no such LUT file")
    return path


def load_lut(lut: Lut | str | Path) -> Lut:
    """A :class:`Lut` from itself, a project LUT name or a .cube path."""
    if isinstance(lut, Lut):
        return lut
    if str(lut) == "identity":
        return identity_lut()
    return read_cube(lut_path(lut))


def apply_lut(frames: Sequence, lut: Lut | str | Path, strength: float = 1.0, device: str | None = "auto") -> Frames:
    """Grade ``frames`` through a 3D LUT with trilinear interpolation (what ffmpeg's ``lut3d`` does).

    Each colour falls in one cell of the N^3 grid; its output is the weighted mean of the cell's 8
    corners (weights from the position inside the cell). ``strength`` mixes the graded frame with the
    original (0 = untouched, 1 = the full look). ``device``: ``numpy`` runs the loop below, one frame at
    a time; ``auto``, ``cpu`` or ``cuda`` run :func:`helpers.post.torch_path.apply_lut` (the same
    trilinear look-up by ``grid_sample``, batched; within 1 level of this one).
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"LUT strength must be between 0 and 1, got {strength}")
    path = resolve_device(device)
    lut = load_lut(lut)
    if path != "numpy":
        return apply_lut_torch(as_frames(frames), lut.table, lut.domain_min, lut.domain_max, strength, path)
    table, n = lut.table, lut.size
    lo, hi = np.array(lut.domain_min), np.array(lut.domain_max)
    out = []
    for frame in as_frames(frames):
        rgb = frame.astype(np.float64) / 255.0
        x = np.clip((rgb - lo) / (hi - lo), 0.0, 1.0) * (n - 1)
        i = np.minimum(np.floor(x).astype(int), n - 2)
        f = x - i
        r0, g0, b0 = i[..., 0], i[..., 1], i[..., 2]
        fr, fg, fb = f[..., 0:1], f[..., 1:2], f[..., 2:3]

        def corner(db: int, dg: int, dr: int) -> np.ndarray:
            return table[b0 + db, g0 + dg, r0 + dr]

        near_b = (corner(0, 0, 0) * (1 - fr) + corner(0, 0, 1) * fr) * (1 - fg) + \
                 (corner(0, 1, 0) * (1 - fr) + corner(0, 1, 1) * fr) * fg
        far_b = (corner(1, 0, 0) * (1 - fr) + corner(1, 0, 1) * fr) * (1 - fg) + \
                (corner(1, 1, 0) * (1 - fr) + corner(1, 1, 1) * fr) * fg
        graded = near_b * (1 - fb) + far_b * fb
        mixed = (1 - strength) * rgb + strength * graded
        out.append(np.clip(np.rint(mixed * 255.0), 0, 255).astype(np.uint8))
    return out


def apply_lut_ffmpeg(frames: Sequence, cube: str | Path) -> Frames:
    """The same grade by ffmpeg's ``lut3d`` filter (trilinear), in RGB: to check :func:`apply_lut`."""
    path = lut_path(cube)
    read_cube(path)  # a malformed file fails here, with a clear message
    frames = as_frames(frames)
    check_clip(frames)
    escaped = str(path.resolve()).replace("\\", "/").replace(":", "\\:").replace("'", "\\'")
    raw = pipe_ffmpeg(frames, 8.0, ["-vf", f"lut3d=file='{escaped}':interp=trilinear"])
    return raw_to_frames(raw, frames[0].shape)


def match_to_keyframe(frames: Sequence, keyframe, strength: float = 1.0) -> Frames:
    """Pull each frame's colours (per-channel mean and spread) towards the keyframe's.

    The same colour transfer that :func:`helpers.core.blend.match_colors` uses between SVD segments.
    """
    from helpers.core.blend import match_colors

    frames = as_frames(frames)
    check_clip(frames)
    return as_frames(match_colors(frames, keyframe, strength))


def brightness(frames: Sequence) -> np.ndarray:
    """Mean brightness of each frame, 0..255 (Rec. 709 luma)."""
    return np.array([luma(f).mean() * 255.0 for f in as_frames(frames)])


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` values (odd), the ends repeated to keep the length."""
    half = window // 2
    padded = np.pad(np.asarray(values, dtype=np.float64), half, mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def check_window(window: int) -> None:
    """Refuse a deflicker window that is not an odd number of frames >= 1."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1 or window % 2 == 0:
        raise ValueError(f"deflicker window must be an odd number of frames >= 1 (1 = off), got {window!r}")


def deflicker(frames: Sequence, window: int = 5) -> Frames:
    """Remove frame-to-frame brightness jumps: scale each frame so its mean brightness follows the
    moving average of its ``window`` neighbours (slow changes, e.g. a sunset, are kept)."""
    check_window(window)
    frames = as_frames(frames)
    check_clip(frames)
    if window == 1:
        return [f.copy() for f in frames]
    level = brightness(frames)
    target = moving_average(level, window)
    gains = target / np.maximum(level, 1e-6)
    return [np.clip(np.rint(f * g), 0, 255).astype(np.uint8) for f, g in zip(frames, gains)]
