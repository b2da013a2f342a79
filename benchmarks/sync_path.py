"""The router's side of the sync path in one process, without the broker: the CPU it spends
per device event, and where (a text profile).

The router's own MQTT bridge, core, SQLite store and hub run here as in ``baton router``;
only the transport is left out: device events (the JSON an edge publishes) are handed to
the bridge's intake as the MQTT client would hand them, ``--devices`` devices at
``--rate`` events/s each for ``--seconds``, and a supervisor's connection receives every
case update and encodes it as the WebSocket sender does. ``cpu_us_per_event`` = this
process's CPU time (all threads: aiosqlite's included) / events; ``p50_ms``/``p99_ms`` =
intake → the supervisor's frame encoded. ``--profile`` adds a pyinstrument text profile
(docs/benchmarks.md keeps one). Acks are not published (no broker): the bridge counts
them. Last line: one JSON object.

    .venv/bin/python benchmarks/sync_path.py [--devices 200] [--rate 2] [--seconds 10]
        [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from router.config import load_config  # noqa: E402
from protocol.models import Role  # noqa: E402
from protocol import topics  # noqa: E402
from router.mqtt.bridge import Bridge, BridgeSettings  # noqa: E402
from common.mqtt.client import Message, Settings  # noqa: E402
from router.service.core import RouterCore  # noqa: E402
from router.service.hub import Connection, Hub, encoded  # noqa: E402
from router.store import open_store  # noqa: E402
from sync import SITE, make_config  # noqa: E402  (benchmarks/sync.py: the same bench site and devices)


def event(device: str, seq: int, ts: float) -> bytes:
    if seq == 1:
        type_, payload = "opened", {"site": SITE, "device": device, "language": "en"}
    else:
        type_, payload = "turn", {"speaker": "resident", "language": "en",
                                  "text": f"turn {seq} from {device}"}
    return json.dumps({"event_id": f"{device}-{seq}", "case_id": f"case-{device}",
                       "origin": device, "seq": seq, "ts": ts, "type": type_,
                       "payload": payload}).encode()


async def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="baton-bench-path-") as tmpdir:
        tmp = Path(tmpdir)
        cfg = load_config(make_config(tmp, args.devices))
        store = await open_store(f"sqlite+aiosqlite:///{tmp / 'router.db'}"
                                 f"?synchronous={args.synchronous}")
        core = RouterCore(cfg, store)
        await core.start()
        bridge = Bridge(core, BridgeSettings(Settings(host="127.0.0.1")))
        await bridge.acks.load()
        intake = asyncio.create_task(bridge.fair.run())
        cases = asyncio.create_task(bridge.cases.run(core.subscribe("mqtt-cases")))
        hub = Hub()
        feed = asyncio.create_task(hub.run(core.subscribe("ws-hub")))
        sup = Connection("bench-supervisor", Role.supervisor)
        hub.attach(sup)
        seen: dict[tuple[str, int], float] = {}

        async def supervisor() -> None:
            while True:
                msg = await sup.queue.get()
                encoded(msg)
                if msg.get("type") == "case":
                    seen[(msg["case"]["id"], msg["case"]["revision"])] = time.perf_counter()

        reader = asyncio.create_task(supervisor())
        devices = [f"b{i:03d}" for i in range(args.devices)]
        sent: dict[tuple[str, int], float] = {}
        try:
            for d in devices:  # one open case each (not timed)
                bridge._on_message(Message(topics.topic(SITE, d, "events"),
                                           event(d, 1, core.clock.now()), 1, False))
            while len(seen) < len(devices):
                await asyncio.sleep(0.05)
            seen.clear()
            profiler = None
            if args.profile:
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005, async_mode="disabled")
                profiler.start()
            total = int(args.devices * args.rate * args.seconds)
            cpu0, t0 = time.process_time(), time.perf_counter()
            seq = {d: 1 for d in devices}
            for k in range(total):
                delay = t0 + k / (args.devices * args.rate) - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                d = devices[k % len(devices)]
                seq[d] += 1
                sent[(f"case-{d}", seq[d])] = time.perf_counter()
                bridge._on_message(Message(topics.topic(SITE, d, "events"),
                                           event(d, seq[d], core.clock.now()), 1, False))
            deadline = time.perf_counter() + 60
            while len(seen) < total and time.perf_counter() < deadline:
                await asyncio.sleep(0.01)
            wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            if profiler is not None:
                profiler.stop()
        finally:
            for t in (intake, cases, reader, feed):
                t.cancel()
            await asyncio.gather(intake, cases, reader, feed, return_exceptions=True)
            await core.aclose()
            await store.close()
    # The revision of a device's k-th turn: case revision counts every event of the case.
    lat = sorted((seen[k] - sent[k]) * 1000 for k in sent if k in seen)
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [0] * 99
    out = {"devices": args.devices, "rate_per_device": args.rate, "events": total,
           "synchronous": args.synchronous,
           "seen": len(lat), "cpu_us_per_event": round(cpu / total * 1e6, 1),
           "cpu_cores": round(cpu / wall, 3), "p50_ms": round(q[49], 2),
           "p99_ms": round(q[98], 2), "acks_not_sent": bridge.stats.get("acks", 0) == 0,
           "loadavg_1m": round(os.getloadavg()[0], 2)}
    if profiler is not None:
        print(profiler.output_text(unicode=False, color=False))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--rate", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--synchronous", default="normal", choices=["normal", "full"],
                   help="the router store's durability (router/store/sqlite.py)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(run(args))
    print(f"{result['seen']} of {result['events']} events on the supervisor's socket: "
          f"{result['cpu_us_per_event']} µs CPU per event, p50 {result['p50_ms']} ms, "
          f"p99 {result['p99_ms']} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
