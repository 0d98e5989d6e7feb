"""The Colab path without Colab: the setup cell, the badges, the ref, the wheel and a fresh install.

The setup cell is executed for real in a fresh virtual environment with a stand-in ``google.colab``
module: once installing from a ``git+file://`` clone of this tree (the stand-in for the public URL),
once from a wheel lying in the stand-in Drive on a "GPU" runtime (a fake ``nvidia-smi``), and once
with an address that does not exist. Nothing is downloaded: the fresh venv sees the packages of the
venv running the tests (a .pth file) and pip runs with ``--no-index``; so torch & co. are not fetched.
Tests that need git are marked ``git`` (deselect with ``-m "not git"``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from helpers.core import colab

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import setup_cell  # noqa: E402

needs_git = pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                               reason="needs git and a git checkout")


def test_every_setup_cell_badge_and_install_line_follows_the_constants():
    assert setup_cell.problems() == []


def test_the_check_sees_a_notebook_that_drifts(monkeypatch):
    monkeypatch.setattr(colab, "REF", "v9.9.9")
    found = setup_cell.problems()
    names = {line.split(":")[0] for line in found}
    assert {p.name for p in setup_cell.notebooks()} <= names  # every setup cell and header badge disagrees now
    assert any(line.startswith("README.md") for line in found)
    assert any(line.startswith("colab/README.md") for line in found)


def test_the_setup_cell_invalidates_import_caches_before_importing_helpers():
    cell = colab.setup_cell_source()
    assert "importlib.invalidate_caches()" in cell
    assert cell.index("importlib.invalidate_caches()") < cell.index("from helpers.core.outputs import")


def test_badge_and_install_spec_are_built_from_the_constants():
    url = colab.badge_url("03_sampling.ipynb")
    assert url == f"https://colab.research.google.com/github/{colab.github_path()}/blob/{colab.REF}/notebooks/03_sampling.ipynb"
    assert colab.BADGE_LINK.fullmatch(url)
    assert colab.install_spec("app,colab").endswith(f"[app,colab] @ git+{colab.REPO_URL}@{colab.REF}")
    with pytest.raises(ValueError):
        colab.github_path("https://gitlab.com/a/b")


@pytest.mark.git
@needs_git
def test_the_ref_exists_in_this_repository():
    assert setup_cell.ref_exists(), f"{colab.REF} is no branch or tag here: the notebooks would install nothing"
    assert not setup_cell.ref_exists("no-such-ref-4f1c")


# --------------------------------------------------------------------------------------------
# The wheel and a fresh install
# --------------------------------------------------------------------------------------------

def _pip(python: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, cwd=cwd,
                          env=_env(), timeout=300)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COURSE_OUTPUTS", "VIRTUAL_ENV")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_BUILD_ISOLATION="0", **extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `make wheel` builds (same command), from this tree."""
    out = tmp_path_factory.mktemp("dist")
    build = _copy_of_this_tree(tmp_path_factory.mktemp("src") / "course")
    done = _pip(Path(sys.executable), "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(build))
    assert done.returncode == 0, done.stderr[-2000:]
    return next(out.glob(colab.WHEEL_GLOB))


def test_the_wheel_is_self_contained(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ["helpers/core/colab.py", "helpers/core/twins/ltx.py", "helpers/animate/svd.py", "helpers/pixelcnnpp/fused.c",
                 "helpers/data/sunset.png", "helpers/data/planet.png", "helpers/data/shapes.png",
                 "helpers/data/storyboard_example.json", "helpers/data/luts/warm.cube",
                 "helpers/data/luts/teal_orange.cube"]:
        assert path in names, f"{path} missing from {wheel.name}"
    shipped = {p.relative_to(ROOT / "data").as_posix() for p in (ROOT / "data").rglob("*") if p.is_file()}
    assert {f"helpers/data/{p}" for p in shipped} <= names, "every file of data/ ships in the wheel"
    metadata = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info/METADATA")
    assert b'Requires-Dist: bitsandbytes>=0.46.1; extra == "colab"' in metadata


def _fresh_venv(where: Path) -> Path:
    """A venv without pip that sees the packages of the running one (.pth): nothing big is installed."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    Path(purelib, "course-test-sees-main.pth").write_text(ours + "\n")
    return python


STANDIN_COLAB = {
    "google/__init__.py": "",
    "google/colab/__init__.py": "",
    "google/colab/drive.py": (
        "from pathlib import Path\n"
        "MOUNTS = []\n"
        "def mount(mountpoint, **kwargs):\n"
        "    MOUNTS.append(mountpoint)\n"
        "    (Path(mountpoint) / 'MyDrive').mkdir(parents=True, exist_ok=True)\n"),
    "google/colab/userdata.py": "def get(name):\n    raise KeyError(name)\n",
}


def _run_setup_cell(python: Path, tmp: Path, repo_url: str, path_extra: str = "",
                    wheel_sha256: str = "") -> subprocess.CompletedProcess:
    stub = tmp / "stub"
    for name, text in STANDIN_COLAB.items():
        (stub / name).parent.mkdir(parents=True, exist_ok=True)
        (stub / name).write_text(text)
    cell = colab.setup_cell_source(repo_url=repo_url, content=str(tmp / "content"))
    cell = cell.replace('WHEEL_SHA256 = ""', f'WHEEL_SHA256 = "{wheel_sha256}"', 1)  # what the learner types
    script = tmp / "cell.py"
    script.write_text(
        f"import sys; sys.path.insert(0, {str(stub)!r}); import google.colab\n"
        f"exec(compile(open({str(tmp / 'cell.txt')!r}).read(), 'setup cell', 'exec'))\n"
        "import os, importlib.metadata, helpers\n"
        "from helpers.core.demo_images import data_dir\n"
        "from helpers.slides import example_storyboard_path\n"
        "print('GRADIO', importlib.metadata.version('gradio'))  # the app extra resolved (importing it: ~10 s)\n"
        "print('HELPERS', helpers.__file__)\n"
        "print('DATA', data_dir())\n"
        "print('STORYBOARD', example_storyboard_path())\n"
        "print('OUTPUTS', os.environ.get('COURSE_OUTPUTS'))\n")
    (tmp / "cell.txt").write_text(cell)
    (tmp / "content").mkdir(exist_ok=True)
    env = _env(PATH=f"{path_extra}{os.pathsep}{os.environ['PATH']}" if path_extra else os.environ["PATH"])
    return subprocess.run([str(python), str(script)], capture_output=True, text=True, env=env, cwd=tmp,
                          timeout=300)


def _installed_and_working(done: subprocess.CompletedProcess, venv: Path, tmp: Path) -> None:
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if line.split(" ")[0].isupper())
    assert lines["HELPERS"].startswith(str(venv)), "helpers comes from the fresh install, not this checkout"
    assert Path(lines["DATA"]).is_relative_to(venv) and Path(lines["DATA"], "luts", "warm.cube").is_file()
    assert lines["GRADIO"]
    assert Path(lines["STORYBOARD"]).is_relative_to(venv)
    assert lines["OUTPUTS"] == str(tmp / "content" / "drive" / "MyDrive" / colab.DRIVE_FOLDER), "Drive by default"
    assert "installed the course's helpers from" in done.stdout


def _copy_of_this_tree(where: Path) -> Path:
    """The files of this working tree that git would commit (without git: all but outputs, venvs, caches)."""
    if shutil.which("git") and (ROOT / ".git").exists():
        files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
                               capture_output=True, text=True, check=True).stdout.split("\0")
        for name in filter(None, files):
            if (ROOT / name).is_file():
                (where / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, where / name)
        return where
    shutil.copytree(ROOT, where, ignore=shutil.ignore_patterns(".venv*", ".whl", "outputs", ".test-outputs", ".cache",
                                                               "__pycache__", "*.egg-info", "build", "dist", "student"))
    return where


def _clone_of_this_tree(where: Path) -> Path:
    """A git repository holding this working tree (committed or not) at REF: the public repo's stand-in."""
    _copy_of_this_tree(where)
    quiet = {"capture_output": True, "check": True, "cwd": where}
    subprocess.run(["git", "init", "-q", "-b", colab.REF], **quiet)
    subprocess.run(["git", "add", "-A"], **quiet)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "course"], **quiet)
    return where


@pytest.mark.git
@needs_git
def test_setup_cell_installs_from_the_git_url_in_a_fresh_venv(tmp_path):
    repo = _clone_of_this_tree(tmp_path / "published")
    venv = tmp_path / "venv"
    done = _run_setup_cell(_fresh_venv(venv), tmp_path, f"file://{repo}")
    _installed_and_working(done, venv, tmp_path)
    assert f"@ git+file://{repo}@{colab.REF}" in done.stdout


def test_setup_cell_installs_a_drive_wheel_only_with_its_sha256_and_the_gpu_extra(tmp_path, wheel):
    """A Drive folder may be shared with a class: a wheel found there is installed only when the learner
    confirmed its sha256 in the cell (issue 37, item 6); one the learner uploaded to /content needs none."""
    import hashlib

    drive = tmp_path / "content" / "drive" / "MyDrive" / colab.DRIVE_FOLDER
    drive.mkdir(parents=True)
    shutil.copy2(wheel, drive / wheel.name)
    bin_dir = tmp_path / "bin"  # a GPU runtime, as far as the cell can tell
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    links = _stub_bitsandbytes(tmp_path / "links")
    venv = tmp_path / "venv"
    python = _fresh_venv(venv)
    os.environ["PIP_FIND_LINKS"] = str(links)
    try:
        refused = _run_setup_cell(python, tmp_path, "https://example.invalid/none/none", path_extra=str(bin_dir))
        assert refused.returncode != 0 and f"Not installing {drive / wheel.name}" in refused.stdout, refused.stdout
        assert "WHEEL_SHA256" in refused.stdout and "installed the course's helpers" not in refused.stdout
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        done = _run_setup_cell(python, tmp_path, "https://example.invalid/none/none", path_extra=str(bin_dir),
                               wheel_sha256=digest)
    finally:
        del os.environ["PIP_FIND_LINKS"]
    _installed_and_working(done, venv, tmp_path)
    assert f"{wheel.name}[app,colab]" in done.stdout, "a GPU runtime installs the colab extra"
    freeze = _pip(python, "list", "--path", subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True).stdout.strip(), "--format=freeze").stdout
    assert "bitsandbytes==0.46.1" in freeze


def _stub_bitsandbytes(links: Path) -> Path:
    """A wheel named bitsandbytes 0.46.1 with nothing in it: proves the extra asks for it, fetches nothing."""
    src = links.parent / "bnb-src"
    (src / "bnb_stub_empty").mkdir(parents=True)
    (src / "bnb_stub_empty" / "__init__.py").write_text("")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "bitsandbytes"\nversion = "0.46.1"\n'
        '[tool.setuptools]\npackages = ["bnb_stub_empty"]\n')
    done = _pip(Path(sys.executable), "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(links), str(src))
    assert done.returncode == 0, done.stderr[-1500:]
    return links


def test_a_failed_install_explains_both_ways_without_a_traceback(tmp_path):
    python = _fresh_venv(tmp_path / "venv")
    done = _run_setup_cell(python, tmp_path, f"file://{tmp_path}/no-such-repository")
    assert done.returncode != 0
    assert "Two ways to get it" in done.stdout and "make wheel" in done.stdout and "MyDrive" in done.stdout
    assert "Traceback" not in done.stdout and "Traceback" not in done.stderr.split("SystemExit")[0]


def test_the_colab_pins_satisfy_the_course_bounds():
    """requirements-colab.txt (what Colab ships) must be installable with the course's lower bounds."""
    import re

    from packaging.version import Version

    def entries(name, op):
        found = {}
        for line in (ROOT / name).read_text().splitlines():
            match = re.fullmatch(rf"([A-Za-z0-9_.-]+)\s*{re.escape(op)}\s*([\d.]+)", line.split("#")[0].strip())
            if match:
                found[match.group(1).lower().replace("_", "-")] = Version(match.group(2))
        return found

    pins, lows = entries("requirements-colab.txt", "=="), entries("requirements.txt", ">=")
    assert {"diffusers", "transformers", "huggingface-hub", "accelerate", "gradio", "ipywidgets", "numpy"} <= set(pins)
    too_old = {name: (str(pins[name]), str(lows[name])) for name in set(pins) & set(lows) if pins[name] < lows[name]}
    assert not too_old, f"Colab ships versions below our lower bounds: {too_old}"
