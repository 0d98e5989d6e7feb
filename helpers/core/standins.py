"""Stand-ins: so every notebook runs on its own.

When a learner opens notebook 06 first, there are no keyframes yet. These functions check the
outputs folder and, when what a stage reads is missing, make a small stand-in from the bundled
demo images and say so: one line in the log, and in a notebook a visible box naming the notebook that
makes the real input (:func:`standin_notice`; on Colab each notebook runs in a runtime of its own, so
the real input arrives only through Drive). They never overwrite real work.

A stand-in stays labelled wherever it is read: the folder's record ``.standins.json`` names each one with
its sha256 (:func:`is_standin`; a file replaced by real work no longer matches), so a later run that finds
it says it is a stand-in, and ``post`` never joins one into a real video without a line saying so.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers.core.demo_images import MAKERS, demo_image
from helpers.core.outputs import atomic_set, file_digest, plain_name, stage_dir, write_json

RECORD = ".standins.json"  # in a folder: {file name: {"what": ..., "sha256": ...}} for every stand-in written there

# Which notebook makes the real input of each stand-in.
MADE_BY = {
    "PixelCNN++ checkpoint": "02_training_pixelcnnpp.ipynb",
    "samples": "03_sampling.ipynb",
    "keyframes": "04_curation_keyframes.ipynb",
    "video": "06_stable_video_diffusion.ipynb (or 07_prompted_multikeyframe_video.ipynb)",
}
BOX_STYLE = ("border:2px solid #d9822b;background:#fff4e5;color:#222;padding:8px 12px;margin:6px 0;"
             "border-radius:4px;font-family:sans-serif")


def standin_notice(what: str, folder: Path | str, action: str) -> str:
    """Say that a stand-in replaces the missing ``what`` (a key of :data:`MADE_BY`): print one line and,
    in a notebook, show a box naming the notebook that makes the real one. Returns the line."""
    made_by = MADE_BY[what]
    line = (f"STAND-IN: no {what} in {folder} yet - {made_by} makes the real one; {action}. On Colab, run "
            f"that notebook first with USE_DRIVE = True (the setup cell's default) so its output carries over.")
    print(line)
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        return line
    shell = get_ipython()
    if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":  # a notebook kernel, not a terminal
        from html import escape

        display(HTML(f'<div style="{BOX_STYLE}"><b>Stand-in, not your own work.</b> No {escape(what)} in '
                     f"<code>{escape(str(folder))}</code> yet: <b>{escape(made_by)}</b> makes the real one. "
                     f"{escape(action)[:1].upper() + escape(action)[1:]}.<br>On Colab, run that notebook first "
                     "with <code>USE_DRIVE = True</code> (the setup cell's default), so its output carries over "
                     "through Google Drive.</div>"))
    return line


def _record(folder: Path) -> dict[str, dict]:
    try:
        data = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if plain_name(k) and isinstance(v, dict)} if isinstance(data, dict) else {}


def mark_standins(paths: list[Path], what: str) -> None:
    """Name ``paths`` (all in one folder) as stand-ins for ``what`` in that folder's record."""
    folder = paths[0].parent
    record = _record(folder)
    record.update({p.name: {"what": what, "sha256": file_digest(p)} for p in paths})
    write_json(folder / RECORD, record)


def is_standin(path: str | Path) -> bool:
    """True when ``path`` is a stand-in this module wrote, unchanged since (its folder's record says so)."""
    path = Path(path)
    entry = _record(path.parent).get(path.name)
    return bool(entry) and path.is_file() and entry.get("sha256") == file_digest(path)


def keyframe_paths() -> list[Path]:
    """The keyframes in outputs/keyframes/, in order (frame_0001.png, frame_0002.png, ...)."""
    return sorted(stage_dir("keyframes").glob("frame_[0-9][0-9][0-9][0-9].png"))


def ensure_keyframes(count: int = 2) -> list[Path]:
    """The existing keyframes, or ``count`` demo images written as stand-in keyframes."""
    found = keyframe_paths()
    folder = stage_dir("keyframes")
    standins = [p for p in found if is_standin(p)]
    if found and len(standins) == len(found):  # an earlier run's stand-ins: still not the learner's work
        standin_notice("keyframes", folder, f"the {len(found)} there are stand-ins an earlier run wrote from the "
                       "bundled demo images (their record .standins.json says so)")
    elif standins:
        print(f"note: {', '.join(p.name for p in standins)} in {folder} are stand-ins (demo images), not your work")
    if found:
        return found
    names = list(MAKERS)
    with atomic_set(folder, "keyframes") as staging:  # owned like the keyframes stage's set: it replaces them
        for index in range(count):
            demo_image(names[index % len(names)]).save(staging / f"frame_{index + 1:04d}.png")
    paths = [folder / f"frame_{index + 1:04d}.png" for index in range(count)]
    mark_standins(paths, "keyframes")
    standin_notice("keyframes", folder, f"wrote {count} stand-ins from the bundled demo images")
    return paths


def video_paths() -> list[Path]:
    """The videos in outputs/videos/, sorted by name."""
    return sorted(stage_dir("videos").glob("*.mp4"))


def ensure_video(name: str = "standin.mp4", frames: int = 24, fps: float = 8) -> Path:
    """The first video in outputs/videos/, or a stand-in: a slow zoom into a demo image.

    The stand-in is made by plain image operations (no model), so it is cheap and honest.
    """
    found = video_paths()
    if found:
        if is_standin(found[0]):
            standin_notice("video", found[0].parent, f"{found[0].name} there is a stand-in an earlier run wrote "
                           "(a slow zoom into a demo image, no model; its record .standins.json says so)")
        return found[0]
    from helpers.core.video import write_mp4

    image = demo_image("sunset")
    w, h = image.size
    clip = []
    for i in range(frames):
        zoom = 1.0 + 0.25 * i / max(frames - 1, 1)
        cw, ch = w / zoom, h / zoom
        box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
        clip.append(image.resize((w, h), box=box, resample=3))
    path = write_mp4(clip, stage_dir("videos") / name, fps=fps)
    mark_standins([path], "video")
    standin_notice("video", path.parent, f"wrote a {frames}-frame stand-in (a slow zoom into a demo image, no model)")
    return path
