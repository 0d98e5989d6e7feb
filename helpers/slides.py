"""Slide videos from independent frames (notebook 09): ``python -m helpers slides [STORYBOARD] --out OUT.mp4``.

A *storyboard* lists slides; each slide has a ``prompt``, a ``caption``, a ``duration`` in
seconds and a ``transition`` (``cut``, ``crossfade`` or ``kenburns``). Every slide gets one
text-to-image frame (FLUX.1-schnell; its tiny random-weight twin offline) made from the slide's
prompt plus a shared *style* prompt and a shared seed, so the pictures share a look. Timing,
transitions and captions are then plain image operations, and the result is written as an
H.264 / yuv420p MP4.

Timing, exactly: slide ``i`` covers frames ``round(t_i * fps)`` to ``round(t_{i+1} * fps)`` of
the *storyboard clock* (``t_i`` = sum of the durations before it), so rounding never drifts.
A ``crossfade`` slide dissolves in from the previous slide over ``crossfade_s`` seconds: the two
overlap, so the video is ``round(crossfade_s * fps)`` frames shorter per crossfade. A first
slide with ``crossfade`` fades in from black instead (nothing to overlap, nothing shortened).
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image
from helpers.core.blend import crossfade_weights  # the same blend weights as the SVD segment crossfades
from helpers.core.cli import float_range, int_range
from helpers.core.device import check_output
from helpers.core.demo_images import data_dir  # data/ in a checkout, helpers/data when installed
from helpers.core.drawing import CaptionLayer, caption_layer
from helpers.core.images import stamp_band_height
from helpers.core.images import BadInputError, fit_to, stamp_random_weights
from helpers.core.profiles import Profile, get_profile
from helpers.core.registry import made_by, made_by_note

MAX_SLIDE_SECONDS = 600  # one slide
MAX_BYTES = 4 * 2**30    # the most the video's frames may take in memory

TRANSITIONS = {
    "cut": "a hard cut from the previous slide; the picture stands still",
    "crossfade": "dissolves in from the previous slide (the two overlap for crossfade_s seconds)",
    "kenburns": "a hard cut, then a slow zoom (and optional pan) across the still for the whole slide",
}
PANS = {"center": (0.0, 0.0), "left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
REQUIRED_FIELDS = ("prompt", "caption", "duration", "transition")
OPTIONAL_FIELDS = ("title", "zoom", "pan", "seed")
STORYBOARD_FIELDS = ("title", "style", "seed", "slides")

# The storyboard that `python -m helpers slides` uses when given none. It is also written to
# data/storyboard_example.json (a test checks the two agree), so it works after a pip install.
EXAMPLE_STORYBOARD: dict[str, Any] = {
    "title": "From noise to a picture: how a diffusion model draws",
    "style": "flat vector illustration, soft pastel palette, clean simple shapes, plenty of empty space, no text",
    "seed": 7,
    "slides": [
        {"title": "Noise", "prompt": "a square canvas covered in colourful television static",
         "caption": "A diffusion model starts from pure noise: random colours, no picture at all.",
         "duration": 3.0, "transition": "crossfade"},
        {"title": "A first guess", "prompt": "blurry soft blobs of colour slowly forming a landscape",
         "caption": "At every step it guesses which part of the noise to remove.",
         "duration": 3.0, "transition": "crossfade"},
        {"title": "Details", "prompt": "a landscape with hills and a lake, half sharp and half blurry",
         "caption": "Step after step, shapes and then details appear.",
         "duration": 3.0, "transition": "kenburns", "zoom": 1.2, "pan": "right"},
        {"title": "The prompt steers", "prompt": "a sunny landscape with hills, a lake and a small red boat",
         "caption": "The text prompt steers every step towards what it describes.",
         "duration": 3.0, "transition": "crossfade"},
        {"title": "Done", "prompt": "a finished framed painting of a lake with a red boat on an easel",
         "caption": "Few steps: fast. FLUX.1-schnell needs only one to four.",
         "duration": 2.5, "transition": "cut"},
    ],
}


class StoryboardError(BadInputError):
    """A storyboard the course cannot use; one line naming the file, the slide and the problem."""


# --------------------------------------------------------------------------------------------
# Reading and checking a storyboard


@dataclass(frozen=True)
class Slide:
    """One slide: what to draw, what to say, how long, and how it appears."""

    prompt: str
    caption: str
    duration: float                 # seconds on screen, including a crossfade into it
    transition: str = "cut"         # cut | crossfade | kenburns
    title: str = ""                 # a short name for messages and figures (optional)
    zoom: float = 1.15              # kenburns: >1 zooms in to this factor, <1 zooms out from 1/zoom
    pan: str = "center"             # kenburns: drift towards center | left | right | up | down
    seed: int | None = None         # overrides the storyboard's seed for this slide only

    def label(self, index: int) -> str:
        """``slide 3 ("Details")``: 1-based, with its title or the start of its prompt."""
        return slide_label(index, {"title": self.title, "prompt": self.prompt})


@dataclass(frozen=True)
class Storyboard:
    slides: tuple[Slide, ...]
    style: str = ""                 # appended to every prompt: one look for all slides
    seed: int = 0                   # the same starting noise for every slide (unless a slide sets its own)
    title: str = ""
    source: str = "<storyboard>"    # file name (or a description) used in messages

    def prompt_for(self, index: int) -> str:
        prompt = self.slides[index].prompt
        return f"{prompt}, {self.style}" if self.style else prompt

    def seed_for(self, index: int) -> int:
        own = self.slides[index].seed
        return self.seed if own is None else own

    @property
    def duration(self) -> float:
        return math.fsum(s.duration for s in self.slides)


def slide_label(index: int, raw: Any) -> str:
    """How messages name slide ``index`` (0-based in code, 1-based for people)."""
    name = ""
    if isinstance(raw, dict):
        for key in ("title", "prompt"):
            value = raw.get(key)
            if isinstance(value, str) and value.strip():
                name = value.strip()
                break
    if len(name) > 40:
        name = name[:37] + "..."
    return f'slide {index + 1} ("{name}")' if name else f"slide {index + 1}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def parse_slide(raw: Any, index: int, source: str) -> Slide:
    """Check one slide's fields and return it as a :class:`Slide` (errors name the slide)."""
    label = slide_label(index, raw)

    def fail(problem: str) -> StoryboardError:
        return StoryboardError(source, f"{label}: {problem}")

    if not isinstance(raw, dict):
        raise fail(f"each slide must be an object with fields {', '.join(REQUIRED_FIELDS)}; "
                   f"got {type(raw).__name__}")
    known = REQUIRED_FIELDS + OPTIONAL_FIELDS
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(known)}"
            raise fail(f"unknown field {key!r}{hint}")
    missing = [key for key in REQUIRED_FIELDS if key not in raw]
    if missing:
        raise fail(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    for key in ("prompt", "caption", "title"):
        if key in raw and not isinstance(raw[key], str):
            raise fail(f"{key} must be text, got {type(raw[key]).__name__}")
    if not raw["prompt"].strip():
        raise fail("prompt is empty: say what the picture should show")
    duration = _number(raw["duration"])
    if duration is None:
        raise fail(f"duration must be a number of seconds, got {raw['duration']!r}")
    if not 0 < duration <= MAX_SLIDE_SECONDS:
        raise fail(f"duration must be more than 0 and at most {MAX_SLIDE_SECONDS} seconds, got {raw['duration']!r}")
    transition = raw["transition"]
    if not isinstance(transition, str) or transition.strip().lower() not in TRANSITIONS:
        raise fail(f"unknown transition {transition!r}; choose one of {', '.join(TRANSITIONS)}")
    transition = transition.strip().lower()
    zoom = _number(raw.get("zoom", 1.15))
    if zoom is None or not 0.5 <= zoom <= 2.0:
        raise fail(f"zoom must be a number from 0.5 to 2 (1.15: a gentle zoom in), got {raw.get('zoom')!r}")
    pan = raw.get("pan", "center")
    if not isinstance(pan, str) or pan.strip().lower() not in PANS:
        raise fail(f"unknown pan {pan!r}; choose one of {', '.join(PANS)}")
    seed = raw.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise fail(f"seed must be a whole number >= 0, got {seed!r}")
    return Slide(prompt=raw["prompt"].strip(), caption=raw["caption"], duration=duration,
                 transition=transition, title=raw.get("title", "").strip(), zoom=zoom,
                 pan=pan.strip().lower(), seed=seed)


def parse_storyboard(data: Any, source: str = "<storyboard>") -> Storyboard:
    """A storyboard from parsed JSON/YAML: ``{"style", "seed", "title", "slides": [...]}`` or a bare list."""
    if isinstance(data, list):
        data = {"slides": data}
    if not isinstance(data, dict):
        raise StoryboardError(source, f"a storyboard is an object with a 'slides' list (or just the list); "
                                      f"got {type(data).__name__}")
    for key in data:
        if key not in STORYBOARD_FIELDS:
            close = difflib.get_close_matches(str(key), STORYBOARD_FIELDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(STORYBOARD_FIELDS)}"
            raise StoryboardError(source, f"unknown storyboard field {key!r}{hint}")
    slides = data.get("slides")
    if slides is None:
        raise StoryboardError(source, "no 'slides' list")
    if not isinstance(slides, list):
        raise StoryboardError(source, f"'slides' must be a list, got {type(slides).__name__}")
    if not slides:
        raise StoryboardError(source, "the storyboard has no slides (the 'slides' list is empty)")
    style, title, seed = data.get("style", ""), data.get("title", ""), data.get("seed", 0)
    if not isinstance(style, str) or not isinstance(title, str):
        raise StoryboardError(source, "'style' and 'title' must be text")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise StoryboardError(source, f"'seed' must be a whole number >= 0, got {seed!r}")
    parsed = tuple(parse_slide(raw, i, source) for i, raw in enumerate(slides))
    return Storyboard(parsed, style=style.strip(), seed=seed, title=title.strip(), source=source)


def load_storyboard(path: str | Path) -> Storyboard:
    """Read and check a storyboard file (.json; .yaml/.yml too when PyYAML is installed)."""
    path = Path(path)
    if not path.exists():
        raise StoryboardError(path, "no such file")
    if path.is_dir():
        raise StoryboardError(path, "is a folder, not a storyboard file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StoryboardError(path, "not a text file (a storyboard is JSON or YAML text)") from None
    if not text.strip():
        raise StoryboardError(path, "the file is empty")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise StoryboardError(path, "reading YAML needs PyYAML (pip install pyyaml); "
                                        "or write the storyboard as JSON") from None
        try:
            data = yaml.safe_load(text)
        except RecursionError:
            raise StoryboardError(path, TOO_DEEP) from None
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
            raise StoryboardError(path, f"not valid YAML{at}: {getattr(err, 'problem', err)}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise StoryboardError(path, f"not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
        except RecursionError:
            raise StoryboardError(path, TOO_DEEP) from None
    try:
        return parse_storyboard(data, str(path))
    except RecursionError:
        raise StoryboardError(path, TOO_DEEP) from None


TOO_DEEP = ("nested too deeply to read (thousands of brackets inside each other); a storyboard is a list of "
            "slides a few levels deep: see data/storyboard_example.json")


def example_storyboard_path() -> Path | None:
    """data/storyboard_example.json in a checkout of the repository (None after a pip install)."""
    path = data_dir() / "storyboard_example.json"
    return path if path.exists() else None


def example_storyboard() -> Storyboard:
    """The bundled example storyboard (from data/ when present, else the same text built in)."""
    path = example_storyboard_path()
    if path is not None:
        return load_storyboard(path)
    return parse_storyboard(copy.deepcopy(EXAMPLE_STORYBOARD), "built-in example storyboard")


# --------------------------------------------------------------------------------------------
# Timing


@dataclass(frozen=True)
class Segment:
    """Where one slide sits in the video, in frames."""

    index: int      # the slide (0-based)
    start: int      # first video frame where the slide is visible
    frames: int     # frames it is visible (its fade-in included)
    fade_in: int    # frames at its start shared with the previous slide (or black, for slide 1)

    @property
    def end(self) -> int:
        return self.start + self.frames


def slide_frame_counts(storyboard: Storyboard, fps: float) -> list[int]:
    """Frames per slide from the cumulative clock: they sum to exactly round(total_seconds * fps)."""
    bounds, clock = [0], 0.0
    for slide in storyboard.slides:
        clock += slide.duration
        bounds.append(round(clock * fps))
    return [b - a for a, b in zip(bounds, bounds[1:])]


def timeline(storyboard: Storyboard, fps: float, crossfade_s: float) -> list[Segment]:
    """Each slide's place in the video. Raises :class:`StoryboardError` naming a slide that is too short."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if crossfade_s < 0:
        raise ValueError(f"crossfade_s must be >= 0 seconds, got {crossfade_s}")
    counts = slide_frame_counts(storyboard, fps)
    overlap = round(crossfade_s * fps)
    fades = [overlap if s.transition == "crossfade" else 0 for s in storyboard.slides] + [0]
    segments, start = [], 0
    for i, (slide, count) in enumerate(zip(storyboard.slides, counts)):
        if count < 1:
            raise StoryboardError(storyboard.source, f"{slide.label(i)}: {slide.duration:g} s is shorter "
                                                     f"than one frame at {fps:g} fps")
        fade_out = fades[i + 1]
        if fades[i] + fade_out > count or (fades[i] and count < 2):
            raise StoryboardError(storyboard.source, (
                f"{slide.label(i)}: {slide.duration:g} s ({count} frames at {fps:g} fps) is too short for its "
                f"crossfades ({fades[i]} frames in + {fade_out} out); make it longer, the crossfade shorter, "
                "or use 'cut'"))
        if i > 0:
            start -= fades[i]
        segments.append(Segment(i, start, count, fades[i]))
        start += count
    return segments


def total_frames(storyboard: Storyboard, fps: float, crossfade_s: float) -> int:
    """Length of the finished video in frames: the storyboard clock minus the crossfade overlaps."""
    segments = timeline(storyboard, fps, crossfade_s)
    return segments[-1].end


# --------------------------------------------------------------------------------------------
# Transitions and camera moves: plain image operations (captions are drawn by helpers.core.drawing)


def blend(a: np.ndarray, b: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * a + weight * b`` in float64 (round to uint8 only when writing)."""
    return (1.0 - weight) * np.asarray(a, dtype=np.float64) + weight * np.asarray(b, dtype=np.float64)


def crossfade(outgoing: Sequence[np.ndarray], incoming: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Blend the last frames of one shot with the first of the next (equal counts), in float64.

    Frame ``j`` of ``k`` shows ``w = (j + 1) / (k + 1)`` of the incoming slide (the weights of
    :func:`helpers.core.blend.crossfade_weights`, shared with the SVD segment crossfades): neither end
    repeats a pure frame, and for an odd ``k`` the middle frame is exactly the average.
    """
    if len(outgoing) != len(incoming):
        raise ValueError(f"a crossfade needs as many outgoing as incoming frames ({len(outgoing)} != {len(incoming)})")
    return [blend(a, b, w) for a, b, w in zip(outgoing, incoming, crossfade_weights(len(incoming)))]


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """Round a float frame in 0..255 to uint8 (uint8 frames pass through)."""
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
        return frame
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def ken_burns_boxes(size: tuple[int, int], frames: int, zoom: float = 1.15, pan: str = "center",
                    ease: bool = True) -> list[tuple[float, float, float, float]]:
    """The crop box (left, top, right, bottom) of the still for each frame of a Ken Burns move.

    The magnification goes from 1 to ``zoom`` (zoom in) or from ``1/zoom`` to 1 (zoom out); the
    box's centre drifts towards ``pan`` as far as the picture allows. ``ease`` starts and ends the
    move gently (smoothstep) instead of at constant speed.
    """
    width, height = size
    start, end = (1.0, zoom) if zoom >= 1 else (1.0 / zoom, 1.0)
    dx, dy = PANS[pan]
    boxes = []
    for j in range(frames):
        t = j / (frames - 1) if frames > 1 else 0.0
        if ease:
            t = t * t * (3.0 - 2.0 * t)
        magnification = start + (end - start) * t
        w, h = width / magnification, height / magnification
        # travel from the centre towards `pan`, as far as the smallest box can go at the end
        reach_x, reach_y = (width - width / max(start, end)) / 2, (height - height / max(start, end)) / 2
        pan_t = t if zoom >= 1 else 1.0 - t
        cx = width / 2 + dx * reach_x * pan_t
        cy = height / 2 + dy * reach_y * pan_t
        boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return boxes


def ken_burns(image: Image.Image, frames: int, zoom: float = 1.15, pan: str = "center",
              ease: bool = True) -> list[Image.Image]:
    """``frames`` views of a still, slowly zooming (and panning): the Ken Burns effect."""
    boxes = ken_burns_boxes(image.size, frames, zoom, pan, ease)
    return [image.resize(image.size, resample=Image.Resampling.BICUBIC, box=box) for box in boxes]


# --------------------------------------------------------------------------------------------
# Putting it together


def shot_frames(slide: Slide, still: Image.Image, count: int, caption: CaptionLayer) -> list[np.ndarray]:
    """The frames of one slide on its own: the still (or a Ken Burns move) with its caption."""
    if slide.transition == "kenburns":
        return [np.asarray(caption.apply(view)) for view in ken_burns(still, count, slide.zoom, slide.pan)]
    still_frame = np.asarray(caption.apply(still))
    return [still_frame] * count  # the same array repeated: cheap, never modified


def stamp_frames(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Label every frame as random-weight output (after the transitions, so fades never dim it)."""
    done: dict[int, np.ndarray] = {}  # a still repeated N times is stamped once
    for frame in frames:
        if id(frame) not in done:
            done[id(frame)] = np.asarray(stamp_random_weights(Image.fromarray(frame)))
    return [done[id(frame)] for frame in frames]


def compose(storyboard: Storyboard, stills: Sequence[Image.Image], fps: float, crossfade_s: float,
            stamp: bool = False, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Stills -> the finished frames (uint8 HxWx3): timing, transitions, captions, stamp.

    ``size`` (width, height) is the video size; each still is fitted to it (default: the first
    still's size). ``stamp=True`` labels every frame as coming from random weights (tiny profile).
    """
    if len(stills) != len(storyboard.slides):
        raise ValueError(f"{len(stills)} stills for {len(storyboard.slides)} slides")
    size = size or stills[0].size
    segments = timeline(storyboard, fps, crossfade_s)
    bottom = stamp_band_height(size) if stamp else 0
    video: list[np.ndarray] = []
    for slide, still, segment in zip(storyboard.slides, stills, segments):
        fitted, _ = fit_to(still.convert("RGB"), *size)
        frames = shot_frames(slide, fitted, segment.frames, caption_layer(slide.caption, size, bottom))
        k = segment.fade_in
        if k and segment.index == 0:  # the first slide fades in from black
            black = np.zeros_like(frames[0])
            video.extend(to_uint8(f) for f in crossfade([black] * k, frames[:k]))
        elif k:
            video[-k:] = [to_uint8(f) for f in crossfade(video[-k:], frames[:k])]
        video.extend(frames[k:])
    assert len(video) == segments[-1].end  # the timeline and the frames agree
    return stamp_frames(video) if stamp else video


def load_text_to_image(profile: Profile, settings: dict[str, Any]):
    """The text-to-image pipeline (tiny twin in ``tiny``), loaded as notebook 05 loads Flux.1:
    with the profile's memory options (on colab: 4-bit NF4 weights and model offload)."""
    from helpers.flux import load_flux

    return load_flux(settings["model"], profile, settings["memory"], settings.get("dtype", "auto"))


def generate_stills(storyboard: Storyboard, profile: Profile | None = None, pipe=None,
                    settings: dict[str, Any] | None = None, progress: bool = True) -> list[Image.Image]:
    """One text-to-image frame per slide: the slide's prompt + the shared style, the shared seed."""
    import torch
    from diffusers.utils import logging as diffusers_logging
    from tqdm.auto import tqdm

    from helpers.core.device import borrowed
    from helpers.flux import encode_prompts

    profile = profile or get_profile()
    settings = settings or profile.settings("slides")
    quiet = profile.random_weights  # the twin's letter-by-letter tokenizers make every prompt "too long"
    stills = []
    verbosity = diffusers_logging.get_verbosity()
    if quiet:
        diffusers_logging.set_verbosity_error()
    try:
        with borrowed(pipe, lambda: load_text_to_image(profile, settings)) as (pipe, owned):
            # every prompt first; a pipeline loaded here then frees T5 and CLIP before the first denoising step
            texts = encode_prompts(pipe, [storyboard.prompt_for(i) for i in range(len(storyboard.slides))],
                                   settings["max_sequence_length"], free_text_encoders=owned)
            for index in tqdm(range(len(storyboard.slides)), desc="slides", unit="slide", disable=not progress):
                generator = torch.Generator(device="cpu").manual_seed(storyboard.seed_for(index))
                result = pipe(**texts[index], width=settings["width"], height=settings["height"],
                              num_inference_steps=settings["num_inference_steps"],
                              guidance_scale=settings["guidance_scale"],
                              max_sequence_length=settings["max_sequence_length"], generator=generator)
                check_output(result.images[:1], f"slide {index + 1}'s picture", pipe, "flux")
                stills.append(result.images[0].convert("RGB"))
    finally:
        diffusers_logging.set_verbosity(verbosity)
    return stills


def check_memory(storyboard: Storyboard, settings: dict[str, Any]) -> None:
    """Refuse a video whose frames would not fit in memory (:data:`MAX_BYTES`), before any work."""
    frames = sum(slide_frame_counts(storyboard, settings["fps"]))
    size = frames * settings["video_width"] * settings["video_height"] * 3
    if size > MAX_BYTES:
        raise StoryboardError(storyboard.source, (
            f"{frames} frames of {settings['video_width']}x{settings['video_height']} ({size / 2**30:.1f} GiB) "
            f"are more than {MAX_BYTES / 2**30:.0f} GiB: shorten the slides or lower --fps"))


def make_slides(storyboard: Storyboard, out: str | Path, profile: Profile | None = None,
                stills: Sequence[Image.Image] | None = None, **overrides: Any) -> dict[str, Any]:
    """Storyboard -> MP4 at ``out``. Returns a small report (frames, seconds, size, notes).

    ``overrides`` replace the profile's ``slides`` settings (e.g. ``fps=12``, ``crossfade_s=0.25``).
    Pass ``stills`` to reuse pictures you already made (no model is loaded then).
    """
    from helpers.core.video import write_mp4

    profile = profile or get_profile()
    settings = profile.settings("slides")
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown slides setting(s) {sorted(unknown)}; known: {', '.join(settings)}")
    settings.update(overrides)
    size = (settings["video_width"], settings["video_height"])
    timeline(storyboard, settings["fps"], settings["crossfade_s"])  # a bad storyboard fails before any model loads
    check_memory(storyboard, settings)
    if stills is None:
        stills = generate_stills(storyboard, profile, settings=settings)
    frames = compose(storyboard, stills, settings["fps"], settings["crossfade_s"], stamp=profile.random_weights, size=size)
    write_mp4(frames, out, fps=settings["fps"])
    notes = []
    for i, slide in enumerate(storyboard.slides):
        layer = caption_layer(slide.caption, size)
        if layer.shortened:
            notes.append(f"{slide.label(i)}: caption shortened to fit ({settings['video_height']} px high video)")
        if layer.note:
            notes.append(f"{slide.label(i)}: caption: {layer.note}")
    return {"path": str(out), "frames": len(frames), "seconds": len(frames) / settings["fps"],
            "fps": settings["fps"], "size": size, "notes": notes, "settings": settings}


# --------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("storyboard", nargs="?", help="storyboard file (.json, or .yaml with PyYAML); "
                                                      "default: the bundled example")
    parser.add_argument("--out", help="where to write the video (.mp4); default: outputs/final/slides.mp4")
    parser.add_argument("--fps", type=float_range(0, 60, low_open=True), help="frames per second of the video, up to 60")
    parser.add_argument("--crossfade", type=float_range(0, 10), dest="crossfade_s",
                        help="length of each crossfade in seconds, 0-10")
    parser.add_argument("--seed", type=int_range(0, 2**63 - 1), help="replace the storyboard's shared seed")
    parser.add_argument("--style", help="replace the storyboard's shared style prompt")
    parser.add_argument("--stills", help="also save each slide's picture as PNG into this folder")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from helpers.core.outputs import save_image, stage_dir

    storyboard = load_storyboard(args.storyboard) if args.storyboard else example_storyboard()
    if args.seed is not None:
        if args.seed < 0:
            raise ValueError(f"--seed must be >= 0, got {args.seed}")
        storyboard = replace(storyboard, seed=args.seed)
    if args.style is not None:
        storyboard = replace(storyboard, style=args.style.strip())
    out = Path(args.out) if args.out else stage_dir("final") / "slides.mp4"
    if out.suffix.lower() != ".mp4":
        raise ValueError(f"{out}: the output must end in .mp4")
    if args.stills and Path(args.stills).exists() and not Path(args.stills).is_dir():
        from helpers.core.images import BadInputError

        raise BadInputError(args.stills, "--stills is a file, not a folder for the slide pictures")
    overrides = {k: getattr(args, k) for k in ("fps", "crossfade_s") if getattr(args, k) is not None}
    if overrides.get("fps", 1) <= 0:
        raise ValueError(f"--fps must be positive, got {overrides['fps']}")
    if overrides.get("crossfade_s", 0) < 0:
        raise ValueError(f"--crossfade must be >= 0 seconds, got {overrides['crossfade_s']}")
    profile = get_profile(args.profile)
    print(profile.banner())
    settings = profile.settings("slides")
    settings.update(overrides)
    timeline(storyboard, settings["fps"], settings["crossfade_s"])  # fail fast, before the model loads
    check_memory(storyboard, settings)
    start = time.perf_counter()
    stills = generate_stills(storyboard, profile, settings=settings)
    if args.stills:
        for index, still in enumerate(stills):
            picture = stamp_random_weights(still) if profile.random_weights else still
            save_image(picture, Path(args.stills) / f"slide_{index + 1:02d}.png")
    report = make_slides(storyboard, out, profile, stills=stills, **overrides)
    for note in report["notes"]:
        print(f"note: {note}")
    tiny = made_by_note(made_by(settings["model"], profile))
    print(f"wrote {out}: {len(storyboard.slides)} slides, {report['frames']} frames "
          f"({report['seconds']:.2f} s at {report['fps']:g} fps), {report['size'][0]}x{report['size'][1]}, "
          f"in {time.perf_counter() - start:.1f} s{tiny}")
    return 0
