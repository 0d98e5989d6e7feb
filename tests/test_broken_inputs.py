"""Nothing broken is saved as good, and a broken input is one line, exit 2 (issue 37, items 7 and the tracebacks).

A tiny run of 10 steps (checkpoints at steps 5 and 10) is trained once; each test damages a copy of it:
a truncated ``model.safetensors`` or ``training_state.pt``, a ``meta.json`` without "config", nan weights;
settings out of range (``--set ema=1.5``, ``lr_decay=1.2``) are refused before any work; a loss that
stops being finite stops the run and keeps the last good checkpoint.
"""

import json
import math
import re
import shutil
from pathlib import Path

import pytest

from helpers.core.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run_cli(capsys, *argv: str) -> tuple[int, list[str]]:
    """The exit code and stderr's lines, the progress bar's left out (tqdm writes to stderr too)."""
    code = main(list(argv))
    return code, [line for line in capsys.readouterr().err.strip().splitlines()
                  if not line.startswith("training PixelCNN++")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run") / "checkpoints"
    code = main(["train", "--steps", "10", "--set", "eval_every=5", "--samples", "0", "--out-dir", str(folder)])
    assert code == 0 and [p.name for p in sorted(folder.glob("step_*"))] == ["step_0000005", "step_0000010"]
    return folder


@pytest.fixture
def run_copy(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OUTPUTS", str(tmp_path / "outputs"))
    copy = tmp_path / "checkpoints"
    shutil.copytree(trained, copy)
    return copy


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("name", ["model.safetensors", "training_state.pt"])
def test_a_truncated_checkpoint_file_is_one_line_naming_it_and_the_one_beside(capsys, run_copy, name):
    damaged = run_copy / "step_0000010" / name
    truncate(damaged)
    code, lines = run_cli(capsys, "train", "--steps", "12", "--set", "eval_every=5", "--samples", "0",
                          "--out-dir", str(run_copy))
    assert code == 2 and len(lines) == 1, lines
    assert str(damaged) in lines[0] and "damaged" in lines[0]
    assert f"{run_copy / 'step_0000005'} beside it" in lines[0] and f"delete {damaged.parent}" in lines[0]


def test_a_truncated_ema_file_is_one_line_for_sample(capsys, run_copy, tmp_path):
    damaged = run_copy / "step_0000010" / "ema.safetensors"
    truncate(damaged)
    code, lines = run_cli(capsys, "sample", "--n", "2", "--checkpoint", str(run_copy), "--out-dir", str(tmp_path / "s"))
    assert code == 2 and len(lines) == 1 and str(damaged) in lines[0] and "step_0000005" in lines[0], lines


def test_a_meta_json_without_config_names_the_file_and_the_intact_checkpoint(capsys, run_copy, tmp_path):
    meta = run_copy / "step_0000010" / "meta.json"
    record = json.loads(meta.read_text())
    del record["config"]
    meta.write_text(json.dumps(record))
    code, lines = run_cli(capsys, "sample", "--n", "2", "--checkpoint", str(run_copy), "--out-dir", str(tmp_path / "s"))
    assert code == 2 and len(lines) == 1, lines
    assert str(meta) in lines[0] and "'config'" in lines[0] and "step_0000005" in lines[0]


def test_sample_refuses_a_checkpoint_with_nan_weights(capsys, run_copy, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    weights = run_copy / "step_0000010" / "ema.safetensors"
    tensors = load_file(weights)
    first = next(name for name, t in tensors.items() if t.is_floating_point())
    tensors[first] = torch.full_like(tensors[first], math.nan)
    save_file(tensors, weights, metadata={"format": "pt"})
    code, lines = run_cli(capsys, "sample", "--n", "2", "--checkpoint", str(run_copy), "--out-dir", str(tmp_path / "s"))
    assert code == 2 and len(lines) == 1 and str(weights) in lines[0] and "nan/inf" in lines[0], lines
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").glob("*.png")), "no black images written"


@pytest.mark.parametrize("setting, fragment", [
    ("ema=1.5", "setting ema must be in [0, 1), got 1.5"),
    ("lr_decay=1.2", "setting lr_decay must be in (0, 1], got 1.2"),
    ("lr_decay=0", "setting lr_decay must be in (0, 1], got 0"),
    ("clip_grad=-1", "setting clip_grad must be in [0, inf), got -1"),
])
def test_settings_out_of_range_are_refused_before_any_work(capsys, tmp_path, monkeypatch, setting, fragment):
    monkeypatch.setenv("COURSE_OUTPUTS", str(tmp_path / "outputs"))
    code, lines = run_cli(capsys, "train", "--steps", "50", "--set", setting, "--out-dir", str(tmp_path / "c"))
    assert code == 2 and len(lines) == 1 and fragment in lines[0], lines
    assert not (tmp_path / "c").exists(), "nothing was written"


def test_a_loss_that_stops_being_finite_stops_the_run_and_keeps_the_last_good_checkpoint(capsys, tmp_path, monkeypatch):
    """A divergence stand-in: from step 6 on the learning rate is infinite, so the weights and the loss go nan."""
    from helpers import train

    monkeypatch.setenv("COURSE_OUTPUTS", str(tmp_path / "outputs"))
    real = train.learning_rate
    monkeypatch.setattr(train, "learning_rate", lambda config, step: real(config, step) if step < 6 else math.inf)
    out = tmp_path / "c"
    code, lines = run_cli(capsys, "train", "--steps", "10", "--set", "eval_every=5", "--samples", "0",
                          "--out-dir", str(out))
    assert code == 2 and len(lines) == 1, lines
    assert re.match(r"error: training stopped: the loss at step [6-9] is nan", lines[0]) and "lower --lr" in lines[0]
    assert f"the last good checkpoint {out / 'step_0000005'} is kept" in lines[0]
    assert [p.name for p in out.glob("step_*")] == ["step_0000005"]
    model, info = train.load_checkpoint(out)   # the one kept is finite and loads
    assert info["step"] == 5


def test_a_damaged_twin_in_the_cache_is_one_line_with_the_folder_to_delete(capsys, tmp_path, monkeypatch):
    from helpers.core import registry
    from helpers.core.images import BadInputError
    from helpers.core.profiles import get_profile

    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "cache"))
    folder = registry.ensure_twin("flux-schnell")
    weights = sorted(folder.rglob("*.safetensors"))[0]
    truncate(weights)
    with pytest.raises(BadInputError) as err:
        registry.load_pipeline("flux-schnell", get_profile("tiny"))
    line = str(err.value)
    assert "\n" not in line and f"delete the folder {folder}" in line and "tiny twin of flux-schnell" in line


def test_a_storyboard_nested_100000_deep_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_OUTPUTS", str(tmp_path / "outputs"))
    deep = tmp_path / "deep.json"
    deep.write_text('{"slides": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, lines = run_cli(capsys, "slides", str(deep))
    assert code == 2 and len(lines) == 1 and str(deep) in lines[0] and "nested too deeply" in lines[0], lines


def test_captions_draw_latin_greek_cyrillic_hebrew_arabic_and_name_what_they_cannot():
    from helpers.core.drawing import caption_font, caption_layer, load_font, undrawable

    scripts = "Crème brûlée, Straße · Ωμέγα · Жизнь · שלום · مرحبا"
    assert undrawable(scripts, load_font(16)), "Pillow's own font draws these as boxes: the check must see it"
    assert undrawable(scripts, caption_font(16)) == []
    assert caption_layer(scripts, (320, 180)).note == ""
    note = caption_layer("你好 world", (320, 180)).note
    assert "2 character(s) cannot be drawn" in note and "你 好" in note and "\n" not in note


def test_without_libraqm_a_hebrew_or_arabic_caption_says_it_is_drawn_unjoined(monkeypatch):
    from PIL import features

    from helpers.core.drawing import caption_layer

    monkeypatch.setattr(features, "check", lambda name: False if name == "raqm" else True)
    assert "drawn unjoined and left to right" in caption_layer("שלום · مرحبا", (320, 180)).note
    assert caption_layer("Hello", (320, 180)).note == ""
