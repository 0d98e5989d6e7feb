"""The studio in a real browser: headless Chromium, driven with selenium the way a person who does not code
uses it. ``make test-browser`` runs it (COURSE_BROWSER_TEST=1; ``make test`` does not, it takes a minute or
two); it skips itself, saying why, when Chromium, chromedriver or selenium are missing.

Against ``python -m helpers app`` (tiny profile) on 127.0.0.1: the three bad inputs of issue 28 (nothing
uploaded, a file that is not a picture, a variation number of -5) each leave one plain sentence in the
status box and no bare "Error"; then an upload selects itself, the button says it is busy and cannot be
pressed twice, and the video it makes plays (the MP4 the page links to has readable frames). Finally
Ctrl+C (SIGINT) stops the server cleanly. Only localhost traffic: Chromium's background services are off.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from test_app import BAD_SEED, NO_PICTURE, SHAPES, start_server  # noqa: E402

if not os.environ.get("COURSE_BROWSER_TEST"):
    pytest.skip("the browser test runs with `make test-browser` (COURSE_BROWSER_TEST=1), not in `make test`",
                allow_module_level=True)
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or shutil.which("chromium-browser") or "")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("no Chromium + chromedriver here (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,2000", "--autoplay-policy=no-user-gesture-required"]
VIDEO_TIMEOUT = 240  # seconds for the first video (it loads the model) on a slow shared machine


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from helpers.app import free_port

    folder = tmp_path_factory.mktemp("browser")
    port = free_port()
    process = start_server(folder, port)
    yield process, f"http://127.0.0.1:{port}/", folder
    process.kill() if process.poll() is None else None


@pytest.fixture(scope="module")
def browser(server):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="studio-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.get(server[1])
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def status(driver) -> str:
    return driver.find_element(By.CSS_SELECTOR, "#status textarea").get_attribute("value")


def wait_for_status(driver, fragment: str, timeout: float = 60) -> str:
    WebDriverWait(driver, timeout).until(lambda d: fragment in status(d))
    return status(driver)


def bare_errors(driver) -> list[str]:
    """Visible elements whose whole text is 'Error': Gradio's badge for an exception it caught itself."""
    return [e.text for e in driver.find_elements(By.XPATH, "//*[normalize-space(text())='Error']") if e.is_displayed()]


def upload(driver, path: Path) -> None:
    """Choose a file in the upload box, as the file dialog would (clearing the one there first)."""
    for clear in driver.find_elements(By.CSS_SELECTOR, "#upload button[aria-label='Clear']"):
        clear.click()
    WebDriverWait(driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
    driver.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(path))


def press(driver) -> None:
    driver.find_element(By.ID, "make").click()


def test_a_person_makes_a_video_and_reads_every_problem_in_the_status(server, browser, tmp_path):
    process, url, _ = server
    d = browser
    WebDriverWait(d, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#status textarea"))
    page = d.find_element(By.TAG_NAME, "body").text
    assert "video studio" in page and "RANDOM WEIGHTS" in page and "Measured on this computer: nothing yet" in page

    press(d)                                                    # 1. nothing uploaded, "the picture I upload"
    assert wait_for_status(d, "No video.").startswith(f"No video. {NO_PICTURE}") and not bare_errors(d)

    notes = tmp_path / "notes.txt"                              # 2. a file that is not a picture
    notes.write_text("this is not a picture")
    upload(d, notes)
    wait_for_status(d, "notes.txt")
    press(d)
    said = wait_for_status(d, "No video.")
    assert said == ("No video. Could not use your upload notes.txt: this file is not a picture the studio can read "
                    "(it reads PNG, JPEG, WebP, GIF, BMP and TIFF).") and not bare_errors(d)

    upload(d, SHAPES)                                           # the upload selects itself
    assert wait_for_status(d, "Will animate your upload shapes.png").startswith("Will animate your upload shapes.png")
    checked = d.find_element(By.CSS_SELECTOR, "#source input[type=radio][value=upload]")
    assert checked.get_attribute("aria-checked") == "true"

    seed = d.find_element(By.CSS_SELECTOR, "#seed input[type=number]")  # 3. a variation number of -5
    seed.clear()
    seed.send_keys("-5")
    press(d)
    assert wait_for_status(d, "No video.") == f"No video. {BAD_SEED}" and not bare_errors(d)

    seed.clear()
    seed.send_keys("0")
    press(d)                                                    # the video, at last
    button = d.find_element(By.ID, "make")
    WebDriverWait(d, 20).until(lambda d: not button.is_enabled())
    assert "please wait" in button.text
    said = wait_for_status(d, "Made a video", timeout=VIDEO_TIMEOUT)
    assert said.startswith("Made a video of your upload shapes.png: 4 frames") and "SMALL TWIN TRAINED ON DIGITS" in said
    WebDriverWait(d, 20).until(lambda d: button.is_enabled() and button.text == "Make the video")
    assert "the first video took" in d.find_element(By.ID, "promise").text and not bare_errors(d)

    source = d.find_element(By.CSS_SELECTOR, "#video video").get_attribute("src")
    assert source.startswith(url)                               # served by the app itself, over loopback
    mp4 = tmp_path / "from_the_page.mp4"
    mp4.write_bytes(urllib.request.urlopen(source, timeout=30).read())
    from helpers.core.video import read_frames

    frames, fps = read_frames(mp4)
    assert len(frames) == 4 and frames[0].shape == (64, 128, 3) and fps == 8
    playing = d.execute_script("const v = document.querySelector('#video video'); return [v.readyState, v.error];")
    assert playing[1] is None                                   # Chromium read the MP4 without an error

    process.send_signal(signal.SIGINT)                          # Ctrl+C: a clean stop
    rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and "the video studio has stopped" in rest and "Traceback" not in rest, rest
