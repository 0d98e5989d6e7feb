"""Statements the lessons once got wrong stay fixed (each claim is checked against the code or the text)."""

import re
from pathlib import Path

import nbformat

from helpers.diffusion import img2img_steps
from helpers.flux import effective_start

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))


def text(path: Path) -> str:
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)


def test_small_strength_still_runs_a_step():
    # 05 once said "below 1/steps nothing runs"; diffusers' rounding runs one step for any strength > 0.
    assert img2img_steps(0.1, 4) == 1 and effective_start(0.1, 4) == 0.25
    for path in NOTEBOOKS:
        assert "nothing runs" not in text(path), f"{path.name}: any strength above 0 runs at least one step"


def test_schnell_is_timestep_distilled_not_guidance_distilled():
    wrong = re.compile(r"schnell[^.\n]{0,60}?(\bis\s+|\()guidance[- ]distilled", re.I)
    root = NOTEBOOKS[0].parents[1]
    sources = [*NOTEBOOKS, *root.glob("helpers/**/*.py"), *root.glob("docs/*.md"), root / "README.md"]
    for path in sources:
        assert not wrong.search(path.read_text(encoding="utf-8")), \
            f"{path.name}: FLUX.1 [schnell] is timestep-distilled ([dev] is guidance-distilled)"


def test_blind_spot_direction_and_distillation_ratio():
    nb01 = text(next(p for p in NOTEBOOKS if p.name.startswith("01_")))
    assert "one column to the right per row it moves down" not in nb01, "01: information moves one column LEFT per row down"
    nb07 = text(next(p for p in NOTEBOOKS if p.name.startswith("07_")))
    assert "tenfold" not in nb07, "07: its own exercise computes 60 / 8 = 7.5"
