"""Partitioned routers on PostgreSQL: REST → WebSocket offer latency and decisions/s, with 1 and
with 3 ``baton router`` processes (issue 16's last acceptance).

For each router count: a fresh PostgreSQL database, the demo's two partitions with a generated
roster (every worker of a partition matches every case of it, chat capacity 4), routers in
partitioned mode (BATON_HA_INSTANCE; one router leads both partitions, three spread them one
per router). Each worker's socket goes to its partition's leader; cases are opened over REST
on the leader (``/p/<partition>/v1/cases``); workers accept each offer over the socket and
close the case over REST after ``--handle-s``, so each case costs three requests and its
events. Two phases per router count:

- **steady**: ``--rate`` cases/s per partition for ``--seconds``; latency = offer frame
  received − POST sent (p50, p99).
- **saturation**: ``--concurrency`` open requests in flight per partition for
  ``--sat-seconds`` (closed loop); ``decisions_per_s`` = offers received per second (each
  one a routing decision made, stored and pushed), with its latency.

CPU per case of each router process and of the load generator (this process) come from
/proc, so the figures can be read on a shared machine: ``router_cpu_ms_per_case`` says what a
case costs a router whatever else runs. Last line: one JSON object.

    .venv/bin/python benchmarks/ha_throughput.py [--routers 1,3] [--rate 20] [--seconds 30]
        [--concurrency 16] [--sat-seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import websockets
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox.ha_cluster import Cluster, create_database, drop_database  # noqa: E402

SITES = {"city": "city-office", "north": "north-branch"}
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


def make_config(tmp: Path, workers: int) -> tuple[Path, dict[str, list[str]]]:
    cfg = tmp / "config"
    shutil.copytree(REPO / "config", cfg)
    roster, tokens, parts, by_part = [], [], [], {}
    for pid, site in SITES.items():
        ids = [f"{pid}-b{i:03d}" for i in range(workers)]
        by_part[pid] = ids
        roster += [{"id": w, "name": w, "kind": "specialist", "languages": {"en": 5},
                    "capacity": {"chat": 4}} for w in ids]
        tokens += [{"subject": w, "role": "specialist", "token": f"bench-{w}-token-000"}
                   for w in ids]
        parts.append({"id": pid, "sites": [site], "workers": ids})
    tokens += [{"subject": "admin", "role": "admin", "token": "bench-admin-token-0000"},
               {"subject": "sup", "role": "supervisor", "token": "bench-sup-token-00000"}]
    (cfg / "workers.yaml").write_text(yaml.safe_dump({"workers": roster}))
    (cfg / "tokens.yaml").write_text(yaml.safe_dump({"tokens": tokens}))
    (cfg / "partitions.yaml").write_text(yaml.safe_dump({"partitions": parts}))
    return cfg, by_part


def token(worker: str) -> str:
    return f"bench-{worker}-token-000"


class Bench:
    def __init__(self, leaders: dict[str, str], handle_s: float):
        self.leaders, self.handle_s = leaders, handle_s  # partition -> leader URL
        self.sent: dict[str, float] = {}
        self.offered: dict[str, float] = {}
        self.errors: Counter[str] = Counter()  # what went wrong, by kind
        self.n = 0

    async def worker(self, pid: str, wid: str, ready: asyncio.Event,
                     stop: asyncio.Event) -> None:
        base = f"{self.leaders[pid]}/p/{pid}"
        headers = {"Authorization": f"Bearer {token(wid)}"}
        tasks: set[asyncio.Task] = set()
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http, \
                websockets.connect(base.replace("http", "ws", 1) + "/v1/ws",
                                   max_queue=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token(wid)}))
            await ws.send(json.dumps({"type": "presence", "presence": "available"}))

            async def close(case_id: str) -> None:
                await asyncio.sleep(self.handle_s)
                try:
                    r = await http.post(f"/v1/cases/{case_id}/close",
                                        json={"status": "resolved", "code": "answered"})
                    if r.status_code == 200:
                        await http.post(f"/v1/cases/{case_id}/wrapup/done")
                    else:
                        self.errors[f"close_{r.status_code}"] += 1
                except httpx.HTTPError as exc:
                    if not stop.is_set():
                        self.errors[f"close_{type(exc).__name__}"] += 1

            async def listen() -> None:
                try:
                    await read()
                except websockets.ConnectionClosed:
                    if not stop.is_set():
                        self.errors["socket_closed"] += 1

            async def read() -> None:
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg["type"] == "hello":
                        ready.set()
                    elif msg["type"] == "offer":
                        self.offered.setdefault(msg["case"]["id"], time.perf_counter())
                        await ws.send(json.dumps({"type": "accept",
                                                  "offer_id": msg["offer"]["offer_id"]}))
                    elif msg["type"] == "accepted":
                        task = asyncio.create_task(close(msg["case"]["id"]))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)

            listener = asyncio.create_task(listen())
            await stop.wait()
            listener.cancel()
            for t in list(tasks):
                t.cancel()
            await asyncio.gather(listener, *tasks, return_exceptions=True)

    async def open(self, http: httpx.AsyncClient, pid: str) -> str:
        self.n += 1
        case_id = f"b-{pid}-{self.n:06d}"
        self.sent[case_id] = time.perf_counter()
        try:
            r = await http.post(f"{self.leaders[pid]}/p/{pid}/v1/cases",
                                json={"case_id": case_id, "site": SITES[pid], "language": "en"})
        except httpx.HTTPError as exc:
            self.errors[f"open_{type(exc).__name__}"] += 1
            return case_id
        if r.status_code != 201:
            self.errors[f"open_{r.status_code}"] += 1
        return case_id

    async def steady(self, http, rate: float, seconds: float) -> list[str]:
        out: list[str] = []

        async def partition(pid: str) -> None:
            start, k = time.perf_counter(), 0
            pending = set()
            while time.perf_counter() - start < seconds:
                k += 1
                task = asyncio.create_task(self.open(http, pid))
                pending.add(task)
                task.add_done_callback(lambda t: (pending.discard(t), out.append(t.result())))
                await asyncio.sleep(max(0.0, start + k / rate - time.perf_counter()))
            await asyncio.gather(*pending, return_exceptions=True)

        await asyncio.gather(*(partition(p) for p in self.leaders))
        return out

    async def saturate(self, http, concurrency: int, seconds: float) -> list[str]:
        """Closed loop: each of ``concurrency`` clients per partition opens a case, waits for
        its offer, opens the next."""
        out: list[str] = []
        end = time.perf_counter() + seconds

        async def client(pid: str) -> None:
            while time.perf_counter() < end:
                case_id = await self.open(http, pid)
                out.append(case_id)
                while case_id not in self.offered and time.perf_counter() < end + 30:
                    await asyncio.sleep(0.002)

        await asyncio.gather(*(client(p) for p in self.leaders for _ in range(concurrency)))
        return out

    def latencies(self, cases: list[str]) -> tuple[list[float], int]:
        lat = sorted((self.offered[c] - self.sent[c]) * 1000 for c in cases
                     if c in self.offered)
        return lat, len(cases) - len(lat)


def pct(xs: list[float], q: float) -> float | None:
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], 1) if xs else None


def cpu_of(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds of the processes alive at both ends (a backend that exited in between
    is left out: PostgreSQL figures are a lower bound, and include other databases')."""
    return sum(after[p] - before[p] for p in before if p in after)


def postgres_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


async def run_one(n: int, args, cfg_dir: Path, by_part: dict[str, list[str]]) -> dict:
    db_name, url = await create_database("baton_hathr")
    cluster = Cluster(cfg_dir, url, n, lease_s=args.lease_s, poll_s=args.poll_s,
                      log_level="warning")
    try:
        await asyncio.gather(*[asyncio.to_thread(cluster.start, r) for r in cluster.routers])
        led = await cluster.wait_led(list(SITES), timeout=120)
        # With several routers each partition's leader should be its own process. A router
        # that started first took both (nothing is rebalanced): stop it (it releases its
        # leases; the others take one each) and start it again.
        if n > 1 and len(set(led.values())) < len(SITES):
            both = next(iter(led.values()))
            await asyncio.to_thread(cluster.routers[both].stop)
            led = await cluster.wait_led(list(SITES), timeout=60, not_by=both)
            await asyncio.to_thread(cluster.start, both)
        leaders = {p: cluster.routers[r].url for p, r in led.items()}
        bench = Bench(leaders, args.handle_s)
        stop = asyncio.Event()
        readies = []
        tasks = []
        for pid, ids in by_part.items():
            for w in ids:
                ready = asyncio.Event()
                readies.append(ready)
                tasks.append(asyncio.create_task(bench.worker(pid, w, ready, stop)))
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
        await asyncio.sleep(1.0)
        router_pids = [r.proc.pid for r in cluster.routers.values()]
        pg = postgres_pids()
        me = psutil.Process()
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(timeout=30, limits=limits, headers={
                "Authorization": "Bearer bench-sup-token-00000"}) as http:
            await bench.steady(http, 2.0, 2.0)  # warm-up
            await asyncio.sleep(args.handle_s + 1)
            phases = {}
            for name, go in (("steady", lambda: bench.steady(http, args.rate, args.seconds)),
                             ("sat", lambda: bench.saturate(http, args.concurrency,
                                                            args.sat_seconds))):
                c0, g0, p0 = cpu_of(router_pids), me.cpu_times(), cpu_of(pg)
                spies = []
                if args.profile and name == "sat":
                    Path(args.profile).mkdir(parents=True, exist_ok=True)
                    for r in sorted(set(led.values())):
                        spies.append(await asyncio.create_subprocess_exec(
                            PY_SPY, "record", "--nonblocking", "-r", "50", "-f", "raw",
                            "-d", str(int(args.sat_seconds)),
                            "-p", str(cluster.routers[r].proc.pid),
                            "-o", str(Path(args.profile) / f"{n}r-{r}.txt"),
                            stdout=asyncio.subprocess.DEVNULL,
                            stderr=asyncio.subprocess.DEVNULL))
                t0 = time.perf_counter()
                cases = await go()
                for spy in spies:
                    await spy.wait()
                wall = time.perf_counter() - t0
                # Late offers and the closes: the next phase starts from an idle router.
                drain = time.perf_counter()
                while time.perf_counter() - drain < 30 and \
                        sum(1 for c in cases if c not in bench.offered) > 0:
                    await asyncio.sleep(0.2)
                await asyncio.sleep(args.handle_s + 1)
                c1, g1, p1 = cpu_of(router_pids), me.cpu_times(), cpu_of(pg)
                lat, missing = bench.latencies(cases)
                phases[name] = {
                    "cases": len(cases), "offers": len(lat), "missing_offers": missing,
                    "per_s": round(len(lat) / wall, 1), "p50_ms": pct(lat, 0.5),
                    "p99_ms": pct(lat, 0.99), "max_ms": pct(lat, 1.0),
                    "router_cpu_ms_per_case": round(cpu_delta(c0, c1) * 1000
                                                    / max(1, len(cases)), 2),
                    "postgres_cpu_ms_per_case": round(cpu_delta(p0, p1) * 1000
                                                      / max(1, len(cases)), 2),
                    "load_cpu_cores": round((g1.user + g1.system - g0.user - g0.system)
                                            / (time.perf_counter() - t0), 2)}
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {"routers": n, "leaders": led, "errors": dict(bench.errors), **{
            f"{ph}_{k}": v for ph, d in phases.items() for k, v in d.items()}}
    finally:
        cluster.stop_all()
        await drop_database(db_name)


async def main_async(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="baton-hathr-"))
    cfg_dir, by_part = make_config(tmp, args.workers)
    runs = []
    for n in [int(x) for x in args.routers.split(",")]:
        result = await run_one(n, args, cfg_dir, by_part)
        print(json.dumps(result), file=sys.stderr)
        runs.append(result)
    shutil.rmtree(tmp, ignore_errors=True)
    out = {"load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
           "rate_per_partition": args.rate, "concurrency_per_partition": args.concurrency}
    for r in runs:
        n = r["routers"]
        out[f"decisions_per_s_{n}r"] = r["sat_per_s"]
        out[f"sat_p99_ms_{n}r"] = r["sat_p99_ms"]
        out[f"rest_offer_p50_ms_{n}r"] = r["steady_p50_ms"]
        out[f"rest_offer_p99_ms_{n}r"] = r["steady_p99_ms"]
        out[f"router_cpu_ms_per_case_{n}r"] = r["sat_router_cpu_ms_per_case"]
        out[f"postgres_cpu_ms_per_case_{n}r"] = r["sat_postgres_cpu_ms_per_case"]
        out[f"missing_offers_{n}r"] = r["steady_missing_offers"] + r["sat_missing_offers"]
        out[f"errors_{n}r"] = r["errors"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routers", default="1,3", help="router counts to run, e.g. 1,3")
    ap.add_argument("--workers", type=int, default=30, help="workers per partition")
    ap.add_argument("--rate", type=float, default=10.0, help="steady cases/s per partition")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, default=16, help="saturation: open requests "
                    "in flight per partition")
    ap.add_argument("--sat-seconds", type=float, default=20.0)
    ap.add_argument("--handle-s", type=float, default=1.0)
    ap.add_argument("--lease-s", type=float, default=3.0)
    ap.add_argument("--poll-s", type=float, default=0.5)
    ap.add_argument("--profile", default=None, help="a directory: py-spy records each leading "
                    "router during the saturation phase (raw folded stacks)")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))


if __name__ == "__main__":
    main()
