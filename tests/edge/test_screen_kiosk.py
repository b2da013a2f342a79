"""``--display browser``: the station opens the resident's page in Chromium's kiosk mode on
the device's screen (here an Xvfb display), and closes it with the station."""

from __future__ import annotations

import asyncio
import os
import shutil

import pytest

from edge.screen.host import ScreenHost
from edge.screen.strings import load_screen_config
from edge.station import display_kind
from tests.helpers import require
from tests.webrtc.test_display import xvfb  # noqa: F401 (fixture)

LANGS = ["ja", "en", "es", "pt", "zh"]


class NoActions:
    async def say(self, text: str, language: str) -> None: ...

    async def rate(self, case_id: str, score: int) -> None: ...


def test_auto_picks_the_browser_where_chromium_and_a_screen_exist(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display_kind("auto") == "record"
    monkeypatch.setenv("DISPLAY", ":0")
    assert display_kind("auto") == ("browser" if shutil.which("chromium") else "window")
    assert display_kind("window") == "window"


async def test_kiosk_browser_opens_the_page_and_closes_with_the_station(xvfb):  # noqa: F811
    require(shutil.which("chromium") is not None, "Chromium", "apt-get install chromium")
    host = ScreenHost(load_screen_config(None, LANGS), LANGS, NoActions(), port=0,
                      browser=True)
    await host.start()
    try:
        assert host.browser is not None
        for _ in range(300):  # the page connects its WebSocket once loaded
            if host.server.clients:
                break
            assert host.browser.poll() is None, "Chromium exited"
            await asyncio.sleep(0.1)
        assert len(host.server.clients) == 1
        args = host.browser.args
        assert "--kiosk" in args and f"--app={host.url}" in args
        profile = host._profile
        assert profile and os.path.isdir(profile)
    finally:
        await host.aclose()
    assert host.browser.poll() is not None
    assert not os.path.exists(profile)
