"""docs/models.md and the code agree: published settings vs every real-weights profile, and access flags."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from helpers.core.profiles import STAGE_SETTINGS
from helpers.core.registry import MODELS

DOC = Path(__file__).resolve().parent.parent / "docs" / "models.md"


def table(heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table after ``## heading``."""
    text = DOC.read_text().split(f"## {heading}\n", 1)[1]
    rows = []
    for line in text.splitlines():
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    rows = rows[2:] if len(rows) > 1 and set(rows[1]) <= set("|- ") else rows
    body = []
    for line in rows:
        body.append([cell.strip() for cell in line.strip("|").split("|")])
    return body


def literal(text: str):
    """A Python literal, or None for words (information only)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


def same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return a == b


PUBLISHED = {}
for model, setting, value, source in table("Published settings"):
    PUBLISHED.setdefault(model, {})[setting] = (literal(value), source)
DEPARTURES = {(stage, profile, setting): (literal(ours), why) for stage, profile, setting, ours, why in table("Departures")}
BLOCKS = [(stage, profile, block) for stage, per_profile in STAGE_SETTINGS.items()
          for profile, block in per_profile.items() if profile != "tiny" and "model" in block]


def test_every_registry_model_has_published_settings_with_sources():
    assert set(MODELS) <= set(PUBLISHED), f"no published settings for {sorted(set(MODELS) - set(PUBLISHED))}"
    assert set(PUBLISHED) <= set(MODELS), f"not in the registry: {sorted(set(PUBLISHED) - set(MODELS))}"
    assert all(source for rows in PUBLISHED.values() for _, source in rows.values()), "every row names its source"


@pytest.mark.parametrize("stage,profile,block", BLOCKS, ids=[f"{s}-{p}" for s, p, _ in BLOCKS])
def test_real_weight_settings_follow_the_published_ones_or_say_why(stage, profile, block):
    published = PUBLISHED[block["model"]]
    for setting, (value, _) in published.items():
        if value is None or setting not in block:
            continue
        if same(block[setting], value):
            assert (stage, profile, setting) not in DEPARTURES, f"{stage}/{profile}/{setting}: departure listed but none"
        else:
            assert (stage, profile, setting) in DEPARTURES, (
                f"{stage}/{profile}: {setting}={block[setting]!r}, published {value!r} "
                f"({published[setting][1]}); add a departure with its reason to docs/models.md or fix the setting")
            ours, why = DEPARTURES[(stage, profile, setting)]
            assert same(ours, block[setting]) and why, f"{stage}/{profile}/{setting}: the table says {ours!r}"


def test_every_departure_is_still_true():
    blocks = {(s, p): b for s, p, b in BLOCKS}
    for (stage, profile, setting), (ours, _) in DEPARTURES.items():
        block = blocks.get((stage, profile))
        assert block is not None and setting in block, f"departure for a missing setting: {stage}/{profile}/{setting}"
        published = PUBLISHED[block["model"]].get(setting, (None, ""))[0]
        assert published is not None and not same(published, block[setting]), f"{stage}/{profile}/{setting}: no departure"


def test_kontext_and_fill_do_not_run_schnells_steps():
    for profile in ("colab", "full"):
        assert STAGE_SETTINGS["flux_kontext"][profile]["num_inference_steps"] == 28
        assert STAGE_SETTINGS["flux_fill"][profile]["guidance_scale"] == 30.0


def test_the_gated_flags_match_the_access_table():
    rows = {model: (repo, literal(gated), source) for model, repo, gated, source in table("Access: which models need a token")}
    assert set(rows) == set(MODELS)
    for key, item in MODELS.items():
        repo, gated, source = rows[key]
        assert repo == item.repo_id and gated is item.gated and source, key
    readme = (DOC.parent.parent / "README.md").read_text()
    for key, item in MODELS.items():
        if item.gated and item.twin:
            assert f"`{item.repo_id}`" in readme, f"README's token paragraph does not name {item.repo_id}"


# --------------------------------------------------------------------------------------------
# Access: a refused repository ends in one message naming its page and the token (no hub traceback)
# --------------------------------------------------------------------------------------------

def _response(code: int):
    import huggingface_hub

    if int(huggingface_hub.__version__.split(".")[0]) >= 1:
        import httpx

        return httpx.Response(code, request=httpx.Request("GET", "https://huggingface.co/api/models/x"))
    import requests

    response = requests.Response()
    response.status_code, response.url = code, "https://huggingface.co/api/models/x"
    return response


def _refusals():
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    return {
        "gated": lambda: GatedRepoError("Cannot access gated repo for url ...", response=_response(403)),
        "401": lambda: RepositoryNotFoundError("401 Client Error. Repository Not Found", response=_response(401)),
        "403": lambda: HfHubHTTPError("403 Client Error: Forbidden", response=_response(403)),
        "wrapped": lambda: OSError("black-forest-labs/FLUX.1-schnell is not a local folder ... gated repo"),
    }


@pytest.mark.parametrize("refusal", ["gated", "401", "403", "wrapped"])
@pytest.mark.parametrize("key", sorted(k for k, m in MODELS.items() if m.twin))
def test_every_refused_load_names_the_page_and_the_token(monkeypatch, key, refusal):
    import diffusers
    import huggingface_hub

    from helpers.core import registry
    from helpers.core.profiles import Profile

    item = MODELS[key]

    def refuse(*args, **kwargs):
        raise _refusals()[refusal]()

    monkeypatch.delenv("COURSE_WEIGHTS", raising=False)
    monkeypatch.setattr(registry, "token_from_colab_secret", lambda: False)
    monkeypatch.setattr(getattr(diffusers, item.pipeline_class), "from_pretrained", refuse)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", refuse)
    with pytest.raises(registry.AccessError) as caught:
        registry.load_pipeline(key, Profile("colab", "cpu", "float32", "test"))
    message = str(caught.value)
    assert f"https://huggingface.co/{item.repo_id}" in message and "HF_TOKEN" in message and "secret" in message
    assert ("is gated" in message) == item.gated
    assert caught.value.__cause__ is None and caught.value.__suppress_context__, "no hub traceback chained"


def test_other_load_errors_are_not_called_access_problems():
    from helpers.core.registry import access_problem

    assert access_problem(ValueError("shape mismatch")) is None
    assert access_problem(OSError("No space left on device")) is None
    assert access_problem(RuntimeError("CUDA out of memory")) is None


def test_kontext_and_fill_calls_with_the_img2img_block_still_use_their_own_steps(monkeypatch):
    """Notebook 05 hands the ``flux`` block to kontext_edit/outpaint: the job's own steps must win."""
    from helpers import flux
    from helpers.core.profiles import Profile

    monkeypatch.delenv("COURSE_WEIGHTS", raising=False)
    colab = Profile("colab", "cpu", "float32", "test")
    img2img = colab.settings("flux")
    kontext, fill = flux.job_settings("kontext", img2img, colab), flux.job_settings("fill", img2img, colab)
    assert (kontext["num_inference_steps"], kontext["guidance_scale"]) == (28, 2.5)
    assert (fill["num_inference_steps"], fill["guidance_scale"]) == (50, 30.0)
    assert kontext["width"] == img2img["width"] and fill["height"] == img2img["height"]
    assert flux.flux_settings(colab, "kontext")["model"] == "flux-kontext-dev"
    assert flux.job_settings("img2img", img2img, colab) is img2img


@pytest.mark.parametrize("stage", ["ltx", "ltx_distilled"])
def test_every_published_ltx_number_is_a_setting_the_pipeline_gets(stage):
    """A published number the blocks lack is a departure nobody can see (0.9.5 once decoded at timestep 0 without
    the rescale): every literal row of LTX-Video is a setting of the colab and full blocks."""
    import inspect

    from helpers.animate import ltx

    passed = inspect.getsource(ltx.ltx_frames) + inspect.getsource(ltx.ltx_timesteps)
    for profile in ("colab", "full"):
        block = STAGE_SETTINGS[stage][profile]
        for setting, (value, _) in PUBLISHED[block["model"]].items():
            if value is not None:
                assert setting in block, f"{stage}/{profile} has no {setting} (published {value!r})"
                assert f'settings.get("{setting}")' in passed or f'settings["{setting}"]' in passed \
                    or setting == "torch_dtype", f"ltx_frames never passes {setting}"


# --------------------------------------------------------------------------------------------
# Access, said before every load: one table (the registry), printed by the notebooks
# --------------------------------------------------------------------------------------------

LOADERS = ("load_flux(", "load_svd(", "load_ltx(", "animate_image(", "generate_stills(", "refine_keyframes(",
           "load_text_to_image(", "load_pipeline(")


def _code(notebook: str) -> str:
    import nbformat

    path = next((DOC.parent.parent / "notebooks").glob(f"{notebook}_*.ipynb"))
    cells = nbformat.read(path, 4).cells
    return "\n".join(c.source for c in cells if c.cell_type == "code"), \
        "\n".join(c.source for c in cells if c.cell_type == "markdown")


def test_access_note_names_the_page_the_token_step_and_the_fallback():
    from helpers.core.registry import access_note

    svd = access_note("svd-xt-1-1")
    assert "https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt-1-1" in svd and "HF_TOKEN" in svd
    assert 'model="svd-xt"' in svd and "\n" not in svd  # the ungated fallback, in the same one line
    assert "gated" in access_note("flux-schnell") and "HF_TOKEN" in access_note("flux-schnell")
    assert "no token needed" in access_note("ltx-video")


@pytest.mark.parametrize("notebook", ["05", "06", "07", "09"])
def test_every_notebook_says_what_a_gated_model_needs_before_it_loads(notebook):
    from helpers.core import plan

    gated = [key for stage, over in plan.notebook_stages(notebook, "colab")
             for key in [over.get("model", STAGE_SETTINGS[stage]["colab"]["model"])] if MODELS[key].gated]
    assert gated, f"notebook {notebook} loads no gated model: drop it from this test"
    code, markdown = _code(notebook)
    loads = [code.index(call) for call in LOADERS if call in code and f"def {call}" not in code]
    assert "access_note(" in code and code.index("access_note(") < min(loads), \
        f"notebook {notebook} loads a model before it prints access_note"
    if notebook == "07":  # SVD-XT 1.1 (gated) loads inside animate_image in section 6
        assert code.index('access_note("svd-xt-1-1")') < code.index("animate_image(KEYFRAMES[0]")
    assert not re.search(r"schnell[^.]*no login", markdown), "schnell is gated: its page asks to accept terms"
    assert "HF_TOKEN" in markdown, f"notebook {notebook} never says how to give the token"
