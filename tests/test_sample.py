"""The sample stage: files, reproducibility, resuming, and the command line."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import helpers.sample as stage
from helpers.core.cli import main
from helpers.pixelcnnpp import PixelCNNpp

SHAPE = (1, 4, 4)
INFO = {"image_shape": SHAPE, "step": 7, "path": "checkpoints/pixelcnnpp/step_0000007"}


def tiny_model(channels=1):
    torch.manual_seed(0)
    return PixelCNNpp(channels, nr_resnet=1, nr_filters=4, nr_logistic_mix=2, dropout=0.0).eval()


def pixels(folder):
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("sample_*.png"))}


def test_generate_samples_writes_named_images_record_and_grid(outputs):
    paths = stage.generate_samples(tiny_model(), 5, outputs / "samples", batch_size=2, temperature=1.0,
                                   method="fast", seed=3, image_shape=SHAPE, info=INFO, progress=False)
    folder = outputs / "samples"
    assert [p.name for p in paths] == [f"sample_0000{i}.png" for i in range(1, 6)]
    assert all(Image.open(p).size == (4, 4) and Image.open(p).mode == "L" for p in paths)
    record = json.loads((folder / "samples.json").read_text())
    assert record["seed"] == 3 and record["n_images"] == 5 and record["step"] == 7
    assert "tiny model, trained for 7 steps" in record["model"]
    assert [e["chunk_seed"] for e in record["images"]] == [3_000_000, 3_000_000, 3_000_001, 3_000_001, 3_000_002]
    assert (folder / "grid.png").exists() and not list(folder.glob(".*partial*"))


def test_same_seed_same_images_and_naive_agrees(outputs):
    kwargs = dict(batch_size=3, temperature=1.0, seed=1, image_shape=SHAPE, info=INFO, progress=False)
    stage.generate_samples(tiny_model(), 4, outputs / "a", method="fast", **kwargs)
    stage.generate_samples(tiny_model(), 4, outputs / "b", method="naive", **kwargs)
    other = dict(kwargs, seed=2)
    stage.generate_samples(tiny_model(), 4, outputs / "c", method="fast", **other)
    a, b, c = pixels(outputs / "a"), pixels(outputs / "b"), pixels(outputs / "c")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def interrupt_second_chunk(monkeypatch) -> tuple:
    """Make helpers.pixelcnnpp.sample raise KeyboardInterrupt on its second call; returns (the call log, the real sample)."""
    import helpers.pixelcnnpp as pixelcnnpp

    real_sample, calls = pixelcnnpp.sample, []

    def failing_on_second_chunk(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_sample(*args, **kw)

    monkeypatch.setattr(pixelcnnpp, "sample", failing_on_second_chunk)
    return calls, real_sample


def test_an_interrupted_run_resumes_and_ends_with_the_same_images(outputs, monkeypatch):
    kwargs = dict(batch_size=2, temperature=1.0, method="fast", seed=0, image_shape=SHAPE, info=INFO, progress=False)
    stage.generate_samples(tiny_model(), 6, outputs / "whole", **kwargs)

    import helpers.pixelcnnpp as pixelcnnpp

    calls, real_sample = interrupt_second_chunk(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        stage.generate_samples(tiny_model(), 6, outputs / "resumed", **kwargs)
    assert sorted(pixels(outputs / "resumed")) == ["sample_00001.png", "sample_00002.png"]

    calls.clear()
    monkeypatch.setattr(pixelcnnpp, "sample", lambda *a, **k: (calls.append(1), real_sample(*a, **k))[1])
    stage.generate_samples(tiny_model(), 6, outputs / "resumed", **kwargs)
    assert len(calls) == 2  # only the two missing chunks were drawn
    whole, resumed = pixels(outputs / "whole"), pixels(outputs / "resumed")
    assert sorted(whole) == sorted(resumed) and all(np.array_equal(whole[k], resumed[k]) for k in whole)
    # a third run has nothing left to do
    calls.clear()
    stage.generate_samples(tiny_model(), 6, outputs / "resumed", **kwargs)
    assert calls == []


def test_another_run_replaces_the_folder_whole_and_says_so_in_one_line(outputs, capsys):
    kwargs = dict(batch_size=2, method="fast", seed=0, image_shape=SHAPE, info=INFO, progress=False)
    stage.generate_samples(tiny_model(), 4, outputs / "s", temperature=1.0, **kwargs)
    capsys.readouterr()
    stage.generate_samples(tiny_model(), 4, outputs / "s", temperature=0.5, **kwargs)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "replacing" in line]
    assert len(lines) == 1 and "temperature 1.0 -> 0.5" in lines[0]
    record = json.loads((outputs / "s" / "samples.json").read_text())
    assert record["temperature"] == 0.5 and {e["temperature"] for e in record["images"]} == {0.5}
    stage.generate_samples(tiny_model(), 4, outputs / "fresh", temperature=0.5, **kwargs)
    assert pixels(outputs / "s").keys() == pixels(outputs / "fresh").keys()
    assert all(np.array_equal(a, b) for a, b in zip(pixels(outputs / "s").values(), pixels(outputs / "fresh").values()))
    assert sorted(p.name for p in outputs.iterdir()) == ["fresh", "s"]  # no staging folder left


def test_an_interrupted_replacement_keeps_the_old_run_and_then_resumes(outputs, monkeypatch):
    import helpers.pixelcnnpp as pixelcnnpp

    kwargs = dict(batch_size=2, method="fast", seed=0, image_shape=SHAPE, progress=False, temperature=1.0)
    stage.generate_samples(tiny_model(), 4, outputs / "s", info=INFO, **kwargs)
    before = pixels(outputs / "s")
    newer = dict(INFO, step=9, path=str(outputs / "checkpoints" / "pixelcnnpp" / "step_0000009"))
    calls, real_sample = interrupt_second_chunk(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        stage.generate_samples(tiny_model(), 4, outputs / "s", info=newer, **kwargs)
    after = pixels(outputs / "s")  # the old run, whole: never half old, half new
    assert after.keys() == before.keys() and all(np.array_equal(before[k], after[k]) for k in before)
    assert json.loads((outputs / "s" / "samples.json").read_text())["step"] == 7
    calls.clear()
    monkeypatch.setattr(pixelcnnpp, "sample", lambda *a, **k: (calls.append(1), real_sample(*a, **k))[1])
    stage.generate_samples(tiny_model(), 4, outputs / "s", info=newer, **kwargs)
    assert len(calls) == 1  # the first chunk of the replacement was kept
    record = json.loads((outputs / "s" / "samples.json").read_text())
    assert record["step"] == 9 and record["checkpoint"] == "checkpoints/pixelcnnpp/step_0000009"
    assert sorted(p.name for p in outputs.iterdir()) == ["s"]


def test_a_moved_outputs_folder_still_resumes(tmp_path, monkeypatch, capsys):
    import shutil

    first = tmp_path / "first"
    monkeypatch.setenv("COURSE_OUTPUTS", str(first))
    info = dict(INFO, path=str(first / "checkpoints" / "pixelcnnpp" / "step_0000007"))
    kwargs = dict(batch_size=2, method="fast", seed=0, image_shape=SHAPE, progress=False, temperature=1.0)
    stage.generate_samples(tiny_model(), 4, first / "samples", info=info, **kwargs)
    assert json.loads((first / "samples" / "samples.json").read_text())["checkpoint"] == \
        "checkpoints/pixelcnnpp/step_0000007"
    moved = tmp_path / "moved"
    shutil.move(first, moved)
    monkeypatch.setenv("COURSE_OUTPUTS", str(moved))
    capsys.readouterr()
    moved_info = dict(INFO, path=str(moved / "checkpoints" / "pixelcnnpp" / "step_0000007"))
    stage.generate_samples(tiny_model(), 6, moved / "samples", info=moved_info, **kwargs)
    assert "replacing" not in capsys.readouterr().out
    assert len(pixels(moved / "samples")) == 6


def test_stale_partial_files_are_cleaned_on_the_next_run(outputs):
    import os
    import subprocess
    import sys

    from helpers.core.outputs import owner_tag

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout.strip()
    folder = outputs / "s"
    folder.mkdir(parents=True)
    dead = folder / f".sample_00001.{owner_tag(int(finished))}.ab.partial.png"
    dead.write_bytes(b"half")  # its writer has ended
    unowned = folder / ".sample_00002.abcd.partial.png"
    unowned.write_bytes(b"half")  # no owner in the name, untouched for an hour
    os.utime(unowned, (unowned.stat().st_atime - 3600, unowned.stat().st_mtime - 3600))
    (outputs / ".s.next").mkdir()
    kwargs = dict(batch_size=2, method="fast", seed=0, image_shape=SHAPE, info=INFO, progress=False)
    stage.generate_samples(tiny_model(), 2, folder, temperature=1.0, **kwargs)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    assert sorted(p.name for p in outputs.iterdir()) == ["s"]


def test_curation_sees_only_the_samples(outputs):
    from helpers.curate import sample_paths

    kwargs = dict(batch_size=2, method="fast", seed=0, image_shape=SHAPE, info=INFO, progress=False)
    stage.generate_samples(tiny_model(), 3, outputs / "s", temperature=1.0, **kwargs)
    Image.new("L", (4, 4)).save(outputs / "s" / "notes.png")  # a learner's own file beside them
    assert (outputs / "s" / "grid.png").exists()
    assert [p.name for p in sample_paths(outputs / "s")] == ["sample_00001.png", "sample_00002.png",
                                                             "sample_00003.png"]


@pytest.mark.parametrize("bad", [dict(n=0), dict(batch_size=0), dict(temperature=-1.0), dict(method="slow")])
def test_bad_settings_are_value_errors(outputs, bad):
    kwargs = dict(n=2, batch_size=2, temperature=1.0, method="fast")
    kwargs.update(bad)
    with pytest.raises(ValueError):
        stage.generate_samples(tiny_model(), out_dir=outputs / "s", image_shape=SHAPE, info=INFO,
                               progress=False, **kwargs)
    assert not list((outputs / "s").glob("sample_*.png"))


def test_command_line(outputs, monkeypatch, capsys):
    import helpers.train

    monkeypatch.setattr(helpers.train, "ensure_model", lambda profile=None: (tiny_model(3), dict(INFO, image_shape=(3, 4, 8))))
    assert main(["sample", "--n", "3", "--batch-size", "2", "--seed", "5", "--temperature", "0.8"]) == 0
    folder = outputs / "samples"
    names = sorted(p.name for p in folder.glob("sample_*.png"))
    assert names == ["sample_00001.png", "sample_00002.png", "sample_00003.png"]
    assert Image.open(folder / names[0]).size == (8, 4) and Image.open(folder / names[0]).mode == "RGB"
    assert "tiny model, trained for 7 steps" in capsys.readouterr().out
    assert main(["sample", "--n", "0"]) == 2
    assert main(["sample", "--temperature", "0"]) == 2
    assert "temperature" in capsys.readouterr().err


def test_label_draws_that_class_and_is_recorded(outputs, monkeypatch, capsys):
    import helpers.train

    torch.manual_seed(0)
    model = PixelCNNpp(1, nr_resnet=1, nr_filters=4, nr_logistic_mix=2, dropout=0.0, num_classes=10).eval()
    monkeypatch.setattr(helpers.train, "ensure_model", lambda profile=None: (model, INFO))
    assert main(["sample", "--n", "3", "--batch-size", "2", "--label", "3"]) == 0
    record = json.loads((outputs / "samples" / "samples.json").read_text())
    assert record["label"] == 3 and [e["label"] for e in record["images"]] == [3, 3, 3]
    assert "all of class 3" in capsys.readouterr().out
    stage.generate_samples(model, 3, outputs / "mixed", batch_size=2, image_shape=SHAPE, info=INFO, progress=False)
    mixed = json.loads((outputs / "mixed" / "samples.json").read_text())
    assert [e["label"] for e in mixed["images"]] == [0, 1, 2]  # the classes in turn, by image index
    assert main(["sample", "--n", "2", "--label", "12"]) == 2
    assert "knows the classes 0..9" in capsys.readouterr().err
    monkeypatch.setattr(helpers.train, "ensure_model", lambda profile=None: (tiny_model(), INFO))
    assert main(["sample", "--n", "2", "--label", "3"]) == 2
    err = capsys.readouterr().err
    assert "unconditional" in err and len(err.strip().splitlines()) == 1
