"""Post-production (helpers.post, `python -m helpers post`): interpolation, grading, editing, export."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import post
from helpers.post import exporting
from helpers.core.blend import mean_color_distance
from helpers.core.cli import main
from helpers.core.demo_images import demo_image
from helpers.core.images import BadInputError
from helpers.core.video import probe, read_frames, write_mp4

ROOT = Path(__file__).resolve().parent.parent
W, H = 64, 48


def picture(name="shapes", size=(W, H)):
    return np.asarray(demo_image(name).resize(size, Image.Resampling.BILINEAR))


def shifted(image, dx, dy):
    """``image`` moved by (dx, dy) pixels (edges repeated)."""
    ys, xs = np.mgrid[0:image.shape[0], 0:image.shape[1]].astype(float)
    moved = post.bilinear_sample(image.astype(float), xs - dx, ys - dy)
    return np.clip(np.rint(moved), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def clip():
    """Six frames of a picture sliding right by 2 px per frame."""
    base = picture("shapes", (W + 16, H))
    return [base[:, 12 - 2 * i:12 - 2 * i + W].copy() for i in range(6)]


# ---------------------------------------------------------------- interpolation


@pytest.mark.parametrize("method", list(post.METHODS))
def test_x2_gives_2n_minus_1_frames_and_keeps_the_originals(clip, method):
    out = post.interpolate(clip, 2, method)
    assert len(out) == 2 * len(clip) - 1
    for k, frame in enumerate(clip):
        assert np.array_equal(out[2 * k], frame), f"original {k} changed"
    for k in range(len(clip) - 1):  # each in-between lies between its neighbours, not a copy of one
        middle = out[2 * k + 1].astype(float)
        assert not np.array_equal(out[2 * k + 1], clip[k]) and not np.array_equal(out[2 * k + 1], clip[k + 1])
        assert np.abs(middle - clip[k]).mean() < np.abs(clip[k + 1].astype(float) - clip[k]).mean()


def test_x3_and_x1():
    frames = [np.full((8, 8, 3), v, np.uint8) for v in (0, 90, 180)]
    out = post.interpolate(frames, 3, "blend")
    assert len(out) == 7 and [int(f[0, 0, 0]) for f in out] == [0, 30, 60, 90, 120, 150, 180]
    assert len(post.interpolate(frames, 1)) == 3


def test_optical_flow_finds_a_known_shift_and_beats_a_blend():
    a = picture("shapes", (128, 72))
    b = shifted(a, 3, 1)
    flow = post.optical_flow(a, b)
    gy, gx = np.gradient(post.luma(a))
    textured = post.box_mean(np.hypot(gx, gy), 3) > 0.02
    assert abs(np.median(flow[textured][:, 0]) - 3) < 0.25 and abs(np.median(flow[textured][:, 1]) - 1) < 0.25
    truth = shifted(a, 1.5, 0.5).astype(float)
    by_flow = np.abs(post.flow_inbetween(a, b, 0.5, flow) - truth).mean()
    by_blend = np.abs(post.blend_inbetween(a, b, 0.5) - truth).mean()
    assert by_flow < 0.2 * by_blend, (by_flow, by_blend)


def test_change_speed_and_retime_lengths(clip):
    assert len(post.change_speed(clip, 2.0)) == 3                      # positions 0, 2, 4
    slow = post.change_speed(clip, 0.5, "nearest")
    assert len(slow) == 11 and np.array_equal(slow[2], clip[1])
    assert len(post.retime(clip, 8, 16)) == 11 and len(post.retime(clip, 8, 8)) == 6


# ---------------------------------------------------------------- grading


def test_identity_lut_leaves_frames_unchanged(clip, tmp_path):
    for size in (2, 17, 33):
        out = post.apply_lut(clip, post.identity_lut(size))
        assert max(np.abs(a.astype(int) - b).max() for a, b in zip(out, clip)) <= 1
    cube = post.write_cube(tmp_path / "id.cube", post.identity_lut(5))
    assert np.array_equal(np.stack(post.apply_lut(clip, cube)), np.stack(clip))


def test_cube_files_round_trip_in_the_cube_order(tmp_path):
    lut = post.make_lut("teal_orange", 5)
    back = post.read_cube(post.write_cube(tmp_path / "t.cube", lut))
    assert np.allclose(back.table, lut.table, atol=1e-6) and back.title == lut.title
    lines = [l for l in (tmp_path / "t.cube").read_text().splitlines() if l[:1].isdigit()]
    # red changes fastest: the second row is (r=0.25, g=0, b=0) of the identity grid
    id_lines = post.write_cube(tmp_path / "i.cube", post.identity_lut(5)).read_text().splitlines()
    rows = [l for l in id_lines if l[:1].isdigit()]
    assert rows[1] == "0.250000 0.000000 0.000000" and rows[5] == "0.000000 0.250000 0.000000"
    assert len(lines) == 125


@pytest.mark.parametrize("name", ["warm", "teal_orange"])
def test_lut_numpy_equals_ffmpeg_lut3d(clip, name):
    mine = np.stack(post.apply_lut(clip[:2], name)).astype(int)
    theirs = np.stack(post.apply_lut_ffmpeg(clip[:2], name)).astype(int)
    assert np.abs(mine - theirs).max() <= 1
    assert np.abs(mine - np.stack(clip[:2])).mean() > 2, "the look changes the picture"


def test_warm_lut_is_warmer_and_strength_mixes(clip):
    graded = np.stack(post.apply_lut(clip, "warm")).astype(float)
    source = np.stack(clip).astype(float)
    ratio = lambda x: x[..., 0].mean() / x[..., 2].mean()
    assert ratio(graded) > 1.05 * ratio(source)
    half = np.stack(post.apply_lut(clip, "warm", 0.5)).astype(float)
    assert np.abs(half - (source + graded) / 2).max() <= 1.0


def test_shipped_luts_are_what_the_generator_makes():
    for name in ("warm", "teal_orange"):
        shipped = post.read_cube(ROOT / "data" / "luts" / f"{name}.cube")
        assert np.allclose(shipped.table, post.make_lut(name).table, atol=1e-6), name


def test_colour_matching_reduces_the_distance_to_the_keyframe(clip):
    keyframe = picture("sunset")
    before = mean_color_distance(clip, keyframe)
    matched = post.match_to_keyframe(clip, keyframe, 1.0)
    half = post.match_to_keyframe(clip, keyframe, 0.5)
    assert mean_color_distance(matched, keyframe) < 0.1 * before
    assert mean_color_distance(matched, keyframe) < mean_color_distance(half, keyframe) < before


def test_deflicker_smooths_brightness_but_keeps_a_slow_change():
    base = picture("planet").astype(float)
    trend = np.linspace(0.7, 1.0, 16)                       # a slow brightening (kept)
    flicker = np.where(np.arange(16) % 2, 1.08, 0.92)        # frame-to-frame jumps (removed)
    frames = [np.clip(base * t * f, 0, 255).astype(np.uint8) for t, f in zip(trend, flicker)]
    before, after = post.brightness(frames), post.brightness(post.deflicker(frames, 5))
    jumps = lambda b: np.abs(np.diff(np.diff(b))).mean()
    assert jumps(after) < 0.3 * jumps(before)
    assert after[-3:].mean() > 1.2 * after[:3].mean()        # the slow trend survives
    assert np.array_equal(np.stack(post.deflicker(frames, 1)), np.stack(frames))


# ---------------------------------------------------------------- editing


def test_trim_concat_crossfade_boomerang_loop(clip):
    assert len(post.trim(clip, 4, 0.5, 1.0)) == 2 and np.array_equal(post.trim(clip, 4, 0.5)[0], clip[2])
    assert len(post.concat([clip, clip[:2]])) == 8
    joined = post.crossfade_clips([clip, clip[::-1]], 2)
    assert len(joined) == 10
    expected = (2 / 3) * clip[4].astype(float) + (1 / 3) * clip[5].astype(float)  # first blended frame
    assert np.abs(joined[4].astype(float) - expected).max() <= 1
    back = post.boomerang(clip)
    assert len(back) == 10 and np.array_equal(back[6], clip[4]) and np.array_equal(back[-1], clip[1])
    assert len(post.loop(clip, 3)) == 18


def test_title_card_and_caption(clip):
    card = post.title_card("Hello", (W, H), 5)
    assert len(card) == 5 and card[0].shape == (H, W, 3)
    assert card[0][H // 2 - 6:H // 2 + 6].max() > 200 and card[0][:4].max() < 40  # bright text mid, dark edge
    captioned = post.add_caption(clip[:1], "a caption")[0]
    assert np.abs(captioned[-12:].astype(int) - clip[0][-12:]).mean() > 10 and np.array_equal(captioned[:8], clip[0][:8])


# ---------------------------------------------------------------- export


def test_each_export_has_the_codec_and_pixel_format_it_claims(clip, tmp_path):
    frames = post.interpolate(clip, 2, "blend")
    expected = {"mp4": ("h264", "yuv420p"), "gif": ("gif", "bgra"), "prores": ("prores", "yuv422p10le"),
                "webm": ("vp9", "yuv420p")}
    files = {fmt: post.export(frames, tmp_path / f"v{post.FORMATS[fmt].suffix}", 16) for fmt in expected}
    for fmt, path in files.items():
        info = probe(path)
        assert (info["codec"], info["pix_fmt"]) == expected[fmt] == (post.FORMATS[fmt].codec, post.FORMATS[fmt].pix_fmt)
        assert (info["width"], info["height"], info["frames"]) == (W, H, len(frames)), fmt
    assert Image.open(files["gif"]).mode == "P"                                 # a real 256-colour palette
    from helpers.core.video import ffmpeg_exe
    report = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(files["prores"])], capture_output=True, text=True)
    assert "prores (HQ)" in report.stderr                                     # profile 3 = 422 HQ
    data = files["mp4"].read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "faststart: the index comes first"
    rows = post.quality_table(frames, files)
    assert [r["format"] for r in rows] == list(expected)
    assert all(r["frames"] == len(frames) and r["psnr_db"] > 25 and r["bytes"] > 0 for r in rows)
    assert post.psnr(frames[0], frames[0]) == float("inf")


def test_an_interrupted_export_leaves_nothing(clip, tmp_path, monkeypatch):
    def broken(frames, fps, args, output=None):
        Path(output).write_bytes(b"half a video")
        raise RuntimeError("ffmpeg failed: simulated")

    monkeypatch.setattr(exporting, "pipe_ffmpeg", broken)
    with pytest.raises(RuntimeError):
        post.export(clip, tmp_path / "v.webm", 8)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- clear errors


@pytest.mark.parametrize("call, words", [
    (lambda c: post.interpolate(c, 0), "factor must be a whole number >= 1"),
    (lambda c: post.interpolate(c, 1.5), "factor must be a whole number >= 1"),
    (lambda c: post.interpolate(c, 2, "rife"), "unknown interpolation method 'rife'"),
    (lambda c: post.trim(c, 8, 2.0), "beyond the end of the clip (0.75 s)"),
    (lambda c: post.trim(c, 8, 0, 5.0), "trim end 5 s is beyond the end"),
    (lambda c: post.trim(c, 8, -1), "trim start must be >= 0"),
    (lambda c: post.trim(c, 8, 0.5, 0.25), "must be after the start"),
    (lambda c: post.trim(c, 0, 0), "fps must be more than 0"),
    (lambda c: post.concat([]), "no clips to join"),
    (lambda c: post.concat([c, []]), "clip 2 has no frames"),
    (lambda c: post.concat([c, post.fit_clip(c, (32, 32))]), "clip 2 is 32x32, clip 1 is 64x48"),
    (lambda c: post.crossfade_clips([c, c], -1), "overlap must be a whole number of frames >= 0"),
    (lambda c: post.change_speed(c, 0), "speed must be more than 0"),
    (lambda c: post.deflicker(c, 4), "odd number of frames"),
    (lambda c: post.title_card("x", (W, H), 0), "at least 1 frame"),
    (lambda c: post.export(c, "v.avi", 8), "unknown video format '.avi'"),
    (lambda c: post.export(c, "v.mp4", 8, fmt="h265"), "unknown format 'h265'"),
    (lambda c: post.export(c, "v.mp4", -8), "fps must be more than 0"),
    (lambda c: post.parse_formats("mp4,avi"), "unknown format(s) avi"),
    (lambda c: post.apply_lut(c, "sepia"), "unknown LUT 'sepia'"),
    (lambda c: post.apply_lut(c, "warm", 1.5), "between 0 and 1"),
    (lambda c: post.check_settings(post.post_settings(title_s=0.0)), "title card duration must be more than 0"),
    (lambda c: post.check_settings(post.post_settings(crossfade_s=-0.5)), "crossfade must be >= 0"),
    (lambda c: post.post_settings(sharpen=1), "unknown post setting(s) ['sharpen']"),
])
def test_bad_parameters_give_one_clear_line(clip, call, words):
    with pytest.raises(ValueError) as err:
        call(clip)
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("content, words", [
    (None, "no such LUT file"),
    ("LUT_3D_SIZE 2\n0 0 0\n1 0 0\n", "has 2 colour rows; LUT_3D_SIZE 2 needs 8"),
    ("0 0 0\n", "no LUT_3D_SIZE line"),
    ("LUT_3D_SIZE 2\n0 0 zero\n", "line 2 is not a valid .cube line"),
    ("LUT_1D_SIZE 4\n", "1D LUT"),
    ("LUT_3D_SIZE 1\n0 0 0\n", "out of range"),
])
def test_missing_or_malformed_cube_files(tmp_path, clip, content, words):
    path = tmp_path / "look.cube"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BadInputError) as err:
        post.apply_lut(clip, path)
    assert str(err.value).startswith(str(path)) and words in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- command line


def test_cli_bad_input_exit_2_one_line_nothing_written(tmp_path):
    env = dict(os.environ, COURSE_PROFILE="tiny", PYTHONPATH=str(ROOT), COURSE_OUTPUTS=str(tmp_path / "o"))
    out = tmp_path / "out" / "final.mp4"
    result = subprocess.run([sys.executable, "-m", "helpers", "post", "--lut", str(tmp_path / "missing.cube"),
                             "--out", str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.cube: no such LUT file" in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "o" / "videos").exists()


@pytest.mark.parametrize("args, words", [
    (["--interpolate", "0"], "argument --interpolate: must be >= 1 and <= 8, got 0"),
    (["--formats", "mp4,avi"], "unknown format(s) avi"),
    (["--title-seconds", "-1"], "argument --title-seconds: must be > 0"),
    (["--crossfade", "-1"], "argument --crossfade: must be >= 0"),
    (["--speed", "0"], "argument --speed: must be >= 0.1"),
    (["--out", "final.mkv"], "--out must end in .mp4"),
    (["no_such_video.mp4"], "no_such_video.mp4: no such file"),
])
def test_cli_bad_parameters(outputs, capsys, args, words):
    assert main(["post", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not (outputs / "final" / "final.mp4").exists()


def test_cli_not_a_video(outputs, capsys, tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    assert main(["post", str(fake)]) == 2
    assert f"{fake}: not a video ffmpeg can read" in capsys.readouterr().err
    assert not (outputs / "final" / "final.mp4").exists()


def test_cli_without_arguments_writes_final_mp4_and_gif(outputs, capsys):
    assert main(["post"]) == 0
    final = outputs / "final"
    settings = post.post_settings()
    assert (final / "final.mp4").exists() and (final / "final.gif").exists()
    info = probe(final / "final.mp4")
    assert (info["codec"], info["pix_fmt"], info["fps"]) == ("h264", "yuv420p", settings["fps"])
    assert probe(final / "final.gif")["codec"] == "gif"
    record = json.loads((final / "final.json").read_text())
    assert {r["format"] for r in record["files"]} == set(settings["formats"])
    assert record["inputs"][0].endswith("standin.mp4") and record["stamped"] is False   # the stand-in: no model
    # the stand-in has 24 frames at 8 fps: x2 -> 47 at 16 fps, then a 1 s title card crossfaded over 8 frames
    assert info["frames"] == 47 + 16 - 8 == record["frames"]
    assert list(final.glob(".*partial*")) == []


def test_cli_stamps_random_weight_videos_and_joins_clips(outputs, capsys):
    videos = outputs / "videos"
    noise = np.random.default_rng(0).integers(0, 255, (6, 32, 48, 3), dtype=np.uint8)
    made = post.stamp_frames(noise)  # as animate leaves a random-weight model's frames: stamped
    write_mp4(made, videos / "a.mp4", fps=8)
    write_mp4(made[::-1], videos / "b.mp4", fps=8)
    code = main(["post", "--title", "", "--interpolate", "1", "--fps", "8", "--formats", "mp4", "--crossfade", "0.25"])
    assert code == 0
    assert "random weights" in capsys.readouterr().out.lower()
    frames, _ = read_frames(outputs / "final" / "final.mp4")
    assert len(frames) == 6 + 6 - 2                                   # two clips, one 2-frame crossfade
    grey = np.full((32, 48, 3), 128, np.uint8)
    stamp = post.stamp_frames([grey])[0]
    rows = np.flatnonzero(np.any(stamp != grey, axis=(1, 2)))     # the opaque band: the same on any frame
    assert rows.size and rows[-1] == 31
    assert all(np.abs(f[rows].astype(int) - stamp[rows]).mean() < 12 for f in frames)
    assert np.abs(noise[0][rows].astype(int) - stamp[rows]).mean() > 40       # an unstamped frame would fail
    record = json.loads((outputs / "final" / "final.json").read_text())
    assert record["stamped"] is True and record["random_weights"] is True


def test_cli_keyframe_matching_and_trim(outputs, tmp_path):
    keyframe = tmp_path / "key.png"
    Image.fromarray(picture("sunset")).save(keyframe)
    video = tmp_path / "clip.mp4"
    write_mp4([picture("planet")] * 8, video, fps=8)
    args = ["post", str(video), "--keyframe", str(keyframe), "--title", "", "--interpolate", "1", "--fps", "8",
            "--formats", "mp4", "--lut", "none", "--deflicker", "1", "--start", "0.25", "--end", "0.75"]
    assert main(args) == 0
    record = json.loads((outputs / "final" / "final.json").read_text())
    assert any("matched to the keyframe (strength 1)" in s for s in record["steps"]), record["steps"]
    frames, _ = read_frames(outputs / "final" / "final.mp4")
    assert len(frames) == 4
    # the same run without the keyframe, stamped the same way (the RANDOM WEIGHTS band is added after matching)
    assert main([a for a in args if a not in ("--keyframe", str(keyframe))]) == 0
    unmatched, _ = read_frames(outputs / "final" / "final.mp4")
    assert mean_color_distance(frames, picture("sunset")) < 0.6 * mean_color_distance(unmatched, picture("sunset"))
    assert main(["post", str(video), "--start", "5"]) == 2                      # trim beyond the end


def test_gif_width_shrinks_only_the_gif_and_the_table_compares_at_that_size(outputs):
    from helpers.core.cli import main

    assert main(["post", "--profile", "tiny", "--gif-width", "64", "--formats", "mp4,gif",
                 "--title", "", "--interpolate", "1"]) == 0
    record = json.loads((outputs / "final" / "final.json").read_text())
    rows = {row["format"]: row for row in record["files"]}
    width, height = record["size"]
    assert rows["mp4"]["size"] == [width, height]
    assert rows["gif"]["size"][0] == 64 < width
    assert rows["gif"]["size"][1] == round(height * 64 / width / 2) * 2
    assert rows["gif"]["psnr_db"] > 20, "compared with the source scaled the same way, the GIF is close"


def test_gif_width_below_two_pixels_is_refused(outputs, capsys):
    from helpers.core.cli import main

    assert main(["post", "--profile", "tiny", "--gif-width", "1"]) == 2
    assert "argument --gif-width: must be >= 16" in capsys.readouterr().err
    assert not (outputs / "final" / "final.mp4").exists()
