"""The resident's screen inside the station: the model, the page server, the worker's video
to each open page, the goodbye countdown, and (``--display browser``) Chromium in kiosk mode.

The station tells the host what happened (``host.model.…`` then ``host.push()``); the page's
actions come back through ``ScreenActions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any, Protocol

from common.tasks import Supervisor
from edge.screen.model import ScreenModel
from edge.screen.server import (
    Answer,
    AskPerson,
    ChooseLanguage,
    Finish,
    MoreTime,
    PageClient,
    Rate,
    Say,
    ScreenServer,
)
from edge.screen.strings import ScreenConfig
from edge.screen.video import PageVideo

log = logging.getLogger("baton.edge.screen")

# Chromium on the device: full screen, no browser UI, no first-run prompts; media plays
# without a click (the resident never has to press "play").
KIOSK_ARGS = ["--kiosk", "--no-first-run", "--disable-translate", "--noerrdialogs",
              "--disable-infobars", "--autoplay-policy=no-user-gesture-required",
              "--disable-session-crashed-bubble", "--overscroll-history-navigation=0"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or \
        shutil.which("google-chrome")


class ScreenActions(Protocol):
    async def say(self, text: str, language: str) -> None: ...

    async def rate(self, case_id: str, score: int) -> None: ...


class ScreenHost:
    def __init__(self, cfg: ScreenConfig, languages: list[str], actions: ScreenActions, *,
                 port: int = 0, browser: bool = False, fullscreen: bool = True,
                 clock=time.monotonic):
        self.cfg, self.actions, self.clock = cfg, actions, clock
        self.model = ScreenModel(cfg, list(languages))
        self.server = ScreenServer(self._on_message, self._on_open, self._on_close, port=port)
        self.open_browser, self.fullscreen = browser, fullscreen
        self.browser: subprocess.Popen | None = None
        self._profile: str | None = None
        self._peer: Any = None  # the MediaPeer whose video the pages show
        self.tasks = Supervisor("screen", logger=log)

    @property
    def url(self) -> str:
        return self.server.url

    async def start(self) -> None:
        await self.server.start()
        self.tasks.keep("ticker", self._ticker)
        if self.open_browser:
            try:
                self.browser = await asyncio.to_thread(self._launch_browser)
            except OSError as exc:  # the page is still served: open it by hand
                log.warning("could not start Chromium for the resident's screen",
                            extra={"error": str(exc), "url": self.url})

    async def aclose(self) -> None:
        await self.tasks.aclose()
        await self.server.aclose()
        if self.browser is not None and self.browser.poll() is None:
            self.browser.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self.browser.wait, 5)
            if self.browser.poll() is None:
                self.browser.kill()
        if self._profile:
            shutil.rmtree(self._profile, ignore_errors=True)

    def _launch_browser(self) -> subprocess.Popen:
        exe = chromium_path()
        if exe is None:
            raise FileNotFoundError("--display browser needs Chromium: apt-get install chromium")
        # Its own profile: never joins (or is closed with) a browser the user runs.
        self._profile = tempfile.mkdtemp(prefix="baton-screen-")
        args = KIOSK_ARGS if self.fullscreen else \
            [a for a in KIOSK_ARGS if a != "--kiosk"] + ["--window-size=800,1000"]
        if os.geteuid() == 0:  # Chromium refuses to run as root inside its sandbox
            args = [*args, "--no-sandbox"]
        return subprocess.Popen([exe, *args, f"--user-data-dir={self._profile}",
                                 f"--app={self.url}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    # --- the page ---------------------------------------------------------------------

    def push(self) -> None:
        self.server.broadcast(self.model.snapshot(self.clock()))

    async def _ticker(self) -> None:
        """The goodbye countdown: clears the screen when its time is up."""
        while True:
            await asyncio.sleep(1.0)
            if self.model.state == "end":
                if self.model.tick(self.clock()):
                    await self.video_off()
                self.push()

    def _on_open(self, client: PageClient) -> None:
        client.send(self.model.snapshot(self.clock()))
        if self._peer is not None and self.model.video:
            self.tasks.spawn(self._offer(client, self._peer), "offer")

    async def _on_close(self, client: PageClient) -> None:
        if client.video is not None:
            video, client.video = client.video, None
            await video.aclose()

    async def _on_message(self, client: PageClient, msg: Any) -> None:
        m, now = self.model, self.clock()
        match msg:
            case ChooseLanguage():
                if m.state in ("end",):
                    m.clear()
                m.choose_language(msg.language)
            case Say():
                # The turn takes a router round trip: the page keeps working meanwhile.
                self.tasks.spawn(self.actions.say(msg.text, m.language or m.site_languages[0]),
                                 "say")
                return
            case AskPerson():
                lang = m.language or m.site_languages[0]
                self.tasks.spawn(self.actions.say(self.cfg.languages[lang].person_request, lang),
                                 "person")
                return
            case Rate():
                case_id = m.case_id
                m.rate(msg.score, now)
                if case_id:
                    await self.actions.rate(case_id, msg.score)
            case MoreTime():
                m.more_time(now)
            case Finish():
                m.finish()
            case Answer():
                if client.video is not None:
                    await client.video.answer(msg.sdp)
                return
        self.push()

    # --- the worker's video -----------------------------------------------------------

    async def video_on(self, peer: Any) -> None:
        """The worker's video arrived at the edge: show it on every open page."""
        await self.video_off()
        self._peer = peer
        self.model.video_started()
        for client in list(self.server.clients):
            await self._offer(client, peer)
        self.push()

    async def video_off(self) -> None:
        self._peer = None
        for client in list(self.server.clients):
            if client.video is not None:
                video, client.video = client.video, None
                client.send({"type": "video_off"})
                await video.aclose()
        if self.model.video:
            self.model.video_ended()
            self.push()

    async def _offer(self, client: PageClient, peer: Any) -> None:
        tracks = [t for t in (peer.subscribe("video"), peer.subscribe("audio")) if t]
        if not tracks:
            return
        video = PageVideo(tracks)
        client.video = video
        sdp = await video.offer()
        if client.video is video:
            client.send({"type": "offer", "sdp": sdp})
