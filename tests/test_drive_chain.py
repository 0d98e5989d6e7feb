"""The chain on Colab, rehearsed: each notebook runs in a kernel of its own, Drive is a folder.

Kernel 1 plays notebook 04 (makes keyframes) with Drive mounted as its setup cell does; kernel 2 plays
notebook 06 in a fresh runtime: with Drive it finds kernel 1's keyframes, no stand-in; kernel 3 opted out
(USE_DRIVE = False): it gets stand-ins, and a visible box naming the notebook that makes the real input.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
STUB = {
    "google/__init__.py": "",
    "google/colab/__init__.py": "",
    "google/colab/drive.py": ("from pathlib import Path\n"
                              "def mount(mountpoint, **kwargs):\n"
                              "    (Path(mountpoint) / 'MyDrive').mkdir(parents=True, exist_ok=True)\n"),
}


def run_kernel(cells: list[str], env: dict[str, str], monkeypatch) -> list[dict]:
    """Execute ``cells`` in a new kernel (a runtime of its own); the outputs of every cell."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=180, kernel_name="python3").execute()
    return [out for cell in nb.cells for out in cell.outputs]


def text_of(outputs: list[dict]) -> str:
    parts = []
    for out in outputs:
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/html", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@pytest.fixture
def colab(tmp_path, monkeypatch):
    stub = tmp_path / "stub"
    for name, text in STUB.items():
        (stub / name).parent.mkdir(parents=True, exist_ok=True)
        (stub / name).write_text(text)
    monkeypatch.setenv("PYTHONPATH", f"{stub}:{ROOT}")
    monkeypatch.delenv("COURSE_OUTPUTS", raising=False)
    return tmp_path


DRIVE = ("import google.colab\n"
         "from helpers.core.outputs import use_google_drive\n"
         "print('WORK', use_google_drive(mount_point={mount!r}))\n")  # what the setup cell does after the install


def test_outputs_carry_over_through_drive_and_a_missing_input_is_a_visible_stand_in(colab, monkeypatch):
    mount = str(colab / "content" / "drive")
    first = run_kernel([DRIVE.format(mount=mount),
                        "from helpers.core.demo_images import demo_image\n"
                        "from helpers.core.outputs import save_image, stage_dir\n"
                        "for i, name in enumerate(['planet', 'shapes'], 1):\n"
                        "    save_image(demo_image(name).rotate(90), stage_dir('keyframes') / f'frame_{i:04d}.png')\n"],
                       {}, monkeypatch)
    made = sorted((colab / "content" / "drive" / "MyDrive" / "pixels-to-motion" / "keyframes").glob("frame_*.png"))
    assert [p.name for p in made] == ["frame_0001.png", "frame_0002.png"], text_of(first)

    second = run_kernel([DRIVE.format(mount=mount),
                         "from helpers.core.standins import ensure_keyframes\n"
                         "import hashlib\n"
                         "for p in ensure_keyframes(): print('GOT', p.name, hashlib.sha256(p.read_bytes()).hexdigest())\n"],
                        {}, monkeypatch)
    got = text_of(second)
    for path in made:
        assert f"GOT {path.name} {hashlib.sha256(path.read_bytes()).hexdigest()}" in got, got
    assert "STAND-IN" not in got and "Stand-in" not in got

    opted_out = colab / "content-without-drive" / "outputs"
    third = run_kernel(["from helpers.core.standins import ensure_keyframes\n"
                        "print('GOT', len(ensure_keyframes()))\n"],
                       {"COURSE_OUTPUTS": str(opted_out)}, monkeypatch)
    boxes = [o["data"]["text/html"] for o in third if "text/html" in o.get("data", {})]
    assert len(boxes) == 1 and "04_curation_keyframes.ipynb" in boxes[0] and "USE_DRIVE = True" in boxes[0]
    assert "STAND-IN: no keyframes" in text_of(third) and "GOT 2" in text_of(third)
