"""The router's FastAPI application: lifespan, error shapes, body limits, pages."""

from __future__ import annotations

import logging
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.tasks import Supervisor
from endpoints.desk import routes as desk_routes
from endpoints.floor import routes as floor_routes
from endpoints.shared import routes as shared_routes
from endpoints.telepresence import routes as telepresence_routes
from router.audit import AuditLog
from router.config import BatonConfig
from router.mqtt.routes import sync_api
from router.service.routes import api
from router.service.auth import TokenBook
from router.service.conversation import build_conversations
from router.service.core import Clock, CoreError, RouterCore
from router.service.routes_workspace import workspace_api
from router.service.http_errors import error_body, error_code, status_of
from router.service.hub import Hub
from router.service.web_security import SecurityHeaders, add_docs_and_icon
from router.service.ws import hello, ws_router
from router.store import StoreError, open_store

log = logging.getLogger("baton.app")

MAX_BODY = 64 * 1024


def default_db_url() -> str:
    url = os.environ.get("BATON_DB_URL")
    if url:
        return url
    path = Path(os.environ.get("BATON_DATA_DIR", "var")) / "baton.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes, declared or streamed, with a 413."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await _too_large(send, self.limit)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(send, self.limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send, limit: int) -> None:
    body = (f'{{"error":"payload_too_large","message":"request body over {limit} bytes; '
            f'send less"}}').encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class ErrorBody(BaseModel):
    error: str = Field(description="stable code: unauthorized, forbidden, not_found, conflict, "
                       "invalid_request, payload_too_large, …")
    message: str = Field(description="what went wrong and what to do")
    reason: str | None = Field(default=None, description="a typed reason where one exists "
                               "(e.g. seq_gap, refused)")


ERROR_RESPONSES = {
    401: {"model": ErrorBody, "description": "missing, unknown or revoked bearer token"},
    403: {"model": ErrorBody, "description": "your role or your relation to the case does "
          "not allow this"},
    404: {"model": ErrorBody, "description": "not found, or not yours to see"},
    409: {"model": ErrorBody, "description": "the case's state does not allow this now"},
    413: {"model": ErrorBody, "description": "request body over 64 KiB"},
    422: {"model": ErrorBody, "description": "the request does not match the schema"},
}


def create_app(cfg: BatonConfig, db_url: str | None = None, *, clock: Clock | None = None,
               autotick: bool = True, mqtt=None, tls: bool = False) -> FastAPI:
    """``mqtt``: router.mqtt.bridge.BridgeSettings for the MQTT bridge; None reads them from
    BATON_MQTT_HOST/PORT/... (no bridge when BATON_MQTT_HOST is unset); False: no bridge.
    ``tls``: served over HTTPS (HSTS goes on every response then)."""
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from router.mqtt.bridge import Bridge, settings_from_env

        bridge_settings = settings_from_env() if mqtt is None else (mqtt or None)
        store = await open_store(db_url or default_db_url())
        if ha is not None:  # partitioned mode (router/ha/): one core per led partition
            from router.ha.web import partitioned

            app.state.core = app.state.hub = None
            app.state.audit = AuditLog(clock.now if clock else time.time, _audit_path(db_url))
            try:
                async with partitioned(app, cfg, store, ha, clock=clock, autotick=autotick,
                                       mqtt=bridge_settings):
                    yield
            finally:
                await store.close()
            return
        core = RouterCore(cfg, store, clock=clock, autotick=autotick)
        app.state.core = core
        app.state.audit = core.audit = AuditLog(core.clock.now, _audit_path(db_url))
        hub = app.state.hub = Hub(snapshot=lambda principal: hello(core, principal))
        # The sockets' feed: a subscriber like any other (router/service/core/events.py).
        tasks = Supervisor("router", logger=log)
        hub_feed = core.subscribe("ws-hub")
        tasks.keep("ws-hub", lambda: hub.run(hub_feed))
        bridge = None
        try:
            await core.start()
            app.state.conversations = build_conversations(core)
            if bridge_settings is not None:
                bridge = app.state.bridge = Bridge(core, bridge_settings)
                await bridge.start()
                app.state.conversations.send_command = bridge.send_command
            yield
        finally:
            if bridge is not None:
                await bridge.aclose()
            conversations = getattr(app.state, "conversations", None)
            if conversations is not None:
                await conversations.assistant.aclose()
            await core.aclose()  # ends the hub's feed
            await tasks.aclose()
            await store.close()

    app = FastAPI(title="Baton router", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Routes customer-service cases between AI and people across "
                  "kiosks, telepresence robots and browsers. Authenticate with "
                  "`Authorization: Bearer <token>` (see docs/security.md).")
    app.state.cfg = cfg
    app.state.tokens = TokenBook(cfg)
    from router.ha.settings import ha_settings_from_env

    ha = ha_settings_from_env()  # None: the single-router default
    if ha is not None:
        from router.ha.web import PartitionPrefix, ha_routes

        app.add_middleware(PartitionPrefix)
        app.include_router(ha_routes(app))
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders, force_https=tls)
    add_docs_and_icon(app)
    app.include_router(api, responses=ERROR_RESPONSES)
    app.include_router(ws_router)
    app.include_router(sync_api, responses=ERROR_RESPONSES)
    app.include_router(workspace_api, responses=ERROR_RESPONSES)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": error_code(exc.status_code), "message": exc.detail},
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"error": "invalid_json", "message": "request body is not valid "
                                 "JSON: " + errors[0].get("ctx", {}).get("error", "")},
                                status_code=400)
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:8]]
        return JSONResponse({"error": "invalid_request", "message": "; ".join(parts),
                             "detail": [{"loc": e["loc"], "msg": e["msg"], "type": e["type"]}
                                        for e in errors[:8]]},
                            status_code=422)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError):
        log.warning("store error: %s", exc)
        return JSONResponse({"error": "unavailable", "message": "the case store is "
                             "unavailable; try again shortly"}, status_code=503)

    @app.exception_handler(CoreError)
    async def core_error(request: Request, exc: CoreError):
        return JSONResponse(error_body(exc), status_code=status_of(exc))

    @app.get("/healthz", include_in_schema=False)
    async def healthz():
        return {"ok": True}

    # The surfaces (endpoints/): each mounts its own page and assets.
    for surface in (shared_routes, floor_routes, desk_routes, telepresence_routes):
        surface.mount(app)
    return app


def _audit_path(db_url: str | None) -> Path | None:
    """Next to the SQLite store, or in BATON_DATA_DIR; None keeps it in memory only."""
    data = os.environ.get("BATON_DATA_DIR")
    if data:
        return Path(data) / "audit.jsonl"
    url = db_url or default_db_url()
    if url.startswith("sqlite") and ":///" in url and ":memory:" not in url:
        return Path(url.split(":///", 1)[1]).parent / "audit.jsonl"
    return None

