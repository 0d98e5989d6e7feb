"""The one registry of real model ids, and their tiny offline twins.

Every model the course uses has an entry here: its Hugging Face id, the diffusers pipeline
class, licence, and a *tiny twin*: the same pipeline class with a few thousand random weights,
built in code (tokenizers too), saved with ``save_pretrained`` and loaded back with
``from_pretrained``. In the ``tiny`` profile :func:`load_pipeline` loads the twin, so the
lessons run the real loading code on any CPU, offline. In ``colab`` / ``full`` it loads the
real weights from the Hub (or your local Hugging Face cache).

Some checkpoints are published as **one file** in the original (non-diffusers) key layout, e.g.
LTX-Video 0.9.8 distilled: its transformer and VAE come from that file with ``from_single_file``
(diffusers converts the keys), the rest of the pipeline from a diffusers repo (``base_repo``).
Their tiny twins are saved the same way (one original-layout file beside the base folder), so the
tiny profile runs the same ``from_single_file`` code offline.
"""

from __future__ import annotations

import contextlib

import importlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.core.outputs import atomic_dir, cache_dir
from helpers.core.profiles import Profile, get_profile


@dataclass(frozen=True)
class ModelEntry:
    key: str
    repo_id: str
    pipeline_class: str          # a class name in `diffusers`
    twin: str | None             # "module:function" that builds the tiny twin pipeline
    licence: str
    gated: bool                  # needs a Hugging Face login and accepted licence
    download_gb: float           # approximate size of what from_pretrained downloads
    what: str
    full_size: str | None = None  # "module:function" building the full-size architecture, random weights
    single_file: str | None = None  # a file in repo_id holding the transformer + VAE in the original layout
    base_repo: str | None = None    # with single_file: the diffusers repo of the other parts and the configs
    trained: str | None = None      # a twin trained by the course, shipped in data/ (e.g. "twins/svd-digits")
    fallback: str | None = None     # an ungated registry key that does the same job, offered when there is no token


MODELS: dict[str, ModelEntry] = {m.key: m for m in [
    ModelEntry("svd-xt-1-1", "stabilityai/stable-video-diffusion-img2vid-xt-1-1",
               "StableVideoDiffusionPipeline", "helpers.core.twins.svd:build", "Stability AI Community License",
               True, 9.6, "Stable Video Diffusion XT 1.1: one image -> 25 frames at 1024x576 (fine-tuned at 6 fps).",
               "helpers.core.twins.full_size:svd", trained="twins/svd-digits", fallback="svd-xt"),
    ModelEntry("svd-xt", "stabilityai/stable-video-diffusion-img2vid-xt",
               "StableVideoDiffusionPipeline", "helpers.core.twins.svd:build", "Stability AI Community License",
               False, 9.6, "Stable Video Diffusion XT 1.0: one image -> 25 frames at 1024x576.",
               "helpers.core.twins.full_size:svd", trained="twins/svd-digits"),
    ModelEntry("flux-schnell", "black-forest-labs/FLUX.1-schnell",
               "FluxPipeline", "helpers.core.twins.flux:build_text2img", "Apache-2.0",
               True, 33.7, "FLUX.1 [schnell]: text-to-image in 1-4 steps (timestep-distilled, no guidance).",
               "helpers.core.twins.full_size:flux"),
    ModelEntry("flux-schnell-img2img", "black-forest-labs/FLUX.1-schnell",
               "FluxImg2ImgPipeline", "helpers.core.twins.flux:build_img2img", "Apache-2.0",
               True, 33.7, "FLUX.1 [schnell] as image-to-image: refine a rough picture with a prompt.",
               "helpers.core.twins.full_size:flux"),
    ModelEntry("flux-dev", "black-forest-labs/FLUX.1-dev",
               "FluxPipeline", "helpers.core.twins.flux:build_text2img", "FLUX.1 [dev] Non-Commercial License",
               True, 33.7, "FLUX.1 [dev]: higher quality text-to-image, 28-50 steps, non-commercial.",
               "helpers.core.twins.full_size:flux"),
    ModelEntry("flux-kontext-dev", "black-forest-labs/FLUX.1-Kontext-dev",
               "FluxKontextPipeline", "helpers.core.twins.flux:build_kontext", "FLUX.1 [dev] Non-Commercial License",
               True, 33.7, "FLUX.1 Kontext [dev]: edit an image by instruction, keeping its identity and style.",
               "helpers.core.twins.full_size:flux"),
    ModelEntry("flux-fill-dev", "black-forest-labs/FLUX.1-Fill-dev",
               "FluxFillPipeline", "helpers.core.twins.flux:build_fill", "FLUX.1 [dev] Non-Commercial License",
               True, 33.7, "FLUX.1 Fill [dev]: inpainting and outpainting (e.g. widen to 16:9).",
               "helpers.core.twins.full_size:flux"),
    ModelEntry("ltx-video", "Lightricks/LTX-Video-0.9.5",
               "LTXConditionPipeline", "helpers.core.twins.ltx:build", "LTX-Video Open Weights License",
               False, 21.0, "LTX-Video: text-conditioned video with image/keyframe conditions at chosen frames.",
               "helpers.core.twins.full_size:ltx", trained="twins/ltx-digits"),
    ModelEntry("ltx-video-distilled", "Lightricks/LTX-Video",
               "LTXConditionPipeline", "helpers.core.twins.ltx:build_distilled", "LTX-Video Open Weights License",
               False, 6.3, "LTX-Video 0.9.8 distilled 2B: the fast LTX-Video (8 steps, no CFG); one file holds the "
               "transformer and VAE, the T5 text encoder comes from LTX-Video 0.9.5 (shared with ltx-video).",
               "helpers.core.twins.full_size:ltx_distilled", single_file="ltxv-2b-0.9.8-distilled.safetensors",
               base_repo="Lightricks/LTX-Video-0.9.5"),
    ModelEntry("wan-flf2v", "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers",
               "WanImageToVideoPipeline", None, "Apache-2.0",
               False, 77.0, "Wan 2.1 first-last-frame-to-video, 14B: the large alternative (>= 40 GB GPU)."),
]}

# The parts a single-file checkpoint holds, with their diffusers classes, per pipeline class.
SINGLE_FILE_PARTS = {"LTXConditionPipeline": {"transformer": "LTXVideoTransformer3DModel",
                                              "vae": "AutoencoderKLLTXVideo"}}


def entry(key: str) -> ModelEntry:
    """The registry entry for ``key``, with a clear message for an unknown key."""
    try:
        return MODELS[key]
    except KeyError:
        raise KeyError(f"unknown model {key!r}; the registry has: {', '.join(MODELS)}") from None


def _resolve(dotted: str):
    module, _, name = dotted.partition(":")
    return getattr(importlib.import_module(module), name)


def twin_path(key: str) -> Path:
    """Where the tiny twin of ``key`` is saved (built on first use)."""
    import diffusers

    return cache_dir() / "tiny-twins" / f"diffusers-{diffusers.__version__}" / key


def ensure_twin(key: str, rebuild: bool = False) -> Path:
    """Build the tiny twin of ``key`` with random weights and save it, unless it is there."""
    item = entry(key)
    if item.twin is None:
        raise ValueError(f"{key} has no tiny twin: it is only named in the course, not run")
    path = twin_path(key)
    if rebuild or not (path / "model_index.json").exists():
        pipeline = _resolve(item.twin)()
        with atomic_dir(path) as tmp:
            pipeline.save_pretrained(tmp, safe_serialization=True)
            if item.single_file:  # the transformer + VAE live in one original-layout file, as published
                from helpers.core.twins.ltx import write_single_file

                write_single_file(pipeline, tmp, item.single_file)
    return path


def trained_twin_path(key: str) -> Path | None:
    """The folder of the twin of ``key`` that the course trained (shipped in data/), when it has one and
    ``COURSE_TWIN`` is not ``random``; else None (the random-weight twin is used)."""
    import os

    from helpers.core.demo_images import data_dir

    item = entry(key)
    if item.trained is None or os.environ.get("COURSE_TWIN", "").lower() == "random":
        return None
    path = data_dir() / item.trained
    return path if (path / "model_index.json").exists() else None


# What made the pixels: the one place every label, title and printed line takes its words from.
MADE_BY = {
    "random": "random weights: shows the pipeline runs, not a real result",
    "trained": "a small twin trained on digits by this course: real learned behaviour of a tiny model, not the real one",
    "real": "the real model",
}


def made_by(key: str, profile: Profile | None = None) -> str:
    """Which of three things makes ``key``'s pixels in ``profile``: "random" (random weights: the tiny twins
    without training, the GPU test mode), "trained" (a twin the course trained, shipped in data/) or "real"."""
    profile = profile or get_profile()
    if not profile.random_weights:
        return "real"
    if profile.is_tiny and trained_twin_path(key) is not None:
        return "trained"
    return "random"


def made_by_title(kind: str) -> str:
    """`` - RANDOM WEIGHTS`` / `` - SMALL TWIN TRAINED ON DIGITS`` for a figure title, "" for the real model
    (the first words of the stamps on the frames)."""
    return {"random": " - RANDOM WEIGHTS", "trained": " - SMALL TWIN TRAINED ON DIGITS", "real": ""}[kind]


def made_by_note(kind: str) -> str:
    """`` (what made it)`` for a printed line, or "" for the real model (nothing to warn about)."""
    return "" if kind == "real" else f" ({MADE_BY[kind]})"


def is_trained_twin(pipe) -> bool:
    """True for a pipeline loaded from a twin the course trained (its outputs are labelled as such)."""
    return getattr(pipe, "course_twin", None) == "trained"


def load_pipeline(key: str, profile: Profile | None = None, **kwargs: Any):
    """Load the pipeline for ``key``: the tiny twin in ``tiny``, real weights otherwise.

    The same ``from_pretrained`` call serves both: only the path differs.
    Extra keyword arguments go to ``from_pretrained`` (e.g. ``variant="fp16"``).
    """
    import diffusers

    profile = profile or get_profile()
    item = entry(key)
    cls = getattr(diffusers, item.pipeline_class)
    if profile.random_weights and not profile.is_tiny:
        return build_full_size(key, profile)
    if profile.is_tiny:
        trained = trained_twin_path(key)
        source = trained or ensure_twin(key)
        kwargs = {k: v for k, v in kwargs.items() if k != "variant"}
        with warnings.catch_warnings(), damaged_twin(key, source, trained is not None):
            warnings.simplefilter("ignore")
            if item.single_file:
                return from_single_file(item, source / item.single_file, str(source), local_files_only=True,
                                        **kwargs)
            pipeline = cls.from_pretrained(source, local_files_only=True, **kwargs)
        pipeline.course_twin = "trained" if trained else "random"
        return pipeline
    kwargs.setdefault("torch_dtype", profile.dtype)
    if item.gated:
        token_from_colab_secret()
    try:
        if item.single_file:
            from huggingface_hub import hf_hub_download

            return from_single_file(item, hf_hub_download(item.repo_id, item.single_file), item.base_repo, **kwargs)
        return cls.from_pretrained(item.repo_id, **kwargs)
    except Exception as err:  # noqa: BLE001 - sorted below: access problems get one message, the rest stay as they were
        why = access_problem(err)
        if why:
            raise AccessError(access_message(item, why)) from None
        if isinstance(err, OSError):
            raise RuntimeError(f"could not load {item.repo_id} ({err.__class__.__name__}: {err})") from err
        raise


@contextlib.contextmanager
def damaged_twin(key: str, source: Path, shipped: bool):
    """Any failure to load a twin's files (truncated, half-deleted, edited) as one line naming the folder and the fix."""
    from helpers.core.images import BadInputError

    try:
        yield
    except Exception as err:  # noqa: BLE001 - safetensors, json, diffusers: each has its own error for a bad file
        problem = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        fix = (f"the twin shipped with the course is damaged: reinstall the course, or set COURSE_TWIN=random"
               if shipped else f"the cached copy is damaged: delete the folder {source} and run again (it is "
                               "rebuilt in seconds)")
        raise BadInputError(source, f"the tiny twin of {key} cannot be loaded ({problem}); {fix}") from None


HF_TOKEN_STEP = ("give this notebook your token: on Colab add a secret named HF_TOKEN (key icon in the left bar, "
                 "notebook access on); elsewhere run `hf auth login` or set HF_TOKEN")


class AccessError(RuntimeError):
    """The Hub refused a repository (gated terms not accepted, no token, or a token without access)."""


def access_message(item: ModelEntry, why: str) -> str:
    """One message for every refused load: the page whose terms to accept, and how to give the token."""
    gated = f"{item.repo_id} is gated ({item.licence}): " if item.gated else ""
    return (f"Hugging Face refused {item.repo_id} ({why}). {gated}open https://huggingface.co/{item.repo_id}, log in "
            f"and accept its terms (once per account); then {HF_TOKEN_STEP}, and run the cell again. "
            "Never paste the token into a cell.")


def access_note(key: str) -> str:
    """What a learner must do before ``key`` loads, in one line (printed by the notebooks before each load):
    nothing for an open model; for a gated one, the page whose terms to accept, the token step, and the
    ungated fallback where the registry has one."""
    item = entry(key)
    if not item.gated:
        return f"{key}: {item.repo_id} is open ({item.licence}): no token needed, ~{item.download_gb:g} GB to download."
    note = (f"{key}: {item.repo_id} is gated ({item.licence}): open https://huggingface.co/{item.repo_id}, log in and "
            f"accept its terms (once per account), then {HF_TOKEN_STEP}; ~{item.download_gb:g} GB to download.")
    if item.fallback:
        other = entry(item.fallback)
        note += (f" No token? Use model=\"{other.key}\" ({other.repo_id}: no access form, {other.licence}, "
                 f"~{other.download_gb:g} GB).")
    return note


def access_problem(err: BaseException) -> str | None:
    """Why the Hub refused, if ``err`` (or an error it wraps) is a refusal: gated, 401 or 403; else None."""
    seen: BaseException | None = err
    while seen is not None:
        name = type(seen).__name__
        code = getattr(getattr(seen, "response", None), "status_code", None)
        text = str(seen)
        if name == "GatedRepoError" or "gated repo" in text.lower():
            return "gated: this account has not accepted the terms, or no token was given"
        if code in (401, 403) or re.search(r"\b40[13] Client Error", text):
            return f"HTTP {code or text.split(' Client Error')[0][-3:]}: no token, or a token without access"
        if name == "RepositoryNotFoundError":
            return "not found or not visible without a token"
        seen = seen.__cause__ or seen.__context__
    return None


def token_from_colab_secret() -> bool:
    """Make a token available to huggingface_hub: one already there, else Colab's ``HF_TOKEN`` secret.

    Never prints it and never writes it to disk: ``huggingface_hub.get_token()`` already reads the Colab
    secret (``google.colab.userdata``); when only this function can read it, the token goes into this
    process's environment (``HF_TOKEN``), not through ``login()``, which saves it under
    ``~/.cache/huggingface/``. Returns True when there is a token afterwards."""
    import os

    from huggingface_hub import get_token

    if get_token():
        return True
    try:
        from google.colab import userdata  # type: ignore[import-not-found]

        token = userdata.get("HF_TOKEN")
    except Exception:  # noqa: BLE001 - not on Colab, or the secret is missing / not shared with the notebook
        token = None
    if token:
        os.environ["HF_TOKEN"] = token  # this process (and what it starts) only
        del token
    return get_token() is not None


def from_single_file(item: ModelEntry, checkpoint, base: str, **kwargs: Any):
    """The pipeline of ``item`` with the single-file parts (transformer, VAE) read from ``checkpoint``.

    Each part is ``Class.from_single_file(checkpoint, config=base, subfolder=part)``: diffusers converts
    the original keys and takes the configuration from ``base`` (a repo id or a local folder), so nothing
    else is downloaded; the other parts come from ``base`` with ``from_pretrained``. ``torch_dtype`` may
    be one dtype or a dict per part (``"default"`` for the rest), as for ``from_pretrained``.
    """
    import diffusers
    from diffusers.utils import logging as diffusers_logging

    dtypes = kwargs.get("torch_dtype")
    parts = {}
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # a note on casting after loading, which from_single_file does itself
    try:
        for name, class_name in SINGLE_FILE_PARTS[item.pipeline_class].items():
            dtype = dtypes.get(name, dtypes.get("default")) if isinstance(dtypes, dict) else dtypes
            parts[name] = getattr(diffusers, class_name).from_single_file(
                str(checkpoint), config=base, subfolder=name, torch_dtype=dtype,
                local_files_only=kwargs.get("local_files_only"))
    finally:
        diffusers_logging.set_verbosity(verbosity)
    return getattr(diffusers, item.pipeline_class).from_pretrained(base, **parts, **kwargs)


def build_full_size(key: str, profile: Profile):
    """GPU test mode (COURSE_WEIGHTS=random): the full-size architecture with random weights."""
    item = entry(key)
    if item.full_size is None:
        raise ValueError(f"{key} has no full-size random-weight builder")
    build = _resolve(item.full_size)
    kwargs = {"device": profile.device, "dtype": profile.dtype}
    if item.full_size.endswith(":flux"):
        kwargs["pipeline_class"] = item.pipeline_class
        kwargs["guidance_embeds"] = "schnell" not in item.key  # dev, Kontext and Fill are guidance-distilled
    return build(**kwargs)


def describe(key: str) -> str:
    item = entry(key)
    gated = "gated, " if item.gated else ""
    return f"{item.key}: {item.repo_id} ({gated}{item.licence}, ~{item.download_gb:g} GB) - {item.what}"
