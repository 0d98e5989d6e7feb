"""Write the student version of the course notebooks: exercises blank, solutions optional.

    python tools/student.py notebooks student --badge-folder student   # `make student-publish` (committed copies)
    python tools/student.py notebooks student-no-solutions --no-solutions   # `make student SOLUTIONS=0`

The committed notebooks carry their solutions (CI runs them solved). An exercise is a code cell
tagged ``exercise``: the blank the learner fills comes first, then the solution between two marker
lines, which this script removes (markers included)::

    # Exercise 2: compute the ratio of naive to fast sampling time.
    ratio = None  # your code here
    ### BEGIN SOLUTION
    ratio = naive_seconds / fast_seconds
    ### END SOLUTION

The next code cell, tagged ``check``, fails on the blank with a message naming the exercise and
checks the answer. The prose solution sits in a markdown ``<details>`` cell tagged ``solution``;
``--no-solutions`` removes those cells too. Outputs and execution counts are always removed.
Only the standard library and nbformat are needed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
EXERCISE, CHECK, SOLUTION = "exercise", "check", "solution"
_BLOCK = re.compile(r"^[ \t]*### BEGIN SOLUTION[ \t]*\n.*?^[ \t]*### END SOLUTION[ \t]*(\n|\Z)", re.S | re.M)


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def strip_solution(code: str) -> str:
    """The cell as the learner gets it: every BEGIN/END SOLUTION block removed, markers included."""
    if code.count(BEGIN) != code.count(END):
        raise ValueError("unbalanced ### BEGIN SOLUTION / ### END SOLUTION markers")
    return _BLOCK.sub("", code).rstrip("\n")


def solution_block(code: str) -> str:
    """Only the code between the markers (what restores the solved state)."""
    return "\n".join(m.group(0) for m in _BLOCK.finditer(code))


BADGE_PATH = "/blob/main/notebooks/"


def student_notebook(nb, solutions: bool = True, badge_folder: str | None = None):
    """A copy of notebook ``nb`` (an nbformat node) with exercises blanked (and solution cells
    removed when ``solutions`` is False); outputs cleared. With ``badge_folder`` (e.g. "student"), the
    Colab badge of the title cell opens the copy in that folder instead of the solved notebook."""
    import copy

    out = copy.deepcopy(nb)
    if badge_folder and out.cells and out.cells[0].cell_type == "markdown":
        out.cells[0].source = source(out.cells[0]).replace(BADGE_PATH, f"/blob/main/{badge_folder}/")
    cells = []
    for cell in out.cells:
        if SOLUTION in tags(cell) and not solutions:
            continue
        if cell.cell_type == "code":
            if EXERCISE in tags(cell):
                cell.source = strip_solution(source(cell))
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    out.cells = cells
    return out


def write_student_versions(src: Path, dest: Path, solutions: bool = True,
                           badge_folder: str | None = None) -> list[Path]:
    import nbformat

    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(Path(src).glob("[0-9][0-9]*_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        target = dest / path.name
        tmp = target.with_name(f".{target.name}.tmp")
        nbformat.write(student_notebook(nb, solutions, badge_folder), tmp)
        tmp.replace(target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the student version of the notebooks (exercises blank).")
    parser.add_argument("src", type=Path, help="folder of NN_*.ipynb notebooks (e.g. notebooks)")
    parser.add_argument("dest", type=Path, help="folder to write them to (e.g. student)")
    parser.add_argument("--no-solutions", action="store_true",
                        help="also remove the folded solution cells (markdown cells tagged 'solution')")
    parser.add_argument("--badge-folder", default=None,
                        help="point each copy's Colab badge at this folder of the repository (e.g. student)")
    args = parser.parse_args(argv)
    if not args.src.is_dir():
        print(f"error: {args.src} is not a folder of notebooks", file=sys.stderr)
        return 2
    if args.src.resolve() == args.dest.resolve():
        print("error: writing the student version over the solved notebooks would lose the solutions", file=sys.stderr)
        return 2
    written = write_student_versions(args.src, args.dest, solutions=not args.no_solutions,
                                     badge_folder=args.badge_folder)
    kept = "kept (folded)" if not args.no_solutions else "removed"
    print(f"{len(written)} student notebooks in {args.dest}/: exercises blank, solution cells {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
