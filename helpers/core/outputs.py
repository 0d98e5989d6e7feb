"""The work folder every stage reads from and writes to, and atomic writes.

Layout (under ``outputs/`` in the repository, or ``$COURSE_OUTPUTS``)::

    checkpoints/  samples/  curated/  keyframes/frame_0001.png ...  refined/frame_0001.png ...  videos/
    final/final.mp4

(``refined/`` holds notebook 05's Flux.1 versions of the keyframes; ``keyframes/`` is never overwritten by it.)

Every write goes to a temporary name in the same folder and is renamed into place only when
complete, so an interrupted cell never leaves a half-written file behind. The temporary name holds
its writer's process id, so a later run removes only what a finished (or killed) process left, never
what a running one is still writing. A set of files that belongs together (``final.mp4`` with its GIF
and ``final.json``; a stage's folder of frames) is written into a staging folder and swapped in whole
(:func:`atomic_set`); the set is named by its owner's manifest (``.OWNER.files.json``), so a stage replaces
only files it wrote and never one of the user's beside them (:func:`check_owned`); a crash-recovery plan
is checked before anything moves. One writer per folder at a time (:func:`writer_lock`). Problems of the machine rather than of the input
(the work folder is a file, the disk is full) are :class:`EnvironmentProblem`: one line naming the
path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

LAYOUT = ("checkpoints", "samples", "curated", "keyframes", "refined", "videos", "final")


def repo_root() -> Path | None:
    """The course repository containing the current folder, if any."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "helpers" / "__init__.py").exists() and (folder / "notebooks").is_dir():
            return folder
    return None


class EnvironmentProblem(Exception):
    """The machine, not the input: a folder that is a file, a full disk, a folder another run writes.
    ``str(err)`` is one line: 'PATH: problem; fix'."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str):
        self.path, self.problem, self.fix = str(path), problem, fix
        super().__init__(f"{path}: {problem}; {fix}")


def _make_folder(path: Path, what: str, variable: str | None = None) -> Path:
    """``mkdir -p path``, or an :class:`EnvironmentProblem` naming the file in the way."""
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                problem = (f"is a file where {what} should be" if folder == path
                           else f"is a file, so {what} ({path}) cannot be made inside it")
                fix = f"move the file away or set {variable} to a folder" if variable else "move the file away"
                raise EnvironmentProblem(folder, problem, fix)
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # e.g. a parent that cannot be made (/proc/...): one line, never a traceback
        problem = environment_problem(err, path)
        if problem is None:
            fix = f"set {variable} to a folder that can be made" if variable else "give a folder that can be made"
            problem = EnvironmentProblem(path, f"cannot be created ({err.strerror or err})", fix)
        raise problem from None
    return path


def outputs_dir() -> Path:
    """``$COURSE_OUTPUTS`` if set, else ``outputs/`` at the repository root (or here)."""
    if os.environ.get("COURSE_OUTPUTS"):
        root = Path(os.environ["COURSE_OUTPUTS"]).expanduser()
    else:
        root = (repo_root() or Path.cwd()) / "outputs"
    return _make_folder(root, "the course's work folder", "COURSE_OUTPUTS")


def stage_dir(name: str) -> Path:
    """One folder of the layout (created if missing), e.g. ``stage_dir("keyframes")``."""
    if name not in LAYOUT:
        raise ValueError(f"unknown outputs folder {name!r}; the layout is {', '.join(LAYOUT)}")
    return _make_folder(outputs_dir() / name, f"the {name} stage folder", "COURSE_OUTPUTS")


def cache_dir() -> Path:
    """Where tiny twins and other rebuildable things live: ``$COURSE_CACHE`` or ~/.cache."""
    root = os.environ.get("COURSE_CACHE") or Path.home() / ".cache" / "pixels-to-motion"
    return _make_folder(Path(root).expanduser(), "the cache folder", "COURSE_CACHE")


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


# --------------------------------------------------------------------------------------------
# Temporary files and their owners


_HOST = hashlib.sha1(socket.gethostname().encode()).hexdigest()[:6]
_OWNER = re.compile(r"\.pid(\d+)-([0-9a-f]{6})\.")
STALE_AFTER_S = 24 * 3600  # a partial file of another machine (a shared Drive folder) is stale after a day
UNOWNED_STALE_AFTER_S = 600  # one without an owner in its name (written by hand) after ten quiet minutes


def owner_tag(pid: int | None = None) -> str:
    """``pid1234-ab12cd``: this process (or ``pid``) on this machine, put in every temporary name."""
    return f"pid{os.getpid() if pid is None else pid}-{_HOST}"


def is_partial(path: Path) -> bool:
    """A temporary file or folder of :func:`atomic_path` / :func:`atomic_dir` (``.name.XXXX.partial...``)."""
    return path.name.startswith(".") and ".partial" in path.name


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return False
    return True


def owner_gone(path: Path) -> bool:
    """True when the process that writes the partial ``path`` has ended (or, for a name without an owner
    or from another machine, when the file has not changed for a long while)."""
    try:
        quiet = time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    match = _OWNER.search(path.name)
    if match is None:
        return quiet > UNOWNED_STALE_AFTER_S
    if match.group(2) != _HOST:
        return quiet > STALE_AFTER_S
    return not _process_alive(int(match.group(1)))


def clean_stale(folder: str | os.PathLike) -> int:
    """Remove what an interrupted (even SIGKILLed) write left in ``folder``: ``.*.partial*`` files and
    folders whose writer has ended; a running writer's files stay. A file set that was complete but not
    yet swapped in when its writer died is finished first (:func:`atomic_set`), when its plan passes every
    check (:func:`_swap_problem`); else it is removed untouched, with a one-line warning. Returns how many
    were removed; a missing folder has none."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if is_partial(p) and owner_gone(p)]
    for path in stale:
        if path.is_dir() and (path / SET_COMPLETE).exists():
            try:
                _finish_swap(path)
            except EnvironmentProblem as err:  # a plan that points elsewhere (a shared folder): never carried out
                print(f"warning: {err}", file=sys.stderr)
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


def environment_problem(err: BaseException, path: str | os.PathLike | None = None) -> EnvironmentProblem | None:
    """``err`` as an :class:`EnvironmentProblem` when it is one (disk full, read-only, no permission, a file
    where a folder should be), naming ``path`` when the error names none; else None."""
    number = getattr(err, "errno", None)
    text = str(err).lower()
    where = getattr(err, "filename", None) or path or "?"
    if number in (errno.ENOSPC, errno.EDQUOT) or "no space left on device" in text or "disk quota" in text:
        return EnvironmentProblem(path or where, "the disk is full (no space left on device); nothing half-written "
                                  "was kept", "free some space, or write to another disk (COURSE_OUTPUTS, --out, --out-dir)")
    if number == errno.EROFS:
        return EnvironmentProblem(where, "the file system is read-only", "set COURSE_OUTPUTS to a writable folder")
    if number in (errno.EACCES, errno.EPERM):
        return EnvironmentProblem(where, "permission denied (cannot write here)",
                                  "make it writable (chmod u+w) or set COURSE_OUTPUTS to a writable folder")
    if number in (errno.ENOTDIR, errno.EEXIST) and where != "?":
        return EnvironmentProblem(where, "a file is in the way of a folder", "move the file away")
    return None


@contextlib.contextmanager
def _environment_errors(final: Path) -> Iterator[None]:
    """Turn a full disk or a read-only folder met while writing ``final`` into an :class:`EnvironmentProblem`."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        problem = environment_problem(err, final)
        if problem is None:
            raise
        raise problem from err


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Check, before any work, that a file can be written at ``path``: not a folder, no file in the way
    of its folder. Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise EnvironmentProblem(path, f"{flag} is a folder", f"give a file name, e.g. {path / 'video.mp4'}")
    for folder in path.parents:
        if folder.exists():
            if not folder.is_dir():
                raise EnvironmentProblem(folder, f"is a file, so {path.name} cannot be written inside it",
                                         f"give {flag} a path in a folder")
            if not os.access(folder, os.W_OK):
                raise EnvironmentProblem(folder, "permission denied (cannot write here)",
                                         f"make it writable or give {flag} a path elsewhere")
            break
    check_name_fits(path, flag)
    return path


def check_name_fits(path: str | os.PathLike, flag: str = "--out") -> None:
    """Refuse, before any work, a file name whose temporary names (``.NAME.pid1234-ab12cd.XXXXXXXX.partial...``,
    a set's staging folder and manifest) would be longer than the file system allows (255 bytes on most)."""
    path = Path(path)
    stem, tag = path.stem, owner_tag(9_999_999)
    longest = max(len(os.fsencode(n)) for n in (path.name, f".{stem}.{tag}.abcdefgh.set.partial",
                                                 f".{stem}.{tag}.abcdefgh.partial.webm",
                                                 f"..{stem}.files.{tag}.abcdefgh.partial.json"))
    folder = next((f for f in path.absolute().parents if f.is_dir()), Path("/"))
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if longest > limit:
        size = len(os.fsencode(path.name))
        raise EnvironmentProblem(path.parent / (path.name[:40] + "..."), f"the name is {size} bytes; with the "
                                 f"temporary name written first it needs {longest}, over this file system's limit "
                                 f"of {limit}", f"shorten {flag} by at least {longest - limit} bytes")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` only on success.

    The temporary name keeps the suffix, so tools that pick a format from it still work.
    On any error the temporary file is removed and ``final`` is left as it was; a full disk or a
    read-only folder is an :class:`EnvironmentProblem` naming ``final``.
    """
    final = Path(final)
    with _environment_errors(final):
        _make_folder(final.parent, f"the folder of {final.name}")
        fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.{owner_tag()}.", suffix=f".partial{final.suffix}",
                                   dir=final.parent)
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
    with _environment_errors(final):
        _make_folder(final.parent, f"the folder of {final.name}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{owner_tag()}.", suffix=".partial", dir=final.parent))
        try:
            yield tmp
            _usual_permissions(tmp, 0o777)  # mkdtemp makes folders private (0700)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Sets of files that change together


SET_COMPLETE = "SET_COMPLETE.json"  # inside a staging folder: every file of the new set is there


def manifest_path(folder: str | os.PathLike, owner: str) -> Path:
    """Where ``owner`` (a stage, or a set such as ``final``) lists the files it wrote in ``folder``."""
    return Path(folder) / f".{owner}.files.json"


def plain_name(name: object) -> bool:
    """A bare file name: no folder part, not ``.``/``..``, nothing a path could be steered with."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name)


def owned_files(folder: str | os.PathLike, owner: str) -> set[str]:
    """The names ``owner``'s manifest in ``folder`` lists (plain names only; no or a damaged manifest: none)."""
    try:
        data = json.loads(manifest_path(folder, owner).read_text())
    except (OSError, ValueError):
        return set()
    files = data.get("files") if isinstance(data, dict) else None
    return {name for name in files if plain_name(name)} if isinstance(files, list) else set()


def set_members(folder: str | os.PathLike, owner: str) -> list[Path]:
    """The files of ``owner``'s set in ``folder`` that exist now, as its manifest names them."""
    folder = Path(folder)
    return [folder / name for name in sorted(owned_files(folder, owner)) if (folder / name).exists()]


def adopt(folder: str | os.PathLike, owner: str, record: str, list_files) -> None:
    """A set written before manifests existed: when ``folder`` has no manifest of ``owner`` but the stage's own
    ``record`` (e.g. ``scores.json``), the files ``list_files(data)`` names there (plain names that exist, and
    the record) become ``owner``'s, once. A record that cannot be read adopts nothing."""
    folder = Path(folder)
    if manifest_path(folder, owner).exists() or not (folder / record).is_file():
        return
    try:
        names = list(list_files(json.loads((folder / record).read_text())))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return
    if not names:  # not the stage's record (a file of the user's with the same name): it adopts nothing
        return
    found = sorted(n for n in {*names, record} if plain_name(n) and (folder / n).is_file())
    write_json(manifest_path(folder, owner), {"owner": owner, "files": found, "adopted_from": record})


def not_owned(folder: str | os.PathLike, owner: str, names: Iterable[str]) -> list[str]:
    """Of ``names``, those already in ``folder`` that ``owner`` did not write (its manifest does not list them)."""
    folder, owned = Path(folder), owned_files(folder, owner)
    return sorted(n for n in set(names) if n not in owned and (os.path.lexists(folder / n)))


def check_owned(folder: str | os.PathLike, owner: str, names: Iterable[str], flag: str = "--out",
                inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse (an :class:`EnvironmentProblem`, one line) before any work when writing ``names`` into ``folder``
    would replace a file ``owner`` did not write there, or when one of the ``inputs`` would be replaced or
    removed (a stage's input is never among its outputs)."""
    folder = Path(folder)
    names = set(names)
    touched = {(folder / n).resolve() for n in names | owned_files(folder, owner)}
    for given in inputs:
        if Path(given).resolve() in touched:
            raise EnvironmentProblem(given, "is an input of this run and would be replaced by its output",
                                     f"give {flag} another name or folder")
    clash = not_owned(folder, owner, names)
    if clash:
        shown = ", ".join(clash[:3]) + (f" and {len(clash) - 3} more" if len(clash) > 3 else "")
        raise EnvironmentProblem(folder, f"holds {shown}, which this stage did not write (it replaces only the "
                                 f"files its record {manifest_path(folder, owner).name} lists)",
                                 f"move them away or give {flag} another folder")


@contextlib.contextmanager
def atomic_set(folder: str | os.PathLike, owner: str) -> Iterator[Path]:
    """Yield a staging folder in which to write a whole set of files; when the block ends, the new set
    replaces ``owner``'s previous set in ``folder`` by renames, and ``owner``'s manifest names the new one.

    Only files the previous manifest lists are replaced or removed: every other file in ``folder`` stays,
    and a new file whose name is taken by one of them is refused before anything moves (:func:`check_owned`).
    On an error or an interruption inside the block, the old set stays untouched. The swap itself runs
    with Ctrl-C / SIGTERM held back, so it always ends with one whole set; a process killed in the
    middle of it leaves a marked staging folder that :func:`clean_stale` finishes.
    """
    folder = Path(folder)
    if not plain_name(owner):
        raise ValueError(f"a file set's owner must be a plain name, got {owner!r}")
    with _environment_errors(folder / owner):
        _make_folder(folder, f"the folder of {owner}")
        staging = Path(tempfile.mkdtemp(prefix=f".{owner}.{owner_tag()}.", suffix=".set.partial", dir=folder))
        try:
            yield staging
            written = sorted(p.name for p in staging.iterdir())
            check_owned(folder, owner, written)
            with _signals_held():
                (staging / SET_COMPLETE).write_text(json.dumps({"folder": str(folder), "owner": owner,
                                                                "files": written}))
                _finish_swap(staging)
        finally:
            if not (staging / SET_COMPLETE).exists():  # else a failed swap: clean_stale finishes it later
                shutil.rmtree(staging, ignore_errors=True)


def _swap_problem(staging: Path) -> str | None:
    """Why the plan in ``staging`` must not be carried out (None: it may). Trusts nothing it reads: the
    folder must be the staging folder's own parent, every name a plain one, and no file it would replace
    may be one its owner's manifest does not list."""
    if staging.is_symlink():
        return "the staging folder is a link"
    try:
        plan = json.loads((staging / SET_COMPLETE).read_text())
    except (OSError, ValueError) as err:
        return f"its plan cannot be read ({type(err).__name__})"
    if not isinstance(plan, dict) or not plain_name(plan.get("owner")) or not isinstance(plan.get("files"), list):
        return "its plan names no owner or no list of files"
    owner, folder = plan["owner"], staging.parent
    if not staging.name.startswith(f".{owner}."):
        return f"its plan names the owner {owner!r}, not the one in the staging folder's name"
    if Path(str(plan.get("folder", folder))).resolve() != folder.resolve():
        return f"its plan names another folder ({plan.get('folder')}), not {folder}"
    if not all(plain_name(n) and n != SET_COMPLETE for n in plan["files"]):
        return "its plan names a file outside its folder"
    owned = owned_files(folder, owner)
    for name in plan["files"]:
        if (staging / name).is_symlink():
            return f"{name} in it is a link"
        if os.path.lexists(staging / name) and os.path.lexists(folder / name) and name not in owned:
            return f"it would replace {name}, which its owner's record does not list"
    return None


def _finish_swap(staging: Path) -> None:
    """Move a complete staged set into place: the old set's files go, the new ones come (renames only),
    then the owner's manifest names the new set. The plan is checked first (:func:`_swap_problem`)."""
    problem = _swap_problem(staging)
    if problem is not None:
        raise EnvironmentProblem(staging, f"an unfinished file set that cannot be trusted ({problem})",
                                 "nothing was moved; it is removed")
    plan = json.loads((staging / SET_COMPLETE).read_text())
    folder, owner, new = staging.parent, plan["owner"], set(plan["files"])
    for old in set_members(folder, owner):
        if old.name not in new and (old.is_file() or old.is_symlink()):
            old.unlink()  # a file this owner wrote last time and did not make now: it belonged to the old set
    for name in plan["files"]:
        if (staging / name).exists():
            _usual_permissions(staging / name, 0o666)
            os.replace(staging / name, folder / name)
    write_json(manifest_path(folder, owner), {"owner": owner, "files": sorted(new)})
    (staging / SET_COMPLETE).unlink()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back Ctrl-C and SIGTERM for a few renames: they are noted, then delivered right after (to the
    handlers that were there). Only the main thread can do this; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, lambda signum, frame: received.append(signum)) for number in held}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in received:
            os.kill(os.getpid(), number)


# --------------------------------------------------------------------------------------------
# One writer per folder


_LOCKS: dict[str, Any] = {}


def _lock_paths(target: Path) -> tuple[Path, Path]:
    """Where the lock of ``target`` lives: in this machine's temporary folder, not in the work folder."""
    key = hashlib.sha1(str(target.resolve()).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "pixels-to-motion-locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{key}.lock", folder / f"{key}.owner.json"


def _running_command() -> str:
    argv = list(sys.argv)
    if argv and Path(argv[0]).name == "__main__.py" and Path(argv[0]).parent.name == "helpers":
        argv[0] = "-m helpers"
    return " ".join(["python", *argv]) if argv else "python"


def _describe_owner(owner_file: Path) -> str:
    try:
        owner = json.loads(owner_file.read_text())
        return f"`{owner['command']}` (PID {owner['pid']}, since {owner['since']})"
    except (OSError, ValueError, KeyError):
        return "another run"


@contextlib.contextmanager
def writer_lock(target: str | os.PathLike, what: str = "", fix: str = "wait for it to finish") -> Iterator[None]:
    """Hold the one-writer lock of ``target`` (a folder, or a set of files) for the block.

    A second process (or thread) that asks for it while it is held gets an :class:`EnvironmentProblem`
    naming the running command and its PID. The same thread may take it again (a stage inside ``demo``).
    """
    from filelock import FileLock, Timeout

    target = Path(target)
    lock_file, owner_file = _lock_paths(target)
    lock = _LOCKS.setdefault(str(lock_file), FileLock(str(lock_file), timeout=0))
    try:
        lock.acquire()
    except Timeout:
        raise EnvironmentProblem(target, f"{what or 'this folder'} is being written by {_describe_owner(owner_file)}",
                                 fix) from None
    first = lock.lock_counter == 1
    try:
        if first:
            owner = {"pid": os.getpid(), "command": _running_command(), "since": time.strftime("%H:%M:%S")}
            owner_file.write_text(json.dumps(owner))
        yield
    finally:
        if first:
            owner_file.unlink(missing_ok=True)
        lock.release()


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes: records name the exact file they came from (a keyframe, a checkpoint's weights)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


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
