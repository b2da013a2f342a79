"""Several real ``baton router`` processes in partitioned mode on one PostgreSQL, with the
clients that use them: simulated workers on WebSockets that reconnect to any router, a
case driver that opens cases through any router, and the invariant checks run on the event
log afterwards. Used by tests/ha/ and benchmarks/failover.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import websockets

from sandbox.desk_sim import SimulatedWorker
from sandbox.procs import RouterProcess

log = logging.getLogger("baton.ha.cluster")

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}


async def create_database(prefix: str = "baton_ha") -> tuple[str, str]:
    """A fresh database: (name, SQLAlchemy URL)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(**PG, timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name, f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{name}"


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(**PG, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class Cluster:
    """``n`` routers named r1..rn, each its own process and port."""

    def __init__(self, config_dir: str | Path, db_url: str, n: int, *, lease_s: float = 2.0,
                 poll_s: float = 0.25, log_level: str = "info", mqtt_port: int | None = None):
        # ``mqtt_port``: each partition's leader runs its bridge on that broker.
        mqtt = {"BATON_MQTT_HOST": ""} if mqtt_port is None else {
            "BATON_MQTT_HOST": "127.0.0.1", "BATON_MQTT_PORT": str(mqtt_port)}
        self.routers = {f"r{i}": RouterProcess(config_dir, db_url, log_level=log_level, env={
            "BATON_HA_INSTANCE": f"r{i}", "BATON_HA_LEASE_S": str(lease_s),
            "BATON_HA_POLL_S": str(poll_s), **mqtt}) for i in range(1, n + 1)}
        self.lease_s = lease_s

    def start(self, name: str) -> None:
        self.routers[name].start(timeout=120)

    def start_all(self) -> None:
        for name in self.routers:
            self.start(name)

    def alive(self, name: str) -> bool:
        p = self.routers[name].proc
        return p is not None and p.poll() is None

    def kill(self, name: str) -> float:
        """SIGKILL; returns the wall-clock time of the kill."""
        t = time.time()
        self.routers[name].kill()
        return t

    def pause(self, name: str) -> None:
        self.routers[name].proc.send_signal(signal.SIGSTOP)

    def resume(self, name: str) -> None:
        self.routers[name].proc.send_signal(signal.SIGCONT)

    def stop_all(self) -> None:
        for r in self.routers.values():
            if r.proc is not None and r.proc.poll() is None:
                try:
                    r.proc.send_signal(signal.SIGCONT)
                except ProcessLookupError:
                    pass
            r.stop()

    def urls(self) -> list[str]:
        return [r.url for name, r in self.routers.items() if self.alive(name)]

    async def status(self) -> dict[str, dict | None]:
        out: dict[str, dict | None] = {}
        async with httpx.AsyncClient(timeout=1.0) as http:
            for name, r in self.routers.items():
                if not self.alive(name):
                    out[name] = None
                    continue
                try:
                    out[name] = (await http.get(r.url + "/readyz")).json()
                except (httpx.HTTPError, ValueError):
                    out[name] = None
        return out

    async def leaders(self) -> dict[str, str]:
        """partition -> router name, from the routers' own /readyz."""
        out = {}
        for name, st in (await self.status()).items():
            for pid in (st or {}).get("leads", []):
                out[pid] = name
        return out

    async def wait_led(self, partitions: list[str], timeout: float = 30.0,
                       not_by: str | None = None) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            leaders = await self.leaders()
            if all(leaders.get(p) not in (None, not_by) for p in partitions):
                return leaders
            if time.monotonic() > deadline:
                raise TimeoutError(f"partitions {partitions} not all led after {timeout} s: "
                                   f"{leaders}")
            await asyncio.sleep(0.1)


class RotatingWorker(SimulatedWorker):
    """A simulated worker whose socket goes to the live routers in turn (the partition's URL
    prefix), whoever leads: a router that does not lead relays the socket and forwards the
    REST calls to the leader (router/ha/forward.py). The socket stays open across a
    failover when its router survives (the relay resumes on the next leader and a new hello
    arrives); when its router dies the worker reconnects to the next one with a backoff."""

    def __init__(self, cluster: Cluster, partition: str, worker_id: str, token: str,
                 rng: random.Random, **kw):
        super().__init__("http://unused", worker_id, token, rng, **kw)
        self.cluster, self.partition = cluster, partition
        self.sessions = 0
        self.hellos = 0  # more than sessions: relayed sockets resumed on a new leader
        self.statuses: Counter = Counter()  # HTTP statuses of its REST calls
        self._turn = rng.randrange(1_000)

    async def run(self, stop: asyncio.Event) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        backoff = 0.05
        while not stop.is_set():
            urls = self.cluster.urls()
            if not urls:
                await asyncio.sleep(0.2)
                continue
            self.base_url = f"{urls[self._turn % len(urls)]}/p/{self.partition}"
            self._turn += 1
            ws_url = self.base_url.replace("http", "ws", 1) + "/v1/ws"
            try:
                async with httpx.AsyncClient(base_url=self.base_url, headers=headers,
                                             timeout=5) as http:
                    async with websockets.connect(ws_url, additional_headers=headers,
                                                  open_timeout=3) as ws:
                        self.sessions += 1
                        backoff = 0.05
                        await self._session(ws, http, stop)
            except (OSError, asyncio.TimeoutError, websockets.WebSocketException,
                    httpx.HTTPError):
                pass
            if not stop.is_set():
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def _session(self, ws, http: httpx.AsyncClient, stop: asyncio.Event) -> None:
        """As the desk's: go available, answer offers; and resume from the hello snapshot
        (the offers pending for us and the cases we hold, e.g. after a failover)."""
        await ws.send(json.dumps({"type": "presence", "presence": "available"}))
        tasks: set[asyncio.Task] = {asyncio.create_task(self._watch_stop(ws, stop))}

        def spawn(coro) -> None:
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        try:
            async for raw in ws:
                msg = json.loads(raw)
                if msg["type"] == "offer":
                    spawn(self._resyncing(ws, self._answer(ws, http, msg["offer"])))
                elif msg["type"] == "hello":
                    self.hellos += 1
                    for offer in msg.get("offers", []):
                        spawn(self._resyncing(ws, self._answer(ws, http, offer)))
                    for case in msg.get("cases", []):
                        if case.get("assigned_worker") == self.worker_id and \
                                case.get("state") == "connected":
                            spawn(self._resyncing(ws, self._close(http, case["id"])))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    async def _resyncing(ws, work) -> None:
        """A request that failed (its router died): drop the socket, so the reconnect's
        hello snapshot says what we hold and what is offered to us."""
        try:
            await work
        except httpx.HTTPError:
            await ws.close()

    async def _answer(self, ws, http: httpx.AsyncClient, offer: dict) -> None:
        await asyncio.sleep(self.rng.uniform(*self.answer_s))
        if self.rng.random() < self.decline_rate:
            await ws.send(json.dumps({"type": "reject", "offer_id": offer["offer_id"],
                                      "reason": "busy with paperwork"}))
            return
        r = await http.post(f"/v1/offers/{offer['offer_id']}/accept")
        self.statuses[r.status_code] += 1
        if r.status_code == 503:  # no leader right now: resync from the next hello
            r.raise_for_status()
        if r.status_code == 200:
            await self._close(http, offer["case_id"])
            self.handled += 1

    async def _close(self, http: httpx.AsyncClient, case_id: str) -> None:
        await asyncio.sleep(self.rng.uniform(*self.handle_s))
        r = await http.post(f"/v1/cases/{case_id}/close", json={"status": "resolved",
                                                                "code": "answered"})
        self.statuses[r.status_code] += 1
        if r.status_code == 503:
            r.raise_for_status()  # no leader right now: resync from the next hello
        if r.status_code == 200:
            # A simulated worker needs no wrap-up: give the capacity back at once (a closed
            # case holds it for routing.wrapup_capacity_s otherwise). 409: none running.
            r = await http.post(f"/v1/cases/{case_id}/wrapup/done")
            self.statuses[r.status_code] += 1
            if r.status_code == 503:
                r.raise_for_status()


@dataclass
class CaseDriver:
    """Opens cases at ``rate`` per second per partition through any live router. Each case
    has its own id; a request whose answer was lost is retried with the same id, and a 409
    (already open) then means the first attempt was stored."""

    cluster: Cluster
    sites: dict[str, str]  # partition -> the site its cases are opened at
    token: str
    rate: float
    acked: dict[str, str] = field(default_factory=dict)  # case id -> partition
    retries: int = 0
    _turn: int = 0
    opened_at: dict[str, float] = field(default_factory=dict)

    async def run(self, stop: asyncio.Event, limit: int | None = None) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(headers=headers, timeout=5) as http:
            tasks = [asyncio.create_task(self._partition(http, pid, site, stop, limit))
                     for pid, site in self.sites.items()]
            await asyncio.gather(*tasks)

    async def _partition(self, http, pid, site, stop, limit) -> None:
        n = 0
        while not stop.is_set() and (limit is None or n < limit):
            case_id = f"c-{pid}-{n:05d}"
            await self._open(http, pid, site, case_id, stop)
            n += 1
            self._turn += 1
            await asyncio.sleep(1.0 / self.rate)

    async def _open(self, http, pid, site, case_id, stop) -> None:
        body = {"case_id": case_id, "site": site, "language": "en", "intent": "general"}
        attempt = 0
        while not stop.is_set():
            urls = self.cluster.urls()
            if urls:
                # Any router: one that does not lead the partition forwards to its leader.
                url = urls[(self._turn + attempt) % len(urls)]
                try:
                    r = await http.post(f"{url}/p/{pid}/v1/cases", json=body)
                    if r.status_code == 201 or (r.status_code == 409 and attempt > 0):
                        self.acked[case_id] = pid
                        self.opened_at[case_id] = time.time()
                        return
                    if r.status_code != 503:  # 503: no leader right now (failover)
                        raise RuntimeError(f"opening {case_id}: {r.status_code} {r.text[:300]}")
                except httpx.TransportError:
                    pass
            attempt += 1
            self.retries += 1
            await asyncio.sleep(0.05)


@dataclass
class Invariants:
    events: int
    cases: int
    lost: int  # acknowledged cases missing from the log
    duplicated: int  # events stored twice (an 'opened' twice for a case, or a repeated id)
    seq_gaps: int  # missing seqs over all origins (refused seqs count as held)
    double_assignments: int  # a case connected to a second worker while the first held it
    over_capacity: int  # connects that put a worker over its chat capacity
    unresolved: int  # cases neither resolved nor abandoned
    origins: dict[str, int]

    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.seq_gaps or self.double_assignments
                    or self.over_capacity or self.unresolved)


async def check_invariants(db_name: str, acked: dict[str, str],
                           capacity: dict[str, int]) -> Invariants:
    conn = await asyncpg.connect(**{**PG, "database": db_name}, timeout=5)
    try:
        rows = await conn.fetch("SELECT event_id, case_id, origin, seq, type, payload "
                                "FROM case_events ORDER BY position")
        refused = await conn.fetch("SELECT origin, seq FROM refused_seqs")
        states = dict(await conn.fetch("SELECT case_id, state FROM cases"))
    finally:
        await conn.close()
    seqs: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        seqs[r["origin"]].add(r["seq"])
    for r in refused:
        seqs[r["origin"]].add(r["seq"])
    gaps = sum(max(s) - len(s) for s in seqs.values())
    ids = Counter(r["event_id"] for r in rows)
    opened = Counter(r["case_id"] for r in rows if r["type"] == "opened")
    duplicated = sum(c - 1 for c in ids.values()) + sum(c - 1 for c in opened.values())
    holder: dict[str, str | None] = {}
    load: Counter = Counter()
    doubles = over = 0
    for r in rows:
        p = json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]
        case, kind = r["case_id"], r["type"]
        if kind == "offer_result" and p.get("status") != "accepted":
            continue
        if kind in ("connect", "offer_result"):  # accepting an offer writes offer_result
            w = p["worker_id"]
            if holder.get(case) not in (None, w):
                doubles += 1
            if holder.get(case) != w:
                load[w] += 1
                if load[w] > capacity.get(w, 1):
                    over += 1
            holder[case] = w
        elif kind in ("transfer", "handback", "outcome") and holder.get(case):
            load[holder[case]] -= 1
            holder[case] = None
    lost = sum(1 for c in acked if c not in opened)
    unresolved = sum(1 for c in acked if states.get(c) not in ("resolved", "abandoned"))
    return Invariants(events=len(rows), cases=len(opened), lost=lost, duplicated=duplicated,
                      seq_gaps=gaps, double_assignments=doubles, over_capacity=over,
                      unresolved=unresolved,
                      origins={o: max(s) for o, s in seqs.items() if o.startswith("router:")})


def chat_capacity(cfg) -> dict[str, int]:
    default = cfg.routing.channels["chat"].default_capacity \
        if "chat" in cfg.routing.channels else 1
    return {w.id: w.capacity.get("chat", default) for w in cfg.workers.workers}


async def first_event_after(db_name: str, origin_prefix: str, partition: str, t: float,
                            exclude: str) -> float | None:
    """Wall time of the first event after ``t`` written by a term of ``partition`` other than
    router ``exclude`` (the new leader's first decision)."""
    conn = await asyncpg.connect(**{**PG, "database": db_name}, timeout=5)
    try:
        return await conn.fetchval(
            "SELECT min(ts) FROM case_events WHERE ts >= $1 AND origin LIKE $2 "
            "AND origin <> $3", t, f"{origin_prefix}%:{partition}",
            f"{origin_prefix}{exclude}:{partition}")
    finally:
        await conn.close()
