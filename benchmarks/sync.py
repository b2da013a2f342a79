"""Edge → router sync through a real Mosquitto: edge publish → applied in the router's
store → seen on a supervisor's WebSocket, for a fleet of edges, then a broker restart.

Processes: Mosquitto (password file + ACL generated for the fleet), ``baton router`` with
its MQTT bridge, ``--shards`` edge processes (each runs its share of the devices: an
outbox + EdgeSync per device, as separate machines would), and this one, which holds the
supervisor WebSocket and runs the script. Times are ``time.perf_counter()``
(CLOCK_MONOTONIC, one clock for every process on the machine).

Each device opens one case, then sends a resident turn every 1/rate s (phases staggered).
Latency per event = the ``case`` frame with the event's revision received on the
WebSocket − the moment the event was durable in the edge's outbox and handed to the
sender (``p50_ms``/``p99_ms``); ``with_outbox_commit_*`` count from the ``emit`` call, so
they include the outbox's fsync (all edges share this machine's disk here, unlike a real
fleet). After the steady phase the broker is killed (SIGKILL) and started again while the
edges keep emitting: ``recovery_s`` = from the broker listening again until every event
emitted by then has been seen on the socket. ``lost``: emitted but never stored or seen;
``duplicated``: stored or seen more than once. Last line: one JSON object.

    .venv/bin/python benchmarks/sync.py [--devices 200] [--rate 2] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import websockets
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.outbox import Outbox  # noqa: E402
from edge.sync import EdgeSettings, EdgeSync, edge_mqtt_settings  # noqa: E402
from router.config import load_config  # noqa: E402
from router.mqtt.auth import write_auth  # noqa: E402
from sandbox.mosquitto import MosquittoProcess  # noqa: E402
from sandbox.procs import RouterProcess  # noqa: E402

SITE = "bench-site"
SUPERVISOR = "bench-supervisor-token-0"


def make_config(tmp: Path, devices: int) -> Path:
    cfg = tmp / "config"
    shutil.copytree(REPO / "config", cfg)
    sites = yaml.safe_load((cfg / "sites.yaml").read_text())
    sites["sites"].append({"id": SITE, "name": "Benchmark site", "languages": ["en"],
                           "devices": [{"id": f"b{i:03d}", "kind": "robot"}
                                       for i in range(devices)]})
    (cfg / "sites.yaml").write_text(yaml.safe_dump(sites))
    tokens = [{"subject": f"b{i:03d}", "role": "device", "token": f"bench-b{i:03d}-token-00"}
              for i in range(devices)]
    tokens.append({"subject": "sato-floor", "role": "supervisor", "token": SUPERVISOR})
    (cfg / "tokens.yaml").write_text(yaml.safe_dump({"tokens": tokens}))
    return cfg


# --- an edge shard (a child process) ------------------------------------------------------


async def shard(args) -> None:
    """Runs devices ``args.first .. args.first + args.count - 1``. Protocol on stdin/stdout:
    prints ``ready``; reads ``go T`` (start time), later ``stop``; prints its records as
    one JSON line and exits once its outboxes are drained."""
    devices = [f"b{i:03d}" for i in range(args.first, args.first + args.count)]
    tmp = Path(args.dir)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    records: list[tuple[str, int, float, float]] = []  # case, seq, called, durable
    errors: Counter[str] = Counter()
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        syncs = {}
        for d in devices:
            outbox = await stack.enter_async_context(Outbox(
                tmp / "edges" / f"{d}.db", d, synchronous=args.outbox_sync))
            syncs[d] = await stack.enter_async_context(EdgeSync(EdgeSettings(
                SITE, d, "robot", edge_mqtt_settings(d, f"bench-{d}-token-00", "127.0.0.1",
                                                     args.port, backoff_max_s=2)), outbox))
        await asyncio.gather(*(s.client.wait_connected(120) for s in syncs.values()))
        for d, s in syncs.items():  # one open case per device
            await s.emit(f"case-{d}", "opened", {"site": SITE, "device": d, "language": "en"},
                         event_id=f"{d}-1")
        await asyncio.gather(*(s.wait_acked(1, 120) for s in syncs.values()))
        print("ready", flush=True)
        start = float((await reader.readline()).split()[1])

        async def device(i: int, d: str) -> None:
            sync, case, k = syncs[d], f"case-{d}", 0
            phase = (args.first + i) / args.devices / args.rate
            while not stop.is_set():
                k += 1
                delay = start + phase + k / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if stop.is_set():
                    return
                seq, called = sync.outbox.last_seq + 1, time.perf_counter()
                try:
                    await sync.emit(case, "turn", {"speaker": "resident", "language": "en",
                                                   "text": f"turn {seq} from {d}"},
                                    event_id=f"{d}-{seq}")
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors[type(exc).__name__] += 1
                    continue
                records.append((case, seq, called, time.perf_counter()))

        tasks = [asyncio.create_task(device(i, d)) for i, d in enumerate(devices)]
        await reader.readline()  # "stop"
        stop.set()
        await asyncio.gather(*tasks)
        deadline = time.perf_counter() + 90
        while any(s.outbox.pending for s in syncs.values()) and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        print(json.dumps({"records": records, "errors": errors,
                          "pending": sum(s.outbox.pending for s in syncs.values())}),
              flush=True)


# --- the coordinator ------------------------------------------------------------------------


class Supervisor:
    """The worker WebSocket of a supervisor: every case change, timestamped."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, int], float] = {}
        self.twice = 0
        self.ready = asyncio.Event()

    async def run(self, url: str) -> None:
        ws_url = url.replace("http", "ws", 1) + "/v1/ws"
        async with websockets.connect(ws_url, max_queue=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": SUPERVISOR}))
            async for raw in ws:
                now = time.perf_counter()
                msg = json.loads(raw)
                if msg["type"] == "hello":
                    self.ready.set()
                elif msg["type"] == "case":
                    key = (msg["case"]["id"], msg["case"]["revision"])
                    if key in self.seen:
                        self.twice += 1
                    else:
                        self.seen[key] = now


async def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="baton-bench-sync-") as tmpdir:
        tmp = Path(tmpdir)
        cfg = make_config(tmp, args.devices)
        passwd, acl = write_auth(load_config(cfg), tmp / "auth")
        broker = MosquittoProcess(tmp / "broker", passwd=passwd, acl=acl,
                                  autosave_s=args.autosave_s)
        broker.start()
        os.environ.update({"BATON_MQTT_HOST": "127.0.0.1", "BATON_MQTT_PORT": str(broker.port),
                           "BATON_MQTT_CLIENT_ID": "baton-router-bench"})
        router = RouterProcess(cfg, f"sqlite+aiosqlite:///{tmp / 'router.db'}")
        shards: list[asyncio.subprocess.Process] = []
        try:
            router.start().close()
            return await drive(args, tmp, broker, router.url, shards)
        finally:
            for p in shards:
                if p.returncode is None:
                    p.kill()
                    await p.wait()
            router.stop()
            broker.kill()


async def drive(args, tmp: Path, broker: MosquittoProcess, url: str, shards: list) -> dict:
    sup = Supervisor()
    ws_task = asyncio.create_task(sup.run(url))
    try:
        await asyncio.wait_for(sup.ready.wait(), 30)
        per = -(-args.devices // args.shards)
        for first in range(0, args.devices, per):
            shards.append(await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--shard", "--first", str(first), "--count",
                str(min(per, args.devices - first)), "--devices", str(args.devices),
                "--rate", str(args.rate), "--port", str(broker.port), "--dir", str(tmp),
                "--outbox-sync", args.outbox_sync, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, limit=1 << 30))
        for p in shards:
            line = await asyncio.wait_for(p.stdout.readline(), 180)
            if line.strip() != b"ready":
                raise SystemExit(f"an edge shard failed to start: {line!r}")
        print(f"{args.devices} edges in {len(shards)} processes connected, cases open; "
              f"steady phase {args.seconds:.0f} s at {args.rate}/s each", flush=True)
        start = time.perf_counter() + 0.5
        for p in shards:
            p.stdin.write(f"go {start}\n".encode())
            await p.stdin.drain()
        await asyncio.sleep(start + args.seconds - time.perf_counter())
        steady = (start, time.perf_counter() - 0.5)  # in flight at the kill: the fault's
        broker.kill()
        killed = time.perf_counter()
        await asyncio.sleep(args.down_s)
        await asyncio.to_thread(broker.start)
        back = time.perf_counter()
        await asyncio.sleep(args.after_s)
        for p in shards:
            p.stdin.write(b"stop\n")
            await p.stdin.drain()
        results = [json.loads(await asyncio.wait_for(p.stdout.readline(), 150))
                   for p in shards]
        deadline = time.perf_counter() + 30
        records = [tuple(r) for res in results for r in res["records"]]
        while time.perf_counter() < deadline and \
                not all((c, s) in sup.seen for c, s, _, _ in records):
            await asyncio.sleep(0.1)
    finally:
        ws_task.cancel()
        await asyncio.gather(ws_task, return_exceptions=True)
    errors = sum((Counter(r["errors"]) for r in results), Counter())
    return report(args, tmp / "router.db", records, sup, steady, killed, back, errors,
                  sum(r["pending"] for r in results))


def _q(values: list[float], pct: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[pct - 1], 2)


def report(args, db: Path, records, sup: Supervisor, steady, killed: float, back: float,
           errors: Counter, pending: int) -> dict:
    con = sqlite3.connect(db)
    stored = Counter(con.execute(
        "SELECT case_id, seq FROM case_events WHERE origin LIKE 'b%' AND seq > 1").fetchall())
    con.close()
    emitted = {(c, s) for c, s, _, _ in records}
    t0, t1 = steady
    in_steady = [(c, s, called, durable) for c, s, called, durable in records
                 if t0 <= durable <= t1]
    lat = sorted((sup.seen[(c, s)] - durable) * 1000 for c, s, _, durable in in_steady
                 if (c, s) in sup.seen)
    full = sorted((sup.seen[(c, s)] - called) * 1000 for c, s, called, _ in in_steady
                  if (c, s) in sup.seen)
    commit = sorted((durable - called) * 1000 for _, _, called, durable in in_steady)
    before_back = [(c, s) for c, s, _, durable in records if durable <= back]
    recovery = None
    if all(k in sup.seen for k in before_back):
        recovery = round(max(sup.seen[k] for k in before_back) - back, 2)
    during = sorted((sup.seen[(c, s)] - d) * 1000 for c, s, _, d in records
                    if back < d <= back + (recovery or 0) and (c, s) in sup.seen)
    after = sorted((sup.seen[(c, s)] - d) * 1000 for c, s, _, d in records
                   if d > back + (recovery or 0) and (c, s) in sup.seen)
    return {
        "devices": args.devices, "rate_per_device": args.rate, "edge_processes": args.shards,
        "steady_seconds": round(t1 - t0, 1), "events": len(emitted),
        "steady_events": len(lat), "p50_ms": _q(lat, 50), "p99_ms": _q(lat, 99),
        "max_ms": round(lat[-1], 2),
        "outbox_sync": args.outbox_sync, "outbox_commit_p99_ms": _q(commit, 99),
        "with_outbox_commit_p50_ms": _q(full, 50), "with_outbox_commit_p99_ms": _q(full, 99),
        "lost": max(len(emitted - set(stored)), len(emitted - sup.seen.keys())),
        "duplicated": sum(n - 1 for n in stored.values() if n > 1) + sup.twice,
        "broker_down_s": round(back - killed, 2), "broker_autosave_s": args.autosave_s,
        "recovery_s": recovery,
        "p99_ms_during_recovery": _q(during, 99) if len(during) > 100 else None,
        "p99_ms_after_recovery": _q(after, 99) if len(after) > 100 else None,
        "stored_events": sum(stored.values()), "emit_errors": dict(errors),
        "unacked_at_end": pending,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--rate", type=float, default=2.0, help="events per second per device")
    p.add_argument("--seconds", type=float, default=60.0, help="steady phase")
    p.add_argument("--down-s", type=float, default=1.0, help="broker down time")
    p.add_argument("--after-s", type=float, default=10.0, help="traffic after the restart")
    p.add_argument("--shards", type=int, default=2, help="edge processes")
    p.add_argument("--autosave-s", type=int, default=60, help="Mosquitto autosave_interval "
                   "(config/mosquitto.conf has 60)")
    p.add_argument("--outbox-sync", default="FULL", choices=["FULL", "NORMAL"],
                   help="SQLite synchronous mode of the outboxes (FULL: an event survives a "
                   "power cut)")
    p.add_argument("--shard", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--dir", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.shard:
        asyncio.run(shard(args))
        return
    result = asyncio.run(run(args))
    print(f"{result['steady_events']} events in the steady phase from {args.devices} edges: "
          f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; lost {result['lost']}, "
          f"duplicated {result['duplicated']}; recovery after a broker restart "
          f"{result['recovery_s']} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
