"""Case created over REST → offer received on a worker's WebSocket, through a real router.

Starts ``baton router`` as a child process on a temporary SQLite store with a generated
roster (every worker a match, so each case is offered at once), connects every worker's
WebSocket, then opens cases at a fixed rate. Workers accept each offer over the WebSocket
and close the case over REST after a short handle time, so capacity keeps turning over.
Latency = offer frame received − POST sent, per case. Last line: one JSON object.

    .venv/bin/python benchmarks/api.py [--rate 100] [--seconds 60] [--workers 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox.procs import RouterProcess  # noqa: E402


def make_config(tmp: Path, workers: int) -> Path:
    cfg = tmp / "config"
    shutil.copytree(REPO / "config", cfg)
    roster = [{"id": f"bw{i:03d}", "name": f"Bench {i}", "kind": "specialist",
               "languages": {"en": 5, "ja": 4}, "capacity": {"chat": 4}}
              for i in range(workers)]
    (cfg / "workers.yaml").write_text(yaml.safe_dump({"workers": roster}))
    tokens = [{"subject": w["id"], "role": "specialist", "token": f"bench-{w['id']}-token-000"}
              for w in roster]
    tokens += [{"subject": "kiosk-1", "role": "device", "token": "bench-kiosk-1-token-000"},
               {"subject": "admin", "role": "admin", "token": "bench-admin-token-0000"}]
    (cfg / "tokens.yaml").write_text(yaml.safe_dump({"tokens": tokens}))
    return cfg


async def worker(url: str, wid: str, offers: dict[str, float], http: httpx.AsyncClient,
                 ready: asyncio.Event, stop: asyncio.Event, handle_s: float) -> None:
    token = f"bench-{wid}-token-000"
    async with websockets.connect(f"{url.replace('http', 'ws', 1)}/v1/ws",
                                  max_queue=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        await ws.send(json.dumps({"type": "presence", "presence": "available"}))
        pending: set[asyncio.Task] = set()

        async def finish(case_id: str) -> None:
            await asyncio.sleep(handle_s)
            await http.post(f"/v1/cases/{case_id}/close", json={"status": "resolved"},
                            headers={"Authorization": f"Bearer {token}"})

        async def reader() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                if msg["type"] == "hello":
                    ready.set()
                elif msg["type"] == "offer":
                    offers[msg["case"]["id"]] = time.perf_counter()
                    await ws.send(json.dumps({"type": "accept",
                                              "offer_id": msg["offer"]["offer_id"]}))
                elif msg["type"] == "accepted":
                    t = asyncio.create_task(finish(msg["case"]["id"]))
                    pending.add(t)
                    t.add_done_callback(pending.discard)

        task = asyncio.create_task(reader())
        await stop.wait()
        task.cancel()
        for t in pending:
            t.cancel()
        await asyncio.gather(task, *pending, return_exceptions=True)


async def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="baton-bench-api-") as tmp:
        cfg = make_config(Path(tmp), args.workers)
        proc = RouterProcess(cfg, f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        proc.start().close()
        try:
            return await drive(proc.url, args)
        finally:
            proc.stop()


async def drive(url: str, args) -> dict:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        offers: dict[str, float] = {}
        sent: dict[str, float] = {}
        stop = asyncio.Event()
        readies = [asyncio.Event() for _ in range(args.workers)]
        tasks = [asyncio.create_task(worker(url, f"bw{i:03d}", offers, http, readies[i], stop,
                                            args.handle_s)) for i in range(args.workers)]
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
        await asyncio.sleep(0.5)
        headers = {"Authorization": "Bearer bench-kiosk-1-token-000"}
        errors = 0

        async def create(i: int) -> None:
            nonlocal errors
            cid = f"bench-{i:06d}"
            body = {"case_id": cid, "site": "city-office", "device": "kiosk-1",
                    "language": "en" if i % 2 else "ja"}
            sent[cid] = time.perf_counter()
            r = await http.post("/v1/cases", json=body, headers=headers)
            if r.status_code != 201:
                errors += 1

        total = int(args.rate * args.seconds)
        start = time.perf_counter()
        creates = []
        for i in range(total):
            due = start + i / args.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            creates.append(asyncio.create_task(create(i)))
        await asyncio.gather(*creates)
        deadline = time.perf_counter() + 10
        while len(offers) < total - errors and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - start
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    by_time = sorted((sent[c] - start, (offers[c] - sent[c]) * 1000) for c in sent if c in offers)
    slow = [f"{t:.1f}s:{ms:.0f}ms" for t, ms in by_time if ms > 100]
    if slow:
        print(f"{len(slow)} cases over 100 ms (sent at: latency): {' '.join(slow[:40])}")
    lat = sorted(ms for _, ms in by_time)
    if not lat:
        raise SystemExit("no offers arrived: is the router healthy?")
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"cases": total, "offers": len(lat), "errors": errors,
            "missing_offers": total - len(lat), "rate_per_s": args.rate,
            "seconds": round(elapsed, 1), "p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2),
            "max_ms": round(lat[-1], 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=100.0, help="cases per second")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--workers", type=int, default=60)
    p.add_argument("--handle-s", type=float, default=1.0, help="seconds before a case closes")
    args = p.parse_args()
    result = asyncio.run(run(args))
    print(f"{result['offers']} offers of {result['cases']} cases at {args.rate}/s: "
          f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
