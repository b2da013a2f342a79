"""The device display: a Tk window when there is an X display, else the recording display."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from edge.webrtc import RecordingDisplay, TestPatternTrack, make_display
from tests.helpers import require


def test_without_a_display_frames_are_recorded(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    assert isinstance(make_display("auto"), RecordingDisplay)


def test_a_broken_display_falls_back_unless_a_window_is_required(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":987")  # nothing listens there
    assert type(make_display("auto")) is RecordingDisplay
    with pytest.raises(RuntimeError, match="cannot open display window"):
        make_display("window")


@pytest.fixture
def xvfb(monkeypatch):
    require(shutil.which("Xvfb") is not None, "Xvfb", "apt-get install xvfb")
    display = f":{100 + os.getpid() % 500}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "800x600x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = f"/tmp/.X11-unix/X{display[1:]}"
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        monkeypatch.setenv("DISPLAY", display)
        yield display
    finally:
        proc.terminate()
        proc.wait(5)


async def test_window_shows_frames_and_captions(xvfb):
    from edge.webrtc.window import WindowDisplay

    d = make_display("window")
    assert isinstance(d, WindowDisplay)
    track = TestPatternTrack(640, 480)
    try:
        for _ in range(10):
            d.show_video(await track.recv())
        d.show_caption("Bienvenue", "fr", "worker")
        for _ in range(100):
            if d.shown:
                break
            time.sleep(0.02)
        assert d.shown >= 1
        assert d.stats().video_frames == 10 and d.stats().width == 640
    finally:
        track.stop()
        d.close()
    assert not d._thread.is_alive()
