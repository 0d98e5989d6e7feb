"""The video studio (notebook 10): a Gradio web app and an ipywidgets studio over the animate stage.

``python -m helpers app`` serves the app on http://127.0.0.1:7860 (``--port``, ``--share`` for a
public link). In a notebook: ``build_app().launch()`` (on Colab ``launch(share=True)``), or
``WidgetStudio()`` for the same knobs without leaving Jupyter.

Both are thin layers over :class:`Studio`, which keeps the loaded pipelines between requests and
turns one image into one MP4 under ``outputs/final/``. Bad uploads (empty, truncated, not an
image) come back as a message, never as a crash.

The promise of the studio: **a video in under two minutes** once the model is loaded. The app's
defaults (the profile's ``app`` block) are chosen for it, and :func:`promise` states, per profile, the
settings and the time they take: measured in tiny, estimated (and labelled so) on the GPU profiles.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from helpers import animate
from helpers.core.demo_images import MAKERS, demo_image_path
from helpers.core.device import GenerationError
from helpers.core.images import BadInputError, load_image
from helpers.core.outputs import stage_dir
from helpers.core.profiles import Profile, get_profile
from helpers.keyframes import animation_keyframes
from helpers.core.video import write_mp4

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no telemetry: the app talks to nobody

BACKEND_NAMES = {"svd": "Stable Video Diffusion (image only)",
                 "ltx-distilled": "LTX-Video 0.9.8 distilled (image + prompt, fast: 8 steps, no CFG)",
                 "ltx": "LTX-Video 0.9.5 (image + prompt, 20-40 steps with CFG)"}
LTX_BACKENDS = ("ltx-distilled", "ltx")
PROMISE_SECONDS = 120
# The time of one video with the app's default backend and settings, once the model is loaded, and where
# the figure comes from. tiny: measured (docs/benchmarks.md, "Studio app"). GPU profiles: not measured, so an
# ESTIMATE from figures measured on an H100 with the full-size SVD-XT architecture (random weights, same
# compute as the real weights), scaled to a T4 by docs/benchmarks.md's 10-15x H100/T4 ratio.
PROMISE_TIME = {
    "tiny": "measured: 1.2 s per video on 2 shared CPU cores with 1 torch thread (median of 5, model loaded); "
            "the first request, which loads the model, took 4.3 s",
    "colab": "not yet measured on a GPU. ESTIMATE 45-70 s on a free Colab T4: an H100 was reported to make 25 frames x 25 steps "
             "at 1024x576 with the same memory options in 23.2 s; a T4 is 10-15x slower (232-348 s), and these "
             "defaults are 0.19 of that work (frames x steps x pixels). Loading is extra: the first request "
             "downloads ~9.6 GB",
    "full": "not yet measured on a GPU. ESTIMATE about 19 s on an H100: 18.8 s were reported there for exactly "
            "these settings with the full-size architecture (eager, without channels_last); A100: not estimated",
}
TINY_NOTE = ("**tiny profile: every model here has RANDOM WEIGHTS.** The video shows that the app "
             "works end to end, not what the real model makes; every frame is stamped to say so.")
ProgressFn = Callable[[float, str], None]


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
    """One paragraph: the app's default settings on ``profile`` and how long one video takes with them."""
    defaults = profile.settings("app")
    backend = defaults["backend"]
    if backend == "svd":
        svd = profile.settings("svd")
        size = f"{defaults['svd_width'] or svd['width']}x{defaults['svd_height'] or svd['height']}"
        what = (f"{BACKEND_NAMES[backend]}, {defaults['svd_num_frames']} frames x {defaults['svd_steps']} steps "
                f"at {size}, memory {svd['memory']}")
    else:
        ltx = animate.ltx_settings(profile, backend == "ltx-distilled")
        what = (f"{BACKEND_NAMES[backend]}, {defaults[backend.replace('-', '_') + '_num_frames']} frames x "
                f"{defaults[backend.replace('-', '_') + '_steps']} steps at {ltx['width']}x{ltx['height']}")
    return (f"**A video in under {PROMISE_SECONDS // 60} minutes** ({profile.name} profile, model loaded): "
            f"{what}. Time: {PROMISE_TIME[profile.name]}.")


def source_choices() -> list[tuple[str, str]]:
    """(label, path) for the picker: the pictures to animate (:func:`helpers.keyframes.animation_keyframes`:
    Flux.1-refined keyframes from real weights, else the keyframes of outputs/keyframes/), then the demo images."""
    choices = [(f"{'refined keyframe' if p.parent.name == 'refined' else 'keyframe'} {p.name}", str(p))
               for p in animation_keyframes(standins=False, verbose=False)]
    choices += [(f"demo image: {name}", str(demo_image_path(name))) for name in MAKERS]
    return choices


class Studio:
    """One image -> one MP4, with pipelines kept loaded between requests (one request at a time)."""

    def __init__(self, profile: Profile | None = None):
        self.profile = profile or get_profile()
        self.defaults = self.profile.settings("app")
        self._pipes: dict[str, Any] = {}
        self._lock = threading.Lock()

    def banner(self) -> str:
        note = f"\n\n{TINY_NOTE}" if self.profile.random_weights else ""
        return (f"Profile **{self.profile.name}** ({self.profile.device}): {self.profile.reason}.\n\n"
                f"{promise(self.profile)}{note}")

    def default(self, backend: str, knob: str) -> Any:
        """The app's default for ``knob`` (num_frames, steps) of ``backend``."""
        return self.defaults[f"{backend.replace('-', '_')}_{knob}"]

    def _settings(self, backend: str, num_frames: int, steps: int, motion: int | None,
                  prompt: str | None) -> tuple[dict[str, Any], list[str]]:
        """The overrides handed to helpers.animate, and notes about anything adjusted."""
        notes: list[str] = []
        if not 2 <= num_frames <= self.defaults["max_frames"]:
            raise ValueError(f"frames must be between 2 and {self.defaults['max_frames']}, got {num_frames}")
        if not 1 <= steps <= animate.MAX_STEPS:
            raise ValueError(f"steps must be between 1 and {animate.MAX_STEPS}, got {steps}")
        if backend == "svd":
            overrides = dict(num_frames=int(num_frames), num_inference_steps=int(steps))
            if motion is not None:
                if not 1 <= motion <= 255:
                    raise ValueError(f"motion must be between 1 and 255, got {motion}")
                overrides["motion_bucket_id"] = int(motion)
            for side in ("width", "height"):
                if self.defaults[f"svd_{side}"]:
                    overrides[side] = self.defaults[f"svd_{side}"]
            return overrides, notes
        if backend in LTX_BACKENDS:
            valid = animate.ltx_frames_at_least(int(num_frames))
            if valid != num_frames:
                notes.append(f"LTX-Video makes 8k+1 frames: {num_frames} became {valid}")
            overrides = dict(num_frames=valid, num_inference_steps=int(steps))
            if prompt is not None and prompt.strip():
                overrides["prompt"] = prompt.strip()
            if motion is not None and motion != self.defaults["motion_bucket_id"]:
                notes.append("the motion knob is for SVD; with LTX-Video describe the motion in the prompt")
            return overrides, notes
        raise ValueError(f"unknown backend {backend!r}; this installation has: {', '.join(available_backends())}")

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

    def make_video(self, image: Image.Image, backend: str = "svd", num_frames: int | None = None,
                   motion: int | None = None, steps: int | None = None, seed: int = 0,
                   prompt: str | None = None, progress: ProgressFn | None = None,
                   out: str | Path | None = None) -> tuple[Path, str]:
        """Animate ``image``; returns (the MP4 path, a one-paragraph report for the UI)."""
        progress = progress or (lambda fraction, text: None)
        if backend not in available_backends():
            raise ValueError(f"backend {backend!r} is not available here; choose {', '.join(available_backends())}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        num_frames = int(self.default(backend, "num_frames") if num_frames is None else num_frames)
        steps = int(self.default(backend, "steps") if steps is None else steps)  # 0 is refused, not replaced
        overrides, notes = self._settings(backend, num_frames, steps, motion, prompt)
        with self._lock:
            start = time.perf_counter()
            progress(0.05, f"loading {BACKEND_NAMES[backend]}")
            if backend == "svd":
                settings = animate.svd_settings(self.profile, **overrides)
                pipe = self.pipeline(backend, settings)
                progress(0.2, f"generating {settings['num_frames']} frames ({steps} steps)")
                frames, settings = animate.animate_image(image, self.profile, seed=int(seed), pipe=pipe, **overrides)
                fps = settings["export_fps"]
            else:
                distilled = backend == "ltx-distilled"
                settings = animate.ltx_settings(self.profile, distilled, **overrides)
                pipe = self.pipeline(backend, settings)
                progress(0.2, f"generating {settings['num_frames']} frames ({steps} steps)")
                frames, settings = animate.animate_ltx([image], profile=self.profile, seed=int(seed), pipe=pipe,
                                                       distilled=distilled, **overrides)
                fps = settings["frame_rate"]
            progress(0.9, "writing the MP4")
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            path = Path(out) if out else stage_dir("final") / f"studio_{backend}_seed{seed}_{stamp}.mp4"
            write_mp4(frames, path, fps=fps)
            seconds = time.perf_counter() - start
        knobs = f"seed {seed}, {settings['num_inference_steps']} steps"
        if backend == "svd":
            knobs += f", motion {settings['motion_bucket_id']}"
        else:
            knobs += f", prompt \"{settings['prompt']}\""
        report = (f"Made {len(frames)} frames at {settings['width']}x{settings['height']} "
                  f"({len(frames) / fps:.1f} s at {fps:g} fps) with {BACKEND_NAMES[backend]}: {knobs}; "
                  f"took {seconds:.1f} s on {self.profile.device}.")
        if notes:
            report += " Note: " + "; ".join(notes) + "."
        if self.profile.random_weights:
            report += " RANDOM WEIGHTS (tiny profile): this shows the app works, not a real result."
        progress(1.0, "done")
        return path, report


def read_upload(path: str | os.PathLike | None, choice: str | None) -> tuple[Image.Image, str]:
    """The picture to animate: the upload if there is one, else the picked keyframe.

    Raises :class:`BadInputError` naming the upload by its own file name (not the server's temp path).
    """
    if path:
        try:
            image, _ = load_image(path)
        except BadInputError as err:
            raise BadInputError(Path(path).name, err.problem) from None
        return image, Path(path).name
    if choice:
        image, _ = load_image(choice)
        return image, Path(choice).name
    raise BadInputError("(nothing)", "upload an image or pick a keyframe first")


# --------------------------------------------------------------------------------------------
# The Gradio app


def build_app(studio: Studio | None = None):
    """The studio as a ``gr.Blocks`` app. ``.launch()`` serves it; on Colab ``.launch(share=True)``."""
    import gradio as gr

    studio = studio or Studio()
    backends = available_backends()
    choices = source_choices()

    def preview(upload):
        if not upload:
            return None, ""
        try:
            image, name = read_upload(upload, None)
        except BadInputError as err:
            gr.Warning(f"Could not use the upload: {err}")
            return None, f"Could not use the upload: {err}"
        return image, f"{name}: {image.width}x{image.height}, ready."

    def on_backend(backend):
        ltx = backend in LTX_BACKENDS
        return (gr.update(visible=ltx), gr.update(visible=not ltx),
                gr.update(value=studio.default(backend, "num_frames")),
                gr.update(value=studio.default(backend, "steps")))

    def make_video(upload, choice, backend, num_frames, motion, steps, seed, prompt,
                   progress=gr.Progress(track_tqdm=True)):
        try:
            image, _ = read_upload(upload, choice)
        except BadInputError as err:
            gr.Warning(f"Could not use the upload: {err}")
            return None, f"Could not use the upload: {err}"
        try:
            path, report = studio.make_video(image, backend, int(num_frames), int(motion), int(steps), int(seed),
                                             prompt, progress=lambda f, text: progress(f, desc=text))
        except ValueError as err:
            gr.Warning(str(err))
            return None, f"Could not make the video: {err}"
        except GenerationError as err:  # NaN / black / constant frames: the message names the fix
            gr.Warning(str(err))
            return None, f"Could not make the video: {err}"
        except RuntimeError as err:
            if "out of memory" in str(err).lower():
                message = ("The GPU ran out of memory. Try fewer frames, fewer steps, or the colab profile "
                           "(model offload).")
                gr.Warning(message)
                return None, message
            raise
        return str(path), report

    with gr.Blocks(title="Pixels to Motion - video studio", analytics_enabled=False) as app:
        gr.Markdown("# Pixels to Motion: video studio\nUpload a picture (or pick a keyframe), choose a "
                    "model and a few knobs, and get a short video to watch and download.")
        gr.Markdown(studio.banner())
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Upload an image (PNG, JPEG, WebP, ...)", type="filepath")
                choice = gr.Dropdown(choices=choices, value=choices[0][1] if choices else None,
                                     label="...or pick a keyframe (used when nothing is uploaded)")
                shown = gr.Image(label="The picture", interactive=False, height=200)
                backend = gr.Radio(choices=[(BACKEND_NAMES[b], b) for b in backends], value=backends[0],
                                   label="Model")
                prompt = gr.Textbox(label="Prompt (LTX-Video): describe the motion, e.g. 'slow dolly-in, soft lighting'",
                                    visible=False)
                num_frames = gr.Slider(2, studio.defaults["max_frames"], step=1,
                                       value=studio.default(backends[0], "num_frames"),
                                       label="Frames (SVD-XT was trained on 25; LTX needs 8k+1 and rounds up)")
                motion = gr.Slider(1, 255, step=1, value=studio.defaults["motion_bucket_id"],
                                   label="Motion (SVD motion_bucket_id: higher = more movement)")
                steps = gr.Slider(1, 50, step=1, value=studio.default(backends[0], "steps"),
                                  label="Denoising steps (more = slower, usually cleaner)")
                seed = gr.Number(value=0, precision=0, minimum=0, label="Seed (same seed, same video)")
                go = gr.Button("Make the video", variant="primary")
            with gr.Column():
                video = gr.Video(label="Your video", format="mp4", autoplay=True, loop=True,
                                 **download_button(gr.Video))
                status = gr.Textbox(label="Status", interactive=False, lines=3)
        upload.change(preview, inputs=upload, outputs=[shown, status], api_name=False)
        choice.change(lambda c: c, inputs=choice, outputs=shown, api_name=False)
        backend.change(on_backend, inputs=backend, outputs=[prompt, motion, num_frames, steps], api_name=False)
        go.click(make_video, inputs=[upload, choice, backend, num_frames, motion, steps, seed, prompt],
                 outputs=[video, status], api_name="make_video")
        app.load(lambda c: c, inputs=choice, outputs=shown, api_name=False)
    return app


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


def launch(app, host: str = "127.0.0.1", port: int | None = None, share: bool = False, block: bool = True):
    """Serve ``app`` (loopback by default). ``share=True`` asks Gradio for a public link (Colab)."""
    from helpers.core.outputs import outputs_dir

    return app.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=not block,
                      allowed_paths=[str(outputs_dir())], ssr_mode=False, quiet=not block, show_error=True)


# --------------------------------------------------------------------------------------------
# The ipywidgets studio, for those who stay in Jupyter


class WidgetStudio:
    """The same knobs as the app, as ipywidgets: ``display(ws.box)``, then click (or ``ws.run()``)."""

    def __init__(self, studio: Studio | None = None):
        import ipywidgets as w

        self.studio = studio or Studio()
        backends = available_backends()
        choices = source_choices()
        defaults = self.studio.defaults
        self.upload = w.FileUpload(accept="image/*", multiple=False, description="Upload image")
        self.choice = w.Dropdown(options=choices, value=choices[0][1] if choices else None,
                                 description="or keyframe", layout=w.Layout(width="420px"))
        self.backend = w.ToggleButtons(options=[(b.upper(), b) for b in backends], value=backends[0],
                                       description="Model")
        self.num_frames = w.IntSlider(value=self.studio.default(backends[0], "num_frames"), min=2,
                                      max=defaults["max_frames"], description="Frames")
        self.motion = w.IntSlider(value=defaults["motion_bucket_id"], min=1, max=255, description="Motion")
        self.steps = w.IntSlider(value=self.studio.default(backends[0], "steps"), min=1, max=50,
                                 description="Steps")
        self.seed = w.BoundedIntText(value=0, min=0, max=2**31 - 1, description="Seed")
        self.prompt = w.Text(value="", placeholder="LTX only: e.g. slow dolly-in, soft lighting",
                             description="Prompt")
        self.button = w.Button(description="Make the video", button_style="primary")
        self.status = w.HTML(value=self.studio.banner().replace("**", ""))
        self.output = w.Output()
        self.last_video: Path | None = None
        self.backend.observe(self._on_backend, names="value")
        self.button.on_click(lambda _: self.run())
        self.box = w.VBox([self.upload, self.choice, self.backend, self.num_frames, self.motion,
                           self.steps, self.seed, self.prompt, self.button, self.status, self.output])

    def _on_backend(self, change) -> None:
        self.num_frames.value = self.studio.default(change["new"], "num_frames")
        self.steps.value = self.studio.default(change["new"], "steps")

    def _uploaded_file(self) -> str | None:
        """The uploaded bytes written to a temporary file (ipywidgets 8 keeps them in memory)."""
        if not self.upload.value:
            return None
        item = self.upload.value[0]
        folder = Path(tempfile.mkdtemp(prefix="studio-upload-"))
        path = folder / Path(item["name"]).name
        path.write_bytes(bytes(item["content"]))
        return str(path)

    def run(self) -> Path | None:
        """Make a video with the current knobs; show it, or a message saying what went wrong."""
        from IPython.display import display

        from helpers.core.video import show_video

        self.output.clear_output()
        uploaded = self._uploaded_file()
        try:
            image, name = read_upload(uploaded, self.choice.value)
            self.status.value = f"working on {name} ..."
            path, report = self.studio.make_video(
                image, self.backend.value, self.num_frames.value, self.motion.value, self.steps.value,
                self.seed.value, self.prompt.value, progress=lambda f, text: setattr(
                    self.status, "value", f"{int(f * 100)} %: {text}"))
        except (BadInputError, ValueError) as err:
            self.status.value = f"<b>Could not make the video:</b> {err}"
            return None
        finally:
            if uploaded:
                shutil.rmtree(Path(uploaded).parent, ignore_errors=True)
        self.status.value = report
        with self.output:
            display(show_video(path))
        self.last_video = path
        return path


# --------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="port to serve on (default: the profile's, 7860)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--share", action="store_true",
                        help="also make a temporary public *.gradio.live link (needs internet)")


def run(args: argparse.Namespace) -> int:
    from helpers.core.hardware import configure_threads

    profile = get_profile(args.profile)
    configure_threads(profile)  # tiny: one torch thread, as the notebooks (and the promise's measurement) use
    print(profile.banner())
    studio = Studio(profile)
    port = args.port if args.port is not None else studio.defaults["port"]
    _check_port(args.host, port)
    print(f"serving the video studio on http://{args.host}:{port} (Ctrl+C stops it)")
    launch(build_app(studio), host=args.host, port=port, share=args.share, block=True)
    return 0
