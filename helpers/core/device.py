"""Device mechanics in one place: which dtype each model gets, how it is loaded and placed in memory,
and a check of every generation's output.

Every stage that runs a diffusers pipeline (refine, animate, slides, the app) goes through
:func:`load` and :func:`check_output`, so the plan for a T4 is written once, here.

**The dtype plan.** A GPU of compute capability 8.0 or newer (A100, L4, H100) computes natively in
bfloat16; a T4 (7.5) does not: it has fast float16 only (``torch.cuda.is_bf16_supported()`` is
still True there, through slow emulation). float16 overflows where bfloat16 does not, and the
published failures are NaN latents, which come out as black frames. So each pipeline family has a
documented recipe per GPU class (:data:`DTYPE_PLANS`), and :func:`check_output` stops a run with
one clear message when a generation still comes out NaN, black or constant.

**The GPU test mode** (``COURSE_WEIGHTS=random`` with ``colab`` or ``full``) uses the same plan:
``COURSE_GPU_CLASS=t4`` (what ``make test-gpu GPU_PROFILE=colab`` sets) makes a big GPU follow the
T4 plan, dtypes and NF4 quantisation included, so the Colab path is rehearsed, not a cousin of it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from helpers.core.hardware import gpu_class

MEMORY_OPTIONS = ("none", "nf4", "layerwise_casting", "model_offload", "sequential_offload", "forward_chunking",
                  "vae_tiling", "vae_slicing")
PRECISIONS = ("auto", "float16", "bfloat16", "float32")

# Which pipeline family each registry key belongs to.
FAMILY_OF_PIPELINE = {
    "StableVideoDiffusionPipeline": "svd",
    "FluxPipeline": "flux", "FluxImg2ImgPipeline": "flux", "FluxKontextPipeline": "flux", "FluxFillPipeline": "flux",
    "LTXConditionPipeline": "ltx", "LTXPipeline": "ltx", "LTXImageToVideoPipeline": "ltx",
}

# The dtype of each component ("*" = every other one), per family and GPU class.
# - svd, both classes: float16. Stability publishes an fp16 variant of SVD-XT and diffusers' SVD guide
#   loads it with torch_dtype=torch.float16 (written for a ~16 GB GPU); no NaN reports in fp16.
# - flux, bf16 GPUs: bfloat16, the dtype of the published weights (diffusers Flux docs).
# - flux, T4: float16 denoiser and VAE with the text encoders in float32 - diffusers' Flux docs,
#   "Running FP16 inference" (PR huggingface/diffusers#9097 added the fp16 activation clipping; the
#   same section says forcing the text encoders to FP32 removes the fp16 difference). Pure fp16
#   gave NaN/black images (diffusers#9096, #10533). T5-XXL in float32 is 19 GB: on colab it is
#   loaded in NF4 and computes in float32.
# - ltx, bf16 GPUs: bfloat16, as LTX-Video's README and diffusers' docs run it.
# - ltx, T4: float32. fp16 gives black frames (Lightricks/LTX-Video#77; openvino#37039 reports fp16
#   NaN where fp32 and bf16 are correct). In fp32 the 2B transformer is 7.7 GB: with the VAE, more than Colab's
#   RAM holds under model offload, so the colab profile stores it in float8 and computes in fp32
#   (LAYERWISE_CASTING below); the T5 encoder is loaded in NF4 (helpers.core.plan checks the sums).
DTYPE_PLANS: dict[str, dict[str, dict[str, str]]] = {
    "svd": {"t4": {"*": "float16"}, "bf16": {"*": "float16"}},
    "flux": {"t4": {"*": "float16", "text_encoder": "float32", "text_encoder_2": "float32"},
             "bf16": {"*": "bfloat16"}},
    "ltx": {"t4": {"*": "float32"}, "bf16": {"*": "bfloat16"}},
}
# What the memory option "nf4" quantises to 4-bit NormalFloat (bitsandbytes), per family.
NF4_COMPONENTS = {"svd": (), "flux": ("transformer", "text_encoder_2"), "ltx": ("text_encoder",)}
# What the memory option "layerwise_casting" stores in low precision, per family and GPU class (storage dtype;
# each layer is cast to the plan's compute dtype only while it runs): diffusers' ModelMixin.enable_layerwise_casting,
# docs "Reduce memory usage > Layerwise casting"; diffusers' LTX-Video page shows this very recipe for small GPUs
# (transformer from_pretrained in bfloat16, enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn), offloading:
# "requires ~10GB of VRAM"; cited, not measured here).
# LTX-Video on a T4 computes in float32 (above), which would keep the 1.9B transformer at 7.7 GB in RAM under
# model offload; stored in float8 it is 1.9 GB and still computes in float32. Layers diffusers skips (norms,
# embeddings, proj_in/out) stay in the compute dtype. Loaded in LAYERWISE_LOAD_DTYPE (the published bf16
# weights) and cast right after, so loading never holds a float32 copy.
LAYERWISE_CASTING = {"ltx": {"t4": {"transformer": "float8_e4m3fn"}}}
LAYERWISE_LOAD_DTYPE = "bfloat16"
# Under "model_offload", these NF4-quantised components stay on the GPU instead of moving to RAM between calls
# (helpers.core.device.offload_models): Colab's RAM cannot hold them beside the rest (helpers.core.plan).
# flux: the NF4 transformer (6.7 GB) stays, T5 moves; ltx: the NF4 T5 (6.6 GB, its `wo` layers kept in
# float32 by transformers) stays, the float8 transformer and the float32 VAE move.
RESIDENT_WHEN_OFFLOADED = {"svd": (), "flux": ("transformer",), "ltx": ("text_encoder",)}
# The knob that fixes a NaN / black / constant generation, per family (named in the error).
FIXES = {
    "svd": "use dtype='float32' in the svd settings (float16 overflowed), or check that the input image is not blank",
    "flux": "use dtype='float32' with memory='nf4+model_offload' in this stage's settings: the 4-bit weights then "
            "compute in float32, which fits a T4 (and any larger GPU) and cannot overflow, at some cost in speed",
    "ltx": "use dtype='float32' in the ltx settings (the T4 plan) or dtype='bfloat16' on an A100/L4/H100",
}


class GenerationError(RuntimeError):
    """A generation came out NaN, black or constant: the message names the setting that fixes it."""


# --------------------------------------------------------------------------------------------
# GPU class and dtypes
# --------------------------------------------------------------------------------------------

def family(pipeline_class: str) -> str:
    """The dtype-plan family (svd, flux, ltx) of a diffusers pipeline class name."""
    try:
        return FAMILY_OF_PIPELINE[pipeline_class]
    except KeyError:
        raise ValueError(f"no dtype plan for {pipeline_class}; known: {', '.join(FAMILY_OF_PIPELINE)}") from None


def component_dtypes(family_name: str, profile, precision: str = "auto") -> dict[str, str]:
    """The dtype (a name) of each component for ``family_name`` on this profile's device.

    ``precision="auto"`` follows :data:`DTYPE_PLANS`; another value puts every component in that dtype
    (what a learner sets after :class:`GenerationError`). On CPU: the profile's dtype (float32 in tiny,
    bfloat16 with ``COURSE_DTYPE=bfloat16``, the half-precision net of ``make test``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"dtype must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return {"*": precision}
    if profile.device == "cpu":
        return {"*": profile.dtype_name}
    return dict(DTYPE_PLANS[family_name][gpu_class() or "bf16"])


def dtype_of(plan: dict[str, str], component: str):
    import torch

    return getattr(torch, plan.get(component, plan["*"]))


def plan_summary(plan: dict[str, str]) -> str:
    """``"float16 (text_encoder, text_encoder_2: float32)"``."""
    rest = ", ".join(f"{k}: {v}" for k, v in plan.items() if k != "*")
    return plan["*"] + (f" ({rest})" if rest else "")


# --------------------------------------------------------------------------------------------
# Loading: the registry's pipeline, in the plan's dtypes, with the memory options
# --------------------------------------------------------------------------------------------

def parse_memory(memory: str | None) -> list[str]:
    """``"nf4+model_offload"`` -> ``["nf4", "model_offload"]``; unknown options are refused."""
    options = [o.strip() for o in (memory or "none").split("+") if o.strip()]
    unknown = [o for o in options if o not in MEMORY_OPTIONS]
    if unknown:
        raise ValueError(f"unknown memory option(s) {unknown}; choose from {', '.join(MEMORY_OPTIONS)}")
    return options


def load(key: str, profile, memory: str | None = "none", precision: str = "auto", **kwargs: Any):
    """The pipeline ``key`` from :mod:`helpers.core.registry`, in the dtype plan, quantised and placed per ``memory``.

    ``memory`` joins options with ``+`` (see :func:`apply_memory_options`; ``nf4`` quantises the family's
    :data:`NF4_COMPONENTS`). Real weights are quantised while loading (diffusers' quantisation config);
    the random full-size weights of the GPU test mode are quantised in memory the same way, so both
    take the same path at run time.
    """
    from helpers.core.registry import entry, load_pipeline

    item = entry(key)
    fam = family(item.pipeline_class)
    options = parse_memory(memory)
    plan = component_dtypes(fam, profile, precision)
    nf4 = [c for c in NF4_COMPONENTS[fam] if "nf4" in options and profile.device == "cuda"]
    cast = layerwise_plan(fam, options)
    from_disk = profile.is_tiny or not profile.random_weights  # the GPU test mode builds in memory instead
    if from_disk:
        kwargs["torch_dtype"] = {"default": dtype_of(plan, "*"),
                                 **{c: dtype_of(plan, c) for c in plan if c != "*"},
                                 **{c: dtype_of({"*": LAYERWISE_LOAD_DTYPE}, c) for c in cast}}
        if nf4:
            kwargs["quantization_config"] = quantisation_config(nf4, plan)
    pipe = load_pipeline(key, profile, **kwargs)
    if not from_disk:
        cast_components(pipe, plan)
        if nf4:
            quantise_nf4_in_memory(pipe, nf4, plan)
    for name, storage in cast.items():
        layerwise_cast(getattr(pipe, name), storage, dtype_of(plan, name))
    cast_inputs_to_component_dtype(pipe)
    pipe.set_progress_bar_config(disable=True)
    pipe._course_plan = plan  # read by check_output's message and the notebooks
    return apply_memory_options(pipe, "+".join(o for o in options if o != "nf4") or "none", profile)


def layerwise_plan(family_name: str, options: Sequence[str]) -> dict[str, str]:
    """{component: storage dtype} that "layerwise_casting" gives ``family_name`` on this GPU class ({} if none)."""
    if "layerwise_casting" not in options:
        return {}
    return dict(LAYERWISE_CASTING.get(family_name, {}).get(gpu_class() or "bf16", {}))


def layerwise_cast(module, storage: str, compute) -> None:
    """Store ``module``'s layers in ``storage`` (e.g. float8_e4m3fn), each cast to ``compute`` while it runs
    (diffusers' ``enable_layerwise_casting``); the layers it skips (norms, embeddings) are put in ``compute``."""
    import torch

    low = getattr(torch, storage)
    module.enable_layerwise_casting(storage_dtype=low, compute_dtype=compute)
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point() and tensor.dtype not in (low, compute):
            tensor.data = tensor.data.to(compute)


def cast_components(pipe, plan: dict[str, str]) -> None:
    """Cast every torch component of ``pipe`` to its dtype in ``plan`` (quantised ones are left alone)."""
    import torch

    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module) and not getattr(module, "is_quantized", False):
            module.to(dtype_of(plan, name))


def cast_inputs_to_component_dtype(pipe) -> None:
    """Make the denoiser and the VAE cast floating-point inputs to their own dtype.

    Pipelines hand the text encoders' outputs to the denoiser, and the denoiser's latents to the VAE,
    in the dtype they came in; with text encoders in float32 beside a float16 denoiser (the T4 plan
    for Flux) that would be a dtype mismatch. A forward pre-hook casts them on the way in.
    """
    import torch

    def cast(module, args, kwargs):
        dtype = module._course_compute_dtype

        def fix(value):
            return value.to(dtype) if torch.is_tensor(value) and value.is_floating_point() else value

        return tuple(fix(a) for a in args), {k: fix(v) for k, v in kwargs.items()}

    targets = [getattr(pipe, "unet", None), getattr(pipe, "transformer", None)]
    vae = getattr(pipe, "vae", None)
    if vae is not None:
        targets += [getattr(vae, "encoder", None), getattr(vae, "decoder", None)]
    for module in targets:
        if module is None or getattr(module, "_course_cast_hook", False):
            continue
        # float8 weights (layerwise casting) are storage only: the compute dtype is that of the other weights
        floats = [p.dtype for p in module.parameters() if p.is_floating_point() and p.element_size() > 1]
        if not floats:
            continue
        module._course_compute_dtype = max(set(floats), key=floats.count)
        module.register_forward_pre_hook(cast, with_kwargs=True)
        module._course_cast_hook = True


def _bitsandbytes():
    try:
        import bitsandbytes
    except ImportError:
        raise ValueError("memory option 'nf4' needs bitsandbytes: pip install bitsandbytes "
                         "(or choose memory 'sequential_offload' on a machine with >= 40 GB of RAM)") from None
    return bitsandbytes


def quantisation_config(components: Sequence[str], plan: dict[str, str]):
    """diffusers' per-component config: NF4 weights, each computing in its planned dtype."""
    _bitsandbytes()
    from diffusers import BitsAndBytesConfig as DiffusersBnb
    from diffusers import PipelineQuantizationConfig
    from transformers import BitsAndBytesConfig as TransformersBnb

    mapping = {}
    for name in components:
        cls = TransformersBnb if name.startswith("text_encoder") else DiffusersBnb
        mapping[name] = cls(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype_of(plan, name))
    return PipelineQuantizationConfig(quant_mapping=mapping)


def quantise_nf4_in_memory(pipe, components: Sequence[str], plan: dict[str, str]) -> None:
    """Replace every ``nn.Linear`` of ``components`` by a bitsandbytes NF4 ``Linear4bit`` (on CUDA),
    as loading with the quantisation config does: same layers, same compute dtype, 4-bit weights."""
    import torch

    bnb = _bitsandbytes()
    for name in components:
        module = getattr(pipe, name)
        compute = dtype_of(plan, name)
        device = next(module.parameters()).device
        # transformers leaves a model's _keep_in_fp32_modules unquantised (T5's `wo`), in float32 unless bfloat16
        keep = set(getattr(module, "_keep_in_fp32_modules", None) or ())
        for parent in list(module.modules()):
            for child_name, child in list(parent.named_children()):
                if child_name in keep and type(child) is torch.nn.Linear:
                    child.to(compute if compute == torch.bfloat16 else torch.float32)
                    continue
                if type(child) is not torch.nn.Linear:
                    continue
                # no double quantisation: BitsAndBytesConfig's default (bnb_4bit_use_double_quant=False)
                layer = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                          compute_dtype=compute, compress_statistics=False, quant_type="nf4",
                                          device="cpu")
                # Params4bit quantises when it is moved to the GPU (layer.to below), as from_pretrained does
                layer.weight = bnb.nn.Params4bit(child.weight.data.to(compute), requires_grad=False,
                                                 compress_statistics=False, quant_type="nf4")
                if child.bias is not None:
                    layer.bias = torch.nn.Parameter(child.bias.data.to(compute), requires_grad=False)
                setattr(parent, child_name, layer.to(device))
        module.is_quantized = True
        torch.cuda.empty_cache()


def apply_memory_options(pipe, memory: str, profile):
    """Put ``pipe`` on the profile's device with memory savers, e.g. ``"model_offload+forward_chunking"``.

    - ``none``: everything on the GPU (fastest; needs the most memory)
    - ``model_offload``: each whole model moves to the GPU only while it runs (small slowdown); NF4 parts named in
      :data:`RESIDENT_WHEN_OFFLOADED` stay on the GPU (:func:`offload_models`)
    - ``sequential_offload``: layer by layer (fits almost anywhere; several times slower)
    - ``forward_chunking``: the UNet's feed-forward layers run in chunks (less peak memory)
    - ``vae_tiling`` / ``vae_slicing``: the VAE decodes in tiles / one video at a time
    - ``nf4`` and ``layerwise_casting`` are applied while loading (:func:`load`), not here
    """
    options = [o for o in parse_memory(memory) if o != "nf4"]
    pipe._course_memory = (memory, profile)  # for drop_components, which places the rest again
    offload = {"model_offload", "sequential_offload"} & set(options)
    if profile.device == "cpu" or not offload:
        pipe.to(profile.device)
    if profile.device == "cpu":
        import torch

        # Random tiny weights make many denormal floats, which CPUs handle very slowly: flushing
        # them to zero made a tiny SVD segment about 2x faster here, with no visible change.
        torch.set_flush_denormal(True)
    else:
        resident = [n for n in RESIDENT_WHEN_OFFLOADED.get(_family_of(pipe) or "", ())
                    if is_quantised(getattr(pipe, n, None))]
        if "sequential_offload" in options:
            pipe.enable_sequential_cpu_offload()
        elif "model_offload" in options and resident:
            offload_models(pipe, profile.device, resident)
        elif "model_offload" in options:
            pipe.enable_model_cpu_offload()
    denoiser = getattr(pipe, "unet", None)
    if denoiser is None:
        denoiser = getattr(pipe, "transformer", None)
    if "forward_chunking" in options and hasattr(denoiser, "enable_forward_chunking"):
        denoiser.enable_forward_chunking()
    vae = getattr(pipe, "vae", None)
    if "vae_tiling" in options and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
        if hasattr(vae, "use_framewise_decoding"):  # video VAEs (LTX-Video): also tile in time, 16 frames a tile
            vae.use_framewise_decoding = True
    if "vae_slicing" in options and hasattr(vae, "enable_slicing"):
        vae.enable_slicing()
    return pipe


def is_quantised(module) -> bool:
    """True for a bitsandbytes-quantised model (loaded with a quantisation config, or quantised in memory)."""
    return bool(getattr(module, "is_quantized", False) or getattr(module, "is_loaded_in_4bit", False)
                or getattr(module, "hf_quantizer", None) is not None)


def offload_models(pipe, device, resident: Sequence[str]):
    """Model offload that keeps ``resident`` components on the GPU, and moves nothing else through RAM at once.

    diffusers' ``enable_model_cpu_offload`` first moves *every* component to the CPU, and runs again at the end
    of every call, so quantised components that should stay on the GPU would pass through RAM each time. Here
    the others get accelerate's ``cpu_offload_with_hook`` in diffusers' ``model_cpu_offload_seq`` order, each
    offloading the one before it when it runs, the first offloading the last (a ring: nothing stays behind
    from the previous call), and the pipeline skips the resident ones when it looks for its device.
    """
    import torch
    from accelerate import cpu_offload_with_hook

    pipe.remove_all_hooks()
    device = torch.device(device)
    pipe._exclude_from_cpu_offload = list(resident)
    order = [n for n in pipe.model_cpu_offload_seq.split("->") if n not in resident]
    modules = {n: m for n, m in pipe.components.items() if isinstance(m, torch.nn.Module) and n not in resident}
    order += [n for n in modules if n not in order]
    hooks, hook = [], None
    for name in order:
        if name in modules:
            modules[name].to("cpu")
            _, hook = cpu_offload_with_hook(modules[name], device, prev_module_hook=hook)
            hooks.append(hook)
    if len(hooks) > 1:
        hooks[0].hook.prev_module_hook = hooks[-1]
    for name in resident:
        getattr(pipe, name).to(device)
    pipe._course_offload_hooks = hooks  # not diffusers' _all_hooks: its end-of-call reset must not undo the ring
    return pipe


def free_pipeline(*pipes) -> None:
    """Give back the memory of ``pipes`` before the next model loads: ``pipe = free_pipeline(pipe)``.

    Rebind the name (the call returns None) so the caller holds nothing. The models go at once, by reference
    counting, even while another name still holds the pipeline: the offload ring is broken and its list cleared,
    accelerate's and diffusers' hooks removed (each wraps a module's ``forward`` around the module itself, a
    reference cycle that only a later full garbage collection would free), and every component dropped from the
    pipeline (:func:`drop_components`). Then garbage is collected and the CUDA cache emptied.
    """
    for pipe in pipes:
        if pipe is not None:
            drop_components(pipe, list(getattr(pipe, "components", {})), place=False)
    return None


def unhook(module) -> None:
    """Take off every hook of ``module`` and its submodules before it is dropped: accelerate's
    (``remove_hook_from_module``) and diffusers' hook registries (layerwise casting, group offload), whose
    wrapped ``forward`` refers to the module. The module is not meant to run again afterwards."""
    from accelerate.hooks import remove_hook_from_module

    remove_hook_from_module(module, recurse=True)
    for sub in module.modules():
        # dropped, not removed: layerwise casting refuses deinitialisation (its weights stay in float8)
        registry = sub.__dict__.pop("_diffusers_hook", None)
        if registry is not None:
            registry.hooks.clear()
            registry._fn_refs.clear()
            registry._module_ref = None
        sub.__dict__.pop("forward", None)  # any wrapper left: the class's forward again


@contextmanager
def borrowed(pipe, load_pipeline: Callable[[], Any]) -> Iterator[tuple[Any, bool]]:
    """``with borrowed(pipe, loader) as (pipe, owned):`` the caller's pipeline as it is (``owned`` False), or one
    loaded by ``load_pipeline()`` for this call only (``owned`` True) and freed (:func:`free_pipeline`) when the
    block ends, so a stage that loads its own model never leaves it in memory for the next one."""
    if pipe is not None:
        yield pipe, False
        return
    pipe = load_pipeline()
    try:
        yield pipe, True
    finally:
        free_pipeline(pipe)


def drop_components(pipe, names: Sequence[str], place: bool = True) -> None:
    """Free the components ``names`` of a loaded pipeline (e.g. the text encoders once every prompt is encoded):
    the offload ring broken and its list cleared (:func:`offload_models`), every hook removed (:func:`unhook`),
    the components set to None. With ``place``, the rest is placed again with the pipeline's memory options
    (an offload ring without the dropped ones)."""
    import gc

    import torch

    for hook in getattr(pipe, "_course_offload_hooks", None) or ():
        hook.hook.prev_module_hook = None  # break the ring
        hook.model = None
    pipe._course_offload_hooks = []
    if hasattr(pipe, "remove_all_hooks"):
        pipe.remove_all_hooks()  # accelerate's offload hooks, diffusers' list of them
    for name in names:
        module = getattr(pipe, name, None)
        if isinstance(module, torch.nn.Module):
            unhook(module)
            setattr(pipe, name, None)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    memory, profile = getattr(pipe, "_course_memory", ("none", None))
    if place and profile is not None:
        apply_memory_options(pipe, memory, profile)


def free_model_cache(key: str, profile) -> float:
    """Delete ``key``'s downloads from the Hugging Face cache (when it will not be used again); returns GB freed.
    Nothing to do in ``tiny`` (the twins are built in code) or in the GPU test mode (nothing is downloaded)."""
    from helpers.core.registry import entry

    if profile.random_weights:
        return 0.0
    from huggingface_hub import scan_cache_dir

    repo_id = entry(key).repo_id
    cache = scan_cache_dir()
    revisions = [r.commit_hash for repo in cache.repos if repo.repo_id == repo_id for r in repo.revisions]
    if not revisions:
        return 0.0
    strategy = cache.delete_revisions(*revisions)
    strategy.execute()
    print(f"freed {strategy.expected_freed_size / 1e9:.1f} GB: {repo_id} is not used again in this notebook")
    return strategy.expected_freed_size / 1e9


def make_room(needed_repos: dict[str, float], profile) -> list[str]:
    """Before a notebook downloads ``needed_repos`` ({repo: GB}), delete other models from the Hugging Face
    cache, oldest first, only while the disk's free space is short. Says what it deleted; returns the repos."""
    import shutil

    if profile.random_weights:
        return []
    from pathlib import Path

    from huggingface_hub import constants, scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        cache = scan_cache_dir()
    except CacheNotFound:
        return []  # nothing cached yet: nothing to free
    cached = {repo.repo_id: repo.size_on_disk / 1e9 for repo in cache.repos}
    short = sum(max(0.0, gb - cached.get(repo, 0.0)) for repo, gb in needed_repos.items())
    short -= shutil.disk_usage(Path(constants.HF_HUB_CACHE)).free / 1e9
    deleted = []
    for repo in sorted((r for r in cache.repos if r.repo_id not in needed_repos), key=lambda r: r.last_accessed):
        if short <= 0:
            break
        cache.delete_revisions(*[r.commit_hash for r in repo.revisions]).execute()
        short -= repo.size_on_disk / 1e9
        deleted.append(repo.repo_id)
        print(f"freed {repo.size_on_disk / 1e9:.1f} GB of disk: deleted {repo.repo_id} from the Hugging Face cache "
              "(this notebook does not use it; it downloads again when a notebook needs it)")
    return deleted


# --------------------------------------------------------------------------------------------
# The output check after every generation
# --------------------------------------------------------------------------------------------

def _as_arrays(frames) -> list[np.ndarray]:
    """Frames (PIL images, arrays, tensors, or one batched array/tensor) as float arrays in [0, 1]."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    if torch is not None and torch.is_tensor(frames):
        frames = frames.detach().float().cpu().numpy()
    if isinstance(frames, np.ndarray):
        frames = list(frames) if frames.ndim >= 4 else [frames]
    out = []
    for frame in frames:
        if torch is not None and torch.is_tensor(frame):
            frame = frame.detach().float().cpu().numpy()
        array = np.asarray(frame.convert("RGB") if hasattr(frame, "convert") else frame)
        out.append(array.astype(np.float64) / 255.0 if array.dtype == np.uint8 else array.astype(np.float64))
    return out


def output_problem(frames, black_level: float = 2 / 255) -> str | None:
    """What is wrong with a generation, or None: ``"NaN"``, ``"all black"`` or ``"constant"``.

    NaN / inf anywhere; every frame black (max at most ``black_level``: what NaN latents become once
    turned into 8-bit pixels); or one flat colour everywhere (no variation in any frame).
    """
    arrays = _as_arrays(frames)
    if not arrays:
        return "empty (no frames)"
    if any(not np.isfinite(a).all() for a in arrays):
        return "NaN"
    if max(float(a.max()) for a in arrays) <= black_level:
        return "all black"
    first = arrays[0].reshape(-1)[0]
    if all(float(np.ptp(a)) == 0.0 for a in arrays) and all(a.reshape(-1)[0] == first for a in arrays):
        return "constant"
    return None


def check_output(frames, what: str, pipe=None, family_name: str | None = None):
    """Stop with one clear :class:`GenerationError` if ``frames`` are NaN, black or constant; else return them.

    Called right after every generation call (before any label is stamped on the frames).
    """
    problem = output_problem(frames)
    if problem is None:
        return frames
    plan = getattr(pipe, "_course_plan", None)
    dtypes = f" in {plan_summary(plan)}" if plan else ""
    fam = family_name or _family_of(pipe)
    fix = FIXES.get(fam, "run it in float32 (dtype='float32')")
    raise GenerationError(f"{what} came out {problem}{dtypes}: half precision overflowed or the input is blank. "
                          f"Fix: {fix}.")


def _family_of(pipe) -> str | None:
    return FAMILY_OF_PIPELINE.get(type(pipe).__name__) if pipe is not None else None
