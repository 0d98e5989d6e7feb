"""Export: MP4 (H.264 yuv420p faststart), GIF (palettegen + paletteuse), ProRes 422 HQ (.mov) and WebM (VP9),
each written atomically, and a table of file size and quality (PSNR against the frames) per file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from helpers.core.blend import psnr  # noqa: F401 - post.psnr: the one PSNR, peak 255 for these uint8 frames
from helpers.core.outputs import atomic_path
from helpers.post.frames import Frames, as_frames, check_clip, check_positive, pipe_ffmpeg


@dataclass(frozen=True)
class Format:
    suffix: str
    codec: str       # as ffmpeg reports it when reading the file back (helpers.core.video.probe)
    pix_fmt: str     # likewise
    use: str


FORMATS: dict[str, Format] = {
    "mp4": Format(".mp4", "h264", "yuv420p", "H.264 in MP4 with faststart: plays in every browser and phone"),
    "gif": Format(".gif", "gif", "bgra", "GIF, 256 colours from a palette made for this clip: plays anywhere "
                                         "without a player (ffmpeg reads its palette frames back as bgra)"),
    "prores": Format(".mov", "prores", "yuv422p10le", "ProRes 422 HQ, 10-bit: for editing software; large, "
                                                      "close to lossless"),
    "webm": Format(".webm", "vp9", "yuv420p", "VP9 in WebM: small files for the web"),
}


def parse_formats(text: str | Sequence[str]) -> list[str]:
    """``"mp4,gif"`` or a list -> checked format names, mp4 first and always included."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    return ["mp4"] + [n for n in dict.fromkeys(names) if n != "mp4"]


def shrink_to_width(frames: Sequence, width: int | None) -> Frames:
    """Frames scaled down (Lanczos, aspect kept, even sides) to at most ``width`` pixels wide; None = as they are."""
    frames = as_frames(frames)
    if width is None or frames[0].shape[1] <= width:
        return frames
    if width < 2:
        raise ValueError(f"gif_width must be at least 2 pixels (or None), got {width}")
    width -= width % 2
    h, w = frames[0].shape[:2]
    size = (width, max(2, round(h * width / w / 2) * 2))
    return [np.asarray(Image.fromarray(f).resize(size, Image.Resampling.LANCZOS)) for f in frames]


def _even(frames: Frames) -> Frames:
    """Pad odd sides by one repeated pixel: 4:2:0 and 4:2:2 video need even sizes."""
    h, w = frames[0].shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frames
    return [np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") for f in frames]


def export(frames: Sequence, path: str | Path, fps: float, fmt: str | None = None, crf: int = 18) -> Path:
    """Write ``frames`` as one of :data:`FORMATS` (default: from the file's suffix), atomically.

    - ``mp4``: :func:`helpers.core.video.write_mp4` (libx264, ``crf`` 18 = visually lossless-ish, yuv420p, faststart)
    - ``gif``: ``palettegen`` finds the 256 colours this clip needs, ``paletteuse`` maps to them with dithering
    - ``prores``: ``prores_ks`` profile 3 (422 HQ), 10-bit 4:2:2, in a .mov
    - ``webm``: ``libvpx-vp9`` in constant-quality mode (``-crf 32 -b:v 0``)
    """
    path = Path(path)
    if fmt is None:
        by_suffix = {f.suffix: name for name, f in FORMATS.items()}
        if path.suffix.lower() not in by_suffix:
            raise ValueError(f"{path}: unknown video format {path.suffix!r}; use {', '.join(by_suffix)}")
        fmt = by_suffix[path.suffix.lower()]
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    check_positive(fps, "fps", "frames per second")
    frames = as_frames(frames)
    check_clip(frames)
    if fmt == "mp4":
        from helpers.core.video import write_mp4

        return write_mp4(frames, path, fps=fps, crf=crf)
    args = {
        "gif": ["-vf", "split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer:bayer_scale=3",
                "-loop", "0"],
        "prores": ["-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le", "-vendor", "apl0"],
        "webm": ["-c:v", "libvpx-vp9", "-crf", "32", "-b:v", "0", "-pix_fmt", "yuv420p", "-row-mt", "1",
                 "-deadline", "good", "-cpu-used", "4"],
    }[fmt]
    if fmt != "gif":
        frames = _even(frames)
    with atomic_path(path) as tmp:
        pipe_ffmpeg(frames, fps, args + ["-f", {"gif": "gif", "prores": "mov", "webm": "webm"}[fmt]], str(tmp))
    return path


def quality_table(frames: Sequence, files: dict[str, Path]) -> list[dict[str, Any]]:
    """Per exported file: format, file size, codec and pixel format (read back), frames and PSNR vs ``frames``.

    PSNR is over all pixels of all frames (the mean squared error of the whole clip), after cropping
    any padding; frame counts must match (they do for every format here). A file stored smaller (a GIF
    scaled down by ``gif_width``) is compared with the source scaled the same way.
    """
    from helpers.core.video import probe, read_frames

    source = np.stack(as_frames(frames)).astype(np.float64)
    rows = []
    for fmt, path in files.items():
        info = probe(path)
        decoded, _ = read_frames(path)
        count = min(len(decoded), len(source))
        reference = source[:count]
        if decoded[0].shape[1] < source.shape[2] - 1:  # stored smaller, not just padded to even sides
            reference = np.stack(shrink_to_width(frames[:count], decoded[0].shape[1] - decoded[0].shape[1] % 2))
        h, w = reference.shape[1:3]
        back = np.stack(decoded[:count])[:, :h, :w].astype(np.float64)
        rows.append({"format": fmt, "file": str(path), "bytes": Path(path).stat().st_size,
                     "codec": info["codec"], "pix_fmt": info["pix_fmt"], "frames": len(decoded),
                     "size": [int(decoded[0].shape[1]), int(decoded[0].shape[0])],
                     "psnr_db": round(psnr(back, reference.astype(np.float64)), 2)})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`quality_table` as aligned text."""
    lines = [f"{'format':<8} {'size':>10} {'codec':<8} {'pix_fmt':<12} {'frames':>6} {'PSNR dB':>8}"]
    for r in rows:
        lines.append(f"{r['format']:<8} {r['bytes'] / 1024:>7.1f} KB {r['codec']:<8} {r['pix_fmt']:<12} "
                     f"{r['frames']:>6} {r['psnr_db']:>8.2f}")
    return "\n".join(lines)
