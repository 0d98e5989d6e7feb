"""The backbone contract of `python -m helpers animate IMAGE --out OUT.mp4` (tiny profile)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.core.video import probe

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args, cwd):
    env = dict(os.environ, COURSE_PROFILE="tiny", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "helpers", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def awkward_images(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    made = {}
    noise = rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)
    made["rgba"] = folder / "rgba.png"
    Image.fromarray(noise).convert("RGBA").save(made["rgba"])
    made["grey16"] = folder / "grey16.png"
    Image.fromarray((rng.integers(0, 65535, (40, 40))).astype(np.uint16)).save(made["grey16"])
    made["palette"] = folder / "palette.gif"
    Image.fromarray(noise).convert("P").save(made["palette"])
    made["cmyk"] = folder / "cmyk.jpg"
    Image.fromarray(noise).convert("CMYK").save(made["cmyk"])
    made["tiny"] = folder / "tiny.png"
    Image.fromarray(noise[:9, :11]).save(made["tiny"])
    made["huge_odd"] = folder / "huge_odd.jpg"
    Image.new("RGB", (4001, 2999), (30, 60, 90)).save(made["huge_odd"], quality=50)
    exif_img = Image.fromarray(noise)
    exif = exif_img.getexif()
    exif[0x0112] = 8
    made["exif"] = folder / "exif.jpg"
    exif_img.save(made["exif"], exif=exif)
    return made


def test_awkward_images_become_browser_mp4s(tmp_path):
    images = awkward_images(tmp_path)
    # one process for all cases keeps the test quick: the pipeline loads once
    script = (
        "import sys\nfrom helpers.core.cli import main\n"
        "for src, dst in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    assert main(['animate', src, '--out', dst, '--num-frames', '3']) == 0\n"
    )
    args = []
    for name, path in images.items():
        args += [str(path), str(tmp_path / f"{name}.mp4")]
    env = dict(os.environ, COURSE_PROFILE="tiny", PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", script, *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in images:
        info = probe(tmp_path / f"{name}.mp4")
        assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p", name
        assert info["frames"] == 3, name
    assert "transparency composited" in result.stdout
    assert "16-bit" in result.stdout and "EXIF" in result.stdout
    assert "random weights" in result.stdout.lower()


@pytest.mark.parametrize("content, problem", [
    (None, "no such file"),
    (b"", "empty"),
    (b"this is not a picture", "not an image"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x40\x00\x00\x00\x40\x08\x02\x00\x00\x00", "truncated|damaged|could not read"),
])
def test_bad_input_exit_2_one_line_nothing_written(tmp_path, content, problem):
    import re

    src = tmp_path / "input.png"
    if content is not None:
        src.write_bytes(content)
    result = run_cli("animate", src, "--out", tmp_path / "out" / "v.mp4", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(src) in lines[0] and re.search(problem, lines[0]), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_wrong_output_suffix_refused(tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "ok.png")
    result = run_cli("animate", tmp_path / "ok.png", "--out", tmp_path / "v.avi", cwd=tmp_path)
    assert result.returncode == 2 and ".mp4" in result.stderr and "Traceback" not in result.stderr


def test_help_lists_every_stage(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for stage in ("train", "sample", "curate", "keyframes", "refine", "animate", "post", "slides", "app"):
        assert stage in result.stdout
