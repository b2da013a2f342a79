"""Every router serves every partition: what a router does with ``/p/<partition>/...`` when
it does not lead that partition.

- **REST** is forwarded to the partition's leader (its advertised base URL, the
  ``instance/<name>`` lease row's ``address``) with the caller's headers as they came (the
  bearer token among them: the leader authenticates and authorises the caller as usual, so
  the audit and the events name the caller, never the forwarding router), through one shared
  ``httpx.AsyncClient`` with a bounded timeout. The leader's answer goes back unchanged.
- **The worker socket** is relayed: the router accepts the client's socket, opens one to
  the leader's ``/p/<partition>/v1/ws`` with the caller's headers (and replays the
  client's ``auth`` message when it signed in by message), and copies frames both ways. So
  the socket gets exactly what a socket on the leader gets (its hello snapshot, offers,
  case updates filtered for the caller) and its commands run on the leader. When the leader
  goes away (killed, or it lost the partition and closed its sockets with 1013) the relay
  finds the partition's next leader and opens a new upstream socket: the client's socket
  stays open and gets the new leader's ``hello`` (the revision-based resync: what it holds,
  what is offered to it). A close the leader means for the client (a refused token, a role
  without a socket) is passed on as it is.

Why a relay and not LISTEN/NOTIFY fan-out: the leader's hub already decides what each
principal may see and builds the hello; followers would have to rebuild that view from the
store for every update (or duplicate the filtering), NOTIFY payloads are limited to 8 kB
and carry no per-socket filtering, and socket commands would still need forwarding. The
relay costs one extra hop and one upstream socket per relayed client.

Loops are impossible: forwarded requests carry ``X-Baton-Forwarded: <instance>``; a router
that receives one for a partition it does not lead answers 421 ``not_leader`` (sockets:
close 4421) instead of forwarding again. The forwarding router then re-reads the leases
once (leadership moved between its read and the request) and otherwise answers 503.

Errors: 503 ``unavailable`` with a ``reason`` (``no_leader``, ``leader_unreachable``,
``leader_moving``, ``no_address``) and ``Retry-After``. A forwarded command whose answer
timed out may have run on the leader (as with any lost answer): retry with the same ids.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import httpx
import websockets
from websockets.exceptions import InvalidStatus, WebSocketException

from common.errors import BatonError
from router.ha.leader import Leadership
from router.store import StoreError

log = logging.getLogger(__name__)

FORWARDED = "x-baton-forwarded"
SERVED_BY = "x-baton-served-by"
RETRY_AFTER_S = 1
# The relay pings the leader: a leader machine that vanished without closing its sockets
# (power, network) is noticed within PING_S * 3 and the relay moves to the next leader.
PING_S = 5.0
# Request headers never passed on (hop-by-hop, or set by the client library for the
# upstream connection); everything else (authorization, cookies, content type) goes as is.
_HOP = {b"host", b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer",
        b"upgrade", b"proxy-authorization", b"proxy-connection", b"content-length",
        b"accept-encoding", b"sec-websocket-key", b"sec-websocket-version",
        b"sec-websocket-extensions", b"sec-websocket-accept", FORWARDED.encode()}
# Response headers passed back; the forwarding router's own middleware adds the rest
# (security headers), so they are not doubled.
_BACK = {"content-type", "retry-after", "location", "www-authenticate", "cache-control",
         "etag", "last-modified", "content-disposition", "link", SERVED_BY}
# Upstream socket closes that end the client's socket too (the leader meant them for the
# client); any other end (connection lost, 1012 restart, 1013 "no longer leads", 4421 a
# stale leader) makes the relay find the partition's leader again.
_FINAL_CLOSES = {1000, 1001, 1003, 1007, 1008, 1009, 1010, 4400, 4401, 4403, 4404}


class NoLeader(BatonError):
    """Nobody a request can be forwarded to: ``reason`` no_leader or no_address."""

    reason = "no_leader"

    def __init__(self, reason: str, message: str):
        super().__init__(message, reason=reason)


class Forwarder:
    """Owned by the app in partitioned mode (router/ha/web.py); one HTTP client shared by
    every forwarded request, closed with the app."""

    def __init__(self, leadership: Leadership, *, timeout_s: float = 5.0,
                 count: Callable[[str, str], None] | None = None,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.leadership = leadership
        self.instance = leadership.instance
        self.timeout_s = timeout_s
        self.http = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False,
                                      transport=transport,
                                      limits=httpx.Limits(max_connections=200,
                                                          max_keepalive_connections=50))
        self._count = count or (lambda kind, outcome: None)
        self._cache: dict[str, tuple[float, str, str]] = {}  # pid -> (at, holder, address)
        self.relayed = 0  # client sockets relayed now (metrics)
        self._relays: set[asyncio.Task] = set()

    async def aclose(self) -> None:
        await self.http.aclose()

    # --- where the leader is ---------------------------------------------------------------

    async def leader(self, pid: str, *, fresh: bool = False) -> tuple[str, str]:
        """(holder, address) of the partition's leader; raises NoLeader."""
        hit = self._cache.get(pid)
        if hit is not None and not fresh and time.monotonic() - hit[0] < self.leadership.poll_s:
            return hit[1], hit[2]
        try:
            row = await asyncio.wait_for(self.leadership.book.leader_of(pid), self.timeout_s)
        except asyncio.TimeoutError:
            raise NoLeader("no_leader", f"reading who leads partition {pid!r} took over "
                           f"{self.timeout_s:g} s (the store is slow); try again") from None
        except StoreError as exc:
            raise NoLeader("no_leader", f"cannot read who leads partition {pid!r} (the store "
                           f"is unavailable: {str(exc)[:120]}); try again shortly") from None
        if row is None:
            self._cache.pop(pid, None)
            raise NoLeader("no_leader", f"no router leads partition {pid!r} right now (a "
                           "failover is under way); try again shortly")
        holder, _, address = row
        if not address:
            raise NoLeader("no_address", f"{holder} leads partition {pid!r} but advertises no "
                           "address (set BATON_HA_ADVERTISE_URL on it)")
        self._cache[pid] = (time.monotonic(), holder, address)
        return holder, address

    def forget(self, pid: str) -> None:
        self._cache.pop(pid, None)

    # --- REST ------------------------------------------------------------------------------

    async def http_request(self, scope, receive, send, pid: str) -> None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k.lower() not in _HOP]
        headers.append((FORWARDED, self.instance))
        client = scope.get("client")
        if client:
            headers.append(("x-forwarded-for", client[0]))
        target = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        path = target.decode("latin-1") + (("?" + query.decode("latin-1")) if query else "")
        response = None
        for attempt in range(2):
            try:
                holder, address = await self.leader(pid, fresh=attempt > 0)
            except NoLeader as exc:
                self._count("http", exc.reason)
                return await unavailable(send, exc.reason, str(exc))
            try:
                response = await self.http.request(scope["method"], address + path,
                                                   headers=headers, content=bytes(body))
            except httpx.TimeoutException:
                self.forget(pid)
                self._count("http", "timeout")
                return await unavailable(
                    send, "leader_unreachable", f"{holder} (leader of partition {pid!r}) did "
                    f"not answer within {self.timeout_s:g} s; the request may have run there: "
                    "retry with the same ids")
            except httpx.TransportError as exc:
                # Not connected, or the connection dropped: a failover is likely under way.
                self.forget(pid)
                self._count("http", "unreachable")
                return await unavailable(
                    send, "leader_unreachable", f"{holder} (leader of partition {pid!r}) at "
                    f"{address} cannot be reached ({type(exc).__name__}); try again shortly")
            if response.status_code != 421:
                break
            # It lost the partition after we read the leases: read them again, once.
            self.forget(pid)
        if response.status_code == 421:
            self._count("http", "leader_moving")
            return await unavailable(send, "leader_moving", f"the leadership of partition "
                                     f"{pid!r} is moving between routers; try again shortly")
        self._count("http", "ok")
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()
               if k.lower() in _BACK]
        if not any(k == SERVED_BY.encode() for k, _ in out):
            out.append((SERVED_BY.encode(), holder.encode()))
        content = response.content
        out.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": out})
        await send({"type": "http.response.body", "body": content})

    # --- the worker socket -----------------------------------------------------------------

    async def relay_socket(self, scope, receive, send, pid: str) -> None:
        """Relay the client's socket to the partition's leader, and to the next one after a
        failover, until the client or the leader (for the client's sake) ends it."""
        first = await receive()
        if first["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        self._count("ws", "relayed")
        self.relayed += 1
        header_auth = any(k.lower() == b"authorization" for k, _ in scope["headers"])
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k.lower() not in _HOP and not k.lower().startswith(b"sec-websocket")]
        headers.append((FORWARDED, self.instance))
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        path = path.decode("latin-1") + (("?" + query.decode("latin-1")) if query else "")
        inbox: asyncio.Queue = asyncio.Queue()
        auth_frame: list[str] = []  # the client's auth message, replayed to a new leader

        async def read_client() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    await inbox.put(None)
                    return
                if not header_auth and not auth_frame and message.get("text"):
                    if _is_auth(message["text"]):
                        auth_frame.append(message["text"])
                await inbox.put(message)

        reader = asyncio.create_task(read_client(), name=f"baton-relay-read-{pid}")
        try:
            await self._relay(send, pid, path, headers, inbox, auth_frame, reader)
        finally:
            self.relayed -= 1
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _relay(self, send, pid, path, headers, inbox, auth_frame, reader) -> None:
        # How long a relayed socket waits for a partition's next leader: the old lease's
        # expiry, a poll, the rebuild; beyond that the client reconnects on its own.
        patience = self.leadership.ttl_s * 3 + 5.0
        lost_at: float | None = None
        backoff = 0.05
        sessions = 0
        while True:
            if reader.done():
                return
            try:
                holder, address = await self.leader(pid, fresh=lost_at is not None)
                url = address.replace("http", "ws", 1) + path
                async with websockets.connect(url, additional_headers=headers,
                                              open_timeout=self.timeout_s, max_size=None,
                                              ping_interval=PING_S,
                                              ping_timeout=PING_S * 2) as upstream:
                    for frame in auth_frame if sessions else ():
                        await upstream.send(frame)
                    sessions += 1
                    if sessions > 1:
                        self._count("ws", "resumed")
                    lost_at, backoff = None, 0.05
                    code, reason = await self._pump(send, inbox, upstream, reader)
                if code is None:  # the client left
                    return
                if code in _FINAL_CLOSES:
                    return await _close(send, code, reason)
                log.info("relayed socket lost its leader; finding the next", extra={
                    "partition": pid, "holder": holder, "code": code})
            except NoLeader:
                pass
            except (OSError, asyncio.TimeoutError, InvalidStatus, WebSocketException) as exc:
                log.info("relay could not reach the leader", extra={
                    "partition": pid, "error": f"{type(exc).__name__}: {exc}"[:200]})
            self.forget(pid)
            now = time.monotonic()
            lost_at = lost_at or now
            if now - lost_at > patience:
                self._count("ws", "no_leader")
                return await _close(send, 1013, f"no leader for partition {pid} within "
                                    f"{patience:.0f} s: reconnect later")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 0.5)

    @staticmethod
    async def _pump(send, inbox: asyncio.Queue, upstream, reader) -> tuple[int | None, str]:
        """Copy frames both ways until one side ends: (None, "") when the client left, else
        the upstream's close (code, reason); 1006 when its connection dropped."""

        async def up() -> None:
            while True:
                message = await inbox.get()
                if message is None:
                    return
                if message.get("text") is not None:
                    await upstream.send(message["text"])
                elif message.get("bytes") is not None:
                    await upstream.send(message["bytes"])

        async def down() -> None:
            async for frame in upstream:
                kind = "text" if isinstance(frame, str) else "bytes"
                await send({"type": "websocket.send", kind: frame})

        to_up = asyncio.create_task(up())
        to_down = asyncio.create_task(down())
        try:
            done, _ = await asyncio.wait({to_up, to_down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (to_up, to_down):
                task.cancel()
            await asyncio.gather(to_up, to_down, return_exceptions=True)
        if to_up in done and to_up.exception() is None:
            return None, ""  # the client left: closing the upstream ends its session
        code = upstream.close_code if upstream.close_code is not None else 1006
        return code, upstream.close_reason or ""


def _is_auth(text: str) -> bool:
    try:
        return json.loads(text).get("type") == "auth"
    except (ValueError, AttributeError):
        return False


async def _close(send, code: int, reason: str) -> None:
    try:
        await send({"type": "websocket.close", "code": code, "reason": reason[:120]})
    except Exception:  # the client is already gone
        pass


async def unavailable(send, reason: str, message: str) -> None:
    body = json.dumps({"error": "unavailable", "reason": reason, "message": message}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"),
                            (b"retry-after", str(RETRY_AFTER_S).encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
