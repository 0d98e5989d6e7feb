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


def relative_to_outputs(path: str | os.PathLike) -> str:
    """``path`` as stored in a record: relative to the work folder when inside it (so a moved or
    copied folder still matches), else absolute. A relative ``path`` is taken as already relative."""
    path = Path(path)
    if not str(path) or not path.is_absolute():
        return path.as_posix() if str(path) else ""
    try:
        return path.resolve().relative_to(outputs_dir().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def from_outputs(text: str | os.PathLike) -> Path:
    """The inverse of :func:`relative_to_outputs`: a stored path made usable again."""
    path = Path(text)
    return path if path.is_absolute() else outputs_dir() / path


def is_partial(path: Path) -> bool:
    """A temporary file or folder of :func:`atomic_path` / :func:`atomic_dir` (``.name.XXXX.partial...``)."""
    return path.name.startswith(".") and ".partial" in path.name


def clean_stale(folder: str | os.PathLike) -> int:
    """Remove what an interrupted (even SIGKILLed) write left in ``folder``: ``.*.partial*`` files and
    folders. Returns how many were removed; a missing folder has none."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if is_partial(p)]
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return len(stale)


def layout_dirs() -> list[Path]:
    """The work folder and its stage folders (not created), parents first."""
    root = Path(os.environ["COURSE_OUTPUTS"]).expanduser() if os.environ.get("COURSE_OUTPUTS") \
        else (repo_root() or Path.cwd()) / "outputs"
    return [root, *(root / name for name in LAYOUT), root / "checkpoints" / "pixelcnnpp"]


def remove_new_empty_dirs(existed: set[Path]) -> None:
    """After a failed stage: remove the layout folders it created that are still empty."""
    for folder in reversed(layout_dirs()):
        if folder not in existed and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


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


def use_google_drive(folder: str = "pixels-to-motion", mount_point: str = "/content/drive") -> Path:
    """On Colab: mount Google Drive and keep all outputs there (survives a disconnect, and the next
    notebook, in a runtime of its own, finds what this one made).

    The setup cell of every notebook calls it unless the learner sets ``USE_DRIVE = False``.
    Sets ``COURSE_OUTPUTS`` for this process and returns the folder (``MyDrive/<folder>``).
    """
    try:
        from google.colab import drive  # type: ignore[import-not-found]
    except ImportError as err:
        raise RuntimeError("Google Drive can only be mounted from Colab; outputs stay in "
                           f"{outputs_dir()}") from err
    drive.mount(mount_point)
    path = Path(mount_point) / "MyDrive" / folder
    path.mkdir(parents=True, exist_ok=True)
    os.environ["COURSE_OUTPUTS"] = str(path)
    return path
