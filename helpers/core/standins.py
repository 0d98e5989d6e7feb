"""Stand-ins: so every notebook runs on its own.

When a learner opens notebook 06 first, there are no keyframes yet. These functions check the
outputs folder and, when what a stage reads is missing, make a small stand-in from the bundled
demo images and say so. They never overwrite real work.
"""

from __future__ import annotations

from pathlib import Path

from helpers.core.demo_images import MAKERS, demo_image
from helpers.core.outputs import save_image, stage_dir


def keyframe_paths() -> list[Path]:
    """The keyframes in outputs/keyframes/, in order (frame_0001.png, frame_0002.png, ...)."""
    return sorted(stage_dir("keyframes").glob("frame_[0-9][0-9][0-9][0-9].png"))


def ensure_keyframes(count: int = 2) -> list[Path]:
    """The existing keyframes, or ``count`` demo images written as stand-in keyframes."""
    found = keyframe_paths()
    if found:
        return found
    folder = stage_dir("keyframes")
    names = list(MAKERS)
    paths = []
    for index in range(count):
        path = folder / f"frame_{index + 1:04d}.png"
        save_image(demo_image(names[index % len(names)]), path)
        paths.append(path)
    print(f"note: no keyframes in {folder} yet (notebook 04 makes them); "
          f"wrote {count} stand-ins from the bundled demo images")
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
    print(f"note: no video in {path.parent} yet (notebooks 06-07 make them); "
          f"wrote a {frames}-frame stand-in (a slow zoom into a demo image, no model)")
    return path
