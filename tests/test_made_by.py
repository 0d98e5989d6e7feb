"""What made the pixels is said by one function (helpers.core.registry.made_by) and the command line agrees
with it: the course's trained twins are never called random, random twins never called trained."""

from __future__ import annotations

import subprocess
import sys

from helpers.core import registry
from helpers.core.profiles import get_profile


def test_made_by_tells_the_three_apart(monkeypatch):
    monkeypatch.delenv("COURSE_TWIN", raising=False)
    monkeypatch.delenv("COURSE_WEIGHTS", raising=False)
    tiny = get_profile("tiny")
    assert registry.made_by("svd-xt-1-1", tiny) == "trained"      # shipped in data/twins/svd-digits
    assert registry.made_by("ltx-video", tiny) == "trained"       # shipped in data/twins/ltx-digits
    assert registry.made_by("flux-kontext-dev", tiny) == "random"  # no trained twin
    monkeypatch.setenv("COURSE_TWIN", "random")
    assert registry.made_by("svd-xt-1-1", tiny) == "random"
    assert registry.made_by_note("real") == ""
    assert "random weights" in registry.made_by_note("random")
    assert "trained" in registry.made_by_note("trained") and "random" not in registry.made_by_note("trained")


def test_the_animate_command_says_the_svd_twin_is_trained(tmp_path):
    from PIL import Image

    image = tmp_path / "digit.png"
    Image.new("RGB", (32, 32), (10, 10, 10)).save(image)
    out = tmp_path / "clip.mp4"
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("COURSE_TWIN", "COURSE_WEIGHTS")}
    done = subprocess.run([sys.executable, "-m", "helpers", "animate", str(image), "--out", str(out),
                           "--profile", "tiny", "--num-frames", "4", "--steps", "2"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    wrote = [line for line in done.stdout.splitlines() if line.startswith("wrote ")]
    assert wrote and registry.MADE_BY["trained"] in wrote[-1], done.stdout
    assert registry.MADE_BY["random"] not in wrote[-1]


def test_the_video_notebooks_label_frames_through_the_one_function():
    """Notebooks 06, 07 and 09 never decide a label from the profile alone (that called the trained twins random):
    frames are labelled by label_frames / MODEL_STAMPS[made_by(...)], titles by made_by_title or the twin's TRAINED."""
    import re
    from pathlib import Path

    import nbformat

    root = Path(__file__).resolve().parents[1] / "notebooks"
    for name in ("06_stable_video_diffusion", "07_prompted_multikeyframe_video", "09_videos_from_independent_frames"):
        nb = nbformat.read(root / f"{name}.ipynb", as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            assert "stamp_random_weights(" not in cell.source, f"{name}: a frame stamped random without made_by"
            for line in cell.source.splitlines():
                if re.search(r"RANDOM WEIGHTS.*if PROFILE\.random_weights", line):
                    assert "TRAINED" in line or "elif" in line or "TRAINED" in cell.source, (name, line)
