"""The video studio (helpers.app): the Gradio app over loopback with gradio_client, the widgets, the CLI.

The same bad inputs as the browser test (tests/test_browser.py): a seed of -5, no picture chosen, a file
that is not a picture; each must come back as one plain sentence in the status, never as an exception.
"""

import contextvars
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from helpers import app as studio_app  # noqa: E402
from helpers.core.video import probe, read_frames  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ROOT / "data" / "shapes.png"
TRUNCATED_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x40\x00\x00\x00\x40\x08\x02\x00\x00\x00"
# Words a person who does not code should not meet in a label, the banner or the promise.
JARGON = re.compile(r"\b[a-z]+_[a-z_]+\b|CFG|8k\+1|COURSE_|torch|PIL\b|memory none|median of 5")
NO_PICTURE = "There is no picture to animate yet"
BAD_SEED = "Variation number: the seed must be between 0 and 2147483647; you gave -5."


@pytest.fixture(scope="module")
def studio():
    """One studio (pipelines loaded once) for the app and the widgets."""
    return studio_app.Studio()


@pytest.fixture(scope="module")
def served(tmp_path_factory, studio):
    """The app on 127.0.0.1 at a free port, in this process; closed afterwards."""
    from gradio_client import Client

    folder = tmp_path_factory.mktemp("app")
    old = os.environ.get("COURSE_OUTPUTS")
    os.environ["COURSE_OUTPUTS"] = str(folder / "outputs")
    app = studio_app.build_app(studio)
    port = studio_app.free_port()
    studio_app.launch(app, port=port, block=False)
    url = f"http://127.0.0.1:{port}/"
    client = Client(url, download_files=str(folder / "downloads"), verbose=False)
    try:
        yield client, url, folder
    finally:
        client.close() if hasattr(client, "close") else None
        app.close()
        if old is None:
            os.environ.pop("COURSE_OUTPUTS", None)
        else:
            os.environ["COURSE_OUTPUTS"] = old


def ask(client, upload=None, source=studio_app.UPLOAD, backend="svd", frames=3, motion=127, steps=2, seed=0,
        prompt=""):
    from gradio_client import handle_file

    video, status, promise = client.predict(handle_file(str(upload)) if upload else None, source, backend, frames,
                                            motion, steps, seed, prompt, api_name="/make_video")
    if isinstance(video, dict):  # gradio 5's client: {"video": path, "subtitles": None}
        video = video.get("video")
    return video, status, promise


def test_upload_gives_a_playable_stamped_video_and_the_time_measured_here(served):
    client, _, folder = served
    video, status, promise = ask(client, upload=SHAPES, frames=3)
    info = probe(video)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["frames"] == 3
    assert status.startswith("Made a video of your upload shapes.png: 3 frames") and "SMALL TWIN TRAINED ON DIGITS" in status
    frames, _ = read_frames(video)
    bottom = frames[0][-6:].astype(float)   # the stamp: a dark band with yellow text
    assert bottom.mean() < 100 and (bottom[..., 0] > 150).any()
    assert list((folder / "outputs" / "final").glob("studio_svd_*.mp4"))   # also kept in outputs/final
    assert "Measured on this computer" in promise and re.search(r"took \d+\.\d s", promise)


@pytest.mark.parametrize("name, content, problem", [
    ("notes.txt", b"this is not a picture", "this file is not a picture the studio can read"),
    ("empty.png", b"", "empty"),
    ("cut.png", TRUNCATED_PNG, "truncated|damaged|could not read"),
])
def test_bad_upload_is_a_sentence_not_a_crash(served, tmp_path, name, content, problem):
    client, _, _ = served
    path = tmp_path / name
    path.write_bytes(content)
    video, status, _ = ask(client, upload=path)
    assert video is None
    assert status.startswith(f"No video. Could not use your upload {name}: ") and re.search(problem, status), status
    assert str(tmp_path) not in status  # named by its own name, not the server's temporary path


def test_no_picture_and_a_negative_seed_are_sentences(served):
    client, _, _ = served
    video, status, _ = ask(client)                       # "the picture I upload", nothing uploaded
    assert video is None and status.startswith(f"No video. {NO_PICTURE}")
    video, status, _ = ask(client, upload=SHAPES, seed=-5)  # Gradio's own range check would say "Error"
    assert video is None and status == f"No video. {BAD_SEED}"


def test_labels_banner_and_promise_are_plain_words(served):
    import httpx

    _, url, _ = served
    config = httpx.get(url + "config", timeout=30).json()
    labels = [c["props"].get("label") or "" for c in config["components"]]
    texts = [c["props"].get("value") for c in config["components"] if c["type"] == "markdown"]
    choices = [label for c in config["components"] for label, _ in c["props"].get("choices") or []]
    keys = [key for c in config["components"] if c["props"].get("elem_id") == "source" for _, key in c["props"]["choices"]]
    assert keys[0] == studio_app.UPLOAD and "demo:sunset" in keys and not any("/" in key for key in keys)  # no paths
    assert "Which picture to animate" in labels and "How much it moves" in labels
    for text in labels + texts + choices:
        assert not JARGON.search(str(text)), text
    assert any("RANDOM WEIGHTS" in str(t) for t in texts)
    info = " ".join(str(c["props"].get("info")) for c in config["components"])
    assert "motion_bucket_id" in info and "seed" in info  # the technical name stays, in the small print


def test_a_demo_picture_is_named_in_the_status(served):
    client, _, _ = served
    label, source = studio_app.source_choices()[-1]
    assert label.startswith("Demo picture: ")
    video, status, _ = ask(client, source=source, frames=2, seed=1)
    assert probe(video)["frames"] == 2 and "variation 1" in status
    assert status.startswith(f"Made a video of the demo picture {label.split(': ')[1]}")


def test_ltx_backend_rounds_frames_to_8k_plus_1(served):
    client, _, _ = served
    source = studio_app.source_choices()[-1][1]
    video, status, _ = ask(client, source=source, backend="ltx", frames=3, prompt="slow dolly in")
    assert probe(video)["frames"] == 9 and "3 became 9" in status and "slow dolly in" in status


def test_fast_ltx_is_offered_and_makes_its_8_steps(served):
    assert studio_app.available_backends() == ["svd", "ltx-distilled", "ltx"]
    client, _, _ = served
    video, status, _ = ask(client, source=studio_app.source_choices()[-1][1], backend="ltx-distilled", frames=9,
                           steps=8, prompt="slow dolly in")
    assert probe(video)["frames"] == 9 and "8 steps" in status and "0.9.8 distilled" in status


def test_the_promise_is_stated_per_profile():
    from helpers.core.profiles import Profile, get_profile

    tiny = studio_app.promise(get_profile("tiny"))
    assert "A video in under 2 minutes" in tiny and "first video is slower" in tiny and "estimated" not in tiny
    for name in ("colab", "full"):
        profile = Profile(name, "cuda", "float16", "test")
        app = profile.settings("app")
        text = studio_app.promise(profile)
        assert "Not yet measured" in text and "estimated" in text, name
        assert f"{app['svd_num_frames']} frames x {app['svd_steps']} steps" in text, name  # follows the defaults
        assert not JARGON.search(text), text


def test_the_promise_follows_an_ltx_default_too(monkeypatch):
    from helpers.core.profiles import STAGE_SETTINGS, get_profile

    monkeypatch.setitem(STAGE_SETTINGS["app"]["tiny"], "backend", "ltx-distilled")
    text = studio_app.promise(get_profile("tiny"))
    assert "LTX-Video, fast, 9 frames x 8 steps at 64x64" in text


def test_timings_say_first_and_later_videos_and_predict_from_the_last():
    timings = studio_app.Timings()
    assert "nothing yet" in timings.text() and "loads the model first" in timings.text()
    assert timings.expected("svd", 8) is None
    timings.add("svd", 27.0, 21.0, work=8)                  # the first: loads the model
    for seconds in (9.0, 13.0, 7.0):
        timings.add("svd", seconds, None, work=8)
    text = timings.text()
    assert "the first video took 27.0 s, 21.0 s of it loading the model" in text
    assert "with the model loaded 9.0 s (the median of 3 videos)" in text
    assert timings.expected("svd", 16) == pytest.approx(14.0)  # the last: 7 s for 8 frames x steps


def test_progress_ticks_from_a_thread_that_sees_the_callers_context():
    """Gradio keeps a request's progress in context variables: the ticker must see them."""
    request = contextvars.ContextVar("request")
    request.set("this request")
    seen = []
    with studio_app.ticking(lambda f, text: seen.append((f, text, request.get(None))), 0.2, 0.8, "Loading",
                            expected=0.4, every=0.05):
        time.sleep(0.3)
    fractions = [f for f, _, _ in seen]
    assert len(seen) >= 3 and all(r == "this request" for _, _, r in seen)
    assert fractions == sorted(fractions) and 0.2 <= fractions[0] < fractions[-1] <= 0.2 + 0.6 * 0.95
    assert seen[-1][1].startswith("Loading: 0 s so far, about 0 s last time")


def test_a_picture_that_is_gone_is_a_sentence(studio):
    path, status = studio.request("keyframe:frame_9999.png", None, "svd", 2, 127, 1, 0)
    assert path is None and status.startswith("No video. There is no picture 'keyframe:frame_9999.png' here any more")


def test_whole_numbers_are_checked_in_sentences():
    check = studio_app.whole_number
    assert check(3.0, "Length", 2, 25) == 3
    for value, fragment in [(None, "is empty"), ("", "is empty"), ("abc", "'abc' is not a number"),
                            (1.5, "must be a whole number"), (-5, "must be between 0 and 9; you gave -5")]:
        with pytest.raises(studio_app.StudioInputError, match=re.escape(fragment)):
            check(value, "Variation number", 0, 9)


def test_on_a_gpu_switching_model_frees_the_previous_one(monkeypatch):
    import torch

    from helpers.core.profiles import Profile

    loaded = []
    monkeypatch.setattr(studio_app.animate, "load_svd", lambda profile, settings: loaded.append("svd") or "svd pipe")
    monkeypatch.setattr(studio_app.animate, "load_ltx", lambda profile, settings: loaded.append("ltx") or "ltx pipe")
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    gpu = studio_app.Studio(Profile("colab", "cuda", "float16", "test"))
    assert gpu.pipeline("svd", {}) == gpu.pipeline("svd", {}) == "svd pipe" and loaded == ["svd"]  # kept
    gpu.pipeline("ltx-distilled", {})
    assert list(gpu._pipes) == ["ltx-distilled"]                    # SVD was freed first
    tiny = studio_app.Studio()
    tiny.pipeline("svd", {}), tiny.pipeline("ltx", {})
    assert list(tiny._pipes) == ["svd", "ltx"]                      # the tiny twins all stay


def test_random_weights_line_follows_what_the_stage_says(monkeypatch, tmp_path):
    """The report says RANDOM WEIGHTS when the animate stage's settings (else the profile) say so."""
    studio = studio_app.Studio()
    studio._pipes["svd"] = "a loaded pipeline"
    picture = Image.new("RGB", (64, 64), (10, 120, 200))
    for said, expected in [({}, True), ({"random_weights": False}, False), ({"random_weights": True}, True),
                           ({"random_weights": "trained"}, False)]:
        def fake(image, profile, seed, pipe, said=said, **overrides):
            return [picture] * overrides["num_frames"], {**studio_app.animate.svd_settings(profile, **overrides), **said}
        monkeypatch.setattr(studio_app.animate, "animate_image", fake)
        _, report = studio.make_video(picture, "svd", 2, 127, 1, out=tmp_path / "v.mp4")
        assert ("RANDOM WEIGHTS" in report) == expected, said


def test_an_unexpected_failure_is_one_sentence_too(monkeypatch):
    studio = studio_app.Studio()
    monkeypatch.setattr(studio, "make_video", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom\ntrace")))
    path, status = studio.request(studio_app.source_choices()[-1][1], None, "svd", 2, 127, 1, 0)
    assert path is None and status.startswith("No video. Something went wrong while making it (RuntimeError: boom)")


def test_bad_knobs_are_sentences(studio):
    image = Image.new("RGB", (64, 64), (10, 120, 200))
    with pytest.raises(ValueError, match="How much it moves: the motion must be between 1 and 255; you gave 400"):
        studio.make_video(image, "svd", num_frames=3, motion=400, steps=1)
    with pytest.raises(ValueError, match="There is no model called 'sora' here"):
        studio.make_video(image, "sora", num_frames=3, steps=1)


# --------------------------------------------------------------------------------------------
# The ipywidgets studio: the same checks through its Python API


def as_ipywidgets8(name, content):
    return ({"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
             "last_modified": datetime.now(timezone.utc)},)


def as_ipywidgets7(name, content):
    return {name: {"metadata": {"name": name, "type": "image/png", "size": len(content), "lastModified": 0},
                   "content": content}}


@pytest.mark.parametrize("shape", [as_ipywidgets8, as_ipywidgets7])
def test_uploaded_files_reads_both_ipywidgets_shapes(shape):
    assert studio_app.uploaded_files(shape("a.png", b"\x89PNG bytes")) == [("a.png", b"\x89PNG bytes")]
    assert studio_app.uploaded_files(() if shape is as_ipywidgets8 else {}) == []


def test_widget_studio_checks_like_the_browser(tmp_path, monkeypatch, studio):
    monkeypatch.setenv("COURSE_OUTPUTS", str(tmp_path / "outputs"))
    ws = studio_app.WidgetStudio(studio)
    assert ws.source.value == studio_app.UPLOAD and ws.run() is None and NO_PICTURE in ws.status.value
    ws.upload = SimpleNamespace(value=as_ipywidgets7("junk.png", b"junk"))   # Colab's ipywidgets 7.7 shape
    assert ws.run() is None and "your upload junk.png: this file is not a picture" in ws.status.value
    ws.upload = SimpleNamespace(value=as_ipywidgets8("shapes.png", SHAPES.read_bytes()))
    ws.seed.value = -5
    assert ws.run() is None and BAD_SEED in ws.status.value
    ws.seed.value, ws.num_frames.value = 0, 2
    path = ws.run()
    assert path is not None and probe(path)["frames"] == 2
    assert "Made a video of your upload shapes.png" in ws.status.value and "SMALL TWIN TRAINED ON DIGITS" in ws.status.value
    assert "Measured on this computer" in ws.banner.value
    assert not ws.button.disabled and ws.button.description == studio_app.GO_LABEL


def test_widget_button_is_busy_while_working_and_an_upload_selects_itself(monkeypatch, studio):
    ws = studio_app.WidgetStudio(studio)
    ws.source.value = studio_app.source_choices()[-1][1]
    ws._on_upload({"new": as_ipywidgets8("mine.png", b"x")})
    assert ws.source.value == studio_app.UPLOAD and "your upload mine.png" in ws.status.value
    seen = []
    monkeypatch.setattr(studio, "request", lambda *a, **k: seen.append((ws.button.disabled, ws.button.description))
                        or (None, "No video. A sentence."))
    assert ws.run() is None and seen == [(True, studio_app.BUSY_LABEL)] and not ws.button.disabled


# --------------------------------------------------------------------------------------------
# The command line


def test_cli_busy_port_exit_2_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = dict(os.environ, COURSE_PROFILE="tiny", PYTHONPATH=str(ROOT), COURSE_OUTPUTS=str(tmp_path))
        result = subprocess.run([sys.executable, "-m", "helpers", "app", "--port", str(port)], cwd=tmp_path,
                                env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "--port" in lines[0], result.stderr


def start_server(tmp_path, port):
    """``python -m helpers app`` in a subprocess; returns it once it serves (its first lines read)."""
    env = dict(os.environ, COURSE_PROFILE="tiny", PYTHONPATH=str(ROOT), COURSE_OUTPUTS=str(tmp_path),
               PYTHONUNBUFFERED="1")
    server = subprocess.Popen([sys.executable, "-m", "helpers", "app", "--port", str(port)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in server.stdout:
        if line.startswith("serving the video studio"):
            return server
    raise AssertionError(f"the app did not start: exit code {server.wait()}")


def test_sigterm_stops_the_app_cleanly(tmp_path):
    server = start_server(tmp_path, studio_app.free_port())
    try:
        sent = time.monotonic()
        server.send_signal(signal.SIGTERM)
        rest, _ = server.communicate(timeout=30)
        seconds = time.monotonic() - sent
    finally:
        server.kill() if server.poll() is None else None
    assert server.returncode == 0 and "the video studio has stopped" in rest, rest
    assert "Traceback" not in rest and seconds < 10, (seconds, rest)
