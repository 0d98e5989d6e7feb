"""Every notebook follows the course template and is committed clean."""

import json
import re
from pathlib import Path

import pytest

from helpers.core import colab

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
BADGE = colab.BADGE_LINK  # any Colab badge; tests/test_colab_setup.py checks they follow REPO_URL and REF


def load(path):
    return json.loads(path.read_text())


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name.startswith("00_")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    for cell in load(path)["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs", []) == [] and cell.get("execution_count") is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_template(path):
    cells = load(path)["cells"]
    head = "".join(cells[0]["source"])
    assert head.startswith(f"# {path.name[:2]}"), "title first"
    match = BADGE.search(head)
    assert match and match.group(1) == f"notebooks/{path.name}", "a Colab badge to this very notebook"
    for words in ("What you will learn", "Prerequisites", "Time per profile"):
        assert words in head, words
    code = [c for c in cells if c["cell_type"] == "code"]
    assert "google.colab" in "".join(code[0]["source"]), "first code cell is the Colab setup"
    assert "parameters" in code[1].get("metadata", {}).get("tags", []), "second code cell is tagged parameters"
    assert "main_banner" in "".join(code[1]["source"]), "the parameters cell prints the profile"
    text = "".join("".join(c["source"]) for c in cells)
    assert "Exercise" in text and "assert" in text
    assert "trust_remote_code" not in text


def test_colab_badges_point_at_existing_notebooks():
    files = [ROOT / "README.md", ROOT / "colab" / "README.md"]
    found = 0
    for file in files:
        for target in BADGE.findall(file.read_text()):
            assert (ROOT / target).exists(), f"{file.name}: badge points at missing {target}"
            found += 1
    assert found >= 2 * len(NOTEBOOKS), "README and colab/README each have a badge per notebook"
