"""Exercises are real exercises, the student version is one command away, and lessons talk about the subject.

What this file checks without running a notebook (milliseconds):

- every notebook has at least one exercise; every code cell tagged ``exercise`` starts with
  ``# Exercise N: ...``, keeps a blank for the learner *before* one ``### BEGIN SOLUTION ... ### END
  SOLUTION`` block, and its student version (``tools/student.py``) still compiles;
- the cell right after it is tagged ``check``, and names the exercise in an assert message;
- a markdown cell tagged ``solution`` with a folded ``<details>`` block comes before the exercise cell;
- ``make student`` writes blank notebooks, with or without the solution cells;
- no notebook tells the learner how the course itself was produced.

Whether each check really *fails on the blank* and *passes on the solution* needs the notebook's state
(videos, models, samples), so it is checked where that state exists: in the nbval run of ``make test``
(the root ``conftest.py`` adds, after each check cell, an item that runs the student version of the
exercise and the check in the same kernel, expects an AssertionError naming the exercise, then restores
the solved state). That costs a few seconds for the series instead of executing every notebook twice,
which would double the ~3 minutes the notebooks take in CI; a stub namespace here instead would only
prove the first line of each check.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
_spec = importlib.util.spec_from_file_location("course_student_tool", ROOT / "tools" / "student.py")
student = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(student)

HEADER = re.compile(r"\A#\s*Exercise (\d+)\b")


def cells(path):
    return nbformat.read(path, as_version=4).cells


def exercise_indices(nb_cells):
    return [i for i, c in enumerate(nb_cells) if student.EXERCISE in student.tags(c)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_has_a_blank_a_solution_and_a_check(path):
    nb_cells = cells(path)
    found = exercise_indices(nb_cells)
    assert found, f"{path.name}: no code cell tagged 'exercise'"
    last_check = -1
    for i in found:
        cell = nb_cells[i]
        code = student.source(cell)
        where = f"{path.name} cell {i}"
        assert cell.cell_type == "code", f"{where}: only code cells are tagged 'exercise'"
        header = HEADER.match(code)
        assert header, f"{where}: an exercise cell starts with '# Exercise N: what to do'"
        label = f"Exercise {header.group(1)}"
        assert code.count(student.BEGIN) == 1 and code.count(student.END) == 1, \
            f"{where}: one '{student.BEGIN}' and one '{student.END}' line"
        blank = student.strip_solution(code)
        assert student.BEGIN not in blank and student.END not in blank
        typed = [line for line in blank.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        assert typed, f"{where}: the blank (code before {student.BEGIN}) is what the learner completes; it is empty"
        assert code.index(typed[-1]) < code.index(student.BEGIN), f"{where}: the blank comes before the solution block"
        compile(blank, where + " (student version)", "exec")
        compile(code, where, "exec")

        check = nb_cells[i + 1] if i + 1 < len(nb_cells) else None
        assert check is not None and check.cell_type == "code" and student.CHECK in student.tags(check), \
            f"{where}: the cell right after an exercise is its check (code, tag 'check')"
        check_code = student.source(check)
        assert "assert" in check_code and label in check_code, \
            f"{where}: the check asserts and names '{label}' in its messages"
        assert student.BEGIN not in check_code

        before = nb_cells[last_check + 1:i]
        folded = [c for c in before if student.SOLUTION in student.tags(c)]
        assert folded and all(c.cell_type == "markdown" and "<details>" in c.source for c in folded), \
            f"{where}: a markdown cell tagged 'solution' with a folded <details> block comes before the exercise"
        last_check = i + 1


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_tags_only_where_they_belong(path):
    nb_cells = cells(path)
    for i, cell in enumerate(nb_cells):
        t = student.tags(cell)
        if student.BEGIN in cell.source or student.END in cell.source:
            assert student.EXERCISE in t, f"{path.name} cell {i}: solution markers outside an exercise cell"
        if student.CHECK in t:
            assert i > 0 and student.EXERCISE in student.tags(nb_cells[i - 1]), \
                f"{path.name} cell {i}: a check cell follows its exercise cell"
        if student.SOLUTION in t:
            assert cell.cell_type == "markdown", f"{path.name} cell {i}: solution cells are markdown"


def test_strip_solution_keeps_the_blank():
    code = ("# Exercise 2: the ratio.\nratio = None  # your code here\n"
            "### BEGIN SOLUTION\nratio = naive_seconds / fast_seconds\n### END SOLUTION\n")
    assert student.strip_solution(code) == "# Exercise 2: the ratio.\nratio = None  # your code here"
    assert "naive_seconds" in student.solution_block(code)
    with pytest.raises(ValueError):
        student.strip_solution("x = None\n### BEGIN SOLUTION\nx = 1\n")


@pytest.mark.parametrize("solutions", [True, False], ids=["with-solutions", "no-solutions"])
def test_make_student_writes_blank_notebooks(tmp_path, solutions):
    args = [sys.executable, str(ROOT / "tools" / "student.py"), str(ROOT / "notebooks"), str(tmp_path)]
    done = subprocess.run(args + ([] if solutions else ["--no-solutions"]), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    written = sorted(tmp_path.glob("*.ipynb"))
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for src, out in zip(NOTEBOOKS, written):
        original, blank = cells(src), cells(out)
        text = "".join(c.source for c in blank)
        assert student.BEGIN not in text and student.END not in text, out.name
        n_solution = sum(student.SOLUTION in student.tags(c) for c in original)
        assert len(blank) == len(original) - (0 if solutions else n_solution), out.name
        assert all(c.get("outputs", []) == [] for c in blank if c.cell_type == "code")
        for c in blank:
            if student.EXERCISE in student.tags(c):
                compile(c.source, out.name, "exec")
    again = subprocess.run([sys.executable, str(ROOT / "tools" / "student.py"), str(ROOT / "notebooks"),
                            str(ROOT / "notebooks")], capture_output=True, text=True)
    assert again.returncode == 2 and "lose the solutions" in again.stderr


# How the course was produced is not the subject of any lesson.
PRODUCTION_NOTES = [r"\bbrief\b", r"\bcommissioned\b", r"\bthis course was (?:written|made|built|produced) from\b",
                    r"\bseed project\b", r"\bthe lesson this course\b", r"\bissue \d+\b", r"\bour client\b",
                    r"\bas (?:requested|specified) in\b"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lessons_speak_about_the_subject(path):
    text = " ".join(" ".join(c.source.split()) for c in cells(path))
    for pattern in PRODUCTION_NOTES:
        found = re.search(pattern, text, re.I)
        assert not found, f"{path.name}: '{text[max(0, found.start() - 60):found.end() + 60]}' talks about how " \
                          "the course was made; speak to the learner about the subject"
