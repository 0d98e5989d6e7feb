"""The studio app shares only what a user sent or got (issue 37, item 5), against Gradio's real server.

The checkpoint beside the videos is refused, the video made is served (a copy, not the work folder),
an upload over the limit is refused with one line, uploads are deleted when the app stops, a login
keeps everything (the files included) behind it, and a seed of "nan" is a sentence, not a traceback.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
import httpx  # noqa: E402

from helpers import app as studio_app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHAPES = ROOT / "data" / "shapes.png"   # 1,989 bytes
LIMIT = 3000                            # bytes: SHAPES fits, a bigger upload does not


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secure")
    old = os.environ.get("COURSE_OUTPUTS")
    os.environ["COURSE_OUTPUTS"] = str(folder / "outputs")
    state = folder / "outputs" / "checkpoints" / "pixelcnnpp" / "training_state.pt"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"the learner's optimizer state")
    (folder / "outputs" / "notes.txt").write_text("my private notes")
    yield folder
    if old is None:
        os.environ.pop("COURSE_OUTPUTS", None)
    else:
        os.environ["COURSE_OUTPUTS"] = old


def serve(**options):
    app = studio_app.build_app(studio_app.Studio())
    port = studio_app.free_port()
    studio_app.launch(app, port=port, block=False, max_file_size=LIMIT, **options)
    return app, f"http://127.0.0.1:{port}"


def test_the_work_folder_is_refused_and_the_video_made_is_served(work):
    from gradio_client import Client, handle_file

    app, url = serve()
    try:
        secret = work / "outputs" / "checkpoints" / "pixelcnnpp" / "training_state.pt"
        for path in (secret, work / "outputs" / "notes.txt"):
            answer = httpx.get(f"{url}/gradio_api/file={path}")
            assert answer.status_code == 403, (path, answer.status_code)
        client = Client(url + "/", download_files=str(work / "downloads"), verbose=False)
        video, status, _ = client.predict(handle_file(str(SHAPES)), "upload", "svd", 3, 127, 2, 0, "",
                                          api_name="/make_video")
        video = video.get("video") if isinstance(video, dict) else video
        assert status.startswith("Made a video") and Path(video).stat().st_size > 0
        kept = list((work / "outputs" / "final").glob("studio_svd_*.mp4"))
        assert len(kept) == 1 and Path(video).read_bytes() == kept[0].read_bytes()
        # the page's copy is served, the work folder's own file is not
        assert httpx.get(f"{url}/gradio_api/file={kept[0]}").status_code == 403
    finally:
        app.close()


def test_a_big_upload_is_refused_in_one_line_and_uploads_go_when_the_app_stops(work):
    app, url = serve()
    try:
        big = httpx.post(f"{url}/gradio_api/upload", files={"files": ("big.png", b"x" * (LIMIT + 1))})
        assert big.status_code == 413
        assert big.text.strip() == f"File size exceeded maximum allowed size of {LIMIT} bytes."
        small = httpx.post(f"{url}/gradio_api/upload", files={"files": ("small.png", SHAPES.read_bytes())})
        assert small.status_code == 200
        uploaded = Path(json.loads(small.text)[0])
        assert uploaded.is_file()
    finally:
        app.close()
    for _ in range(50):  # Gradio's shutdown (delete_cache) runs in its server thread
        if not uploaded.exists():
            break
        time.sleep(0.1)
    assert not uploaded.exists(), "the upload stayed in Gradio's temporary folder"


def test_a_login_guards_the_page_and_the_files(work):
    app, url = serve(auth=("teacher", "s3cret-pass"))
    try:
        with httpx.Client(base_url=url) as browser:
            upload = browser.post("/gradio_api/upload", files={"files": ("a.png", SHAPES.read_bytes())})
            assert upload.status_code == 401
            assert browser.get("/config").status_code == 401
            wrong = browser.post("/login", data={"username": "teacher", "password": "guess"})
            assert wrong.status_code == 400
            right = browser.post("/login", data={"username": "teacher", "password": "s3cret-pass"})
            assert right.status_code == 200
            assert browser.get("/config").status_code == 200
    finally:
        app.close()


def test_a_seed_of_nan_is_a_sentence(work):
    from gradio_client import Client, handle_file

    app, url = serve()
    try:
        client = Client(url + "/", download_files=str(work / "downloads"), verbose=False)
        for seed in ("nan", "inf", 1.5):
            video, status, _ = client.predict(handle_file(str(SHAPES)), "upload", "svd", 3, 127, 2, seed, "",
                                              api_name="/make_video")
            assert video is None and status.startswith("No video. Variation number: the seed must be"), status
    finally:
        app.close()


def test_login_settings_and_the_public_link_sentence():
    assert studio_app.login_from("ann:pa:ss") == ("ann", "pa:ss")
    assert studio_app.login_from(None) is None and studio_app.login_from("") is None
    for bad in ("ann", ":pw", "ann:"):
        with pytest.raises(ValueError, match="--auth must be user:password") as err:
            studio_app.login_from(bad)
        assert "pw" not in str(err.value)
    assert "anyone who has the link" in studio_app.public_link_warning(None)
    assert "only people who know the login" in studio_app.public_link_warning(("a", "b"))


def test_cli_bad_auth_is_exit_2_one_line(tmp_path):
    env = dict(os.environ, COURSE_PROFILE="tiny", PYTHONPATH=str(ROOT), COURSE_OUTPUTS=str(tmp_path),
               COURSE_APP_AUTH="no-colon-here")
    result = subprocess.run([sys.executable, "-m", "helpers", "app", "--port", str(studio_app.free_port())],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "COURSE_APP_AUTH must be user:password" in lines[0]
    assert "no-colon-here" not in result.stderr


def test_notebook_10_opens_no_public_link_on_run_all():
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / "10_video_studio_app.ipynb", as_version=4)
    code = [cell.source for cell in nb.cells if cell.cell_type == "code"]
    parameters = next(c for c in code if "LAUNCH_IN_COLAB" in c)
    assert "LAUNCH_IN_COLAB = False" in parameters and "APP_LOGIN" in parameters
    launching = next(c for c in code if "share=True" in c)
    assert "launch(colab_app, share=True" in launching and ".launch(share=True" not in launching  # helpers' launch
    assert "public_link_warning" in launching


def test_the_colab_secret_is_used_without_writing_the_token_to_disk(tmp_path, monkeypatch):
    """issue 37, item 6: huggingface_hub's login() saves the token in ~/.cache/huggingface; the secret must not."""
    import types

    from huggingface_hub import constants

    from helpers.core import registry

    token_file = tmp_path / "hf" / "token"
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf" / "stored_tokens"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    userdata = types.SimpleNamespace(get=lambda name: "hf_course_test_token" if name == "HF_TOKEN" else None)
    colab = types.ModuleType("google.colab")
    colab.userdata = userdata
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.userdata", userdata)
    assert registry.token_from_colab_secret()
    assert os.environ["HF_TOKEN"] == "hf_course_test_token"
    assert not (tmp_path / "hf").exists(), "the token was written to disk"
