"""Flux.1 keyframe refinement (notebook 05, ``python -m helpers refine``).

FLUX.1 (Black Forest Labs) is an *image* model: a 12B rectified-flow transformer that works in
the latent space of a 16-channel VAE, conditioned on text through CLIP-L and T5-XXL. diffusers
ships it as several pipelines, each a different job on one picture:

- ``FluxPipeline``: text -> image;
- ``FluxImg2ImgPipeline``: image + text -> image (noise the picture part-way, denoise it back);
- ``FluxKontextPipeline``: image + instruction -> edited image that keeps identity and style;
- ``FluxFillPipeline``: image + mask -> the masked part redrawn (inpainting / outpainting).

It makes no video. In this course it sits between the PixelCNN++ keyframes and the video
models: it turns small, rough keyframes into rich 16:9 pictures (img2img), makes consistent
variations (Kontext) and widens a picture instead of padding it (Fill).

``refine`` reads ``outputs/keyframes/frame_*.png`` and writes the refined frames to their own folder,
``outputs/refined/frame_*.png`` (each file atomically, and only after every frame has been refined),
with ``refined/provenance.json`` recording each step. The keyframes are never touched. Later stages
choose what to animate with :func:`helpers.keyframes.animation_keyframes`: the refined frames when they
come from real weights, the keyframes otherwise. In ``tiny`` the refining model has random weights: the
refined frames are labelled so, and nothing animates them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from helpers.core.cli import float_range, int_range
from helpers.core.images import BadInputError, load_image, stamp_random_weights
from helpers.core.outputs import adopt, atomic_set, check_owned, file_digest, outputs_dir, stage_dir, write_json
from helpers.core.profiles import Profile, get_profile
from helpers.core.device import NF4_COMPONENTS, borrowed, check_output, drop_components, load
from helpers.core.registry import entry

MODES = {"img2img": "flux-schnell-img2img", "kontext": "flux-kontext-dev", "fill": "flux-fill-dev"}
# Each job has its own settings block (helpers.core.profiles): Kontext and Fill are different models with
# their own published steps and guidance (docs/models.md), never schnell's 4 steps.
STAGE_OF_MODE = {"img2img": "flux", "kontext": "flux_kontext", "fill": "flux_fill"}
# Memory options and dtypes of this stage: helpers.core.device (nf4 = 4-bit transformer and T5 via
# bitsandbytes, model_offload, sequential_offload, vae_tiling, ...).
QUANTISED = NF4_COMPONENTS["flux"]  # what "nf4" quantises: the 12B transformer and T5-XXL


# --------------------------------------------------------------------------------------------
# Settings, login, loading
# --------------------------------------------------------------------------------------------

def flux_settings(profile: Profile, mode: str = "img2img", **overrides: Any) -> dict[str, Any]:
    """The profile's block for ``mode`` (``flux``, ``flux_kontext`` or ``flux_fill``) with ``overrides``,
    checked (sides multiples of 16, 0 <= strength <= 1)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    settings = profile.settings(STAGE_OF_MODE[mode])
    settings.update({k: v for k, v in overrides.items() if v is not None})
    check_size(settings["width"], settings["height"])
    if not 0 <= settings.get("strength", 0) <= 1:
        raise ValueError(f"strength must be between 0 and 1, got {settings['strength']}")
    if settings["num_inference_steps"] < 1:
        raise ValueError(f"num_inference_steps must be at least 1, got {settings['num_inference_steps']}")
    return settings


def check_size(width: int, height: int) -> None:
    """Flux's VAE shrinks 8x and the transformer takes 2x2 patches: sides must be multiples of 16."""
    for name, value in (("width", width), ("height", height)):
        if value < 64 or value % 16:
            raise ValueError(f"{name} must be a multiple of 16 and at least 64 for Flux, got {value}")


def hf_login() -> bool:
    """Log in to Hugging Face for gated models (FLUX.1 schnell, [dev], Kontext, Fill), never showing the token.

    Order: an existing login or ``HF_TOKEN`` in the environment; on Colab the ``HF_TOKEN`` secret
    (key icon in the left bar; :func:`helpers.core.registry.token_from_colab_secret`); otherwise
    ``huggingface_hub.login()`` asks (a widget in notebooks). Returns True when a token is available afterwards.
    """
    from huggingface_hub import get_token, login

    from helpers.core.registry import token_from_colab_secret

    if not token_from_colab_secret():
        login()
    return get_token() is not None


def load_flux(key: str, profile: Profile, memory: str | None = None, dtype: str = "auto"):
    """Load the Flux pipeline ``key`` from the registry with ``memory`` (e.g. ``"nf4+model_offload"``)
    and the dtype plan of :mod:`helpers.core.device` (``dtype="auto"``; on a T4: float16 with float32 text encoders).

    Gated models (dev, Kontext, Fill) need a Hugging Face login outside ``tiny``.
    """
    item = entry(key)
    if item.gated and not profile.random_weights:
        if not hf_login():
            from helpers.core.registry import AccessError, access_message

            raise AccessError(access_message(item, "no token given"))
    return load(key, profile, memory or "none", dtype)


TEXT_ENCODERS = ("text_encoder", "text_encoder_2")  # CLIP-L and T5-XXL: only needed to encode the prompts


def encode_prompts(pipe, prompts: list[str], max_sequence_length: int, free_text_encoders: bool = False
                   ) -> list[dict[str, Any]]:
    """Each prompt's embeddings, as the keyword arguments a Flux pipeline takes instead of ``prompt=``
    (its own ``encode_prompt``). With ``free_text_encoders``, CLIP and T5 are then freed
    (:func:`helpers.core.device.drop_components`) and the denoiser runs without them: diffusers' quantisation
    docs' pattern (encode the prompt, free the text encoders, denoise with ``prompt_embeds``), which keeps
    T5 out of memory while the transformer works."""
    import torch

    embeddings = []
    with torch.no_grad():
        for prompt in prompts:
            embeds, pooled, _ = pipe.encode_prompt(prompt=prompt, prompt_2=None, device=pipe._execution_device,
                                                   max_sequence_length=max_sequence_length)
            embeddings.append({"prompt_embeds": embeds, "pooled_prompt_embeds": pooled})
    if free_text_encoders:
        drop_components(pipe, TEXT_ENCODERS)
    return embeddings


def _prompt(prompt: str | dict[str, Any]) -> dict[str, Any]:
    """A pipeline's prompt arguments: the text, or the embeddings :func:`encode_prompts` made of it."""
    return dict(prompt) if isinstance(prompt, dict) else {"prompt": prompt}


def _generator(seed: int):
    """A CPU generator: the same seed gives the same starting noise on every device."""
    import torch

    return torch.Generator(device="cpu").manual_seed(seed)


# --------------------------------------------------------------------------------------------
# The three jobs
# --------------------------------------------------------------------------------------------

def refine_image(pipe, image: Image.Image, prompt: str | dict[str, Any], settings: dict[str, Any], seed: int = 0) -> Image.Image:
    """img2img: noise ``image`` to the level ``strength`` picks and denoise it back under ``prompt``.

    With n steps Flux's schedule is sigma = 1, (n-1)/n, ..., 1/n, and img2img starts at the step
    ``int(n - n * strength)``: with 4 steps, strengths 0.6 and 0.74 both start at sigma 0.75
    (see :func:`effective_start`).
    """
    width, height = settings["width"], settings["height"]
    fitted = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS) \
        if image.size != (width, height) else image.convert("RGB")
    if effective_start(settings["strength"], settings["num_inference_steps"]) == 0.0:
        return fitted  # too low a strength for even one step: nothing is redrawn
    out = pipe(**_prompt(prompt), image=fitted, strength=settings["strength"], width=width, height=height,
                num_inference_steps=settings["num_inference_steps"], guidance_scale=settings["guidance_scale"],
                max_sequence_length=settings["max_sequence_length"],
                generator=_generator(seed)).images[0]
    return check_output([out], "Flux img2img's picture", pipe, "flux")[0]


def effective_start(strength: float, steps: int) -> float:
    """The noise level (sigma, 1 = pure noise) img2img actually starts from (diffusers' rounding)."""
    init = min(steps * strength, steps)
    start = int(max(steps - init, 0))
    if start >= steps:
        return 0.0
    return float(np.linspace(1.0, 1 / steps, steps)[start])


def job_settings(mode: str, settings: dict[str, Any], profile: Profile | None = None) -> dict[str, Any]:
    """Steps, guidance and text length for ``mode``: ``settings`` itself when it is that job's block, else
    the job's own block of the profile (so ``kontext_edit(..., flux_settings)`` runs Kontext's 28 steps at
    guidance 2.5, not schnell's 4). The size always comes from ``settings``."""
    if settings.get("model") != MODES[mode] and mode != "img2img":
        own = (profile or get_profile()).settings(STAGE_OF_MODE[mode])
        settings = {**settings, **{k: own[k] for k in ("num_inference_steps", "guidance_scale", "max_sequence_length")}}
    return settings


def kontext_edit(pipe, image: Image.Image, instruction: str | dict[str, Any], settings: dict[str, Any], seed: int = 0,
                 guidance_scale: float | None = None, steps: int | None = None) -> Image.Image:
    """Kontext: edit ``image`` by ``instruction`` ("make it dusk, keep everything else").

    The input's latents ride along as extra tokens, so identity, layout and style carry over:
    the way to make several keyframes that clearly belong together. Output at the keyframe size.
    Steps and guidance: the ``flux_kontext`` block (28 and 2.5 with real weights) unless given.
    """
    settings = job_settings("kontext", settings)
    width, height = settings["width"], settings["height"]
    out = pipe(**_prompt(instruction), image=image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS),
               width=width, height=height,
               guidance_scale=settings["guidance_scale"] if guidance_scale is None else guidance_scale,
               num_inference_steps=steps or settings["num_inference_steps"],
               max_sequence_length=settings["max_sequence_length"], _auto_resize=False, max_area=width * height,
               generator=_generator(seed)).images[0]
    check_output([out], "Flux Kontext's picture", pipe, "flux")
    return out if out.size == (width, height) else out.resize((width, height), Image.Resampling.LANCZOS)


def outpaint_canvas(image: Image.Image, width: int, height: int, content: tuple[int, int] | None = None
                    ) -> tuple[Image.Image, Image.Image]:
    """The canvas and mask for outpainting: ``image`` fitted into ``width`` x ``height`` (centred),
    mask white (255) where Fill must draw, black where the picture is kept.

    ``content``: the size of the real picture inside an already padded keyframe (the rest is padding
    to redraw); None = fit ``image`` itself inside the canvas.
    """
    if content is not None:
        canvas = image.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
        cw, ch = content
        scale = width / image.width
        cw, ch = round(cw * scale), round(ch * scale)
    else:
        scale = min(width / image.width, height / image.height)
        cw, ch = round(image.width * scale), round(image.height * scale)
        canvas = Image.new("RGB", (width, height), (127, 127, 127))
        canvas.paste(image.convert("RGB").resize((cw, ch), Image.Resampling.LANCZOS),
                     ((width - cw) // 2, (height - ch) // 2))
    mask = np.full((height, width), 255, np.uint8)
    left, top = (width - cw) // 2, (height - ch) // 2
    mask[top:top + ch, left:left + cw] = 0
    return canvas, Image.fromarray(mask, "L")


def outpaint(pipe, image: Image.Image, prompt: str | dict[str, Any], settings: dict[str, Any], seed: int = 0,
             content: tuple[int, int] | None = None, guidance_scale: float | None = None,
             steps: int | None = None) -> Image.Image:
    """Fill: widen ``image`` to the keyframe size by drawing the masked margins. Steps and guidance: the
    ``flux_fill`` block (the model card's 50 steps at guidance 30 with real weights) unless given.
    The kept region is pasted back unchanged."""
    settings = job_settings("fill", settings)
    width, height = settings["width"], settings["height"]
    canvas, mask = outpaint_canvas(image, width, height, content)
    out = pipe(**_prompt(prompt), image=canvas, mask_image=mask, width=width, height=height,
               guidance_scale=settings["guidance_scale"] if guidance_scale is None else guidance_scale,
               num_inference_steps=steps or settings["num_inference_steps"],
               max_sequence_length=settings["max_sequence_length"], generator=_generator(seed)).images[0]
    check_output([out], "Flux Fill's picture", pipe, "flux")
    out = out.resize((width, height), Image.Resampling.LANCZOS) if out.size != (width, height) else out
    keep = Image.fromarray(255 - np.asarray(mask), "L")
    out.paste(canvas, (0, 0), keep)
    return out


# --------------------------------------------------------------------------------------------
# A measure for the strength sweep
# --------------------------------------------------------------------------------------------

def structural_similarity(a: Image.Image, b: Image.Image) -> float:
    """Mean SSIM (Wang et al., 2004) of the grey images: Gaussian window sigma 1.5, 8-bit constants.

    1 = identical structure; ~0 = unrelated. ``b`` is resized to ``a``'s size first.
    """
    from scipy.ndimage import gaussian_filter

    if b.size != a.size:
        b = b.resize(a.size, Image.Resampling.LANCZOS)
    x = np.asarray(a.convert("L"), dtype=np.float64)
    y = np.asarray(b.convert("L"), dtype=np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = gaussian_filter(x, 1.5), gaussian_filter(y, 1.5)
    sxx = gaussian_filter(x * x, 1.5) - mx * mx
    syy = gaussian_filter(y * y, 1.5) - my * my
    sxy = gaussian_filter(x * y, 1.5) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(ssim.mean())


# --------------------------------------------------------------------------------------------
# The stage: outputs/keyframes -> outputs/refined (the keyframes are never replaced)
# --------------------------------------------------------------------------------------------


def refine_keyframes(folder: str | Path | None = None, profile: Profile | None = None, mode: str = "img2img",
                     prompt: str | None = None, seed: int = 0, pipe=None, out: str | Path | None = None,
                     **overrides: Any) -> list[Path]:
    """Refine every ``frame_*.png`` in ``folder`` (default outputs/keyframes) with Flux into ``out``
    (default outputs/refined), under the same names; returns the refined paths.

    ``mode``: ``img2img`` (schnell; strength, prompt, seed), ``kontext`` (an edit instruction
    applied to each frame) or ``fill`` (redraw the padding around each frame's picture).
    Frame ``i`` uses seed ``seed + i - 1``. ``folder`` is only read; ``out/provenance.json`` records
    the source of each frame (name and sha256), every step, and ``random_weights``.
    """
    from helpers.keyframes import FRAME_GLOB, read_provenance

    profile = profile or get_profile()
    settings = flux_settings(profile, mode, **overrides)
    prompt = prompt if prompt is not None else settings["prompt"]
    if folder is None:
        from helpers.core.standins import ensure_keyframes

        ensure_keyframes()
        folder = stage_dir("keyframes")
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(folder, "no such keyframes folder")
    frames = sorted(folder.glob(FRAME_GLOB))
    if not frames:
        raise BadInputError(folder, "no frame_0001.png ... keyframes here (run: python -m helpers keyframes)")
    out_dir = Path(out) if out is not None else stage_dir("refined")
    if out_dir.resolve() == folder.resolve():
        raise ValueError(f"{out_dir}: refined frames go to their own folder, never over the keyframes they come from")
    adopt(out_dir, "refine", "provenance.json",  # refined frames written before manifests: named by their record
          lambda data: [f["frame"] for f in data["frames"]] if "mode" in data else [])
    check_owned(out_dir, "refine", [f.name for f in frames] + ["provenance.json"], "--out", inputs=frames)
    by_frame = {f["frame"]: f for f in read_provenance(folder).get("frames", [])}
    inputs = [(frame, load_image(frame)[0]) for frame in frames]  # bad files fail before any model
    key = settings["model"]
    start = time.perf_counter()
    with borrowed(pipe, lambda: load_flux(key, profile, settings["memory"], settings.get("dtype", "auto"))) \
            as (pipe, owned):  # one it loads, it frees; its text encoders go once the prompt is encoded
        text = encode_prompts(pipe, [prompt], job_settings(mode, settings, profile)["max_sequence_length"],
                              free_text_encoders=owned)[0]
        results = [(frame, _refine_one(pipe, mode, image, text, settings, seed + number - 1,
                                       _content_size(by_frame.get(frame.name)), profile))
                   for number, (frame, image) in enumerate(inputs, 1)]
    seconds = time.perf_counter() - start
    with atomic_set(out_dir, "refine") as staging:  # one set: replaces only what refine wrote there before
        for frame, refined in results:
            refined.save(staging / frame.name)
        _write_refined_record(staging, results, by_frame, key, mode, prompt, seed, settings, profile, seconds)
    return [out_dir / frame.name for frame, _ in results]


def _write_refined_record(staging: Path, results, by_frame, key, mode, prompt, seed, settings, profile,
                          seconds) -> None:
    """``provenance.json`` of the refined set: each frame's source (name, sha256, stand-in or not) and steps."""
    from helpers.core.standins import is_standin

    item = entry(key)
    records = []
    for number, (frame, _) in enumerate(results, 1):
        earlier = [o for o in by_frame.get(frame.name, {}).get("operations", []) if not o["op"].startswith("flux")]
        records.append({
            "frame": frame.name, "sample": by_frame.get(frame.name, {}).get("sample"),
            "source": _relative(frame), "source_sha256": file_digest(frame), "source_standin": is_standin(frame),
            "operations": earlier + [{
                "op": f"flux_{mode}", "model": key, "repo_id": item.repo_id, "licence": item.licence,
                "prompt": prompt, "seed": seed + number - 1,
                "strength": settings.get("strength") if mode == "img2img" else None,
                "num_inference_steps": settings["num_inference_steps"],
                "size": [settings["width"], settings["height"]], "memory": settings["memory"],
                "random_weights": profile.random_weights}]})
    write_json(staging / "provenance.json", {
        "profile": profile.name, "mode": mode, "model": key, "random_weights": profile.random_weights,
        "refine_seconds": round(seconds, 2), "frames": records})


def _refine_one(pipe, mode: str, image: Image.Image, prompt: str | dict[str, Any], settings: dict[str, Any],
                seed: int, content: tuple[int, int] | None, profile: Profile) -> Image.Image:
    """One keyframe refined by ``mode``, at the keyframe's own size (labelled in ``tiny``)."""
    if mode == "img2img":
        refined = refine_image(pipe, image, prompt, settings, seed)
    elif mode == "kontext":
        refined = kontext_edit(pipe, image, prompt, settings, seed)
    else:
        refined = outpaint(pipe, image, prompt, settings, seed, content=content)
    refined = refined.resize(image.size, Image.Resampling.LANCZOS) if refined.size != image.size else refined
    return stamp_random_weights(refined) if profile.random_weights else refined


def _relative(path: Path) -> str:
    """``path`` relative to the work folder when it lies inside it (provenance stays valid if the folder moves)."""
    try:
        return str(path.resolve().relative_to(outputs_dir().resolve()))
    except ValueError:
        return str(path)


def _content_size(record: dict[str, Any] | None) -> tuple[int, int] | None:
    """The picture's size inside a padded keyframe, from its provenance (the last upscale)."""
    if not record:
        return None
    ups = [o for o in record.get("operations", []) if o.get("op") == "upscale"]
    pads = [o for o in record.get("operations", []) if o.get("op") == "pad"]
    return tuple(ups[-1]["to"]) if ups and pads else None


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keyframes", default=None, help="folder with frame_0001.png ... to read (default: outputs/keyframes)")
    parser.add_argument("--out", default=None, help="folder for the refined frames (default: outputs/refined; "
                                                    "never the keyframes folder); other files there stay: only the "
                                                    "set refine wrote there before (.refine.files.json) is replaced, "
                                                    "and a file of the same name it did not write is refused (exit 2)")
    parser.add_argument("--mode", choices=list(MODES), default="img2img",
                        help="img2img: refine (FLUX.1 schnell, Apache-2.0); kontext: edit by instruction; "
                             "fill: redraw the padding (Kontext/Fill are FLUX.1 [dev] models: gated, non-commercial)")
    parser.add_argument("--prompt", default=None, help="what the refined keyframes should look like "
                                                       "(kontext: the edit instruction)")
    parser.add_argument("--strength", type=float_range(0, 1), default=None,
                        help="img2img: 0 keeps the keyframe, 1 ignores it")
    parser.add_argument("--steps", type=int_range(1, 100), default=None, help="denoising steps, 1-100 (schnell: 1-4)")
    parser.add_argument("--seed", type=int_range(0, 2**63 - 1), default=0, help="frame i uses seed + i - 1")
    parser.add_argument("--memory", default=None, help="e.g. none, nf4+model_offload, sequential_offload")


def run(args: argparse.Namespace) -> int:
    if args.keyframes is not None and not Path(args.keyframes).is_dir():
        raise BadInputError(args.keyframes, "not a folder of keyframes" if Path(args.keyframes).exists()
                            else "no such keyframes folder")
    profile = get_profile(args.profile)
    print(profile.banner())
    paths = refine_keyframes(args.keyframes, profile, args.mode, args.prompt, args.seed, out=args.out,
                             strength=args.strength, num_inference_steps=args.steps, memory=args.memory)
    source = Path(args.keyframes) if args.keyframes else stage_dir("keyframes")
    if profile.random_weights:
        use = "random weights: stamped noise, so `animate` keeps animating the keyframes themselves"
    else:
        use = "`animate` will use them"
    print(f"refined {len(paths)} keyframe(s) with Flux.1 {args.mode} into {paths[0].parent} "
          f"({use}); the keyframes in {source} are unchanged")
    return 0
