"""The published student copies (student/) are the notebooks with exercises blank, in sync, with their own badges."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
STUDENT = ROOT / "student"
REGENERATE = "run `make student-publish` and commit student/"
_spec = importlib.util.spec_from_file_location("course_student_tool_copies", ROOT / "tools" / "student.py")
student = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student)


def test_one_copy_per_notebook_and_nothing_else():
    names = sorted(p.name for p in STUDENT.glob("*.ipynb"))
    assert names == [p.name for p in NOTEBOOKS], f"student/ does not match notebooks/: {REGENERATE}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_copy_is_in_sync(path):
    copy = STUDENT / path.name
    assert copy.exists(), f"student/{path.name} is missing: {REGENERATE}"
    expected = student.student_notebook(nbformat.read(path, as_version=4), solutions=True, badge_folder="student")
    assert nbformat.writes(expected) == nbformat.writes(nbformat.read(copy, as_version=4)), \
        f"student/{path.name} is out of date with notebooks/{path.name}: {REGENERATE}"
    text = copy.read_text()
    assert student.BEGIN not in text, f"student/{path.name} still holds a solution block: {REGENERATE}"
    assert f"blob/main/student/{path.name}" in text, "the student copy's badge opens the student copy"


def test_colab_readme_has_a_badge_per_student_copy():
    targets = re.findall(r"colab\.research\.google\.com/github/pixels-to-motion/pixels-to-motion/blob/main/(student/[^)\s]+\.ipynb)",
                         (ROOT / "colab" / "README.md").read_text())
    assert sorted(set(targets)) == [f"student/{p.name}" for p in NOTEBOOKS]
    for target in targets:
        assert (ROOT / target).exists(), target
