"""The video studio (notebook 10): a Gradio web app and an ipywidgets studio over the animate stage.

``python -m helpers app`` serves the app on http://127.0.0.1:7860 (``--port``, ``--share`` for a
public link, ``--auth user:password`` or ``$COURSE_APP_AUTH`` for a login) until Ctrl+C or SIGTERM. It
serves the videos it made and the uploads (size-limited, deleted again), nothing else of the work folder.
In a notebook: ``launch(build_app())`` (on Colab ``launch(app, share=True)``, opt in), or
``WidgetStudio()`` for the same controls without leaving Jupyter.

Both are thin layers over :class:`Studio`, written for people who do not code: one control says which
picture is animated, labels are plain words (the technical name is in the small print), and
:meth:`Studio.request` turns every problem, a bad seed or a file that is not a picture included, into
one sentence for the status box. The Studio keeps the loaded models between requests and times every
video, so the page states what was measured on the machine it runs on (the first video, which loads the
model, and the later ones) next to the promise: **a video in under two minutes** once the model is loaded.
"""

from __future__ import annotations

import argparse
import contextvars
import logging
import os
import re
import signal
import socket
import statistics
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from PIL import Image

from helpers import animate
from helpers.core.demo_images import MAKERS, demo_image_path
from helpers.core.device import GenerationError
from helpers.core.images import BadInputError, load_image
from helpers.core.outputs import stage_dir
from helpers.core.profiles import Profile, get_profile
from helpers.core.registry import is_trained_twin
from helpers.core.video import write_mp4
from helpers.keyframes import animation_keyframes

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry: the app talks to nobody
LOG = logging.getLogger(__name__)

BACKEND_NAMES = {"svd": "Stable Video Diffusion: moves the picture by itself",
                 "ltx-distilled": "LTX-Video, fast: the picture plus a sentence about the motion",
                 "ltx": "LTX-Video 0.9.5: the picture plus a sentence, slower"}
BACKEND_DETAILS = {"svd": "SVD-XT 1.1", "ltx-distilled": "LTX-Video 0.9.8 distilled, 8 steps",
                   "ltx": "LTX-Video 0.9.5, 20-40 steps"}
LTX_BACKENDS = ("ltx-distilled", "ltx")
UPLOAD = "upload"            # the source value meaning "the picture I upload"
MAX_SEED = 2**31 - 1
PROMISE_SECONDS = 120
# What is known elsewhere about the time of one video with the app's default settings, model loaded, in
# plain words. The studio adds what it measures on its own machine (Studio.timings). colab/full: ESTIMATES
# from SVD-XT timed on an H100 with the full-size architecture (random weights, same compute as the real
# ones): 25 frames x 25 steps at 1024x576 took 23.2 s there; a T4 is 10-15x slower (docs/benchmarks.md)
# and the colab defaults are 0.19 of that work (frames x steps x pixels) -> 45-70 s. full: 18.8 s were
# reported on an H100 for exactly its defaults. tiny: nothing to quote; the machine it runs on decides.
PROMISE_ELSEWHERE = {
    "tiny": "",
    "colab": "Not yet measured on a free Colab GPU (T4): estimated at 45-70 seconds per video, worked out from "
             "timings of the same model on a faster GPU. The very first video also downloads the model (about "
             "9.6 GB) and loads it, which takes minutes.",
    "full": "Not yet measured here: estimated at about 19 seconds per video on an H100 GPU (reported for these "
            "settings); loading the model comes on top, once.",
}
MAX_UPLOAD = "20mb"  # Gradio's max_file_size: a bigger upload is refused with one line (HTTP 413)
CACHE_CLEANUP = (3600, 3600)  # Gradio's delete_cache: uploads and served copies older than an hour go, hourly
PLAIN_PROBLEMS = {"not an image PIL can read": "this file is not a picture the studio can read "
                                               "(it reads PNG, JPEG, WebP, GIF, BMP and TIFF)"}
ProgressFn = Callable[[float, str], None]


class StudioInputError(ValueError):
    """Something the person using the studio can fix; ``str(err)`` is one plain sentence."""


def download_button(component) -> dict[str, Any]:
    """The keyword that shows only a download button: ``buttons`` (gradio 6) or the older flags."""
    import inspect

    if "buttons" in inspect.signature(component.__init__).parameters:
        return {"buttons": ["download"]}
    return {"show_download_button": True, "show_share_button": False}


def available_backends() -> list[str]:
    """The backends this installation can run: svd, then the fast LTX-Video, then LTX-Video 0.9.5."""
    return ["svd", *LTX_BACKENDS]


def promise(profile: Profile) -> str:
    """The promise and the app's default settings on ``profile``, with what is known of their time elsewhere."""
    defaults = profile.settings("app")
    backend = defaults["backend"]
    if backend == "svd":
        svd = profile.settings("svd")
        size = f"{defaults['svd_width'] or svd['width']}x{defaults['svd_height'] or svd['height']}"
        frames, steps = defaults["svd_num_frames"], defaults["svd_steps"]
    else:
        ltx = animate.ltx_settings(profile, backend == "ltx-distilled")
        size = f"{ltx['width']}x{ltx['height']}"
        frames, steps = (defaults[backend.replace("-", "_") + f"_{k}"] for k in ("num_frames", "steps"))
    text = (f"**A video in under {PROMISE_SECONDS // 60} minutes, once the model is loaded.** The settings "
            f"you start with are chosen for it: {BACKEND_NAMES[backend].split(':')[0]}, {frames} frames x "
            f"{steps} steps at {size} pixels. The first video is slower: it loads the model first.")
    elsewhere = PROMISE_ELSEWHERE.get(profile.name, "")
    return f"{text} {elsewhere}".strip()


def _pictures() -> dict[str, tuple[str, Path]]:
    """key -> (label, path) of the pictures on offer besides the upload: your keyframes
    (:func:`helpers.keyframes.animation_keyframes`), then the demo pictures. Keys, not paths, go to the page."""
    found: dict[str, tuple[str, Path]] = {}
    for path in animation_keyframes(standins=False, verbose=False):
        kind = "refined keyframe" if path.parent.name == "refined" else "keyframe"
        found[f"{kind.split()[0]}:{path.name}"] = (f"Your {kind} {path.name}", path)
    for name in MAKERS:
        found[f"demo:{name}"] = (f"Demo picture: {name}", demo_image_path(name))
    return found


def source_choices() -> list[tuple[str, str]]:
    """(label, key) for 'Which picture to animate': the upload, your keyframes, then the demo pictures."""
    return [("The picture I upload", UPLOAD)] + [(label, key) for key, (label, _) in _pictures().items()]


def describe_source(source: str, upload: str | os.PathLike | None = None) -> str:
    """The picture in words, for the status: 'your upload X', 'your keyframe X', 'the demo picture X'."""
    if source == UPLOAD:
        return f"your upload {Path(upload).name}" if upload else "your upload"
    label = _pictures().get(source, (f"the picture {source}", None))[0]
    return label.replace("Demo picture: ", "the demo picture ").replace("Your ", "your ")


def read_upload(path: str | os.PathLike | None, source: str | None = UPLOAD) -> tuple[Image.Image, str]:
    """The picture to animate and its description; a :class:`StudioInputError` sentence if there is none.

    ``source`` is :data:`UPLOAD` (use ``path``, the uploaded file) or a key of :func:`source_choices`.
    A bad upload is named by its own file name (not the server's temporary path), in plain words.
    """
    if source in (None, ""):
        raise StudioInputError("Choose which picture to animate under 'Which picture to animate'.")
    if source != UPLOAD:
        pictures = _pictures()
        if source not in pictures:
            raise StudioInputError(f"There is no picture {source!r} here any more; choose another under "
                                   "'Which picture to animate'.")
        image, _ = load_image(pictures[source][1])
        return image, describe_source(source)
    if not path:
        raise StudioInputError("There is no picture to animate yet: upload one, or choose one of your keyframes "
                               "or a demo picture under 'Which picture to animate'.")
    try:
        image, _ = load_image(path)
    except BadInputError as err:
        problem = PLAIN_PROBLEMS.get(err.problem, err.problem)
        raise StudioInputError(f"Could not use your upload {Path(path).name}: {problem}.") from None
    return image, describe_source(UPLOAD, path)


@contextmanager
def ticking(progress: ProgressFn, start: float, end: float, text: str, expected: float | None = None,
            every: float = 0.5) -> Iterator[None]:
    """While the block runs, report ``text`` with the seconds so far every ``every`` s (from a thread).

    The bar moves from ``start`` towards ``end`` in proportion to ``expected`` (the time measured here
    last time); without a measurement it stays at ``start`` and only the seconds count up. The thread runs
    in a copy of this context, so Gradio's progress (kept in context variables) reaches the page.
    """
    stop, began = threading.Event(), time.perf_counter()

    def tick() -> None:
        while True:
            elapsed = time.perf_counter() - began
            share = min(elapsed / expected, 0.95) if expected else 0.0
            hint = f", about {expected:.0f} s last time on this computer" if expected else ""
            progress(start + (end - start) * share, f"{text}: {elapsed:.0f} s so far{hint}")
            if stop.wait(every):
                return

    thread = threading.Thread(target=contextvars.copy_context().run, args=(tick,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def whole_number(value: Any, what: str, low: int, high: int) -> int:
    """``value`` as an int from ``low`` to ``high``; else a :class:`StudioInputError` sentence naming ``what``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise StudioInputError(f"{what} is empty: type a whole number between {low} and {high}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StudioInputError(f"{what} must be a whole number between {low} and {high}; "
                               f"'{value}' is not a number.") from None
    if not low <= number <= high:
        raise StudioInputError(f"{what} must be between {low} and {high}; you gave {number:g}.")
    if number != int(number):
        raise StudioInputError(f"{what} must be a whole number between {low} and {high}; you gave {number:g}.")
    return int(number)


def check_knobs(defaults: dict[str, Any], backend: str, num_frames: Any, motion: Any, steps: Any, seed: Any,
                prompt: str | None) -> tuple[dict[str, Any], list[str]]:
    """The overrides handed to helpers.animate for the apps ``defaults`` (the profiles ``app`` block),
    and notes about anything adjusted; a :class:`StudioInputError` sentence for anything out of range."""
    if backend not in available_backends():
        raise StudioInputError(f"There is no model called {backend!r} here; choose one of: "
                               f"{', '.join(available_backends())}.")
    whole_number(seed, "Variation number: the seed", 0, MAX_SEED)
    num_frames = defaults[f"{backend.replace('-', '_')}_num_frames"] if num_frames is None else num_frames
    steps = defaults[f"{backend.replace('-', '_')}_steps"] if steps is None else steps  # 0 is refused, not replaced
    frames = whole_number(num_frames, "Length: the number of frames", 2, defaults["max_frames"])
    overrides = dict(num_frames=frames,
                     num_inference_steps=whole_number(steps, "Quality: the number of steps", 1, animate.MAX_STEPS))
    notes: list[str] = []
    if backend == "svd":
        if motion is not None:
            overrides["motion_bucket_id"] = whole_number(motion, "How much it moves: the motion", 1, 255)
        overrides.update({side: defaults[f"svd_{side}"] for side in ("width", "height")
                          if defaults[f"svd_{side}"]})
        return overrides, notes
    valid = animate.ltx_frames_at_least(frames)
    if valid != frames:
        notes.append(f"LTX-Video makes 1, 9, 17, 25, ... frames (8k+1), so {frames} became {valid}")
    overrides["num_frames"] = valid
    if prompt is not None and prompt.strip():
        overrides["prompt"] = prompt.strip()
    if motion is not None and motion != defaults["motion_bucket_id"]:
        notes.append("'How much it moves' is for Stable Video Diffusion; with LTX-Video describe the motion "
                     "in the sentence")
    return overrides, notes


class Timings:
    """How long videos took in this process, per model: with loading the model, and with it loaded."""

    def __init__(self) -> None:
        self.loading: dict[str, list[tuple[float, float]]] = {}  # backend -> [(whole video, loading part)]
        self.loaded: dict[str, list[float]] = {}                 # backend -> [seconds with the model loaded]
        self.per_work: dict[str, float] = {}                     # backend -> seconds per frame x step, last video

    def add(self, backend: str, seconds: float, load_seconds: float | None, work: int) -> None:
        if load_seconds is None:
            self.loaded.setdefault(backend, []).append(seconds)
        else:
            self.loading.setdefault(backend, []).append((seconds, load_seconds))
        self.per_work[backend] = (seconds - (load_seconds or 0.0)) / max(work, 1)

    def expected(self, backend: str, work: int) -> float | None:
        """Seconds a video of ``work`` frames x steps should take here, from the last one (None: not yet)."""
        return self.per_work[backend] * work if backend in self.per_work else None

    def text(self) -> str:
        """One sentence per model used so far; a sentence saying nothing was measured yet otherwise."""
        parts = []
        for backend in available_backends():
            said = []
            if backend in self.loading:
                seconds, load = self.loading[backend][0]
                said.append(f"the first video took {seconds:.1f} s, {load:.1f} s of it loading the model")
            if backend in self.loaded:
                times = self.loaded[backend]
                said.append(f"with the model loaded {statistics.median(times):.1f} s"
                            + (f" (the median of {len(times)} videos)" if len(times) > 1 else ""))
            if said:
                parts.append(f"{BACKEND_NAMES[backend].split(':')[0]}: {'; '.join(said)}.")
        if not parts:
            return ("**Measured on this computer:** nothing yet. The first video shows how long it takes here; "
                    "it is the slow one, because it loads the model first.")
        return "**Measured on this computer** (the settings chosen each time): " + " ".join(parts)


def video_report(picture: str, backend: str, frames: list, settings: dict[str, Any], seed: int, fps: float,
                 seconds: float, load_seconds: float | None, notes: list[str], random_weights: bool) -> str:
    """What the status says about a video made: the picture, the model and settings, the time, any notes."""
    knobs = f"variation {seed}, {settings['num_inference_steps']} steps"
    knobs += (f", movement {settings['motion_bucket_id']}" if backend == "svd"
              else f", the sentence \"{settings['prompt']}\"")
    loading = f", {load_seconds:.1f} s of it loading the model" if load_seconds is not None else ""
    width, height = frames[0].size if isinstance(frames[0], Image.Image) else (settings["width"], settings["height"])
    report = (f"Made a video of {picture}: {len(frames)} frames at {width}x{height} "
              f"pixels ({len(frames) / fps:.1f} s at {fps:g} frames per second) with "
              f"{BACKEND_NAMES[backend].split(':')[0]} ({BACKEND_DETAILS[backend]}; {knobs}). "
              f"It took {seconds:.1f} s on this computer{loading}.")
    if notes:
        report += " Note: " + "; ".join(notes) + "."
    if random_weights == "trained":
        model = "SVD" if backend == "svd" else "LTX-Video"
        report += (f" SMALL TWIN TRAINED ON DIGITS (test mode): a tiny model this course trained on moving digits, "
                   f"not the real {model}; it moves digits, other pictures show what such a model makes of them.")
    elif random_weights:
        report += " RANDOM WEIGHTS (test mode): this shows the studio works, not a real result."
    return report


def problem_sentence(err: Exception) -> str:
    """One sentence for the status box about why a video was not made (unexpected errors are also logged)."""
    if isinstance(err, (StudioInputError, BadInputError, GenerationError)):  # GenerationError names its fix
        return str(err)
    LOG.error("the studio could not make a video", exc_info=err)
    if "out of memory" in str(err).lower():
        return ("The graphics card ran out of memory. Try fewer frames or fewer steps, or the colab settings "
                "(they move parts of the model off the card).")
    first = (str(err).strip().splitlines() or [""])[0][:200]
    return (f"Something went wrong while making it ({type(err).__name__}: {first}). Try again with other "
            "settings; the details are in the window where the studio runs.")


class Studio:
    """One picture -> one MP4, with the models kept loaded between requests (one request at a time)."""

    def __init__(self, profile: Profile | None = None):
        self.profile = profile or get_profile()
        self.defaults = self.profile.settings("app")
        self.timings = Timings()
        self._pipes: dict[str, Any] = {}
        self._lock = threading.Lock()

    def banner(self) -> str:
        """Where the studio runs and, when the models have random weights, a plain warning."""
        where = "this computer's processor (CPU)" if self.profile.device == "cpu" else "a graphics card (GPU)"
        text = f"Runs on {where}, with the {self.profile.name} settings."
        if self.profile.is_tiny:
            text += ("\n\n**Test mode: these are not the real models.** SVD and LTX-Video are small twins this course "
                     "trained on moving digits, LTX-Video distilled has RANDOM WEIGHTS: a video shows that the studio "
                     "works end to end, not what the real model makes; the status and every frame say so.")
        elif self.profile.random_weights:
            text += ("\n\n**Test mode: the models here have RANDOM WEIGHTS.** A video shows that the studio works "
                     "end to end, not what the real model makes; the status and every frame say so.")
        return text

    def promise_here(self) -> str:
        """The promise, and what was measured on this computer so far (updated after every video)."""
        return f"{promise(self.profile)}\n\n{self.timings.text()}"

    def default(self, backend: str, knob: str) -> Any:
        """The app's default for ``knob`` (num_frames, steps) of ``backend``."""
        return self.defaults[f"{backend.replace('-', '_')}_{knob}"]

    def pipeline(self, backend: str, settings: dict[str, Any]):
        """The loaded pipeline of ``backend`` (loaded on first use, then kept).

        On a GPU only the last one is kept: switching model frees the other first, because a Colab machine
        (~12 GB of RAM, 15 GB of GPU memory) cannot hold SVD and LTX-Video at once. The tiny twins all stay.
        """
        if backend not in self._pipes:
            if self.profile.device != "cpu" and self._pipes:
                import gc

                import torch

                self._pipes.clear()
                gc.collect()
                torch.cuda.empty_cache()
            loader = animate.load_svd if backend == "svd" else animate.load_ltx
            self._pipes[backend] = loader(self.profile, settings)
        return self._pipes[backend]

    def _generate(self, image: Image.Image, backend: str, overrides: dict[str, Any], seed: int,
                  progress: ProgressFn) -> tuple[list, dict[str, Any], float | None]:
        """(frames, the settings used, seconds spent loading the model or None), reporting progress."""
        ltx, distilled = backend in LTX_BACKENDS, backend == "ltx-distilled"
        settings = (animate.ltx_settings(self.profile, distilled, **overrides) if ltx
                    else animate.svd_settings(self.profile, **overrides))
        load_seconds = None
        if backend not in self._pipes:
            began = time.perf_counter()
            last = self.timings.loading.get(backend, [(None, None)])[-1][1]
            with ticking(progress, 0.0, 0.3, "Loading the model (only the first video waits for this)", last):
                self.pipeline(backend, settings)
            load_seconds = time.perf_counter() - began
        pipe, work = self._pipes[backend], settings["num_frames"] * settings["num_inference_steps"]
        text = f"Making {settings['num_frames']} frames ({settings['num_inference_steps']} steps each)"
        with ticking(progress, 0.3, 0.95, text, self.timings.expected(backend, work)):
            if ltx:
                frames, settings = animate.animate_ltx([image], profile=self.profile, seed=seed, pipe=pipe,
                                                       distilled=distilled, **overrides)
            else:
                frames, settings = animate.animate_image(image, self.profile, seed=seed, pipe=pipe, **overrides)
            if is_trained_twin(pipe):
                settings = {**settings, "random_weights": "trained"}
        return frames, settings, load_seconds

    def make_video(self, image: Image.Image, backend: str = "svd", num_frames: int | None = None,
                   motion: int | None = None, steps: int | None = None, seed: int = 0,
                   prompt: str | None = None, progress: ProgressFn | None = None,
                   out: str | Path | None = None, picture: str = "the picture") -> tuple[Path, str]:
        """Animate ``image``; returns (the MP4 path, a few plain sentences for the status).

        Raises :class:`StudioInputError` (a ValueError) with one plain sentence for a knob out of range.
        """
        progress = progress or (lambda fraction, text: None)
        overrides, notes = check_knobs(self.defaults, backend, num_frames, motion, steps, seed, prompt)
        with self._lock:
            start = time.perf_counter()
            frames, settings, load_seconds = self._generate(image, backend, overrides, int(seed), progress)
            progress(0.95, "Saving the video")
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            path = Path(out) if out else stage_dir("final") / f"studio_{backend}_seed{int(seed)}_{stamp}.mp4"
            fps = settings["frame_rate"] if backend in LTX_BACKENDS else settings["export_fps"]
            write_mp4(frames, path, fps=fps)
            seconds = time.perf_counter() - start
            self.timings.add(backend, seconds, load_seconds, len(frames) * settings["num_inference_steps"])
        progress(1.0, "Done")
        # Whether the frames come from random weights is the animate stage's answer (it stamps them): its
        # settings may say so; else the profile does (tiny and the GPU test mode).
        random_weights = settings.get("random_weights", self.profile.random_weights)
        return path, video_report(picture, backend, frames, settings, int(seed), fps, seconds, load_seconds, notes,
                                  random_weights)

    def request(self, source: str | None, upload: str | os.PathLike | None, backend: str, num_frames: Any,
                motion: Any, steps: Any, seed: Any, prompt: str | None = None,
                progress: ProgressFn | None = None) -> tuple[Path | None, str]:
        """Everything one press of the button does: (the video or None, the sentences for the status box).

        Never raises: a problem the person can fix is one plain sentence; anything else is one sentence
        too, with the details in the log of the process that serves the studio.
        """
        try:
            image, picture = read_upload(upload, source)
            return self.make_video(image, backend, num_frames, motion, steps, seed, prompt, progress,
                                   picture=picture)
        except Exception as err:  # noqa: BLE001 - the page must stay usable, whatever went wrong
            return None, f"No video. {problem_sentence(err)}"

# --------------------------------------------------------------------------------------------
# The Gradio app

INTRO = ("# Pixels to Motion: video studio\nTurn a picture into a short video: **1.** choose the picture, "
         "**2.** choose how it should move, **3.** press the button. The video appears on the right; the "
         "arrow above it downloads it.")
STATUS_READY = "Ready. Upload a picture (or choose one under 'Which picture to animate'), then press the button."
BUSY_LABEL = "Working on your video... please wait"
GO_LABEL = "Make the video"


def _controls(gr, studio: Studio) -> dict[str, Any]:
    """The page's components, top to bottom, each labelled in plain words (technical names in the info)."""
    first = available_backends()[0]
    c: dict[str, Any] = {}
    gr.Markdown(INTRO)
    gr.Markdown(studio.banner())
    c["promise"] = gr.Markdown(studio.promise_here(), elem_id="promise")
    with gr.Row():
        with gr.Column():
            c["upload"] = gr.File(label="1. Upload a picture (PNG, JPEG, WebP, ...)", type="filepath",
                                  elem_id="upload")
            c["source"] = gr.Radio(source_choices(), value=UPLOAD, label="Which picture to animate",
                                   info="Uploading a picture selects it; or pick one of yours or a demo picture.",
                                   elem_id="source")
            c["shown"] = gr.Image(label="The picture that will be animated", interactive=False, height=200)
            c["backend"] = gr.Radio([(BACKEND_NAMES[b], b) for b in available_backends()], value=first,
                                    label="2. How to animate it", elem_id="backend")
            c["prompt"] = gr.Textbox(label="Describe the motion in a sentence", visible=False, elem_id="prompt",
                                     info="LTX-Video's prompt, e.g. 'slow dolly-in, soft lighting'")
            c["num_frames"] = gr.Slider(2, studio.defaults["max_frames"], step=1, elem_id="frames",
                                        value=studio.default(first, "num_frames"), label="Length, in frames",
                                        info="num_frames: SVD-XT learned 25; LTX-Video makes 8k+1 and rounds up")
            c["motion"] = gr.Slider(1, 255, step=1, value=studio.defaults["motion_bucket_id"], elem_id="motion",
                                    label="How much it moves", info="SVD's motion_bucket_id: higher = more movement")
            c["steps"] = gr.Slider(1, animate.MAX_STEPS, step=1, value=studio.default(first, "steps"),
                                   label="Quality: more is slower, usually cleaner", elem_id="steps",
                                   info="the number of denoising steps")
            c["seed"] = gr.Number(value=0, precision=None, label="Variation number", elem_id="seed",
                                  info="the random seed: the same number gives the same video")
            c["go"] = gr.Button(GO_LABEL, variant="primary", elem_id="make")
        with gr.Column():
            c["video"] = gr.Video(label="Your video", format="mp4", autoplay=True, loop=True, elem_id="video",
                                  **download_button(gr.Video))
            c["status"] = gr.Textbox(STATUS_READY, label="Status", interactive=False, lines=4, elem_id="status")
    return c


def build_app(studio: Studio | None = None):
    """The studio as a ``gr.Blocks`` app; :func:`launch` serves it (on Colab ``launch(app, share=True)``).

    The seed is a plain ``gr.Number`` without bounds or rounding: Gradio's own range check would answer -5
    with a bare "Error" and its rounding "nan" with a traceback; :meth:`Studio.request` answers both with
    a sentence in the status box instead. The page gets a copy of each video made (:func:`served_copy`),
    never a path into the work folder, and Gradio deletes uploads and copies (``delete_cache``).
    """
    import gradio as gr

    studio = studio or Studio()
    served = tempfile.TemporaryDirectory(prefix="studio-videos-")  # removed with the app (or at exit)

    def preview(source, upload):
        if source == UPLOAD and not upload:
            return None, STATUS_READY
        try:
            image, picture = read_upload(upload, source)
        except (StudioInputError, BadInputError) as err:
            return None, str(err)
        return image, f"Will animate {picture} ({image.width}x{image.height} pixels): press '{GO_LABEL}'."

    def on_upload(upload, source):
        source = UPLOAD if upload else source  # an upload selects itself
        return (gr.update(value=source), *preview(source, upload))

    def on_backend(backend):
        ltx = backend in LTX_BACKENDS
        return (gr.update(visible=ltx), gr.update(visible=not ltx),
                gr.update(value=studio.default(backend, "num_frames")), gr.update(value=studio.default(backend, "steps")))

    def make_video(upload, source, backend, num_frames, motion, steps, seed, prompt, progress=gr.Progress()):
        path, status = studio.request(source, upload, backend, num_frames, motion, steps, seed, prompt,
                                      progress=lambda fraction, text: progress(fraction, desc=text))
        return (served_copy(path, Path(served.name)) if path else None), status, studio.promise_here()

    with gr.Blocks(title="Pixels to Motion - video studio", analytics_enabled=False,
                   delete_cache=CACHE_CLEANUP) as app:
        c = _controls(gr, studio)
        knobs = [c[k] for k in ("upload", "source", "backend", "num_frames", "motion", "steps", "seed", "prompt")]
        c["upload"].change(on_upload, [c["upload"], c["source"]], [c["source"], c["shown"], c["status"]],
                           api_name=False)
        c["source"].input(preview, [c["source"], c["upload"]], [c["shown"], c["status"]], api_name=False)
        c["backend"].change(on_backend, c["backend"], [c["prompt"], c["motion"], c["num_frames"], c["steps"]],
                            api_name=False)
        busy = c["go"].click(lambda: (gr.update(value=BUSY_LABEL, interactive=False), "Working on it: the progress shows in the video panel."), None,
                             [c["go"], c["status"]], api_name=False, show_progress="hidden", queue=False)
        made = busy.then(make_video, knobs, [c["video"], c["status"], c["promise"]], api_name="make_video",
                         show_progress_on=[c["video"]])
        made.then(lambda: gr.update(value=GO_LABEL, interactive=True), None, c["go"], api_name=False,
                  show_progress="hidden", queue=False)
        app.load(studio.promise_here, None, c["promise"], api_name=False, show_progress="hidden")
    app.course_served_videos = served  # lives as long as the app
    return app


def served_copy(video: Path, folder: Path) -> str:
    """A copy of ``video`` in ``folder`` (outside the work folder) for Gradio to serve; earlier copies go.

    Gradio copies what a function returns into its own cache and serves it from there; the copy here is
    what lets the work folder stay out of ``allowed_paths`` (Gradio accepts returned files from the
    system's temporary folder).
    """
    import shutil

    for old in folder.iterdir():
        old.unlink(missing_ok=True)
    return shutil.copy2(video, folder / video.name)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _check_port(host: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise ValueError(f"--port must be between 1 and 65535, got {port}")
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            raise ValueError(f"port {port} on {host} is in use; choose another with --port") from None


def launch(app, host: str = "127.0.0.1", port: int | None = None, share: bool = False, block: bool = True,
           auth: tuple[str, str] | None = None, max_file_size: str | int = MAX_UPLOAD):
    """Serve ``app`` (loopback by default). ``share=True`` asks Gradio for a public link (Colab).

    Nothing of the work folder is served: no ``allowed_paths``, and the work folder is in ``blocked_paths``
    (Gradio serves only its own cache: the uploads, and copies of the videos made, see :func:`build_app`).
    ``auth`` is a (user, password) login (:func:`login_from`); uploads over ``max_file_size`` are refused.
    """
    if share:
        print(public_link_warning(auth), flush=True)
    return app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
                      allowed_paths=[], blocked_paths=blocked_paths(), auth=auth, max_file_size=max_file_size,
                      ssr_mode=False, quiet=not block, show_error=True)


def blocked_paths() -> list[str]:
    """The work folder, which the app never serves (unless it holds the folders Gradio serves from)."""
    from gradio.utils import get_upload_folder

    from helpers.core.outputs import outputs_dir

    work = outputs_dir().resolve()
    served = [Path(get_upload_folder()).resolve(), Path(tempfile.gettempdir()).resolve()]
    return [] if any(folder.is_relative_to(work) for folder in served) else [str(work)]


def public_link_warning(auth: tuple[str, str] | None) -> str:
    """What a share link means, in one plain sentence (printed by ``--share`` and notebook 10)."""
    who = ("only people who know the login can use it" if auth else
           "there is no login: anyone who has the link can use the studio (and this computer's GPU)")
    return (f"PUBLIC LINK: the *.gradio.live address Gradio prints reaches this studio from the whole internet "
            f"for as long as it runs; {who}. Share it only with people you trust and stop the studio when done"
            + ("." if auth else " (or start it with --auth user:password, or set COURSE_APP_AUTH)."))


def login_from(text: str | None, where: str = "--auth") -> tuple[str, str] | None:
    """``user:password`` (from ``--auth`` or ``$COURSE_APP_AUTH``) as Gradio's ``auth``; None when not given."""
    if not text:
        return None
    user, colon, password = text.partition(":")
    if not colon or not user.strip() or not password:
        raise ValueError(f"{where} must be user:password, a user name and a password on either side of the "
                         "first ':' (the password is not shown here)")
    return user.strip(), password


def serve_until_stopped(app, host: str, port: int, share: bool = False, auth: tuple[str, str] | None = None) -> int:
    """Serve ``app`` until SIGINT (Ctrl+C) or SIGTERM, then close it cleanly and return 0.

    The server runs in Gradio's thread; the main thread only waits for a signal, so the first one stops it.
    """
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        launch(app, host=host, port=port, share=share, block=False, auth=auth)
        print(f"serving the video studio on http://{host}:{port} (Ctrl+C stops it)", flush=True)
        while not stop.wait(0.2):
            pass
        print("stopping the video studio ...", flush=True)
    finally:
        app.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    print("the video studio has stopped", flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# The ipywidgets studio, for those who stay in Jupyter


def uploaded_files(value: Any) -> list[tuple[str, bytes]]:
    """(name, bytes) of each file in an ipywidgets ``FileUpload.value``, in both shapes it comes in:
    ipywidgets 8, a tuple of dicts with 'name' and 'content' (a memoryview); ipywidgets 7.7 (Colab's),
    a dict name -> {'content': bytes, 'metadata': {...}}."""
    if isinstance(value, dict):
        return [(name, bytes(item["content"])) for name, item in value.items()]
    return [(item["name"], bytes(item["content"])) for item in value or ()]


class WidgetStudio:
    """The app's controls as ipywidgets: ``display(ws.box)``, then click (or ``ws.run()``); works with
    ipywidgets 7.7 (Colab) and 8. The same :meth:`Studio.request` answers, in the same words."""

    def __init__(self, studio: Studio | None = None):
        import ipywidgets as w

        self.studio = studio or Studio()
        first, wide = available_backends()[0], {"layout": w.Layout(width="520px"), "style": {"description_width": "150px"}}
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Upload a picture")
        self.source = w.RadioButtons(options=source_choices(), value=UPLOAD, description="Which picture", **wide)
        self.backend = w.RadioButtons(options=[(BACKEND_NAMES[b], b) for b in available_backends()], value=first,
                                      description="How to animate it", **wide)
        self.prompt = w.Text(placeholder="LTX-Video: e.g. slow dolly-in, soft lighting", description="The motion, in words", **wide)
        self.num_frames = w.IntSlider(value=self.studio.default(first, "num_frames"), min=2,
                                      max=self.studio.defaults["max_frames"], description="Length (frames)", **wide)
        self.motion = w.IntSlider(value=self.studio.defaults["motion_bucket_id"], min=1, max=255,
                                  description="How much it moves", **wide)
        self.steps = w.IntSlider(value=self.studio.default(first, "steps"), min=1, max=animate.MAX_STEPS,
                                 description="Quality (steps)", **wide)
        self.seed = w.IntText(value=0, description="Variation number", **wide)  # unbounded: -5 gets a sentence
        self.button = w.Button(description=GO_LABEL, button_style="primary", layout=w.Layout(width="320px"))
        self.banner = w.HTML(_html(f"{self.studio.banner()}\n\n{self.studio.promise_here()}"))
        self.status = w.HTML(STATUS_READY)
        self.output = w.Output()
        self.last_video: Path | None = None
        self.upload.observe(self._on_upload, names="value")
        self.backend.observe(self._on_backend, names="value")
        self.button.on_click(lambda _: self.run())
        self.box = w.VBox([self.banner, self.upload, self.source, self.backend, self.prompt, self.num_frames,
                           self.motion, self.steps, self.seed, self.button, self.status, self.output])

    def _on_upload(self, change) -> None:
        files = uploaded_files(change["new"])
        if files:  # an upload selects itself
            self.source.value = UPLOAD
            self.status.value = f"Will animate your upload {files[0][0]}: press '{GO_LABEL}'."

    def _on_backend(self, change) -> None:
        self.num_frames.value = self.studio.default(change["new"], "num_frames")
        self.steps.value = self.studio.default(change["new"], "steps")

    def _saved_upload(self, folder: Path) -> Path | None:
        """The uploaded bytes written into ``folder`` under the file's own name (the widget keeps them in memory)."""
        files = uploaded_files(self.upload.value)
        if not files:
            return None
        name, content = files[0]
        path = folder / (Path(name).name or "upload")
        path.write_bytes(content)
        return path

    def run(self) -> Path | None:
        """Make a video with the current controls; show it, or the sentence saying what went wrong."""
        from IPython.display import display

        from helpers.core.video import show_video

        self.output.clear_output()
        self.button.disabled, self.button.description = True, BUSY_LABEL
        try:
            with tempfile.TemporaryDirectory(prefix="studio-upload-") as folder:
                path, message = self.studio.request(
                    self.source.value, self._saved_upload(Path(folder)), self.backend.value, self.num_frames.value,
                    self.motion.value, self.steps.value, self.seed.value, self.prompt.value,
                    progress=lambda fraction, text: setattr(self.status, "value", f"{fraction:.0%}: {text}"))
        finally:
            self.button.disabled, self.button.description = False, GO_LABEL
        self.status.value = _html(message)
        self.banner.value = _html(f"{self.studio.banner()}\n\n{self.studio.promise_here()}")
        if path is not None:
            with self.output:
                display(show_video(path))
            self.last_video = path
        return path


def _html(markdown: str) -> str:
    """The little markdown the studio writes (bold, paragraphs) as HTML for a widget."""
    import html

    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(markdown))
    return "<p>" + text.replace("\n\n", "</p><p>") + "</p>"


# --------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="port to serve on (default: the profile's, 7860)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--share", action="store_true",
                        help="also make a temporary PUBLIC *.gradio.live link anyone who has it can open "
                             "(needs internet; add --auth)")
    parser.add_argument("--auth", metavar="USER:PASSWORD", default=None,
                        help="ask for this login before the page opens (default: $COURSE_APP_AUTH, else no login; "
                             "the variable keeps the password out of the process list)")


def run(args: argparse.Namespace) -> int:
    from helpers.core.hardware import configure_threads

    auth = login_from(args.auth) or login_from(os.environ.get("COURSE_APP_AUTH"), "COURSE_APP_AUTH")
    profile = get_profile(args.profile)
    configure_threads(profile)  # tiny: one torch thread, as the notebooks use
    print(profile.banner())
    studio = Studio(profile)
    port = args.port if args.port is not None else studio.defaults["port"]
    _check_port(args.host, port)
    if args.host not in ("127.0.0.1", "localhost", "::1") and auth is None:
        print(f"note: --host {args.host} lets other computers on your network open the studio, with no login; "
              "add --auth user:password (or set COURSE_APP_AUTH) unless you trust that network", flush=True)
    return serve_until_stopped(build_app(studio), args.host, port, share=args.share, auth=auth)
