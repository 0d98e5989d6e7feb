"""Write (or check) every notebook's setup cell and every Colab badge from helpers/core/colab.py.

    python tools/setup_cell.py --write      # rewrite the first code cell of each notebook, and the badges
    python tools/setup_cell.py --check      # exit 1 and name what disagrees (CI, tests/test_colab_setup.py)
    python tools/setup_cell.py --published  # also: REF exists here, and REPO_URL serves it (needs the network)

Only the first code cell and the badge links in markdown cells are touched (via nbformat); every
other cell is left exactly as it is, so other edits to the notebooks merge cleanly.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers.core import colab  # noqa: E402

DOCS = (ROOT / "README.md", ROOT / "colab" / "README.md")


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))


def fix_badges(text: str) -> str:
    """Every Colab badge link in ``text`` pointed at REPO_URL / REF (the notebook name is kept)."""
    return colab.BADGE_LINK.sub(lambda m: colab.badge_url(Path(m.group(1)).name), text)


def fix_notebook(path: Path) -> list[str]:
    """The notebook's setup cell and badges as the constants say; returns what was changed."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    changed = []
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    if not code or "google.colab" not in code[0].source:
        raise SystemExit(f"{path.name}: the first code cell is not the Colab setup cell; fix it by hand")
    if code[0].source != colab.setup_cell_source():
        code[0].source = colab.setup_cell_source()
        changed.append("setup cell")
    for cell in nb.cells:
        if cell.cell_type == "markdown" and fix_badges(cell.source) != cell.source:
            cell.source = fix_badges(cell.source)
            changed.append("badge")
    if changed:
        nbformat.write(nb, path)
    return changed


def fix_doc(path: Path) -> list[str]:
    text = path.read_text()
    new = fix_badges(text)
    if path.parent.name == "colab":
        import re

        new = re.sub(r'"pixels-to-motion\[[^\]]*\] @ git\+[^"]+"', f'"{colab.install_spec()}"', new)
    if new != text:
        path.write_text(new)
        return ["badges"]
    return []


def problems() -> list[str]:
    """Everything that disagrees with helpers/core/colab.py (empty: all agree)."""
    import nbformat

    found = []
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        if not code or code[0].source != colab.setup_cell_source():
            found.append(f"{path.name}: setup cell differs from helpers/core/colab.py")
        header = nb.cells[0].source if nb.cells else ""
        if colab.badge_url(path.name) not in header:
            found.append(f"{path.name}: its header has no badge {colab.badge_url(path.name)}")
        for cell in nb.cells:
            if cell.cell_type == "markdown" and fix_badges(cell.source) != cell.source:
                found.append(f"{path.name}: a badge points elsewhere than {colab.REPO_URL} @ {colab.REF}")
    for doc in DOCS:
        text = doc.read_text()
        if fix_badges(text) != text:
            found.append(f"{doc.relative_to(ROOT)}: a badge points elsewhere than {colab.REPO_URL} @ {colab.REF}")
        missing = [p.name for p in notebooks() if colab.badge_url(p.name) not in text]
        if missing:
            found.append(f"{doc.relative_to(ROOT)}: no badge for {', '.join(missing)}")
    if colab.install_spec() not in (ROOT / "colab" / "README.md").read_text():
        found.append(f"colab/README.md: the install line is not {colab.install_spec()}")
    return found


def ref_exists(ref: str | None = None, root: Path = ROOT) -> bool:
    """True when ``ref`` (default REF) names a commit in this repository (a branch, its origin/ twin, or a tag)."""
    ref = ref or colab.REF
    for name in (ref, f"origin/{ref}", f"refs/tags/{ref}"):
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}"],
                              capture_output=True, text=True)
        if done.returncode == 0:
            return True
    return False


def published() -> list[str]:
    """What keeps a learner's click from working: REF missing here, or not served by REPO_URL."""
    found = [] if ref_exists() else [f"{colab.REF} is not a branch or tag of this repository"]
    done = subprocess.run(["git", "ls-remote", "--exit-code", colab.REPO_URL, colab.REF],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        found.append(f"{colab.REPO_URL} does not serve {colab.REF} (push it: git push <remote> {colab.REF}; "
                     f"git ls-remote said: {(done.stderr.strip().splitlines() or ['nothing'])[-1]})")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="rewrite setup cells and badges")
    group.add_argument("--check", action="store_true", help="fail when anything disagrees")
    group.add_argument("--published", action="store_true", help="--check, plus REF here and at REPO_URL")
    args = parser.parse_args(argv)
    if args.write:
        for path in [*notebooks(), *DOCS]:
            changed = fix_notebook(path) if path.suffix == ".ipynb" else fix_doc(path)
            if changed:
                print(f"{path.relative_to(ROOT)}: {', '.join(sorted(set(changed)))}")
        return 0
    found = problems() + (published() if args.published else [])
    for line in found:
        print(line)
    if not found:
        print(f"all setup cells and badges install from {colab.REPO_URL} @ {colab.REF}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
