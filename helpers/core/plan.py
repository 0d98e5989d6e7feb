"""The memory plan: what each model stage and notebook needs on the GPU, in system RAM and on disk.

Computed, not measured. Parameter counts come from the full-size architectures of
:mod:`helpers.core.twins.full_size`, built on the meta device (no weights, no download) and cached in
:mod:`helpers.core.plan_counts`. Each component is counted in the dtype and quantisation the dtype plan
gives it (:mod:`helpers.core.device`): 4-bit NF4 as bitsandbytes stores it (half a byte per weight plus a
float32 absmax per block of 64 weights; biases, norms and the modules a model keeps in float32 stay
unquantised), layerwise casting as diffusers stores it (float8 weights for the layers it casts, the rest in
the compute dtype). Where each component lives follows the memory options: on the GPU, or in RAM and on the
GPU only while it runs (model offload; :func:`offload_steps` replays the hooks over the pipeline's calls).
Activations are estimates from the size and frame count (largest tensor x a small factor, see
:func:`activation_bytes`); downloads are the registry's sizes. No GPU has confirmed these figures yet:
``benchmarks/gpu_rehearsal.py`` measures them the day one is lent; ``benchmarks/plan_rss_check.py``
checks the RAM figure on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from helpers.core.device import (DTYPE_PLANS, FAMILY_OF_PIPELINE, LAYERWISE_CASTING, LAYERWISE_LOAD_DTYPE,
                                 NF4_COMPONENTS, RESIDENT_WHEN_OFFLOADED, parse_memory)
from helpers.core.profiles import STAGE_SETTINGS

GiB = 2**30
GB = 10**9
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float8_e4m3fn": 1}
NF4_BLOCK = 64                         # bitsandbytes' default blocksize for 4-bit on CUDA (Params4bit)
NF4_BYTES = 0.5 + 4 / NF4_BLOCK        # 4-bit code + one float32 absmax per block (no double quantisation)
CUDA_CONTEXT = int(0.5 * GiB)          # CUDA context, cuBLAS/cuDNN workspaces: assumed, typical 0.3-0.5 GiB
DEFAULT_GPU_CLASS = {"colab": "t4", "full": "bf16"}


@dataclass(frozen=True)
class Budget:
    """What one runtime offers: GPU memory, RAM for weights, free disk (bytes)."""

    gpu: int
    ram: int
    disk: int
    label: str


BUDGETS = {
    "colab": Budget(int(14.5 * GiB), 10 * GiB, 70 * GB,
                    "free Colab T4: 14.5 GiB of GPU memory, 10 GiB of its ~12.7 GB RAM for weights, ~70 GB free disk"),
    "full": Budget(int(39.5 * GiB), 64 * GiB, 150 * GB,
                   "one 40 GB GPU (A100 40 GB: 39.5 GiB; an 80 GB card has room to spare), 64 GiB RAM"),
}


@dataclass(frozen=True)
class Counts:
    """Parameters of one component: all, those in nn.Linear weights NF4 would quantise, Linear weights a
    model keeps unquantised (``_keep_in_fp32_modules``), and those layerwise casting stores in low precision."""

    total: int
    linear: int
    keep: int
    castable: int


@dataclass(frozen=True)
class Part:
    """One component as planned: how it is stored, its bytes, where it lives, and its bytes while loading."""

    name: str
    storage: str
    bytes: int
    where: str            # "gpu" (resident), "offload" (RAM; GPU only while it runs)
    load_ram: int         # bytes it takes in RAM right after from_pretrained (quantised parts load on the GPU)


@dataclass(frozen=True)
class StagePlan:
    """The plan of one stage for one profile and GPU class."""

    stage: str
    model: str
    profile: str
    gpu_class: str
    memory: str
    parts: tuple[Part, ...]
    gpu_peak: int
    ram_weights: int
    ram_load: int
    activations: dict[str, int]
    downloads: dict[str, float]
    notes: tuple[str, ...] = field(default=())

    @property
    def ram_peak(self) -> int:
        return max(self.ram_weights, self.ram_load)

    @property
    def disk(self) -> int:
        return int(sum(self.downloads.values()) * GB)


# --------------------------------------------------------------------------------------------
# Parameter counts: the meta device, cached
# --------------------------------------------------------------------------------------------

# The architecture each registry key is counted on. LTX-Video 0.9.5 (ltx-video) has the VAE of 0.9.5's layout,
# the same as 0.9.8 distilled (registry: its configs come from 0.9.5), so both are counted on ltx_distilled.
ARCHITECTURE = {
    "svd-xt-1-1": ("svd", {}), "svd-xt": ("svd", {}),
    "flux-schnell": ("flux", {"guidance_embeds": False}), "flux-schnell-img2img": ("flux", {"guidance_embeds": False}),
    "flux-dev": ("flux", {"guidance_embeds": True}), "flux-kontext-dev": ("flux", {"guidance_embeds": True}),
    "flux-fill-dev": ("flux", {"guidance_embeds": True, "pipeline_class": "FluxFillPipeline"}),
    "ltx-video": ("ltx_distilled", {}), "ltx-video-distilled": ("ltx_distilled", {}),
}
COMPONENTS = {"svd": ("unet", "vae", "image_encoder"), "flux": ("transformer", "text_encoder_2", "text_encoder", "vae"),
              "ltx": ("transformer", "text_encoder", "vae")}


def count_module(module) -> Counts:
    """Count ``module`` (on the meta device): totals, NF4-quantisable Linear weights, kept ones, castable ones."""
    import torch

    keep = tuple(getattr(module, "_keep_in_fp32_modules", None) or ())
    total = sum(p.numel() for p in module.parameters())
    linear = kept = 0
    for name, layer in module.named_modules():
        if type(layer) is torch.nn.Linear:
            if any(k in name.split(".") for k in keep):
                kept += layer.weight.numel()
            else:
                linear += layer.weight.numel()
    castable = 0
    if hasattr(module, "enable_layerwise_casting"):  # diffusers' own choice of layers, on meta tensors
        module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
        castable = sum(p.numel() for p in module.parameters() if p.dtype == torch.float8_e4m3fn)
    return Counts(total, linear, kept, castable)


def measure_counts(key: str) -> dict[str, Counts]:
    """Build ``key``'s full-size architecture on the meta device and count every component (tens of seconds)."""
    import torch

    from helpers.core.twins import full_size

    builder, kwargs = ARCHITECTURE[key]
    pipe = getattr(full_size, builder)("meta", torch.bfloat16, **kwargs)
    fam = family_of(key)
    return {name: count_module(getattr(pipe, name)) for name in COMPONENTS[fam]}


def component_counts(key: str) -> dict[str, Counts]:
    """The cached counts of ``key`` (:mod:`helpers.core.plan_counts`, checked against the meta build by a test)."""
    from helpers.core.plan_counts import COUNTS

    return {name: Counts(*numbers) for name, numbers in COUNTS[key].items()}


def family_of(key: str) -> str:
    from helpers.core.registry import entry

    return FAMILY_OF_PIPELINE[entry(key).pipeline_class]


# --------------------------------------------------------------------------------------------
# Bytes of each component, and where it lives
# --------------------------------------------------------------------------------------------

def storage_of(fam: str, gpu_class: str, name: str, options: list[str]) -> tuple[str, str]:
    """(storage, compute dtype) of component ``name``: "nf4", a layerwise storage dtype, or the compute dtype."""
    plan = DTYPE_PLANS[fam][gpu_class]
    compute = plan.get(name, plan["*"])
    if "nf4" in options and name in NF4_COMPONENTS[fam]:
        return "nf4", compute
    cast = LAYERWISE_CASTING.get(fam, {}).get(gpu_class, {}) if "layerwise_casting" in options else {}
    if name in cast:
        return cast[name], compute
    return compute, compute


def part_bytes(counts: Counts, storage: str, compute: str) -> int:
    """Bytes of a component stored as ``storage`` and computing in ``compute``."""
    if storage == "nf4":  # transformers keeps _keep_in_fp32_modules in float32 unless the dtype is bfloat16
        kept = BYTES["bfloat16"] if compute == "bfloat16" else BYTES["float32"]
        rest = counts.total - counts.linear - counts.keep
        return int(counts.linear * NF4_BYTES + counts.keep * kept + rest * BYTES[compute])
    if storage != compute:  # layerwise casting: cast layers in the storage dtype, the others in compute
        return counts.castable * BYTES[storage] + (counts.total - counts.castable) * BYTES[compute]
    return counts.total * BYTES[compute]


def load_bytes(counts: Counts, storage: str, compute: str) -> int:
    """Bytes in RAM right after loading: NF4 parts are quantised onto the GPU while loading; layerwise-cast
    parts load in :data:`LAYERWISE_LOAD_DTYPE` (their published dtype) before they are cast."""
    if storage == "nf4":
        return 0
    if storage != compute:
        return counts.total * BYTES[LAYERWISE_LOAD_DTYPE]
    return counts.total * BYTES[compute]


def placement(fam: str, name: str, storage: str, options: list[str]) -> str:
    """"gpu" or "offload" for component ``name`` under ``options``."""
    if not {"model_offload", "sequential_offload"} & set(options):
        return "gpu"
    if "model_offload" in options and storage == "nf4" and name in RESIDENT_WHEN_OFFLOADED[fam]:
        return "gpu"
    return "offload"


# --------------------------------------------------------------------------------------------
# Activations (estimates) and the offload hooks replayed over a pipeline's calls
# --------------------------------------------------------------------------------------------

# The order in which each pipeline runs its components (diffusers' __call__): (component, phase).
CALL_ORDER = {
    "StableVideoDiffusionPipeline": (("image_encoder", "encode"), ("vae", "vae_encode"), ("unet", "denoise"),
                                     ("vae", "decode")),
    "FluxPipeline": (("text_encoder", "encode"), ("text_encoder_2", "encode"), ("transformer", "denoise"),
                     ("vae", "decode")),
    "LTXConditionPipeline": (("text_encoder", "encode"), ("vae", "vae_encode"), ("transformer", "denoise"),
                             ("vae", "decode")),
}
for _name in ("FluxImg2ImgPipeline", "FluxKontextPipeline", "FluxFillPipeline"):  # they encode an image first
    CALL_ORDER[_name] = CALL_ORDER["FluxPipeline"][:2] + (("vae", "vae_encode"),) + CALL_ORDER["FluxPipeline"][2:]
# diffusers' model_cpu_offload_seq of each family: the order of the offload hooks.
OFFLOAD_SEQ = {"svd": ("image_encoder", "unet", "vae"), "flux": ("text_encoder", "text_encoder_2", "transformer", "vae"),
               "ltx": ("text_encoder", "transformer", "vae")}
# Activations = the largest tensor of a phase x a factor for what is alive beside it (inputs, residuals,
# norm and attention temporaries with torch's memory-efficient SDPA, no N^2 matrix). Factors are assumptions.
K_TRANSFORMER, K_UNET, K_DECODE, K_ENCODER = 16, 10, 4, 16


def activation_bytes(fam: str, key: str, settings: dict[str, Any], dtypes: dict[str, str],
                     options: list[str]) -> dict[str, int]:
    """Estimated activation bytes per phase (encode, vae_encode, denoise, decode) at the stage's size."""
    w, h = settings["width"], settings["height"]
    b = {name: BYTES[d] for name, d in dtypes.items()}
    if fam == "flux":
        image_tokens = (w // 16) * (h // 16) * (2 if "kontext" in key else 1)  # Kontext attends to its reference
        seq = settings["max_sequence_length"]
        return {"encode": seq * 4096 * b["text_encoder_2"] * K_ENCODER,
                "vae_encode": 128 * h * w * b["vae"] * K_DECODE // 2,
                "denoise": (image_tokens + seq) * 3072 * b["transformer"] * K_TRANSFORMER,
                "decode": 128 * h * w * b["vae"] * K_DECODE}
    if fam == "svd":
        frames, cfg = settings["num_frames"], 2 if settings["max_guidance_scale"] > 1 else 1
        return {"encode": 257 * 1280 * b["image_encoder"] * K_ENCODER,
                "vae_encode": 128 * h * w * b["vae"] * K_DECODE,
                "denoise": 320 * (h // 8) * (w // 8) * frames * cfg * b["unet"] * K_UNET,
                "decode": 128 * h * w * settings["decode_chunk_size"] * b["vae"] * K_DECODE}
    frames, cfg = settings["num_frames"], 2 if settings["guidance_scale"] > 1 else 1
    tokens = math.ceil(w / 32) * math.ceil(h / 32) * ((frames - 1) // 8 + 1)
    tiled = "vae_tiling" in options  # spatial tiles of 512 px and, with framewise decoding, 16 + 1 frames
    tw, th, tf = (min(w, 512), min(h, 512), min(frames, 17)) if tiled else (w, h, frames)
    # largest tensor of the 0.9.5 VAE decoder: 1024 channels at 1/8 size, half the frames (meta-device forward)
    return {"encode": settings["max_sequence_length"] * 4096 * b["text_encoder"] * K_ENCODER * cfg,
            "vae_encode": 128 * h * w * b["vae"] * K_DECODE,
            "denoise": tokens * cfg * 2048 * b["transformer"] * K_TRANSFORMER,
            "decode": 1024 * ((tf - 1) // 2 + 1) * (th // 8) * (tw // 8) * b["vae"] * K_DECODE}


def offload_steps(parts: dict[str, Part], order, seq, options: list[str], calls: int = 2) -> list[tuple[str, str, int]]:
    """Replay the offload hooks over ``calls`` pipeline calls: (component, phase, weight bytes on the GPU).

    Model offload (accelerate's hooks, as diffusers chains them): a component moves to the GPU when it runs
    and the one before it in the hook order moves back to RAM. With resident components the course closes
    the chain into a ring (helpers.core.device.offload_models), so what stayed on the GPU after one call is
    moved back when the next call starts. Sequential offload keeps only one layer on the GPU (counted as 0).
    """
    resident = sum(p.bytes for p in parts.values() if p.where == "gpu")
    ring = [n for n in seq if n in parts and parts[n].where == "offload"]
    ringed = any(p.where == "gpu" for p in parts.values()) and "model_offload" in options
    on: set[str] = set()
    steps = []
    for _ in range(calls):
        if not ringed:
            on.clear()  # diffusers' maybe_free_model_hooks offloads everything at the end of a call
        for name, phase in order:
            if name in ring and "sequential_offload" not in options:
                i = ring.index(name)
                if i > 0 or ringed:
                    on.discard(ring[i - 1])
                on.add(name)
            steps.append((name, phase, resident + sum(parts[n].bytes for n in on)))
    return steps


# --------------------------------------------------------------------------------------------
# A stage's plan
# --------------------------------------------------------------------------------------------

def downloads_of(key: str) -> dict[str, float]:
    """GB each repository adds to the Hugging Face cache for ``key`` (registry sizes; a single-file model also
    fetches its base repository's text encoder, counted here in bf16 from the architecture)."""
    from helpers.core.registry import entry

    item = entry(key)
    sizes = {item.repo_id: item.download_gb}
    if item.base_repo:
        sizes[item.base_repo] = round(component_counts(key)["text_encoder"].total * 2 / GB, 1)
    return sizes


def stage_plan(stage: str, profile: str = "colab", gpu_class: str | None = None, **overrides: Any) -> StagePlan:
    """The plan of ``stage`` (a block of helpers.core.profiles: flux, slides, svd, ltx, ltx_distilled) for
    ``profile`` on ``gpu_class`` (t4 / bf16; default: t4 for colab, bf16 for full), with ``overrides``."""
    from helpers.core.registry import entry

    if profile not in BUDGETS:
        raise ValueError(f"plans exist for the colab and full profiles, not {profile!r} (tiny runs small twins)")
    settings = {**STAGE_SETTINGS[stage][profile], **overrides}
    gpu_class = gpu_class or DEFAULT_GPU_CLASS[profile]
    key = settings["model"]
    item = entry(key)
    fam = FAMILY_OF_PIPELINE[item.pipeline_class]
    options = parse_memory(settings["memory"])
    parts, dtypes = {}, {}
    for name, counts in component_counts(key).items():
        storage, compute = storage_of(fam, gpu_class, name, options)
        dtypes[name] = compute
        parts[name] = Part(name, storage, part_bytes(counts, storage, compute),
                           placement(fam, name, storage, options), load_bytes(counts, storage, compute))
    acts = activation_bytes(fam, key, settings, dtypes, options)
    steps = offload_steps(parts, CALL_ORDER[item.pipeline_class], OFFLOAD_SEQ[fam], options)
    gpu_peak = CUDA_CONTEXT + max(weights + acts[phase] for _, phase, weights in steps)
    ram_weights = sum(p.bytes for p in parts.values() if p.where == "offload")
    ram_load = sum(p.load_ram for p in parts.values())
    notes = []
    if "nf4" in options and not item.repo_id.endswith("bnb-4bit"):
        notes.append("NF4 is quantised while loading: the 16-bit weights are downloaded and read shard by shard")
    return StagePlan(stage, key, profile, gpu_class, settings["memory"], tuple(parts.values()), gpu_peak,
                     ram_weights, ram_load, acts, downloads_of(key), tuple(notes))


# --------------------------------------------------------------------------------------------
# Notebooks: the stages each one loads, one at a time (helpers.core.device.free_pipeline in between)
# --------------------------------------------------------------------------------------------

def _app(profile: str, backend: str) -> tuple[str, dict[str, Any]]:
    """The studio app's settings for ``backend`` (notebook 10): the svd/ltx block with the app's sizes."""
    app = STAGE_SETTINGS["app"][profile]
    if backend == "svd":
        sizes = {k: v for k, v in (("width", app["svd_width"]), ("height", app["svd_height"])) if v is not None}
        return "svd", dict(sizes, num_frames=app["svd_num_frames"], num_inference_steps=app["svd_steps"])
    if backend == "ltx":
        return "ltx", dict(num_frames=app["ltx_num_frames"], num_inference_steps=app["ltx_steps"])
    return "ltx_distilled", dict(num_frames=app["ltx_distilled_num_frames"])


def notebook_stages(notebook: str, profile: str) -> list[tuple[str, dict[str, Any]]]:
    """(stage, overrides) of every pipeline ``notebook`` loads, in order."""
    stages = {
        "05": [("flux", {}), ("flux", {"model": "flux-kontext-dev"}), ("flux", {"model": "flux-fill-dev"})],
        "06": [("svd", {})],
        "07": [("ltx", {}), ("svd", {}), ("ltx_distilled", {})],
        "09": [("slides", {})],
        "10": [_app(profile, "svd"), _app(profile, "ltx"), _app(profile, "ltx-distilled")],
    }
    if notebook not in stages:
        raise ValueError(f"no memory plan for notebook {notebook!r}; model notebooks: {', '.join(stages)}")
    return stages[notebook]


NOTEBOOKS = ("05", "06", "07", "09", "10")
# Hugging Face caches a notebook deletes once it has used them (helpers.core.device.free_model_cache):
# the FLUX.1 [dev] models of notebook 05 are used nowhere else, and schnell + Kontext + Fill (3 x 33.7 GB)
# do not fit Colab's disk together.
FREES_CACHE = {"05": ("flux-kontext-dev", "flux-fill-dev")}


@dataclass(frozen=True)
class NotebookPlan:
    """A notebook as a whole: its stages one at a time, and the largest cache it holds on disk."""

    notebook: str
    profile: str
    stages: tuple[StagePlan, ...]
    disk_peak: int
    repos: dict[str, float]

    @property
    def gpu_peak(self) -> int:
        return max(s.gpu_peak for s in self.stages)

    @property
    def ram_peak(self) -> int:
        return max(s.ram_peak for s in self.stages)

    def table(self) -> str:
        return format_table(self.stages, self)


def notebook_plan(notebook: str, profile: str = "colab", gpu_class: str | None = None) -> NotebookPlan:
    """The plan of ``notebook`` (05, 06, 07, 09, 10): every stage it loads and its peak disk use."""
    stages = tuple(stage_plan(stage, profile, gpu_class, **overrides)
                   for stage, overrides in notebook_stages(notebook, profile))
    cache: dict[str, float] = {}
    peak = 0.0
    freed = {next(iter(downloads_of(k))) for k in FREES_CACHE.get(notebook, ())}
    for plan in stages:
        cache.update({repo: max(gb, cache.get(repo, 0.0)) for repo, gb in plan.downloads.items()})
        peak = max(peak, sum(cache.values()))
        for repo in set(plan.downloads) & freed:
            cache.pop(repo, None)
    repos: dict[str, float] = {}
    for plan in stages:
        repos.update({repo: max(gb, repos.get(repo, 0.0)) for repo, gb in plan.downloads.items()})
    return NotebookPlan(notebook, profile, stages, int(peak * GB), repos)


def disk_sequence(profile: str = "colab") -> list[tuple[str, float, float, list[str]]]:
    """Notebooks 05 -> 10 on ONE disk (a local machine; on Colab each notebook has a fresh runtime):
    (notebook, GB cached before it, its peak GB, repositories it frees first). A notebook frees the caches of
    models it does not use only when they and its own downloads would not fit (helpers.core.device.make_room)."""
    budget = BUDGETS[profile].disk / GB
    cache: dict[str, float] = {}
    rows = []
    for notebook in NOTEBOOKS:
        plan = notebook_plan(notebook, profile)
        before = sum(cache.values())
        new = plan.disk_peak / GB - sum(gb for repo, gb in cache.items() if repo in plan.repos)
        freed = []
        for repo in [r for r in cache if r not in plan.repos]:  # oldest first, as make_room does
            if sum(cache.values()) + new <= budget:
                break
            cache.pop(repo)
            freed.append(repo)
        rows.append((notebook, before, sum(cache.values()) + new, freed))
        dropped = {next(iter(downloads_of(k))) for k in FREES_CACHE.get(notebook, ())}
        for repo in plan.repos:  # used now: the newest in the cache
            cache.pop(repo, None)
            if repo not in dropped:
                cache[repo] = plan.repos[repo]
    return rows


# --------------------------------------------------------------------------------------------
# Checks and the printed table
# --------------------------------------------------------------------------------------------

def over_budget(plan: StagePlan | NotebookPlan, budget: Budget | None = None) -> list[str]:
    """What does not fit ``budget`` (the profile's), one line each; empty when everything fits."""
    budget = budget or BUDGETS[plan.profile]
    what = getattr(plan, "stage", None) or f"notebook {plan.notebook}"
    disk = plan.disk if isinstance(plan, StagePlan) else plan.disk_peak
    checks = [("GPU", plan.gpu_peak, budget.gpu, GiB, "GiB"), ("RAM for weights", plan.ram_peak, budget.ram, GiB, "GiB"),
              ("disk", disk, budget.disk, GB, "GB")]
    return [f"{what}: {label} {value / unit:.1f} {name} > {limit / unit:.1f} {name}"
            for label, value, limit, unit, name in checks if value > limit]


def format_table(stages, notebook: NotebookPlan | None = None, detail: bool = False) -> str:
    """The plan as a small text table: per stage its GPU peak, RAM (weights, peak of loading and running), disk."""
    first = stages[0]
    budget = BUDGETS[first.profile]
    lines = [f"{'stage':<14}{'model':<22}{'GPU peak':>10}{'RAM':>10}{'disk':>9}   memory options",
             "-" * 96]
    for s in stages:
        lines.append(f"{s.stage:<14}{s.model:<22}{s.gpu_peak / GiB:>6.1f} GiB{s.ram_peak / GiB:>6.1f} GiB"
                     f"{s.disk / GB:>6.1f} GB   {s.memory}")
        if detail:
            for p in s.parts:
                lines.append(f"    {p.name:<16}{p.storage:<16}{p.bytes / GiB:>6.2f} GiB  {p.where}")
            lines.append("    activations (est.): " + ", ".join(f"{k} {v / GiB:.2f} GiB" for k, v in s.activations.items()))
    if notebook is not None:
        lines.append(f"{'whole notebook (one model at a time)':<36}{notebook.gpu_peak / GiB:>6.1f} GiB"
                     f"{notebook.ram_peak / GiB:>6.1f} GiB{notebook.disk_peak / GB:>6.1f} GB")
    lines.append(f"{'budget':<36}{budget.gpu / GiB:>6.1f} GiB{budget.ram / GiB:>6.1f} GiB{budget.disk / GB:>6.0f} GB"
                 f"   ({budget.label})")
    head = (f"profile {first.profile}, {first.gpu_class} GPU class - computed from the real architectures "
            f"(helpers.core.plan), not yet measured on a GPU; RAM = weights held in system RAM")
    return head + "\n" + "\n".join(lines)


def write_counts(path=None) -> None:
    """Measure every registry key's counts on the meta device and rewrite :mod:`helpers.core.plan_counts`."""
    from pathlib import Path

    measured: dict[str, dict[str, Counts]] = {}
    lines = []
    for key, architecture in ARCHITECTURE.items():
        same = next((k for k in measured if ARCHITECTURE[k] == architecture), None)
        measured[key] = measured[same] if same else measure_counts(key)
        lines.append(f'    "{key}": {{')
        lines += [f'        "{name}": {tuple(vars(c).values())},' for name, c in measured[key].items()]
        lines.append("    },")
    target = Path(path) if path else Path(__file__).with_name("plan_counts.py")
    head = target.read_text().split("COUNTS = {")[0]
    target.write_text(head + "COUNTS = {\n" + "\n".join(lines) + "\n}\n")
