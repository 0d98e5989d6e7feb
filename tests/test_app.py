"""The video studio (helpers.app): the Gradio app driven over loopback with gradio_client, and the widgets."""

import os
from datetime import datetime, timezone
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from helpers import app as studio_app  # noqa: E402
from helpers.core.video import probe, read_frames  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TRUNCATED_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x40\x00\x00\x00\x40\x08\x02\x00\x00\x00"


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


def ask(client, upload=None, choice=None, backend="svd", frames=3, motion=127, steps=2, seed=0, prompt=""):
    from gradio_client import handle_file

    video, status = client.predict(handle_file(str(upload)) if upload else None, choice, backend, frames, motion,
                                   steps, seed, prompt, api_name="/make_video")
    if isinstance(video, dict):  # gradio 5's client: {"video": path, "subtitles": None}
        video = video.get("video")
    return video, status


def test_upload_gives_a_playable_stamped_video(served):
    client, _, folder = served
    video, status = ask(client, upload=ROOT / "data" / "shapes.png", frames=3)
    info = probe(video)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["frames"] == 3
    assert "Made 3 frames" in status and "RANDOM WEIGHTS" in status
    frames, _ = read_frames(video)
    bottom = frames[0][-6:].astype(float)   # the stamp: a dark band with yellow text
    assert bottom.mean() < 100 and (bottom[..., 0] > 150).any()
    assert list((folder / "outputs" / "final").glob("studio_svd_*.mp4"))   # also kept in outputs/final


def test_keyframe_picker_when_nothing_is_uploaded(served):
    client, _, _ = served
    label, choice = studio_app.source_choices()[-1]
    assert label.startswith(("keyframe", "demo image"))
    video, status = ask(client, choice=choice, frames=2, seed=1)
    assert probe(video)["frames"] == 2 and "seed 1" in status


@pytest.mark.parametrize("name, content, problem", [
    ("notes.txt", b"this is not a picture", "not an image"),
    ("empty.png", b"", "empty"),
    ("cut.png", TRUNCATED_PNG, "truncated|damaged|could not read"),
])
def test_bad_upload_returns_a_message_not_a_crash(served, tmp_path, name, content, problem):
    import re

    client, _, _ = served
    path = tmp_path / name
    path.write_bytes(content)
    video, status = ask(client, upload=path)
    assert video is None
    assert status.startswith(f"Could not use the upload: {name}: ") and re.search(problem, status), status


def test_nothing_chosen_is_a_message(served):
    client, _, _ = served
    video, status = ask(client)
    assert video is None and "upload an image or pick a keyframe" in status


def test_page_says_random_weights_in_tiny(served):
    import httpx

    _, url, _ = served
    config = httpx.get(url + "config", timeout=30).text
    assert "RANDOM WEIGHTS" in config and "video studio" in config


def test_ltx_backend_rounds_frames_to_8k_plus_1(served):
    if "ltx" not in studio_app.available_backends():
        pytest.skip("helpers.animate has no LTX-Video backend yet")
    client, _, _ = served
    video, status = ask(client, choice=str(studio_app.source_choices()[0][1]), backend="ltx", frames=3,
                        prompt="slow dolly in")
    assert probe(video)["frames"] == 9 and "3 became 9" in status and "slow dolly in" in status


def test_fast_ltx_is_offered_and_makes_its_8_steps(served):
    assert studio_app.available_backends() == ["svd", "ltx-distilled", "ltx"]
    client, _, _ = served
    video, status = ask(client, choice=str(studio_app.source_choices()[0][1]), backend="ltx-distilled", frames=9,
                        steps=8, prompt="slow dolly in")
    assert probe(video)["frames"] == 9 and "8 steps" in status and "0.9.8 distilled" in status


def test_the_two_minute_promise_is_stated_per_profile(served):
    import httpx

    from helpers.core.profiles import Profile, get_profile

    _, url, _ = served
    config = httpx.get(url + "config", timeout=30).text
    assert "A video in under 2 minutes" in config and "measured" in config
    tiny = studio_app.promise(get_profile("tiny"))
    assert "measured" in tiny and "ESTIMATE" not in tiny
    for name in ("colab", "full"):
        profile = Profile(name, "cuda", "float16", "test")
        app = profile.settings("app")
        text = studio_app.promise(profile)
        assert "not yet measured" in text and "ESTIMATE" in text, name
        assert f"{app['svd_num_frames']} frames x {app['svd_steps']} steps" in text, name  # follows the defaults


def test_the_promise_follows_an_ltx_default_too(monkeypatch):
    from helpers.core.profiles import STAGE_SETTINGS, get_profile

    monkeypatch.setitem(STAGE_SETTINGS["app"]["tiny"], "backend", "ltx-distilled")
    text = studio_app.promise(get_profile("tiny"))
    assert "LTX-Video 0.9.8 distilled" in text and "9 frames x 8 steps at 64x64" in text


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


def test_bad_knobs_are_messages(studio):
    image = Image.new("RGB", (64, 64), (10, 120, 200))
    with pytest.raises(ValueError, match="motion must be between 1 and 255"):
        studio.make_video(image, "svd", num_frames=3, motion=400, steps=1)
    with pytest.raises(ValueError, match="not available"):
        studio.make_video(image, "sora", num_frames=3, steps=1)


def test_widget_studio_runs_with_defaults_and_reports_bad_uploads(tmp_path, monkeypatch, studio):
    monkeypatch.setenv("COURSE_OUTPUTS", str(tmp_path / "outputs"))
    ws = studio_app.WidgetStudio(studio)
    ws.num_frames.value = 2
    path = ws.run()
    assert path is not None and probe(path)["frames"] == 2 and "RANDOM WEIGHTS" in ws.status.value
    ws.upload.value = ({"name": "junk.png", "type": "image/png", "size": 4, "content": memoryview(b"junk"),
                        "last_modified": datetime.now(timezone.utc)},)
    assert ws.run() is None
    assert "junk.png" in ws.status.value and "not an image" in ws.status.value


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
