"""The web side of partitioned mode: per-partition URLs, /readyz, /metrics, the lifespan.

Partitioned mode is on when BATON_HA_INSTANCE names this router (router/ha/settings.py;
the store must be PostgreSQL); otherwise nothing here runs and the router is the single-router default.

Every existing REST route and the worker WebSocket are served per partition under
``/p/<partition>/`` (``/p/city/v1/cases``, ``/p/city/v1/ws``): the router that leads the
partition runs them on that partition's RouterCore (the request's ``state.core``/``hub``,
read by routes/deps.py and ws.py). Another router forwards the request to the leader and
relays the socket (router/ha/forward.py); a request that was already forwarded once gets
421 ``not_leader`` instead (no loops).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text

from router.ha.forward import FORWARDED, Forwarder
from router.ha.leader import Leadership, Term
from router.ha.partitions import load_partitions
from router.ha.settings import HaSettings

_PREFIX = re.compile(r"^/p/([A-Za-z0-9][A-Za-z0-9_.:-]{0,63})(/.*)$")


class Metrics:
    """What /metrics exposes (one registry per app, so tests can run several apps)."""

    def __init__(self, leadership: Leadership):
        self.registry = r = CollectorRegistry()
        self.leading = Gauge("baton_partitions_led", "partitions this router leads now",
                             registry=r)
        self.leading.set_function(lambda: len(leadership.terms))
        self.gained = Gauge("baton_leadership_gained_total", "terms started (incl. failovers "
                            "taken over)", registry=r)
        self.gained.set_function(lambda: leadership.gained)
        self.lost = Gauge("baton_leadership_lost_total", "terms ended by a failed renewal",
                          registry=r)
        self.lost.set_function(lambda: leadership.lost)
        self.live = Gauge("baton_live_routers", "routers with an unexpired instance row",
                          registry=r)
        self.live.set_function(lambda: leadership.live_routers)
        self.open_cases = Gauge("baton_open_cases", "open cases in the led partitions",
                                registry=r)
        self.open_cases.set_function(
            lambda: sum(len(t.core.open_cases()) for t in leadership.terms.values()))
        self.not_leader = Counter("baton_not_leader_total", "requests for a partition this "
                                  "router does not lead", registry=r)
        self.forwarded = Counter("baton_forwarded_total", "requests forwarded (kind http) and "
                                 "sockets relayed (kind ws) to a partition's leader, by "
                                 "outcome", ["kind", "outcome"], registry=r)
        self.relayed = Gauge("baton_relayed_sockets", "client sockets relayed to another "
                             "router now", registry=r)


def ha_routes(app: FastAPI) -> APIRouter:
    routes = APIRouter()

    @routes.get("/readyz", include_in_schema=False)
    async def readyz(request: Request):
        leadership: Leadership | None = getattr(request.app.state, "leadership", None)
        body = {"ready": False, "instance": None, "leads": [], "store": False}
        if leadership is not None:
            body["instance"] = leadership.instance
            body["address"] = leadership.address
            body["leads"] = sorted(leadership.terms)
            body["epochs"] = {p: t.epoch for p, t in leadership.terms.items()}
            try:
                async with leadership.store._b.read() as conn:
                    await asyncio.wait_for(conn.execute(text("SELECT 1")), 2.0)
                body["store"] = True
            except Exception as exc:  # any failure means not ready; say why
                body["error"] = f"{type(exc).__name__}: {exc}"[:200]
        body["ready"] = body["store"]
        return JSONResponse(body, status_code=200 if body["ready"] else 503)

    @routes.get("/metrics", include_in_schema=False)
    async def metrics(request: Request):
        m: Metrics | None = getattr(request.app.state, "metrics", None)
        if m is None:
            return Response("starting\n", status_code=503)
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    return routes


class PartitionPrefix:
    """ASGI middleware: ``/p/<partition>/rest`` runs ``/rest`` on that partition's core."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        m = _PREFIX.match(scope["path"])
        if m is None:
            return await self.app(scope, receive, send)
        pid, rest = m.groups()
        state = scope["app"].state if "app" in scope else None
        leadership: Leadership | None = getattr(state, "leadership", None)
        term: Term | None = leadership.terms.get(pid) if leadership else None
        if term is None:
            metrics = getattr(state, "metrics", None)
            if metrics is not None:
                metrics.not_leader.inc()
            if leadership is not None and leadership.partitions.get(pid) is None:
                return await _refuse(scope, send, 404, "not_found", f"no partition {pid!r} "
                                     "(config/partitions.yaml)", code=4404)
            forwarder: Forwarder | None = getattr(state, "forwarder", None)
            forwarded = any(k.lower() == FORWARDED.encode() for k, _ in scope["headers"])
            if forwarder is not None and not forwarded:
                if scope["type"] == "websocket":
                    return await forwarder.relay_socket(scope, receive, send, pid)
                return await forwarder.http_request(scope, receive, send, pid)
            # Already forwarded once (the sender's view of the leases was stale): no loops.
            leader = await _leader_of(leadership, pid)
            return await _refuse(scope, send, 421, "not_leader", f"this router does not "
                                 f"lead partition {pid!r}; leader: {leader}", code=4421,
                                 leader=leader)
        scope = dict(scope, path=rest, raw_path=rest.encode(),
                     state={**scope.get("state", {}), "core": term.core,
                            "hub": term.extras.get("hub"), "partition": pid,
                            "bridge": term.extras.get("bridge"),
                            "conversations": term.extras.get("conversations")})
        return await self.app(scope, receive, send)


async def _refuse(scope, send, status: int, error: str, message: str, *, code: int,
                  **extra) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": code, "reason": message[:120]})
        return
    body = json.dumps({"error": error, "message": message, **extra}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _leader_of(leadership: Leadership | None, pid: str) -> str | None:
    if leadership is None:
        return None
    try:
        leases = await leadership.book.all()
    except Exception:
        return None
    return next((lease.holder for lease in leases
                 if lease.partition == pid and lease.remaining_s > 0), None)


@asynccontextmanager
async def partitioned(app: FastAPI, cfg, store, settings: HaSettings, *, clock=None,
                      autotick: bool = True, mqtt=None):
    """Lead partitions while the app runs: a Hub and a socket feed per term, and with
    ``mqtt`` (BridgeSettings) the partition's MQTT bridge (router/ha/devices.py)."""
    from router.service.hub import Hub
    from router.service.ws import hello

    # The partition's MQTT bridge (router/ha/devices.py), when a broker is configured.
    bridges = None
    if mqtt is not None:
        from router.ha.devices import PartitionBridges

        bridges = app.state.bridges = PartitionBridges(mqtt, settings.ttl_s, settings.poll_s)
    # Resident turns: one Conversations per led partition's core, on one transition layer
    # and assistant for the process (the embedding model loads once, before leading).
    from router.service.conversation import Conversations, dialogue_parts

    layer, assistant = await asyncio.to_thread(dialogue_parts, cfg,
                                               clock.now if clock else time.time)

    async def gain(term: Term) -> None:
        core = term.core
        core.audit = app.state.audit
        hub = Hub(snapshot=lambda principal: hello(core, principal))
        term.extras["hub"] = hub
        term.extras["feed"] = asyncio.create_task(hub.run(core.subscribe("ws-hub")),
                                                  name=f"baton-ws-hub-{term.partition}")
        term.extras["since"] = time.time()
        conversations = term.extras["conversations"] = Conversations(core, layer, assistant)
        if bridges is not None:
            await bridges.start(term)  # sets term.extras["bridge"]

            async def send_command(*args, **kwargs):
                # The term's bridge as it is now (the guard may have restarted it).
                return await term.extras["bridge"].send_command(*args, **kwargs)

            conversations.send_command = send_command  # chat to the partition's devices

    async def lose(term: Term) -> None:
        if bridges is not None:  # disconnect before the core stops
            await bridges.stop(term)
        # The partition's sockets must reconnect (to its new leader) and resync from hello.
        hub = term.extras.get("hub")
        if hub is not None:
            conns = {c for cs in hub._by_subject.values() for c in cs} | set(hub._watchers)
            for conn in conns:
                conn.send({"type": "_close", "reason": "this router no longer leads the "
                           f"partition {term.partition}: reconnect"})
        feed = term.extras.pop("feed", None)
        if feed is not None:
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)

    leadership = Leadership(cfg, store, settings.instance, load_partitions(cfg),
                            ttl_s=settings.ttl_s, poll_s=settings.poll_s, clock=clock,
                            autotick=autotick, on_gain=gain, on_lose=lose,
                            address=settings.advertise_url)
    app.state.leadership = leadership
    app.state.metrics = metrics = Metrics(leadership)
    forwarder = Forwarder(leadership, timeout_s=settings.forward_timeout_s,
                          count=lambda kind, outcome: metrics.forwarded.labels(kind, outcome).inc())
    metrics.relayed.set_function(lambda: forwarder.relayed)
    await leadership.start()
    app.state.forwarder = forwarder
    try:
        yield leadership
    finally:
        app.state.forwarder = None
        await leadership.aclose()
        await forwarder.aclose()
        if bridges is not None:
            await bridges.aclose()
        await assistant.aclose()
