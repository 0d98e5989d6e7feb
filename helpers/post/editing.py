"""Editing: a clip is a list of frames, so editing is list work with time in seconds.

Trim, concatenate, fit to one size, crossfade, loop, boomerang, a title card, a caption, and the
random-weights stamp (done last, so no grade or fade dims it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from helpers.core.drawing import caption_layer, fit_lines, load_font, wrap_text
from helpers.core.images import MODEL_STAMPS, fit_to
from helpers.post.frames import Frames, as_frames, check_clip, check_positive


def duration(frames: Sequence, fps: float) -> float:
    """Seconds a clip lasts at ``fps``."""
    return len(frames) / fps


def trim(frames: Sequence, fps: float, start: float = 0.0, end: float | None = None) -> Frames:
    """The part of a clip from ``start`` to ``end`` seconds (``end=None``: to the end)."""
    check_positive(fps, "fps", "frames per second")
    frames = as_frames(frames)
    check_clip(frames)
    length = duration(frames, fps)
    if start < 0:
        raise ValueError(f"trim start must be >= 0 s, got {start}")
    if start >= length:
        raise ValueError(f"trim start {start:g} s is beyond the end of the clip ({length:g} s)")
    if end is not None:
        if end <= start:
            raise ValueError(f"trim end ({end:g} s) must be after the start ({start:g} s)")
        if end > length + 1e-9:
            raise ValueError(f"trim end {end:g} s is beyond the end of the clip ({length:g} s)")
    first = round(start * fps)
    last = len(frames) if end is None else max(round(end * fps), first + 1)
    return frames[first:last]


def concat(clips: Sequence[Sequence]) -> Frames:
    """Clips one after the other (a cut). All must have the same size: see :func:`fit_clip`."""
    clips = [as_frames(c) for c in clips]
    if not clips:
        raise ValueError("no clips to join (the list is empty)")
    for index, clip in enumerate(clips):
        check_clip(clip, f"clip {index + 1}")
    size = clips[0][0].shape[:2]
    for index, clip in enumerate(clips[1:], 2):
        if clip[0].shape[:2] != size:
            raise ValueError(f"clip {index} is {clip[0].shape[1]}x{clip[0].shape[0]}, clip 1 is {size[1]}x{size[0]}; "
                             "fit them to one size first (fit_clip)")
    return [f for clip in clips for f in clip]


def fit_clip(frames: Sequence, size: tuple[int, int]) -> Frames:
    """Every frame resized to cover ``size`` (width, height) and centre-cropped (no distortion)."""
    out = []
    for frame in as_frames(frames):
        if frame.shape[1::-1] == tuple(size):
            out.append(frame)
        else:
            out.append(np.asarray(fit_to(Image.fromarray(frame), *size)[0]))
    return out


def crossfade_clips(clips: Sequence[Sequence], overlap: int) -> Frames:
    """Join clips, each dissolving into the next over ``overlap`` frames (0 = a cut).

    Uses :func:`helpers.core.blend.crossfade`: blend weights ``(i + 1) / (overlap + 1)``, so the joined
    clip is ``overlap`` frames shorter per join.
    """
    from helpers.core.blend import crossfade

    joined = concat(clips[:1])  # checks the list and the first clip
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or overlap < 0:
        raise ValueError(f"crossfade overlap must be a whole number of frames >= 0, got {overlap!r}")
    for clip in clips[1:]:
        concat([joined[:1], clip])  # same size, not empty
        joined = as_frames(crossfade(joined, as_frames(clip), overlap))
    return joined


def loop(frames: Sequence, times: int = 2) -> Frames:
    """The clip played ``times`` times in a row."""
    if isinstance(times, bool) or not isinstance(times, (int, np.integer)) or times < 1:
        raise ValueError(f"loop count must be a whole number >= 1, got {times!r}")
    frames = as_frames(frames)
    check_clip(frames)
    return frames * times


def boomerang(frames: Sequence) -> Frames:
    """Forwards then backwards, without repeating the turning frames: loops seamlessly (2n - 2 frames)."""
    frames = as_frames(frames)
    check_clip(frames)
    return frames + frames[-2:0:-1] if len(frames) > 2 else frames


def title_card(text: str, size: tuple[int, int], frames: int, subtitle: str = "",
               background: tuple[int, int, int] = (14, 14, 20), color: tuple[int, int, int] = (245, 245, 245)) -> Frames:
    """``frames`` frames of centred text on a plain background (the same array repeated)."""
    if not text.strip():
        raise ValueError("a title card needs some text")
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ValueError(f"a title card needs at least 1 frame, got {frames!r}")
    width, height = size
    card = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(card)
    big, small = load_font(max(9, round(height / 6))), load_font(max(8, round(height / 11)))
    # As many lines as the card holds (a long title ends in "..."); wrapping is linear in the text.
    most = max(1, int(height * 0.9 // (big.getbbox("Ag")[3] + 2 if hasattr(big, "getbbox") else 12)))
    title, _ = fit_lines(wrap_text(text.strip(), big, width * 0.9, max_lines=most), big, width * 0.9, most)
    lines = [(line, big) for line in title]
    if subtitle.strip():
        room = max(1, most - len(title))
        sub, _ = fit_lines(wrap_text(subtitle.strip(), small, width * 0.9, max_lines=room), small, width * 0.9, room)
        lines += [(line, small) for line in sub]
    heights = [draw.textbbox((0, 0), line or " ", font=font)[3] + 2 for line, font in lines]
    y = (height - sum(heights)) / 2
    for (line, font), line_height in zip(lines, heights):
        draw.text(((width - draw.textlength(line, font=font)) / 2, y), line, font=font, fill=color)
        y += line_height
    array = np.asarray(card)
    return [array] * frames


def add_caption(frames: Sequence, text: str, bottom: int = 0) -> Frames:
    """Burn a caption into every frame (white on a dark band; :func:`helpers.core.drawing.caption_layer`)."""
    frames = as_frames(frames)
    check_clip(frames)
    size = frames[0].shape[1::-1]
    layer = caption_layer(text, size, bottom=bottom)
    return [np.asarray(layer.apply(Image.fromarray(f))) for f in frames]


def stamp_frames(frames: Sequence, kind: str = "random") -> Frames:
    """Label every frame as random-weight output, or ``kind="trained"``: as the course's trained twin's
    (done last, so no grade or fade dims the label)."""
    return [np.asarray(MODEL_STAMPS[kind](Image.fromarray(f))) for f in as_frames(frames)]
