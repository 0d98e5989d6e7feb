"""Slide videos (helpers.slides): storyboard checks, exact timing, transitions, captions, the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import slides
from helpers.core.demo_images import demo_image
from helpers.core.images import RANDOM_WEIGHTS_STAMP, stamp_random_weights
from helpers.slides import (StoryboardError, caption_layer, compose, crossfade, crossfade_weights,
                            ken_burns, ken_burns_boxes, load_storyboard, parse_storyboard,
                            slide_frame_counts, timeline, total_frames)
from helpers.core.video import probe, read_frames

ROOT = Path(__file__).resolve().parent.parent


def board(*specs, **top):
    """A storyboard from (duration, transition) pairs; titles 'S1', 'S2', ..."""
    raw = [{"title": f"S{i + 1}", "prompt": f"picture {i + 1}", "caption": "", "duration": d, "transition": t}
           for i, (d, t) in enumerate(specs)]
    return parse_storyboard({"slides": raw, **top}, "test.json")


def solid(colour, size=(32, 18)):
    return Image.new("RGB", size, colour)


# ---------------------------------------------------------------- timing


def test_total_frames_is_the_clock_minus_crossfade_overlaps_exactly():
    fps, crossfade_s = 12, 0.25                       # overlap = 3 frames
    sb = board((1.0, "crossfade"), (0.75, "crossfade"), (1.3, "cut"), (0.5, "crossfade"), (1.05, "kenburns"))
    clock = round((1.0 + 0.75 + 1.3 + 0.5 + 1.05) * fps)     # 55.2 -> 55 frames on the storyboard clock
    assert sum(slide_frame_counts(sb, fps)) == clock == 55
    # slide 1 fades in from black (no overlap); slides 2 and 4 overlap their predecessor by 3 frames
    expected = clock - 2 * 3
    assert total_frames(sb, fps, crossfade_s) == expected
    stills = [solid((40 * i, 20, 200 - 40 * i)) for i in range(5)]
    frames = compose(sb, stills, fps, crossfade_s)
    assert len(frames) == expected
    segments = timeline(sb, fps, crossfade_s)
    assert [s.start for s in segments] == [0, 12 - 3, 12 - 3 + 9, 12 - 3 + 9 + 16 - 3, 12 - 3 + 9 + 16 - 3 + 6]
    assert segments[-1].end == expected


def test_cumulative_rounding_never_drifts():
    sb = board(*[(1 / 3, "cut")] * 9)                # 1/3 s at 10 fps = 3.33 frames each
    counts = slide_frame_counts(sb, 10)
    assert sum(counts) == 30 and set(counts) == {3, 4}


def test_without_crossfades_the_video_is_exactly_the_sum_of_durations():
    sb = board((2.0, "cut"), (1.5, "kenburns"), (0.5, "cut"))
    frames = compose(sb, [solid((255, 0, 0)), demo_image("shapes"), solid((0, 0, 255))], 8, 0.5,
                     size=(64, 36))
    assert len(frames) == (2.0 + 1.5 + 0.5) * 8


# ---------------------------------------------------------------- transitions


def test_crossfade_midpoint_is_the_average_in_float64():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 255, (2, 6, 5, 3))
    blended = crossfade([a] * 5, [b] * 5)
    assert np.array_equal(blended[2], (a + b) / 2)
    weights = crossfade_weights(5)
    assert np.allclose(weights, [1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6]) and 0 < weights.min() and weights.max() < 1


def test_crossfade_in_the_video_passes_through_the_average_colour():
    red, teal = (200, 40, 0), (0, 100, 60)
    sb = board((1.0, "cut"), (1.0, "crossfade"))
    frames = compose(sb, [solid(red), solid(teal)], fps=10, crossfade_s=0.3)   # 3 overlap frames
    assert len(frames) == 17
    # slide 1 owns frames 0-9; the overlap is frames 7, 8, 9; the middle one is the plain average
    assert np.all(frames[6] == red) and np.all(frames[10] == teal)
    assert np.all(frames[8] == (100, 70, 30))
    reds = [int(f[0, 0, 0]) for f in frames[6:11]]
    assert reds == sorted(reds, reverse=True) and len(set(reds)) == 5   # a monotone dissolve


def test_first_slide_crossfade_fades_in_from_black():
    sb = board((1.0, "crossfade"), (1.0, "cut"))
    frames = compose(sb, [solid((240, 120, 60)), solid((0, 0, 0))], fps=10, crossfade_s=0.3)
    assert len(frames) == 20
    assert np.all(frames[1] == np.rint(np.array([240, 120, 60]) * 0.5))
    assert np.all(frames[3] == (240, 120, 60))


def test_ken_burns_frames_differ_progressively():
    still = demo_image("shapes")
    views = [np.asarray(v, dtype=np.float64) for v in ken_burns(still, 20, zoom=1.25, pan="right")]
    assert np.array_equal(views[0], np.asarray(still, dtype=np.float64))   # starts on the whole picture
    distance = [np.abs(v - views[0]).mean() for v in views]
    assert all(later > earlier for earlier, later in zip(distance, distance[1:]))
    assert all(np.abs(b - a).mean() > 0 for a, b in zip(views, views[1:]))  # no frozen frame
    boxes = ken_burns_boxes(still.size, 20, zoom=1.25, pan="right")
    widths = [r - l for l, _, r, _ in boxes]
    assert all(b < a for a, b in zip(widths, widths[1:]))
    assert widths[-1] == pytest.approx(still.width / 1.25)
    assert boxes[-1][2] == pytest.approx(still.width)                       # panned all the way right
    for l, t, r, b in boxes:                                                 # never outside the picture
        assert l >= -1e-9 and t >= -1e-9 and r <= still.width + 1e-9 and b <= still.height + 1e-9


def test_ken_burns_zoom_out_ends_on_the_whole_picture():
    boxes = ken_burns_boxes((160, 90), 10, zoom=0.8)
    assert boxes[0][2] - boxes[0][0] == pytest.approx(160 * 0.8)
    assert boxes[-1] == pytest.approx((0, 0, 160, 90))


# ---------------------------------------------------------------- captions and stamp


def test_caption_wraps_inside_the_frame_on_a_dark_band():
    text = "A diffusion model starts from pure noise and removes a little of it at every step."
    size = (256, 144)
    layer = caption_layer(text, size)
    assert len(layer.lines) >= 2 and " ".join(layer.lines) == text and not layer.shortened
    from PIL import ImageDraw
    draw = ImageDraw.Draw(Image.new("RGB", size))
    from helpers.core.drawing import load_font
    assert all(draw.textlength(line, font=load_font(layer.font_size)) <= size[0] for line in layer.lines)
    white = solid((255, 255, 255), size)
    captioned = np.asarray(layer.apply(white), dtype=np.float64)
    assert captioned[5].mean() == 255                       # the top of the picture is untouched
    band = captioned[-4]                                    # the band darkens the bottom
    assert band.mean() < 140
    too_long = caption_layer(" ".join(["word"] * 200), size)
    assert too_long.shortened and len(too_long.lines) == 3 and too_long.lines[-1].endswith("...")


def test_random_weight_frames_are_stamped_and_caption_sits_above_the_stamp():
    sb = parse_storyboard([{"prompt": "p", "caption": "hello", "duration": 1.0, "transition": "crossfade"},
                           {"prompt": "q", "caption": "bye", "duration": 1.0, "transition": "kenburns"}])
    frames = compose(sb, [demo_image("sunset"), demo_image("planet")], fps=8, crossfade_s=0.5, stamp=True)
    assert frames[0][:100].mean() < 0.3 * frames[4][:100].mean()         # the fade from black ...
    band = slides.stamp_band_height((256, 144))
    assert band > 0
    for frame in frames:
        expected = np.asarray(stamp_random_weights(Image.fromarray(frame)))
        assert np.array_equal(frame[-band:], expected[-band:])          # ... never dims the stamp
    assert RANDOM_WEIGHTS_STAMP.startswith("RANDOM WEIGHTS")


# ---------------------------------------------------------------- storyboard checks


GOOD = {"title": "Intro", "prompt": "a lighthouse", "caption": "Hi", "duration": 2, "transition": "cut"}


@pytest.mark.parametrize("bad, words", [
    ({"title": "Waves", "prompt": "sea", "caption": "c", "transition": "cut"}, ["missing field duration"]),
    ({"title": "Waves", "prompt": "sea", "caption": "c", "duration": -1, "transition": "cut"}, ["more than 0", "-1"]),
    ({"title": "Waves", "prompt": "sea", "caption": "c", "duration": 0, "transition": "cut"}, ["more than 0"]),
    ({"title": "Waves", "prompt": "sea", "caption": "c", "duration": "long", "transition": "cut"}, ["number of seconds"]),
    ({"title": "Waves", "prompt": "sea", "caption": "c", "duration": 1, "transition": "wipe"},
     ["unknown transition 'wipe'", "cut, crossfade, kenburns"]),
    ({"title": "Waves", "prompt": "sea", "caption": "c", "duraton": 1, "transition": "cut"}, ["did you mean 'duration'"]),
    ({"title": "Waves", "prompt": "", "caption": "c", "duration": 1, "transition": "cut"}, ["prompt is empty"]),
])
def test_bad_slide_messages_name_the_slide(bad, words):
    with pytest.raises(StoryboardError) as info:
        parse_storyboard({"slides": [GOOD, bad]}, "my_board.json")
    message = str(info.value)
    assert message.startswith("my_board.json: slide 2 (\"Waves\"): ") and "\n" not in message, message
    for word in words:
        assert word in message, message


def test_untitled_slide_is_named_by_its_prompt():
    bad = {"prompt": "a very long prompt about a lighthouse on a cliff in a storm at night",
           "caption": "", "duration": 1, "transition": "fade"}
    with pytest.raises(StoryboardError, match=r'slide 1 \("a very long prompt about a lighthouse\.\.\."\)'):
        parse_storyboard([bad], "b.json")


def test_storyboard_level_problems():
    for data, words in [({"slides": []}, "no slides"), ([], "no slides"), ({"slide": []}, "did you mean 'slides'"),
                        ({"slides": [GOOD], "seed": -3}, "'seed'"), ("hello", "object")]:
        with pytest.raises(StoryboardError, match=words):
            parse_storyboard(data, "x.json")


def test_slide_too_short_for_its_crossfades_is_named():
    sb = board((1.0, "cut"), (0.2, "crossfade"), (1.0, "crossfade"))
    with pytest.raises(StoryboardError, match=r'slide 2 \("S2"\): 0\.2 s .* too short for its crossfades'):
        timeline(sb, 10, 0.5)
    with pytest.raises(StoryboardError, match=r'slide 1 \("S1"\): 0\.01 s is shorter than one frame'):
        timeline(board((0.01, "cut"), (1, "cut")), 10, 0.0)


def test_files_invalid_json_empty_and_yaml(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"slides": [ {"prompt": "a" "caption": "b"} ]}')
    with pytest.raises(StoryboardError, match=r"broken\.json: not valid JSON \(line 1, column \d+"):
        load_storyboard(broken)
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    with pytest.raises(StoryboardError, match="empty"):
        load_storyboard(empty)
    with pytest.raises(StoryboardError, match="no such file"):
        load_storyboard(tmp_path / "missing.json")
    pytest.importorskip("yaml")
    good = tmp_path / "board.yaml"
    good.write_text("style: chalk drawing\nslides:\n  - prompt: a tree\n    caption: Trees\n"
                    "    duration: 1.5\n    transition: kenburns\n    pan: left\n")
    sb = load_storyboard(good)
    assert sb.slides[0].pan == "left" and sb.prompt_for(0) == "a tree, chalk drawing"


def test_bundled_example_file_matches_the_built_in_copy():
    on_disk = json.loads((ROOT / "data" / "storyboard_example.json").read_text())
    assert on_disk == slides.EXAMPLE_STORYBOARD
    sb = slides.example_storyboard()
    assert len(sb.slides) >= 4 and {s.transition for s in sb.slides} == set(slides.TRANSITIONS)
    assert all(sb.seed_for(i) == sb.seed for i in range(len(sb.slides)))      # one seed: one look


# ---------------------------------------------------------------- command line


def run_cli(*args, cwd, outputs):
    env = dict(os.environ, COURSE_PROFILE="tiny", PYTHONPATH=str(ROOT), COURSE_OUTPUTS=str(outputs))
    return subprocess.run([sys.executable, "-m", "helpers", "slides", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_bad_storyboard_exit_2_one_line_nothing_written(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"slides": [GOOD, {**GOOD, "title": "Second", "duration": -2}]}))
    result = run_cli(bad, "--out", tmp_path / "out" / "s.mp4", cwd=tmp_path, outputs=tmp_path / "o")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'slide 2 ("Second")' in lines[0] and str(bad) in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.skipif(not (ROOT / "helpers" / "twins" / "flux.py").exists(),
                    reason="needs the FLUX.1-schnell tiny twin (helpers/core/twins/flux.py)")
def test_cli_without_arguments_makes_the_example_video(tmp_path):
    outputs = tmp_path / "outputs"
    result = run_cli("--stills", tmp_path / "stills", cwd=tmp_path, outputs=outputs)
    assert result.returncode == 0, result.stderr[-2000:]
    video = outputs / "final" / "slides.mp4"
    info = probe(video)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    sb = slides.example_storyboard()
    settings = slides.get_profile("tiny").settings("slides")
    expected = total_frames(sb, settings["fps"], settings["crossfade_s"])
    assert info["frames"] == expected
    assert (info["width"], info["height"]) == (settings["video_width"], settings["video_height"])
    assert "random weights" in result.stdout.lower()
    stills = sorted((tmp_path / "stills").glob("slide_*.png"))
    assert len(stills) == len(sb.slides)
    # the prompt reaches the model: same seed, different prompts, different pictures (with random
    # weights only slightly different: the shared starting noise dominates)
    first, second = (np.asarray(Image.open(p), dtype=np.float64) for p in stills[:2])
    assert np.abs(first - second).mean() > 0
    frames, _ = read_frames(video)
    assert np.abs(frames[-1].astype(float) - frames[0].astype(float)).mean() > 1


# ---------------------------------------------------------------- the text-to-image model's memory

def test_generate_stills_frees_t5_and_clip_before_denoising_and_makes_the_same_pictures(monkeypatch):
    """The slides' peak (T5 beside the transformer) is gone: every prompt is encoded first, then the text encoders
    of a pipeline the stage loaded itself are freed, before the first denoising step; the pictures are those the
    prompts give directly. A caller's own pipeline keeps its text encoders."""
    import weakref

    from helpers.core.profiles import get_profile

    profile = get_profile("tiny")
    settings = profile.settings("slides")
    story = board((1.0, "cut"), (1.0, "cut"))
    pipe = slides.load_text_to_image(profile, settings)
    seen = []
    pipe.transformer.register_forward_pre_hook(lambda module, args: seen.append(
        (pipe.text_encoder is None, pipe.text_encoder_2 is None)))
    t5 = weakref.ref(pipe.text_encoder_2)
    monkeypatch.setattr(slides, "load_text_to_image", lambda p, s: pipe)
    stills = slides.generate_stills(story, profile, progress=False)
    assert seen and set(seen) == {(True, True)}, "the transformer ran while CLIP or T5 was loaded"
    assert t5() is None and pipe.transformer is None  # freed, and the whole pipeline after the last slide
    import torch

    monkeypatch.undo()
    own = slides.load_text_to_image(profile, settings)
    direct = [own(prompt=story.prompt_for(i), width=settings["width"], height=settings["height"],
                  num_inference_steps=settings["num_inference_steps"], guidance_scale=settings["guidance_scale"],
                  max_sequence_length=settings["max_sequence_length"],
                  generator=torch.Generator(device="cpu").manual_seed(story.seed_for(i))).images[0]
              for i in range(len(story.slides))]
    again = slides.generate_stills(story, profile, pipe=own, progress=False)
    assert own.text_encoder_2 is not None  # the caller's pipeline keeps what it had
    for a, b, c in zip(stills, direct, again):
        assert np.array_equal(np.asarray(a), np.asarray(b.convert("RGB"))) and np.array_equal(np.asarray(a), np.asarray(c))
