"""PixelCNN++ training: resuming continues the same run, checkpoints, EMA, lr decay, accelerate."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers.core import profiles
from helpers.core.cli import main as cli_main
from helpers.core.data import load_data
from helpers.train import (STATE_FILE, build_model, ensure_model, latest_checkpoint, learning_rate, list_checkpoints,
                           load_checkpoint, train)

ROOT = Path(__file__).resolve().parent.parent
# A model small enough for a few steps per second on one CPU core.
SMALL = dict(nr_resnet=1, nr_filters=8, nr_logistic_mix=2, batch_size=16, eval_every=4, samples_every=0,
             lr=2e-3, lr_decay=0.99, ema=0.9, keep_checkpoints=2)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest (and identically) on one thread; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    # 90 training images, 16 per batch: 5 batches per epoch, so 7 steps end mid-epoch.
    return load_data("digits", image_size=8, seed=0, max_images=100)


def weights(path: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(path / f"{name}.safetensors")


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_interrupted_run_resumes_to_the_same_result(tmp_path, data, monkeypatch):
    kw = dict(data=data, dropout=0.5, progress=False, **SMALL)
    straight = train("tiny", steps=14, out_dir=tmp_path / "straight", **kw)
    first = train("tiny", steps=7, out_dir=tmp_path / "split", **kw)
    meta = json.loads((first / "meta.json").read_text())
    assert meta["step"] == 7 and meta["data_state"]["epoch"] == 1 and meta["data_state"]["batch"] == 2
    resumed = train("tiny", steps=14, out_dir=tmp_path / "split", **kw)
    assert resumed.name == straight.name == "step_0000014"
    # 7 steps + stop + 7 steps == 14 steps straight, bit for bit, with dropout 0.5 (RNG and data order restored)
    assert same(weights(resumed, "model"), weights(straight, "model"))
    assert same(weights(resumed, "ema"), weights(straight, "ema"))
    opt_a = torch.load(resumed / STATE_FILE, weights_only=True)["optimizer"]
    opt_b = torch.load(straight / STATE_FILE, weights_only=True)["optimizer"]
    assert all(torch.equal(opt_a["state"][i]["exp_avg_sq"], opt_b["state"][i]["exp_avg_sq"]) for i in opt_a["state"])
    hist_a = json.loads((resumed / "meta.json").read_text())["history"]
    hist_b = json.loads((straight / "meta.json").read_text())["history"]
    assert [h["step"] for h in hist_a] == [4, 7, 8, 12, 14] and [h["step"] for h in hist_b] == [4, 8, 12, 14]
    assert hist_a[-1]["test_bpd"] == hist_b[-1]["test_bpd"] < 8.0
    # Control: without restoring the dropout RNG the resumed run is a different run.
    monkeypatch.setattr("helpers.train._set_rng_state", lambda state: None)
    train("tiny", steps=7, out_dir=tmp_path / "norng", **kw)
    other = train("tiny", steps=14, out_dir=tmp_path / "norng", **kw)
    assert not same(weights(other, "model"), weights(straight, "model"))


def test_checkpoint_files_ema_and_lr_decay(tmp_path, data):
    last = train("tiny", steps=9, data=data, out_dir=tmp_path, progress=False, dropout=0.0, **SMALL)
    assert sorted(p.name for p in last.iterdir()) == ["ema.safetensors", "meta.json", "model.safetensors", STATE_FILE]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_0000008", "step_0000009"]  # keep_checkpoints=2
    (tmp_path / ".step_0000010.partial").mkdir()  # an interrupted write is never taken for a checkpoint
    assert latest_checkpoint(tmp_path) == last
    state = torch.load(last / STATE_FILE, weights_only=True)  # no pickle needed
    config = json.loads((last / "meta.json").read_text())["config"]
    # exponential decay every step: the 9th step (index 8) used lr * decay**8
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(learning_rate(config, 8))
    assert learning_rate(config, 8) == pytest.approx(2e-3 * 0.99**8)
    assert state["optimizer"]["param_groups"][0]["betas"] == (0.95, 0.9995)
    assert len(state["rng"]) == 1 and state["rng"][0]["torch"].dtype == torch.uint8
    model, info = load_checkpoint(tmp_path)  # a folder of checkpoints: the latest one
    assert not model.training and info["step"] == 9 and info["image_shape"] == (1, 8, 8)
    assert info["test_bpd"] == json.loads((last / "meta.json").read_text())["test_bpd"]
    ema, raw = weights(last, "ema"), weights(last, "model")
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], ema[k]) for k in ema)  # EMA weights are what we evaluate and hand on
    assert not same(ema, raw)


def test_resume_refuses_a_different_run_and_no_resume_starts_over(tmp_path, data):
    kw = dict(data=data, out_dir=tmp_path, progress=False, **SMALL)
    train("tiny", steps=4, **kw)
    with pytest.raises(ValueError, match="different run.*nr_filters 8 -> 12.*--no-resume"):
        train("tiny", steps=8, **{**kw, "nr_filters": 12})
    last = train("tiny", steps=2, resume=False, **{**kw, "nr_filters": 12})
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_0000002"]
    assert load_checkpoint(last)[1]["config"]["nr_filters"] == 12
    with pytest.raises(ValueError, match="unknown training setting"):
        train("tiny", steps=2, nr_filterz=3, **kw)


def test_ensure_model_trains_a_stand_in_once(outputs, monkeypatch, capsys):
    tiny = {**profiles.STAGE_SETTINGS["pixelcnnpp"]["tiny"], **SMALL, "image_size": 8, "steps": 3}
    monkeypatch.setitem(profiles.STAGE_SETTINGS["pixelcnnpp"], "tiny", tiny)
    model, info = ensure_model("tiny")
    assert "no PixelCNN++ checkpoint" in capsys.readouterr().out
    assert not model.training and info["step"] == 3 and info["image_shape"] == (1, 8, 8)
    assert set(info) >= {"config", "image_shape", "step", "test_bpd"} and info["test_bpd"] < 9
    assert (outputs / "checkpoints" / "pixelcnnpp" / "step_0000003" / "ema.safetensors").exists()
    _, again = ensure_model("tiny")
    assert "no PixelCNN++ checkpoint" not in capsys.readouterr().out and again["path"] == info["path"]


def test_cli_bad_input_is_one_line(tmp_path, outputs, capsys):
    assert cli_main(["train", "--data", str(tmp_path / "missing_folder"), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown dataset" in err and "Traceback" not in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["train", "--data", str(empty), "--steps", "1"]) == 2
    assert "no images in this folder" in capsys.readouterr().err
    assert cli_main(["train", "--set", "nr_filters", "--steps", "1"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert not list((outputs / "checkpoints").glob("*/step_*"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_one_model(tmp_path, data):
    """`accelerate launch` with 2 CPU processes: identical weights on both, gradients averaged.

    Averaged gradients over 2 x 8 images equal one process with 16 images (same data order),
    so the two-process run must match a one-process run with twice the batch.
    """
    from PIL import Image

    folder = tmp_path / "images"  # a folder dataset: the subprocesses need no scikit-learn
    folder.mkdir()
    for i, image in enumerate(torch.cat([data.train, data.test])[:48]):
        Image.fromarray(image[0].numpy(), "L").save(folder / f"{i:03d}.png")
    args = ["--data", str(folder), "--image-size", "8", "--steps", "3", "--samples", "0",
            "--set", "nr_resnet=1", "--set", "nr_filters=8", "--set", "nr_logistic_mix=2", "--set", "dropout=0.0",
            "--set", "eval_every=3"]
    env = {**os.environ, "COURSE_PROFILE": "tiny", "COURSE_OUTPUTS": str(tmp_path / "out"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(_free_port()), "-m", "helpers", "train"]
    result = subprocess.run(launch + args + ["--batch-size", "8", "--out-dir", str(tmp_path / "two")],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    two = tmp_path / "two" / "step_0000003"
    replicas = json.loads((two / "meta.json").read_text())["replicas"]
    assert replicas["processes"] == 2 and replicas["identical"]
    assert replicas["fingerprints"][0] == replicas["fingerprints"][1]
    assert cli_main(["train", *args, "--batch-size", "16", "--out-dir", str(tmp_path / "one")]) == 0
    one = tmp_path / "one" / "step_0000003"
    a, b = weights(two, "model"), weights(one, "model")
    # Equal up to float summation order; Adam's first steps (~lr * sign(gradient)) may turn a rounding
    # difference on a near-zero gradient into a visible one, so allow a handful of such elements.
    close = sum(torch.isclose(a[k], b[k], rtol=0, atol=1e-5).sum().item() for k in a)
    assert close >= 0.999 * sum(v.numel() for v in a.values())
    hist_two = json.loads((two / "meta.json").read_text())["history"][-1]
    hist_one = json.loads((one / "meta.json").read_text())["history"][-1]
    assert hist_two["train_bpd"] == pytest.approx(hist_one["train_bpd"], rel=1e-5)
    assert hist_two["test_bpd"] == pytest.approx(hist_one["test_bpd"], rel=1e-5)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        start = build_model(json.loads((one / "meta.json").read_text())["config"]).state_dict()
    moved = max((a[k] - start[k]).abs().max().item() for k in a)
    assert moved > 1e-3  # the comparison above is not trivially true: training moved the weights


def test_training_on_labelled_data_makes_a_class_conditional_model(tmp_path, data):
    last = train("tiny", steps=2, data=data, out_dir=tmp_path / "cond", progress=False, **SMALL)
    model, info = load_checkpoint(last)
    assert info["config"]["num_classes"] == 10 and model.num_classes == 10
    x = torch.zeros(2, 1, 8, 8)
    assert not torch.allclose(model(x, torch.tensor([0, 0])), model(x, torch.tensor([7, 7])))
    last = train("tiny", steps=2, data=data, out_dir=tmp_path / "plain", progress=False, conditional=False, **SMALL)
    assert load_checkpoint(last)[0].num_classes is None
