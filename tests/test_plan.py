"""The memory plan (helpers.core.plan): counts from the real architectures, NF4 as bitsandbytes stores it, and
every colab-profile stage and model notebook within a free Colab T4's GPU memory, RAM and disk (full: 40 GB)."""

from __future__ import annotations

import nbformat
import pytest

from helpers.core import plan
from helpers.core.plan import GB, GiB, Counts, Part

ROOT = plan.__file__.rsplit("/helpers/", 1)[0]
COLAB_STAGES = [("flux", {}), ("flux", {"model": "flux-kontext-dev"}), ("flux", {"model": "flux-fill-dev"}),
                ("slides", {}), ("svd", {}), ("ltx", {}), ("ltx_distilled", {})]


def test_cached_counts_agree_with_a_fresh_meta_build():
    """plan_counts is a cache: the SVD UNet and the T5-XXL encoder, rebuilt on the meta device, give the same."""
    import torch
    from diffusers import UNetSpatioTemporalConditionModel

    from helpers.core.twins.full_size import _t5_xxl, building_on

    with building_on("meta", torch.bfloat16):
        unet, t5 = UNetSpatioTemporalConditionModel(), _t5_xxl()
    assert plan.count_module(unet) == plan.component_counts("svd-xt-1-1")["unet"]
    assert plan.count_module(t5) == plan.component_counts("ltx-video")["text_encoder"]
    assert plan.component_counts("flux-schnell")["text_encoder_2"] == plan.component_counts("ltx-video")["text_encoder"]


def test_nf4_bytes_follow_bitsandbytes_storage():
    """4 bits per quantised weight + one float32 absmax per 64 (Params4bit's blocksize); the rest unquantised."""
    layer = Counts(total=4096 * 4096 + 4096, linear=4096 * 4096, keep=0, castable=0)  # one Linear with a bias
    assert plan.part_bytes(layer, "nf4", "float16") == 4096 * 4096 // 2 + 4096 * 4096 // 64 * 4 + 4096 * 2
    kept = Counts(total=100, linear=0, keep=100, castable=0)  # transformers keeps T5's `wo` unquantised ...
    assert plan.part_bytes(kept, "nf4", "float16") == 400     # ... in float32 under float16 / float32
    assert plan.part_bytes(kept, "nf4", "bfloat16") == 200    # and in bfloat16 under bfloat16


def test_nf4_bytes_match_the_published_prequantised_flux_checkpoint():
    """diffusers/FLUX.1-dev-bnb-4bit (made with torch_dtype float16) stores transformer 6.7 GB, T5 6.33 GB."""
    counts = plan.component_counts("flux-dev")
    assert plan.part_bytes(counts["transformer"], "nf4", "float16") / GB == pytest.approx(6.7, rel=0.01)
    assert plan.part_bytes(counts["text_encoder_2"], "nf4", "float16") / GB == pytest.approx(6.33, rel=0.01)


def test_layerwise_casting_stores_cast_layers_in_float8():
    counts = plan.component_counts("ltx-video")["transformer"]
    stored = plan.part_bytes(counts, "float8_e4m3fn", "float32")
    assert stored == counts.castable + (counts.total - counts.castable) * 4
    assert 1.9e9 < stored < 2.0e9 < plan.part_bytes(counts, "float32", "float32") / 3


@pytest.mark.parametrize("stage,overrides", COLAB_STAGES, ids=lambda v: str(v))
def test_every_colab_stage_fits_a_t4_and_colab_ram(stage, overrides):
    planned = plan.stage_plan(stage, "colab", "t4", **overrides)
    assert plan.over_budget(planned) == []
    assert planned.gpu_peak <= 14.5 * GiB and planned.ram_peak <= 10 * GiB and planned.disk <= 70 * GB


@pytest.mark.parametrize("stage,overrides", COLAB_STAGES, ids=lambda v: str(v))
def test_every_stage_fits_the_full_profile_on_a_40_gb_gpu(stage, overrides):
    planned = plan.stage_plan(stage, "full", "bf16", **overrides)
    assert plan.over_budget(planned) == [] and planned.gpu_peak <= 39.5 * GiB


@pytest.mark.parametrize("notebook", plan.NOTEBOOKS)
@pytest.mark.parametrize("profile", ["colab", "full"])
def test_every_model_notebook_fits_as_a_whole(notebook, profile):
    planned = plan.notebook_plan(notebook, profile)
    assert plan.over_budget(planned) == []
    assert planned.gpu_peak == max(s.gpu_peak for s in planned.stages)


def test_the_budget_test_fails_for_the_configurations_the_fixes_replaced():
    """LTX on the T4 plan kept its float32 transformer (7.7 GB) in RAM; Flux unquantised does not fit at all."""
    old_ltx = plan.stage_plan("ltx", "colab", "t4", memory="nf4+model_offload+vae_tiling")
    assert any("RAM" in line for line in plan.over_budget(old_ltx))
    assert any("RAM" in line for line in plan.over_budget(plan.stage_plan("flux", "colab", memory="model_offload")))
    assert any("GPU" in line for line in plan.over_budget(plan.stage_plan("flux", "colab", memory="none")))


def test_notebook_05_fits_the_disk_only_because_it_frees_the_dev_models(monkeypatch):
    assert plan.notebook_plan("05").disk_peak <= 70 * GB
    monkeypatch.setattr(plan, "FREES_CACHE", {})
    assert plan.notebook_plan("05").disk_peak == pytest.approx(3 * 33.7 * GB, rel=1e-6)


def test_notebooks_on_one_disk_fit_with_make_room():
    rows = plan.disk_sequence("colab")
    assert [r[0] for r in rows] == list(plan.NOTEBOOKS)
    assert all(peak <= 70 for _, _, peak, _ in rows)
    assert any(freed for *_, freed in rows), "on one disk some notebook must free an earlier model's cache"


def test_offload_replay_moves_one_model_at_a_time_and_keeps_residents():
    parts = {"a": Part("a", "nf4", 10, "gpu", 0), "b": Part("b", "float16", 100, "offload", 100),
             "c": Part("c", "float16", 1000, "offload", 1000)}
    order = (("a", "encode"), ("b", "denoise"), ("c", "decode"))
    steps = plan.offload_steps(parts, order, ("a", "b", "c"), ["model_offload"], calls=2)
    # ring: c stays on the GPU after a call and leaves only when b runs in the next one
    assert [w for *_, w in steps] == [10, 110, 1010, 1010, 110, 1010]
    chained = {k: Part(k, p.storage, p.bytes, "offload", 0) for k, p in parts.items()}
    steps = plan.offload_steps(chained, order, ("a", "b", "c"), ["model_offload"], calls=1)
    assert [w for *_, w in steps] == [10, 100, 1000]


def test_plan_command_prints_the_table_and_refuses_bad_input(capsys):
    from helpers.core.cli import main

    assert main(["plan", "--stage", "ltx", "--profile", "colab"]) == 0
    out = capsys.readouterr().out
    assert "ltx-video" in out and "float8_e4m3fn" not in out and "GiB" in out and "everything fits" in out
    assert main(["plan", "--notebook", "07", "--profile", "full", "--detail"]) == 0
    assert "float8" not in capsys.readouterr().out  # full: bf16 plan, no layerwise casting
    assert main(["plan", "--stage", "nope"]) == 2


NOTEBOOK_FILES = {"05": "05_flux_keyframes", "06": "06_stable_video_diffusion",
                  "07": "07_prompted_multikeyframe_video", "09": "09_videos_from_independent_frames",
                  "10": "10_video_studio_app"}


def _code(notebook: str) -> list[str]:
    nb = nbformat.read(f"{ROOT}/notebooks/{NOTEBOOK_FILES[notebook]}.ipynb", as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("notebook", plan.NOTEBOOKS)
def test_every_model_notebook_prints_its_plan_and_makes_room(notebook):
    cells = [c for c in _code(notebook) if "notebook_plan(" in c]
    assert len(cells) == 1, f"notebook {notebook} needs one plan cell"
    assert f'"{notebook}"' in cells[0] and "make_room(" in cells[0] and ".table()" in cells[0]


def test_notebooks_free_one_pipeline_before_loading_the_next():
    code05 = "\n".join(_code("05"))
    for model in ("flux-kontext-dev", "flux-fill-dev"):
        load_at = code05.index(f'load_flux("{model}"')
        assert "free_pipeline(" in code05[code05.rfind("\n\n", 0, load_at):load_at] or \
            "free_pipeline(pipe)" in code05[:load_at], f"05 frees the previous pipeline before {model}"
    assert code05.count("free_model_cache(") >= 2, "05 frees the dev models' downloads once used"
    code07 = _code("07")
    svd_cell = next(c for c in code07 if "animate_image(KEYFRAMES[0]" in c)
    assert svd_cell.index("free_pipeline(") < svd_cell.index("animate_image(KEYFRAMES[0]")
    assert any("free_pipeline(" in c and "load_ltx(PROFILE, fast_settings)" in c for c in code07)


def _rehearsal():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_rehearsal", f"{ROOT}/benchmarks/gpu_rehearsal.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_rehearsal_dry_run_prints_the_plan_and_its_steps(capsys):
    rehearsal = _rehearsal()
    assert rehearsal.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "nothing ran on a GPU" in out
    for stage, block in rehearsal.STAGES.items():
        planned = plan.stage_plan(block, "colab", "t4")
        assert f"GPU {planned.gpu_peak / GiB:.1f} GiB" in out and planned.model in out
    assert "14.5 GiB of GPU memory minus the CUDA context" in out and "12.7 GB" in out and "float8_e4m3fn" in out
    with pytest.raises(SystemExit):
        rehearsal.main(["--dry-run", "--stages", "wan"])


def test_gpu_rehearsal_is_as_strict_as_a_t4():
    """The cap is the colab budget (14.5 GiB) minus the CUDA context the allocator does not count, and the stages
    include the plan's highest peak (slides' text-to-image), Kontext and one load-free-load in one process."""
    rehearsal = _rehearsal()
    assert {"slides", "kontext", "ltx-svd"} <= set(rehearsal.STAGES) and rehearsal.STAGES["kontext"] == "flux_kontext"
    assert rehearsal.budget_gib() == plan.BUDGETS["colab"].gpu / GiB == 14.5
    assert rehearsal.cap_fraction(80 * GiB, int(0.4 * GiB)) == pytest.approx((14.5 - 0.4) / 80)
    assert rehearsal.cap_fraction(int(14.0 * GiB), 0) == 1.0  # a smaller GPU than the budget: its own limit
    # context: what is in use beyond the memory used before CUDA started and what the allocator holds
    assert rehearsal.context_bytes(1 * GiB, 80 * GiB, 78 * GiB, GiB // 2) == GiB // 2
    assert rehearsal.context_bytes(None, 80 * GiB, 78 * GiB, 0) == int(0.5 * GiB)  # not measurable: assumed
    assert rehearsal.DEADLINE_S < 8 * 60


def test_gpu_rehearsal_report_puts_measured_beside_planned():
    rehearsal = _rehearsal()
    row = {"stage": "svd", "device": "a GPU", "load_s": 1, "generate_s": 2, "error": None, "gpu_reserved_gib": 5.0,
           "gpu_planned_gib": 6.3, "rss_peak_gb": 13.0, "over_colab_ram": True, "ram_weights_measured_gib": 4.3,
           "ram_weights_planned_gib": 4.2}
    text = rehearsal.report([row, {"stage": "ltx", "error": "over 150 s"}])
    assert "5.0 GiB" in text and "6.3 GiB" in text and "OVER COLAB RAM" in text and "FAILED: over 150 s" in text
    freed = dict(row, stage="ltx-svd", fits_t4=False, context_gib=0.42, ltx_loaded_gib=7.9, ltx_left_gib=0.0,
                 ltx_rss_freed_gb=6.1, ltx_rss_loaded_gb=6.4, leak=False)
    text = rehearsal.report([freed])
    assert "OVER THE T4 BUDGET" in text and "0.42 GiB" in text and "7.9 -> 0.00 GiB" in text and "LEAK" not in text
