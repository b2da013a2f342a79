"""Case created over REST → offer received on a worker's WebSocket, through a real router.

Starts ``baton router`` as a child process on a temporary SQLite store with a generated
roster (every worker a match, so each case is offered at once), connects every worker's
WebSocket, then opens cases at a fixed rate. Workers accept each offer over the WebSocket
and close the case over REST after a short handle time, so capacity keeps turning over.
Latency = offer frame received − POST sent, per case.

The load generator (REST client and the workers' sockets) runs in its own process and
reports its CPU (``load_cpu_cores``: its CPU time / wall time; well under 1 means it is not
the bottleneck). The yardstick, in the same run: the same load against
``benchmarks/api_peer.py``, a minimal FastAPI app with the same wire shape and the same
uvicorn settings that keeps nothing (``peer_p50_ms``, ``peer_p99_ms``; ``ratio_p50`` and
``ratio_p99`` = Baton / peer). Last line: one JSON object.

    .venv/bin/python benchmarks/api.py [--rate 100] [--seconds 60] [--workers 60]
        [--peer-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox.procs import RouterProcess, free_port  # noqa: E402


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
            auth = {"Authorization": f"Bearer {token}"}
            await http.post(f"/v1/cases/{case_id}/close", json={"status": "resolved"},
                            headers=auth)
            # A benchmark worker needs no wrap-up: without this a closed case holds its
            # capacity for routing.wrapup_capacity_s and offers stop (issue 15's wrap-up).
            await http.post(f"/v1/cases/{case_id}/wrapup/done", headers=auth)

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


def load(args, url: str, seconds: float) -> dict:
    """The load generator in a child process; its JSON carries its own CPU."""
    out = subprocess.run([sys.executable, __file__, "--load", url, "--rate", str(args.rate),
                          "--seconds", str(seconds), "--workers", str(args.workers),
                          "--handle-s", str(args.handle_s)],
                         stdout=subprocess.PIPE, check=True, text=True)
    lines = out.stdout.strip().splitlines()
    print(*lines[:-1], sep="\n")
    return json.loads(lines[-1])


def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="baton-bench-api-") as tmp:
        cfg = make_config(Path(tmp), args.workers)
        proc = RouterProcess(cfg, f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        proc.start().close()
        try:
            result = load(args, proc.url, args.seconds)
        finally:
            proc.stop()
    if args.peer_seconds > 0:
        port = free_port()
        peer = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "api_peer.py"),
                                 str(port)])
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline or peer.poll() is not None:
                        raise SystemExit("the minimal FastAPI peer did not start")
                    time.sleep(0.1)
            p = load(args, url, args.peer_seconds)
        finally:
            peer.terminate()
            peer.wait(10)
        result.update({"peer_cases": p["cases"], "peer_p50_ms": p["p50_ms"],
                       "peer_p99_ms": p["p99_ms"], "peer_load_cpu_cores": p["load_cpu_cores"],
                       "ratio_p50": round(result["p50_ms"] / p["p50_ms"], 1),
                       "ratio_p99": round(result["p99_ms"] / p["p99_ms"], 1)})
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return result


async def drive(url: str, args) -> dict:
    cpu0, t0 = time.process_time(), time.perf_counter()
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
    return {"load_cpu_cores": round((time.process_time() - cpu0) / (time.perf_counter() - t0), 3),
            "cases": total, "offers": len(lat), "errors": errors,
            "missing_offers": total - len(lat), "rate_per_s": args.rate,
            "seconds": round(elapsed, 1), "p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2),
            "max_ms": round(lat[-1], 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=100.0, help="cases per second")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--workers", type=int, default=60)
    p.add_argument("--handle-s", type=float, default=1.0, help="seconds before a case closes")
    p.add_argument("--peer-seconds", type=float, default=30.0,
                   help="the same load against the minimal FastAPI app (0: skip it)")
    p.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.load:
        print(json.dumps(asyncio.run(drive(args.load, args))))
        return
    result = run(args)
    print(f"{result['offers']} offers of {result['cases']} cases at {args.rate}/s: "
          f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; load generator "
          f"{result['load_cpu_cores']} cores; ratio to the minimal app p50 "
          f"{result.get('ratio_p50')}, p99 {result.get('ratio_p99')}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
