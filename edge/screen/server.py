"""The resident's page, served by ``baton edge`` on loopback (Starlette under uvicorn, inside
the station's event loop).

    GET  /                 the page (edge/screen/static/index.html)
    GET  /static/…         its script and style (no CDN: the device may be offline)
    WS   /ws               server → page: {"type": "screen", …} snapshots (newest wins),
                           {"type": "offer", "sdp"} the worker's video (edge/screen/video.py),
                           {"type": "video_off"};
                           page → server: PageMessage (language, say, person, rating,
                           more_time, finish, answer)

Only a page from this server may use the socket (its Origin is checked): any other web
page the kiosk browser might show cannot drive the resident's screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from common.errors import BatonError

log = logging.getLogger("baton.edge.screen")
STATIC = Path(__file__).resolve().parent / "static"
MAX_PAGE_MESSAGE = 16_384


class ScreenError(BatonError):
    """The resident's page cannot be served (the message says what to do)."""

    reason = "screen_unavailable"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChooseLanguage(_In):
    type: Literal["language"]
    language: str = Field(max_length=16)


class Say(_In):
    type: Literal["say"]
    text: str = Field(min_length=1, max_length=2000)


class AskPerson(_In):
    type: Literal["person"]


class Rate(_In):
    type: Literal["rating"]
    score: int = Field(ge=1, le=5)


class MoreTime(_In):
    type: Literal["more_time"]


class Finish(_In):
    type: Literal["finish"]


class Answer(_In):
    type: Literal["answer"]
    sdp: str = Field(max_length=MAX_PAGE_MESSAGE)


PageMessage = Annotated[ChooseLanguage | Say | AskPerson | Rate | MoreTime | Finish | Answer,
                        Field(discriminator="type")]
page_message: TypeAdapter[PageMessage] = TypeAdapter(PageMessage)


class PageClient:
    """One open page: the newest snapshot and any signaling, sent in order by one task."""

    def __init__(self, ws: WebSocket):
        self.ws = ws
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=64)
        self.video: Any = None  # edge.screen.video.PageVideo while video is on

    def send(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "screen":  # only the newest snapshot matters
            kept = [m for m in self._drain() if m.get("type") != "screen"]
            for m in kept:
                self.outbox.put_nowait(m)
        with contextlib.suppress(asyncio.QueueFull):
            self.outbox.put_nowait(msg)

    def _drain(self) -> list[dict[str, Any]]:
        out = []
        while not self.outbox.empty():
            out.append(self.outbox.get_nowait())
        return out


Handler = Callable[[PageClient, Any], Awaitable[None]]


class ScreenServer:
    """``on_message(client, msg)`` handles each validated page message; ``on_open(client)``
    runs when a page connects (send it the current snapshot)."""

    def __init__(self, on_message: Handler, on_open: Callable[[PageClient], None],
                 on_close: Callable[[PageClient], Awaitable[None]], *,
                 host: str = "127.0.0.1", port: int = 0):
        self.on_message, self.on_open, self.on_close = on_message, on_open, on_close
        self.host, self.port = host, port
        self.clients: set[PageClient] = set()
        self._server: Any = None
        self._task: asyncio.Task | None = None
        self.app = Starlette(routes=[
            Route("/", self._index), WebSocketRoute("/ws", self._ws),
            Mount("/static", StaticFiles(directory=STATIC), name="static")])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        import socket

        import uvicorn

        class _Server(uvicorn.Server):
            # The station owns SIGINT/SIGTERM; uvicorn must not take them over.
            @contextlib.contextmanager
            def capture_signals(self):  # type: ignore[override]
                yield

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ScreenError(f"the resident's page cannot listen on {self.host}:{self.port} "
                              f"({exc.strerror}): choose another --screen-port (0 for any "
                              "free port)") from None
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off",
                                ws_max_size=MAX_PAGE_MESSAGE, access_log=False)
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]),
                                         name="edge-screen-server")
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what went wrong
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        for c in list(self.clients):
            await self.on_close(c)
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)
            if not self._task.done():
                self._task.cancel()

    def broadcast(self, msg: dict[str, Any]) -> None:
        for c in self.clients:
            c.send(msg)

    async def _index(self, request) -> Response:
        return FileResponse(STATIC / "index.html", headers={
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: ; "
                                       "media-src 'self' blob: mediastream:; img-src 'self' data:"})

    def _same_origin(self, ws: WebSocket) -> bool:
        origin = ws.headers.get("origin")
        host = ws.headers.get("host", "")
        return origin in (f"http://{host}", None) and host.split(":")[0] in (
            "127.0.0.1", "localhost")

    async def _ws(self, ws: WebSocket) -> None:
        if not self._same_origin(ws):
            await ws.close(code=4403, reason="only the device's own page may connect")
            return
        await ws.accept()
        client = PageClient(ws)
        self.clients.add(client)
        sender = asyncio.create_task(self._send_loop(client), name="edge-screen-send")
        try:
            self.on_open(client)
            while True:
                raw = await ws.receive_text()
                try:
                    msg = page_message.validate_python(json.loads(raw))
                except (ValueError, ValidationError) as exc:
                    client.send({"type": "error", "message": f"invalid message: {exc}"[:300]})
                    continue
                try:
                    await self.on_message(client, msg)
                except Exception as exc:  # noqa: BLE001 - one failed action never ends the page
                    log.exception("screen action failed", extra={"type": msg.type})
                    client.send({"type": "error", "message": str(exc)[:300]})
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.clients.discard(client)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            await self.on_close(client)

    async def _send_loop(self, client: PageClient) -> None:
        while True:
            msg = await client.outbox.get()
            await client.ws.send_text(json.dumps(msg, ensure_ascii=False))
