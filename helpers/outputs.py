"""The work folder every stage reads from and writes to, and atomic writes.

Layout (under ``outputs/`` in the repository, or ``$COURSE_OUTPUTS``)::

    checkpoints/  samples/  curated/  keyframes/frame_0001.png ...  refined/frame_0001.png ...  videos/
    final/final.mp4

(``refined/`` holds notebook 05's Flux.1 versions of the keyframes; ``keyframes/`` is never overwritten by it.)

Every write goes to a temporary name in the same folder and is renamed into place only when
complete, so an interrupted cell never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

LAYOUT = ("checkpoints", "samples", "curated", "keyframes", "refined", "videos", "final")


def repo_root() -> Path | None:
    """The course repository containing the current folder, if any."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "helpers" / "__init__.py").exists() and (folder / "notebooks").is_dir():
            return folder
    return None


def outputs_dir() -> Path:
    """``$COURSE_OUTPUTS`` if set, else ``outputs/`` at the repository root (or here)."""
    if os.environ.get("COURSE_OUTPUTS"):
        root = Path(os.environ["COURSE_OUTPUTS"]).expanduser()
    else:
        root = (repo_root() or Path.cwd()) / "outputs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def stage_dir(name: str) -> Path:
    """One folder of the layout (created if missing), e.g. ``stage_dir("keyframes")``."""
    if name not in LAYOUT:
        raise ValueError(f"unknown outputs folder {name!r}; the layout is {', '.join(LAYOUT)}")
    path = outputs_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Where tiny twins and other rebuildable things live: ``$COURSE_CACHE`` or ~/.cache."""
    root = os.environ.get("COURSE_CACHE") or Path.home() / ".cache" / "pixels-to-motion"
    path = Path(root).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _usual_permissions(path: Path, mode: int) -> None:
    """Give ``path`` the permissions a plain ``open()``/``mkdir()`` would: ``mode`` minus the umask."""
    umask = os.umask(0)
    os.umask(umask)
    if path.exists():
        path.chmod(mode & ~umask)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only on success.

    The temporary name keeps the suffix, so tools that pick a format from it still work.
    On any error the temporary file is removed and ``final`` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".partial{final.suffix}", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _usual_permissions(tmp_path, 0o666)  # mkstemp makes files private (0600)
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_path` for a whole folder (e.g. ``save_pretrained``)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield tmp
        _usual_permissions(tmp, 0o777)  # mkdtemp makes folders private (0700)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return Path(path)


def save_image(image, path: str | os.PathLike) -> Path:
    """Save a PIL image atomically (format from the suffix)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        image.save(tmp, format=_pil_format(path.suffix))
    return path


def _pil_format(suffix: str) -> str:
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF"}.get(suffix.lower(), "PNG")


def use_google_drive(folder: str = "pixels-to-motion") -> Path:
    """On Colab: mount Google Drive and keep all outputs there (survives a disconnect).

    Opt-in: call it from a notebook when you want checkpoints to outlive the runtime.
    Sets ``COURSE_OUTPUTS`` for this process and returns the folder.
    """
    try:
        from google.colab import drive  # type: ignore[import-not-found]
    except ImportError as err:
        raise RuntimeError("Google Drive can only be mounted from Colab; outputs stay in "
                           f"{outputs_dir()}") from err
    drive.mount("/content/drive")
    path = Path("/content/drive/MyDrive") / folder
    path.mkdir(parents=True, exist_ok=True)
    os.environ["COURSE_OUTPUTS"] = str(path)
    return path
