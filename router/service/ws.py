"""The workers' and supervisors' WebSocket: presence, offers pushed, accept/reject, updates.

Protocol (JSON text frames). Client → router, first (browsers; other clients may send
'Authorization: Bearer …' on the upgrade instead; never a token in the URL):
  {"type": "auth", "token": "…"}             within AUTH_TIMEOUT_S, else closed with 4401
then:
  {"type": "presence", "presence": "available" | "away" | "offline"}
  {"type": "accept", "offer_id": "…"}        {"type": "reject", "offer_id": "…", "reason": "…"}
  {"type": "ping"}
  {"type": "signal_start", "case_id": "…"}       → signal_session (session id, ICE servers)
  {"type": "signal", "case_id": "…", "signal": {offer | answer | candidate | bye}}
    (WebRTC signaling to the case's device; only its assigned worker, while connected;
    see router/mqtt/signal_relay.py and docs/protocol.md §11)
Router → client:
  hello (snapshot on connect), offer, offer_closed, accepted (with the packet), case,
  presence, step, alert, signal_session, signal (from the device), error (with the
  request's type), pong.
The frames' models live with whoever sends them: sign-in and ping in protocol/socket.py, the
desk's in endpoints/desk/messages.py, live video's in endpoints/telepresence/messages.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Union

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import Field, TypeAdapter, ValidationError

from endpoints.desk.messages import AcceptMsg, PresenceMsg, RejectMsg
from endpoints.telepresence.messages import SignalMsg, SignalStartMsg
from protocol.models import Presence
from protocol.socket import AuthMsg, PingMsg
from router.service import views
from router.service.auth import DESK_ROLES, WORKER_ROLES, Access, access, wrapup_s
from router.service.core import CoreError, Forbidden, RouterCore
from router.service.http_errors import status_of
from router.service.hub import Connection, Hub, encoded

log = logging.getLogger("baton.ws")
ws_router = APIRouter()
MAX_FRAME = 16 * 1024
MAX_SIGNAL_FRAME = 64 * 1024  # a browser's SDP can pass 16 KiB
# The server's own limit (uvicorn ws_max_size): a bigger frame closes the socket (1009)
# before it is buffered, instead of being read whole and refused by the checks below.
WS_MAX_SIZE = MAX_SIGNAL_FRAME + 1024
AUTH_TIMEOUT_S = 10.0
MAX_AUTH_FRAME = 1024


Incoming = TypeAdapter(Annotated[Union[PresenceMsg, AcceptMsg, RejectMsg, PingMsg,
                                       SignalStartMsg, SignalMsg],
                                 Field(discriminator="type")])


@ws_router.websocket("/v1/ws")
async def worker_socket(ws: WebSocket) -> None:
    # Partitioned mode (router/ha/web.py) puts the partition's core and hub on the request.
    core: RouterCore = getattr(ws.state, "core", None) or ws.app.state.core
    await ws.accept()  # before any refusal, so the client sees the close code and reason
    if "token" in ws.query_params:
        # Refused even when valid: URLs end up in access logs and browser history.
        await ws.close(code=4401, reason='never put the token in the URL: send {"type": '
                       '"auth", "token": "…"} as the first message')
        return
    principal = await _authenticate(ws)
    if principal is None:
        return
    if principal.role not in WORKER_ROLES and not principal.sees_everything:
        await ws.close(code=4403, reason=f"role {principal.role.value} has no worker socket")
        return
    audit = getattr(ws.app.state, "audit", None)
    if audit is not None:
        audit.token_used(principal.subject, ws.client.host if ws.client else None, "ws")
    conn = Connection(principal.subject, principal.role)
    hub: Hub = getattr(ws.state, "hub", None) or ws.app.state.hub
    hub.attach(conn)
    core.connected(principal.subject)
    sender = asyncio.create_task(_send_loop(ws, conn), name=f"ws-send-{principal.subject}")
    try:
        conn.send(hello(core, principal))
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            raw = frame.get("text")
            if raw is None:
                conn.send({"type": "error", "message": "send JSON text frames, not binary"})
                continue
            await _handle(core, conn, principal, raw,
                          getattr(ws.state, "bridge", None)
                          or getattr(ws.app.state, "bridge", None))
    except WebSocketDisconnect:
        pass
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        # A supervisor on the roster goes offline like a worker (no-op for anyone else).
        if hub.detach(conn) == 0:
            core.disconnected(principal.subject,
                              presence_follows=principal.role in DESK_ROLES)


async def _authenticate(ws: WebSocket):
    """The upgrade's bearer header, else the first message; closes with 4401 on failure."""
    tokens = ws.app.state.tokens
    auth = ws.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        principal = tokens.lookup(auth[7:].strip())
    else:
        try:
            frame = await asyncio.wait_for(ws.receive(), AUTH_TIMEOUT_S)
        except asyncio.TimeoutError:
            await ws.close(code=4401, reason=f"no auth message within {AUTH_TIMEOUT_S:.0f} s")
            return None
        if frame["type"] == "websocket.disconnect":
            return None
        raw = frame.get("text") or ""
        try:
            if len(raw) > MAX_AUTH_FRAME:
                raise ValueError("too large")
            principal = tokens.lookup(AuthMsg.model_validate_json(raw).token)
        except (ValidationError, ValueError):
            await ws.close(code=4401, reason='first message must be {"type": "auth", '
                           '"token": "…"}')
            return None
    if principal is None:
        await ws.close(code=4401, reason="unknown or revoked token")
    return principal


async def _send_loop(ws: WebSocket, conn: Connection) -> None:
    while True:
        msg = await conn.queue.get()
        if msg.get("type") == "_close":
            await ws.close(code=1013, reason=msg.get("reason", "overloaded"))
            return
        await ws.send_text(encoded(msg))


def hello(core: RouterCore, principal) -> dict:
    """The snapshot a socket gets on connect, and again when the hub resynchronises."""
    now, wrapup = core.clock.now(), wrapup_s(core.cfg)
    visible = [c for c in core.open_cases()
               if access(principal, c, now, wrapup) >= Access.read]
    # A warm transfer's offer is searched under a shadow id: shown under the real case.
    offers = [o.model_copy(update={"case_id": core.warm.real_id(o.case_id)}).model_dump(
              mode="json") for o in core.offers_of(principal.subject)]
    presence = core.presence_of(principal.subject) or Presence.offline
    return {"type": "hello", "subject": principal.subject, "role": principal.role.value,
            "presence": presence.value, "offers": offers,
            "cases": [views.case_view(c, core) for c in visible]}


async def _handle(core: RouterCore, conn: Connection, principal, raw: str,
                  bridge=None) -> None:
    if len(raw) > MAX_SIGNAL_FRAME:
        conn.send({"type": "error", "message": f"message too large (max {MAX_FRAME} bytes; "
                   f"{MAX_SIGNAL_FRAME} for signal)"})
        return
    try:
        msg = Incoming.validate_json(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        conn.send({"type": "error", "message": f"invalid message: {where}: {err['msg']}; see "
                   "the protocol in router/service/ws.py"})
        return
    if len(raw) > MAX_FRAME and not isinstance(msg, SignalMsg):
        conn.send({"type": "error", "message": f"message too large (max {MAX_FRAME} bytes)"})
        return
    if isinstance(msg, (SignalStartMsg, SignalMsg)):
        return _signal(conn, principal, msg, bridge)
    try:
        if isinstance(msg, PingMsg):
            conn.send({"type": "pong"})
        elif isinstance(msg, PresenceMsg):
            if core.presence_of(principal.subject) is None:
                raise Forbidden(f"you ({principal.subject}) are not in the worker roster "
                                "(config/workers.yaml, or a supervisor with languages in "
                                "config/tokens.yaml): only people on it have a presence "
                                "and take cases", reason="not_in_roster")
            await core.set_presence(principal.subject, msg.presence, "set from the desk")
        elif isinstance(msg, AcceptMsg):
            case = await core.accept_offer(principal.subject, msg.offer_id)
            conn.send({"type": "accepted", "offer_id": msg.offer_id,
                       "case": views.case_view(case, core),
                       "packet": await core.packet(case.id)})
        elif isinstance(msg, RejectMsg):
            await core.reject_offer(principal.subject, msg.offer_id, reason=msg.reason)
            conn.send({"type": "offer_closed", "offer_id": msg.offer_id, "status": "rejected"})
    except CoreError as exc:
        conn.send({"type": "error", "request": msg.type, "status": status_of(exc),
                   "message": str(exc)})


def _signal(conn: Connection, principal, msg, bridge) -> None:
    from router.mqtt.signal_relay import SignalRefused

    try:
        if bridge is None:
            raise SignalRefused("signaling needs the router's MQTT bridge (set "
                                "BATON_MQTT_HOST); none is running")
        if isinstance(msg, SignalStartMsg):
            conn.send(bridge.relay.start(principal, msg.case_id))
        else:
            bridge.relay.from_worker(principal, msg.case_id, msg.signal)
    except SignalRefused as exc:
        if bridge is not None:
            bridge.relay.stats["refused"] += 1
        log.info("signal refused", extra={"subject": principal.subject,
                                          "case_id": msg.case_id, "error": str(exc)})
        conn.send({"type": "error", "request": msg.type, "case_id": msg.case_id,
                   "message": str(exc)})
