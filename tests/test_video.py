import numpy as np
import pytest

from helpers.core.video import frame_strip, probe, read_frames, write_mp4


def test_mp4_is_h264_yuv420p_and_even(tmp_path):
    frames = [np.full((33, 51, 3), i * 20, np.uint8) for i in range(6)]
    path = write_mp4(frames, tmp_path / "v.mp4", fps=6)
    info = probe(path)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert (info["width"], info["height"]) == (52, 34) and info["frames"] == 6
    back, fps = read_frames(path)
    assert len(back) == 6 and fps == 6
    assert abs(int(back[3].mean()) - 60) <= 3  # content survives the round trip
    with open(path, "rb") as handle:  # faststart: the index (moov) comes before the data (mdat)
        head = handle.read()
    assert head.find(b"moov") < head.find(b"mdat")


def test_bad_frames_leave_nothing(tmp_path):
    frames = [np.zeros((16, 16, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)]
    with pytest.raises(ValueError, match="frame 1"):
        write_mp4(frames, tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="no frames"):
        write_mp4([], tmp_path / "v.mp4")


def test_frame_strip():
    frames = [np.full((4, 5, 3), i, np.uint8) for i in range(10)]
    strip = np.asarray(frame_strip(frames, count=3))
    assert strip.shape == (4, 15, 3)
    assert [strip[0, 0, 0], strip[0, 5, 0], strip[0, 10, 0]] == [0, 4, 9]  # first, middle, last


def test_ffmpeg_failure_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    import helpers.core.video as video

    good = video.mp4_command
    monkeypatch.setattr(video, "mp4_command", lambda *args: good(*args)[:-1] + ["-c:v", "no_such_codec", args[0]])
    with pytest.raises(RuntimeError, match="ffmpeg could not write v.mp4 .*no_such_codec"):
        write_mp4([np.zeros((16, 16, 3), np.uint8)] * 40, tmp_path / "v.mp4")
    assert list(tmp_path.iterdir()) == []
