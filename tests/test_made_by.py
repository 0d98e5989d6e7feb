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
