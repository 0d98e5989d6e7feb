"""A stage writes only what it owns, and recovery trusts nothing it reads (issue 37, items 1-4, 8-10).

Every case here was harmful or wrong on the code before: a folder given with --out replaced whole, a post set
that took every S.gif/S.mov/S.json beside S.mp4 for its own, a crafted staging plan that moved files outside
the work folder, stand-ins that lost their label, a curation scored with another checkpoint without a word,
two keyframes at one frame index, a one-frame clip that vanished into the title card, and tracebacks for a
long file name and a work folder that cannot be made.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers.core.cli import main


def one_line_refusal(code, capsys, fragment):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and fragment in lines[0], err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def samples(tmp_path):
    """Six small pictures, each different (no near-duplicates), as a folder of samples of one's own."""
    folder = tmp_path / "samples"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"s{index}.png")
    return folder


@pytest.fixture
def clip(tmp_path):
    from helpers.core.video import write_mp4

    rng = np.random.default_rng(1)
    path = tmp_path / "clip.mp4"
    write_mp4([rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(6)], path, fps=6)
    return path


def curate_into(samples, out, *extra):
    return main(["curate", "--samples", str(samples), "--out", str(out), "--no-likelihood", "--keep", "2", *extra])


# --------------------------------------------------------------------------------------------
# 1-3: a folder or set given with --out keeps every file the stage did not write


def test_curate_writes_beside_a_users_files_and_replaces_only_its_own(samples, tmp_path, outputs, capsys):
    out = tmp_path / "thesis"
    (out / "chapters").mkdir(parents=True)
    (out / "thesis.docx").write_text("three years of work")
    (out / "chapters" / "one.txt").write_text("chapter one")
    assert curate_into(samples, out) == 0
    assert (out / "thesis.docx").read_text() == "three years of work"
    assert (out / "chapters" / "one.txt").read_text() == "chapter one"
    first = set(json.loads((out / ".curate.files.json").read_text())["files"])
    assert {"scores.json", "ranked_grid.png"} <= first and len(first) == 4
    assert curate_into(samples, out, "--keep", "3") == 0  # its own set is replaced whole: 3 kept now
    kept = [r["file"] for r in json.loads((out / "scores.json").read_text())["records"] if r["kept"]]
    assert len(kept) == 3 and all((out / name).exists() for name in kept)
    assert (out / "thesis.docx").exists() and (out / "chapters" / "one.txt").exists()


def test_a_curated_set_from_before_manifests_is_adopted_from_its_record_and_nothing_else(samples, tmp_path, outputs):
    out = tmp_path / "curated"
    out.mkdir()
    (out / "old_kept.png").write_bytes(b"kept by an older curation")
    (out / "scores.json").write_text(json.dumps({"records": [{"file": "old_kept.png", "kept": True},
                                                              {"file": "../../elsewhere.txt", "kept": True}]}))
    (out / "notes.txt").write_text("mine")
    (tmp_path / "elsewhere.txt").write_text("not in the folder")
    assert curate_into(samples, out) == 0
    assert not (out / "old_kept.png").exists()  # the old set, named by its own record, was replaced
    assert (out / "notes.txt").read_text() == "mine" and (tmp_path / "elsewhere.txt").exists()


def test_curate_refuses_to_replace_a_file_it_did_not_write_or_its_own_input(samples, tmp_path, outputs, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "s0.png").write_bytes(b"my own picture, same name as a sample")
    line = one_line_refusal(curate_into(samples, out), capsys, "s0.png, which this stage did not write")
    assert str(out) in line
    assert (out / "s0.png").read_bytes() == b"my own picture, same name as a sample"
    assert sorted(p.name for p in out.iterdir()) == ["s0.png"]
    before = sorted(p.name for p in samples.iterdir())
    one_line_refusal(curate_into(samples, samples), capsys, "is an input of this run")
    assert sorted(p.name for p in samples.iterdir()) == before


def test_post_touches_only_its_own_set_and_never_its_input(clip, tmp_path, outputs, capsys):
    folder = tmp_path / "holiday"
    folder.mkdir()
    for name in ("holiday.mov", "holiday.gif"):
        (folder / name).write_bytes(b"the only copy")
    out = folder / "holiday.mp4"
    assert main(["post", str(clip), "--out", str(out), "--formats", "mp4", "--title", ""]) == 0
    assert (folder / "holiday.mov").read_bytes() == b"the only copy"
    assert (folder / "holiday.gif").read_bytes() == b"the only copy"
    assert "replaced the previous set" not in capsys.readouterr().out
    # Its own set is replaced on the next run; the user's files still stay.
    assert main(["post", str(clip), "--out", str(out), "--formats", "mp4,webm", "--title", ""]) == 0
    assert (folder / "holiday.webm").exists() and (folder / "holiday.mov").read_bytes() == b"the only copy"
    assert main(["post", str(clip), "--out", str(out), "--formats", "mp4", "--title", ""]) == 0
    assert not (folder / "holiday.webm").exists()  # a format of its own old set: gone with it
    # A name it did not write, and its own input, are refused before any work.
    (folder / "trip.json").write_text('{"my": "notes"}')
    one_line_refusal(main(["post", str(clip), "--out", str(folder / "trip.mp4"), "--formats", "mp4"]), capsys,
                     "trip.json, which this stage did not write")
    assert (folder / "trip.json").read_text() == '{"my": "notes"}' and not (folder / "trip.mp4").exists()
    data = clip.read_bytes()
    one_line_refusal(main(["post", str(clip), "--out", str(clip), "--formats", "mp4"]), capsys,
                     "is an input of this run")
    assert clip.read_bytes() == data


def test_refine_refuses_a_folder_whose_frames_and_provenance_it_did_not_write(tmp_path, outputs, capsys):
    from helpers.core.standins import ensure_keyframes

    ensure_keyframes()
    out = tmp_path / "mine"
    out.mkdir()
    (out / "frame_0001.png").write_bytes(b"a frame of my own")
    (out / "provenance.json").write_text("{}")
    one_line_refusal(main(["refine", "--out", str(out)]), capsys, "which this stage did not write")
    assert (out / "frame_0001.png").read_bytes() == b"a frame of my own"
    assert (out / "provenance.json").read_text() == "{}"


def test_keyframes_keep_a_users_files_and_replace_stand_ins(samples, tmp_path, outputs, capsys):
    from helpers.core.outputs import stage_dir
    from helpers.core.standins import ensure_keyframes, is_standin

    curated = tmp_path / "curated"
    assert curate_into(samples, curated, "--keep", "4") == 0
    standins = ensure_keyframes()  # stand-ins first (a learner opened notebook 06 first), then the real stage
    assert all(is_standin(p) for p in standins)
    (stage_dir("keyframes") / "notes.txt").write_text("my notes")
    assert main(["keyframes", "--curated", str(curated), "-n", "1"]) == 0
    folder = stage_dir("keyframes")
    assert (folder / "notes.txt").read_text() == "my notes"
    assert sorted(p.name for p in folder.glob("frame_*.png")) == ["frame_0001.png"]  # the stand-ins' 2nd went
    assert not is_standin(folder / "frame_0001.png")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "palettes.png").write_bytes(b"my palette")
    one_line_refusal(main(["keyframes", "--curated", str(curated), "--out", str(mine)]), capsys,
                     "palettes.png, which this stage did not write")
    assert (mine / "palettes.png").read_bytes() == b"my palette"


# --------------------------------------------------------------------------------------------
# 4: recovery trusts nothing it reads


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.mark.parametrize("plan", [
    # the format of the code before: a folder outside, and the stem's other suffixes removed
    lambda outside: {"folder": str(outside), "stem": "victim", "suffixes": [".txt", ".gif"], "files": ["victim.txt"]},
    lambda outside: {"folder": str(outside), "owner": "victim", "files": ["victim.txt"]},
    lambda outside: {"owner": "victim", "files": [f"../../{outside.name}/victim.txt"]},
])
def test_a_crafted_staging_plan_moves_nothing_outside_the_work_folder(plan, tmp_path, outputs, capsys):
    from helpers.core.outputs import SET_COMPLETE, owner_tag

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "victim.txt").write_text("precious")
    (outside / "victim.gif").write_text("precious too")
    final = outputs / "final"
    staging = final / f".victim.{owner_tag(_dead_pid())}.x.set.partial"
    staging.mkdir(parents=True)
    (staging / "victim.txt").write_text("planted")
    (staging / SET_COMPLETE).write_text(json.dumps(plan(outside)))
    assert main(["profile"]) == 0
    assert (outside / "victim.txt").read_text() == "precious"
    assert (outside / "victim.gif").read_text() == "precious too"
    assert not (final / "victim.txt").exists() and not staging.exists()
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "cannot be trusted" in warnings[0]


def test_a_staging_plan_never_replaces_a_file_its_owner_did_not_write(tmp_path, outputs, capsys):
    from helpers.core.outputs import SET_COMPLETE, owner_tag

    final = outputs / "final"
    final.mkdir(parents=True)
    (final / "thesis.docx").write_text("mine")
    staging = final / f".final.{owner_tag(_dead_pid())}.x.set.partial"
    staging.mkdir()
    (staging / "thesis.docx").write_text("planted")
    (staging / SET_COMPLETE).write_text(json.dumps({"folder": str(final), "owner": "final", "files": ["thesis.docx"]}))
    assert main(["profile"]) == 0
    assert (final / "thesis.docx").read_text() == "mine"
    assert "does not list" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# 8: stand-ins stay labelled


def test_a_leftover_standin_video_is_not_joined_into_real_videos(clip, outputs, capsys):
    import shutil

    from helpers.core.outputs import stage_dir
    from helpers.core.standins import ensure_video

    standin = ensure_video()  # notebook 08 opened first: a stand-in in videos/
    shutil.copyfile(clip, stage_dir("videos") / "mine.mp4")  # later the learner's own video
    capsys.readouterr()
    assert main(["post", "--formats", "mp4", "--title", ""]) == 0
    record = json.loads((outputs / "final" / "final.json").read_text())
    assert [p.rsplit("/", 1)[-1] for p in record["inputs"]] == ["mine.mp4"]
    assert f"left out {standin.name}" in capsys.readouterr().out
    assert main(["post", str(standin), "--formats", "mp4", "--title", ""]) == 0  # asked for: said, and recorded
    assert "is a stand-in" in capsys.readouterr().out
    assert json.loads((outputs / "final" / "final.json").read_text())["standin_inputs"] == [str(standin)]


def test_a_second_run_still_calls_the_first_runs_standin_keyframes_standins(outputs, capsys):
    from helpers.core.standins import ensure_keyframes
    from helpers.keyframes import animation_keyframes

    first = ensure_keyframes()
    capsys.readouterr()
    assert animation_keyframes() == first  # notebook 06 run again
    out = capsys.readouterr().out
    assert "STAND-IN" in out and "earlier run" in out and "STAND-INS" in out
    Image.new("RGB", (64, 36), (200, 10, 10)).save(first[0])  # the learner's own keyframe now
    Image.new("RGB", (64, 36), (10, 200, 10)).save(first[1])
    capsys.readouterr()
    assert animation_keyframes() == first
    assert "STAND-IN" not in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# 9: curation says when it scores with a checkpoint that did not draw the samples


def test_curation_names_the_checkpoint_it_scores_with_and_says_when_it_is_another(tmp_path, capsys):
    from helpers.curate import checkpoint_check

    checkpoint = tmp_path / "checkpoints" / "step_0000050"
    checkpoint.mkdir(parents=True)
    (checkpoint / "ema.safetensors").write_bytes(b"weights")
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "samples.json").write_text(json.dumps({"checkpoint": "checkpoints/step_0000050", "step": 50}))
    same = checkpoint_check(samples, {"path": checkpoint, "step": 50})
    assert same["step"] == 50 and len(same["sha256"]) == 64 and "differs_from_samples" not in same
    assert "note:" not in capsys.readouterr().out
    (samples / "samples.json").write_text(json.dumps({"checkpoint": "checkpoints/step_0000200", "step": 200}))
    other = checkpoint_check(samples, {"path": checkpoint, "step": 50})
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "not the checkpoint that drew these samples" in out[0] and "step_0000200" in out[0]
    assert "step_0000200" in other["differs_from_samples"]


# --------------------------------------------------------------------------------------------
# 10: two keyframes at one frame index; a one-frame clip


def test_two_different_keyframes_at_one_frame_index_are_refused(tmp_path, outputs, capsys):
    Image.new("RGB", (64, 64), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (64, 64), (0, 0, 255)).save(tmp_path / "b.png")
    code = main(["animate", "--backend", "ltx", "--keyframe", f"{tmp_path / 'a.png'}@0",
                 "--keyframe", f"{tmp_path / 'b.png'}@0", "--out", str(tmp_path / "v.mp4")])
    one_line_refusal(code, capsys, "keyframes 1 and 2 are both placed at frame 0")
    assert not (tmp_path / "v.mp4").exists()


def test_a_one_frame_clip_is_held_long_enough_to_be_seen_after_the_title_card():
    from helpers.post.cli import HOLD_S, post_settings, produce

    frame = np.random.default_rng(2).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    settings = post_settings(title="Holiday", title_s=1.0, crossfade_s=0.5, fps=24.0, interpolate=1,
                             match_keyframe=0.0, deflicker=1, lut="none", formats=("mp4",))
    frames, steps = produce([[frame]], 8.0, settings)
    title = round(settings["title_s"] * settings["fps"])
    shown = [f for f in frames if np.abs(f.astype(int) - frame.astype(int)).max() <= 1]
    assert len(shown) >= round(0.5 * settings["fps"]), (len(frames), title, steps)
    assert len(frames) > title and any("held" in s for s in steps)
    assert HOLD_S >= 0.5


# --------------------------------------------------------------------------------------------
# Tracebacks that are now one line, exit 2


def test_a_name_too_long_for_its_temporary_names_is_refused_before_the_work(clip, tmp_path, outputs, capsys):
    out = tmp_path / ("v" * 240 + ".mp4")  # legal (244 bytes), but the temporary name adds about 40
    one_line_refusal(main(["post", str(clip), "--out", str(out), "--formats", "mp4"]), capsys, "shorten --out")
    assert not any(p.name.startswith("v" * 40) or ".partial" in p.name for p in tmp_path.iterdir())


def test_a_work_folder_that_cannot_be_made_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OUTPUTS", "/proc/no-such-process/outputs")
    one_line_refusal(main(["keyframes"]), capsys, "/proc/no-such-process")


def test_sample_refuses_a_folder_of_the_users_and_records_the_weights_it_drew_with(tmp_path, outputs, capsys):
    """The samples folder is replaced whole by another run: a folder holding a user's file is refused before any
    work (the file stays), and samples.json names the sha256 of the weights that drew (curation compares it)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.docx").write_bytes(b"four years")
    code = main(["sample", "--checkpoint", "course", "--out-dir", str(mine), "--n", "2", "--batch-size", "2"])
    one_line_refusal(code, capsys, "thesis.docx")
    assert (mine / "thesis.docx").read_bytes() == b"four years" and not list(mine.glob("sample_*.png"))
    out = tmp_path / "drawn"
    assert main(["sample", "--checkpoint", "course", "--out-dir", str(out), "--n", "2", "--batch-size", "2"]) == 0
    record = json.loads((out / "samples.json").read_text())
    from helpers.train import load_checkpoint
    from helpers.sample import weights_sha256

    assert record["checkpoint_sha256"] == weights_sha256(load_checkpoint("course")[1]) is not None
