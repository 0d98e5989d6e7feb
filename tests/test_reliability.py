"""Nothing lost, nothing mixed (issue 26): two runs on one folder, an interruption at a chosen point, a
full disk, a variable frame rate, header bombs, a read-only or file-in-the-way work folder, and inputs
that are not quite videos. Each test failed before the fix it guards."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.core.cli import main
from helpers.core.demo_images import demo_image
from helpers.core.video import ffmpeg_exe, inspect_video, probe, read_frames, write_mp4

ROOT = Path(__file__).resolve().parent.parent


def one_line(capsys, code, expected_code, *fragments):
    """The command ended with ``expected_code`` and one line of its own on stderr (after any library
    warning or progress bar) holding every fragment; no traceback."""
    err = capsys.readouterr().err
    ours = [line for line in err.replace("\r", "\n").splitlines() if line.startswith(("error:", "interrupted:"))]
    assert code == expected_code, err
    assert len(ours) == 1 and "Traceback" not in err and err.rstrip().endswith(ours[0]), err
    for fragment in fragments:
        assert fragment in ours[0], ours[0]
    return ours[0]


def picture_clip(path: Path, count: int = 8, size=(64, 48), fps: float = 8) -> Path:
    """A learner's own clip: a photo panning, no model anywhere."""
    photo = np.asarray(demo_image("sunset").resize((size[0] * 2, size[1])))
    write_mp4([np.roll(photo, -4 * i, axis=1)[:, :size[0]] for i in range(count)], path, fps=fps)
    return path


def start_holder(code: str, *argv: str) -> subprocess.Popen:
    """A second Python process running ``code`` (it prints 'ready' once it holds what it holds)."""
    script = Path(tempfile.mkdtemp()) / "holder.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), *argv], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait(timeout=30)


# --------------------------------------------------------------------------------------------
# 1. Two runs on one folder


def tiny_checkpoint(outputs: Path) -> Path:
    """A small PixelCNN++ checkpoint where `sample` looks for one (no training needed)."""
    import torch
    from torch.optim.swa_utils import AveragedModel

    from helpers.train import build_model, save_checkpoint

    config = dict(in_channels=1, nr_resnet=1, nr_filters=4, nr_logistic_mix=2, dropout=0.0, seed=0)
    torch.manual_seed(0)
    model = build_model(config)
    folder = outputs / "checkpoints" / "pixelcnnpp" / "step_0000001"
    meta = {"step": 1, "config": config, "image_shape": [1, 4, 4]}
    save_checkpoint(folder, model, AveragedModel(model), torch.optim.Adam(model.parameters()), meta, [])
    return folder


HOLD_LOCK = """
    import sys, time
    from helpers.core.outputs import writer_lock
    with writer_lock(sys.argv[1], "the samples folder"):
        print("ready", flush=True)
        time.sleep(120)
"""


def test_a_second_sample_run_is_refused_naming_the_running_one(outputs, capsys):
    tiny_checkpoint(outputs)
    holder = start_holder(HOLD_LOCK, str(outputs / "samples"), "--seed", "1")
    try:
        code = main(["sample", "--n", "4", "--batch-size", "2", "--seed", "2"])
        line = one_line(capsys, code, 2, str(outputs / "samples"), "is being written by",
                        f"PID {holder.pid}", "holder.py")
        assert "--seed 1" in line  # the running one's command, as it was typed
    finally:
        stop(holder)
    assert not list((outputs / "samples").glob("sample_*.png")), "the refused run wrote samples"
    assert main(["sample", "--n", "4", "--batch-size", "2", "--seed", "2"]) == 0  # free again
    record = json.loads((outputs / "samples" / "samples.json").read_text())
    assert record["seed"] == 2 and record["n_images"] == 4


# --------------------------------------------------------------------------------------------
# 2. Starting a command never deletes a running writer's temporary files

WRITE_SLOWLY = """
    import sys, time
    from helpers.core.outputs import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_bytes(b"half a ProRes file")
        print("ready", flush=True)
        print(tmp, flush=True)
        time.sleep(120)
"""


def test_starting_a_command_keeps_a_running_writers_partial_file(outputs, capsys):
    (outputs / "final").mkdir(parents=True)
    holder = start_holder(WRITE_SLOWLY, str(outputs / "final" / "final.mov"))
    try:
        partial = Path(holder.stdout.readline().strip())
        assert partial.exists() and partial.parent == outputs / "final"
        assert main(["profile"]) == 0  # any command cleans up at start...
        assert partial.exists(), "a running writer's partial file was deleted"
    finally:
        stop(holder)  # ...and a killed writer's file goes at the next start
    assert main(["profile"]) == 0
    assert not partial.exists()


# --------------------------------------------------------------------------------------------
# 3. post changes its set of files as a whole

POST = ["--formats", "mp4,gif,prores", "--title", "", "--interpolate", "1"]


def digests(folder: Path) -> dict[str, str]:
    """The set's files by name (not the hidden manifest .final.files.json that names them)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if not p.name.startswith(".")}


@pytest.fixture
def first_set(outputs, tmp_path):
    clip = picture_clip(tmp_path / "holiday.mp4")
    assert main(["post", str(clip), *POST, "--fps", "8"]) == 0
    final = outputs / "final"
    assert sorted(digests(final)) == ["final.gif", "final.json", "final.mov", "final.mp4"]
    return clip, final, digests(final)


def test_an_interrupted_post_keeps_the_previous_set_whole(first_set, monkeypatch, capsys):
    import helpers.post.cli as post_cli

    clip, final, before = first_set
    real_export = post_cli.export

    def export_then_ctrl_c(frames, path, fps, fmt=None, **kw):
        written = real_export(frames, path, fps, fmt, **kw)
        if fmt == "gif":
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after the GIF, before the ProRes
        return written

    monkeypatch.setattr(post_cli, "export", export_then_ctrl_c)
    capsys.readouterr()
    code = main(["post", str(clip), *POST, "--fps", "4"])
    one_line(capsys, code, 130, "interrupted", f"{final} keeps the previous set",
             "(final.mp4, final.gif, final.mov, final.json)")
    assert digests(final) == before, "an interruption mixed the new run's files into the old set"


def test_a_full_disk_during_post_keeps_the_previous_set_whole(first_set, monkeypatch, capsys):
    import helpers.post.cli as post_cli

    clip, final, before = first_set
    real_export = post_cli.export

    def export_until_full(frames, path, fps, fmt=None, **kw):
        if fmt == "prores":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_export(frames, path, fps, fmt, **kw)

    monkeypatch.setattr(post_cli, "export", export_until_full)
    capsys.readouterr()
    code = main(["post", str(clip), *POST, "--fps", "4"])
    line = one_line(capsys, code, 2, f"{final / 'final'}", "the disk is full", "free some space",
                    f"{final} keeps the previous set")
    assert ".partial" not in line  # names where the file was going, not the staging folder
    assert digests(final) == before


def test_ctrl_c_during_the_swap_still_ends_with_one_whole_set(first_set, monkeypatch, capsys):
    import helpers.core.outputs as outputs_module

    clip, final, before = first_set
    real_replace = os.replace

    def replace_then_ctrl_c(src, dst):
        real_replace(src, dst)
        if Path(dst).parent == final and Path(src).parent.name.endswith(".set.partial"):
            os.kill(os.getpid(), signal.SIGINT)  # arrives after the first file of the new set is in place

    monkeypatch.setattr(outputs_module.os, "replace", replace_then_ctrl_c)
    capsys.readouterr()
    code = main(["post", str(clip), *POST, "--fps", "4"])
    one_line(capsys, code, 130, "the new set is complete")
    after = digests(final)
    assert sorted(after) == sorted(before) and all(after[n] != before[n] for n in after)  # all new, none old
    assert json.loads((final / "final.json").read_text())["fps"] == 4
    assert probe(final / "final.mp4")["fps"] == 4


# --------------------------------------------------------------------------------------------
# 4. Time, not frame count


@pytest.fixture(scope="module")
def vfr_clip(tmp_path_factory):
    """The issue's clip: 24 frames whose spacing grows from 0.16 s to 1.5 s (a variable frame rate)."""
    path = tmp_path_factory.mktemp("vfr") / "vfr.mp4"
    subprocess.run([ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=64x64:rate=8", "-frames:v", "24", "-vf", "setpts=(N+N*N/4)/8/TB",
                    "-fps_mode", "vfr", str(path)], check=True)
    return path


def test_a_variable_frame_rate_is_resampled_keeping_the_duration(vfr_clip):
    info = inspect_video(vfr_clip)
    times = [(n + n * n // 4) / 8 for n in range(24)]  # setpts' times, on the encoder's 1/8 s grid
    assert info.variable and info.fps == 8 and np.allclose(info.timestamps, times, atol=1e-3)
    frames, fps = read_frames(vfr_clip)
    assert fps == 8 and times[-1] < len(frames) / fps < times[-1] + 1.5  # ~20 s, as long as the clip plays
    stored = [np.asarray(demo) for demo in _decode_each_frame_once(vfr_clip)]
    # ffmpeg 7.0 (imageio-ffmpeg 0.6, Colab's) decodes 23 of the 24 frames: the last one shown is then the 23rd
    assert len(stored) in (23, 24)
    for k in (0, 1, 2, 40, 100, len(frames) - 1):  # each output frame is the one on screen at its time
        shown = max(i for i, t in enumerate(times[:len(stored)]) if t <= k / fps + 1e-6)
        assert np.array_equal(frames[k], stored[shown]), k


def _decode_each_frame_once(path: Path) -> list[np.ndarray]:
    raw = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(path), "-fps_mode",
                          "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True).stdout
    return list(np.frombuffer(raw, np.uint8).reshape(-1, 64, 64, 3))


def test_post_keeps_a_vfr_clip_as_long_as_it_plays_and_says_so(vfr_clip, outputs, capsys):
    code = main(["post", str(vfr_clip), "--formats", "mp4", "--title", "", "--interpolate", "1", "--fps", "8"])
    out = capsys.readouterr().out
    assert code == 0
    notes = [line for line in out.splitlines() if "variable frame rate" in line]
    assert len(notes) == 1 and "resampled to a constant 8 fps" in notes[0] and "duration kept" in notes[0]
    info = probe(outputs / "final" / "final.mp4")
    assert 19 < info["frames"] / info["fps"] < 21  # not 117 s


def test_a_constant_frame_rate_clip_reads_as_before(tmp_path):
    clip = picture_clip(tmp_path / "cfr.mp4", count=10, fps=12)
    info = inspect_video(clip)
    frames, fps = read_frames(clip)
    assert not info.variable and (len(frames), fps, info.frames) == (10, 12.0, 10)


# --------------------------------------------------------------------------------------------
# 5. Limits checked before the work


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A 100-byte PNG whose header declares ``width`` x ``height`` (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_the_stated_pixel_limit_is_the_one_enforced_from_the_header(tmp_path, monkeypatch):
    from PIL import ImageFile

    from helpers.core.images import MAX_PIXELS, BadInputError, load_image

    def no_decoding(self):
        raise AssertionError("pixels were decoded before the size was checked")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    bomb = png_declaring(tmp_path / "bomb.png", 20_000, 13_000)  # 260 MP: above the 250 MP limit, below 2x
    assert 20_000 * 13_000 > MAX_PIXELS
    with pytest.raises(BadInputError, match=f"larger than {MAX_PIXELS // 1_000_000} megapixels"):
        load_image(bomb)
    huge = png_declaring(tmp_path / "huge.png", 40_000, 40_000)
    with pytest.raises(BadInputError, match=f"larger than {MAX_PIXELS // 1_000_000} megapixels"):
        load_image(huge)
    assert Image.MAX_IMAGE_PIXELS != MAX_PIXELS // 2  # PIL's own setting is restored afterwards


def test_post_checks_memory_from_the_header_before_decoding(outputs, tmp_path, monkeypatch, capsys):
    import helpers.post.cli as post_cli

    clip = picture_clip(tmp_path / "long.mp4", count=100)  # 100 x 64 x 48 x 3 bytes = 0.9 MiB decoded

    def no_decoding(*args, **kwargs):
        raise AssertionError("the video was decoded before its size was checked")

    monkeypatch.setattr(post_cli, "MAX_BYTES", 2**19)  # 0.5 MiB: this clip does not fit
    monkeypatch.setattr(post_cli, "read_video", no_decoding)
    code = main(["post", str(clip), "--interpolate", "1", "--title", ""])
    one_line(capsys, code, 2, f"{clip}: the video decodes to", "GiB")
    assert not (outputs / "final" / "final.mp4").exists()


# --------------------------------------------------------------------------------------------
# 6. The machine, not the input: one line, exit 2, naming the path and the fix


def test_a_work_folder_that_is_a_file(tmp_path, monkeypatch, capsys):
    clip = picture_clip(tmp_path / "clip.mp4")
    in_the_way = tmp_path / "outputs"
    in_the_way.write_text("not a folder")
    monkeypatch.setenv("COURSE_OUTPUTS", str(in_the_way))
    code = main(["post", str(clip), "--formats", "mp4"])
    one_line(capsys, code, 2, f"{in_the_way}: is a file where", "set COURSE_OUTPUTS to a folder")
    assert in_the_way.read_text() == "not a folder"


def test_a_read_only_work_folder(outputs, tmp_path, monkeypatch, capsys):
    """Simulated: the tests run as root, whom a read-only folder does not stop."""
    clip = picture_clip(tmp_path / "clip.mp4")
    (outputs / "final").mkdir(parents=True)
    for name in ("mkstemp", "mkdtemp"):  # every way a temporary name is made in final/ is refused
        real = getattr(tempfile, name)

        def read_only(*args, dir=None, real=real, **kwargs):
            if dir is not None and Path(dir) == outputs / "final":
                raise PermissionError(errno.EACCES, "Permission denied", str(dir))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, name, read_only)
    code = main(["post", str(clip), "--formats", "mp4"])
    one_line(capsys, code, 2, str(outputs / "final"), "permission denied", "COURSE_OUTPUTS")


def test_a_cache_folder_that_is_a_file(outputs, tmp_path, monkeypatch, capsys):
    in_the_way = tmp_path / "cache"
    in_the_way.write_text("not a folder")
    monkeypatch.setenv("COURSE_CACHE", str(in_the_way))
    monkeypatch.setenv("COURSE_TWIN", "random")   # the random-weight twin lives in the cache (the trained one in data/)
    picture = tmp_path / "still.png"
    demo_image("sunset").save(picture)
    code = main(["animate", str(picture), "--out", str(tmp_path / "v.mp4")])
    one_line(capsys, code, 2, f"{in_the_way}: is a file where the cache folder should be", "COURSE_CACHE")
    assert in_the_way.read_text() == "not a folder" and not (tmp_path / "v.mp4").exists()


def test_a_full_disk_while_training_names_the_checkpoint(outputs, tmp_path, monkeypatch, capsys):
    import safetensors.torch

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_model", full)
    folder = tmp_path / "ck"
    code = main(["train", "--steps", "1", "--samples", "0", "--image-size", "8", "--batch-size", "8",
                 "--set", "nr_resnet=1", "--set", "nr_filters=4", "--set", "nr_logistic_mix=2",
                 "--set", "eval_every=1", "--out-dir", str(folder)])
    one_line(capsys, code, 2, f"{folder / 'step_0000001'}: the disk is full", "free some space")
    assert not folder.exists() or not any(folder.iterdir())


def test_animate_refuses_a_folder_as_out_before_generating(outputs, tmp_path, monkeypatch, capsys):
    import helpers.animate.cli as animate_cli

    def no_generation(*args, **kwargs):
        raise AssertionError("generated before checking --out")

    monkeypatch.setattr(animate_cli, "_run_svd", no_generation)
    picture = tmp_path / "still.png"
    demo_image("sunset").save(picture)
    folder = tmp_path / "clip.mp4"
    folder.mkdir()
    code = main(["animate", str(picture), "--out", str(folder)])
    one_line(capsys, code, 2, f"{folder}: --out is a folder")


# --------------------------------------------------------------------------------------------
# 7. and 8. What post says about its inputs


def test_post_stamps_only_what_a_random_weight_model_made(outputs, tmp_path):
    from helpers.post import stamp_frames

    own = picture_clip(tmp_path / "holiday.mp4")
    assert main(["post", str(own), "--formats", "mp4", "--title", "", "--interpolate", "1", "--fps", "8"]) == 0
    record = json.loads((outputs / "final" / "final.json").read_text())
    assert record["random_weights"] is True and record["stamped"] is False  # tiny, but no model touched it
    frames, _ = read_frames(outputs / "final" / "final.mp4")
    source, _ = read_frames(own)
    assert np.abs(frames[0][-8:].astype(int) - source[0][-8:]).mean() < 8  # the bottom rows are the picture's
    made = tmp_path / "animation.mp4"
    write_mp4(stamp_frames(read_frames(own)[0]), made, fps=8)  # as animate writes a tiny model's frames
    assert main(["post", str(made), "--formats", "mp4", "--title", "", "--interpolate", "1", "--fps", "8"]) == 0
    assert json.loads((outputs / "final" / "final.json").read_text())["stamped"] is True


@pytest.fixture(scope="module")
def not_quite_videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    ffmpeg = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-f", "lavfi"]
    subprocess.run(ffmpeg + ["-i", "sine=frequency=440:duration=1", str(folder / "audio.m4a")], check=True)
    subprocess.run(ffmpeg + ["-i", "testsrc=size=64x64:rate=8", "-frames:v", "0", "-c:v", "libx264",
                             str(folder / "empty.mp4")], check=True)
    whole = picture_clip(folder / "whole.mp4", count=20)
    (folder / "cut.mp4").write_bytes(whole.read_bytes()[:300])
    (folder / "half.mp4").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    (folder / "text.mp4").write_text("just some text")
    return folder


@pytest.mark.parametrize("name, problem", [
    ("audio.m4a", "no video stream: the file holds only audio"),
    ("empty.mp4", "an empty video: the file holds no stream and no frames"),
    ("cut.mp4", "truncated or damaged: it starts like a video file (MP4/MOV)"),
    ("half.mp4", "truncated: "),
    ("text.mp4", "not a video ffmpeg can read"),
])
def test_post_says_which_problem_an_input_has(not_quite_videos, name, problem, outputs, capsys):
    path = not_quite_videos / name
    code = main(["post", str(path)])
    one_line(capsys, code, 2, f"{path}: {problem}")
    assert not (outputs / "final").exists() or not any((outputs / "final").iterdir())
