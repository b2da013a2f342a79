"""Case created over REST → offer received on a worker's WebSocket, through a real router.

Starts ``baton router`` as a child process on a temporary SQLite store with a generated
roster (every worker a match, so each case is offered at once), connects every worker's
WebSocket, then opens cases at a fixed rate. Workers accept each offer over the WebSocket
and close the case over REST after a short handle time, so capacity keeps turning over.
Latency = offer frame received − the case's due time (open loop: case i is due at
start + i / rate whatever happened before; a late send still counts from its due time).

The load generator (a lean keep-alive HTTP/1.1 client and the workers' sockets, on uvloop)
runs in its own process and reports its CPU over the steady phase (``load_cpu_cores``,
``load_cpu_us_per_case``; well under 1 core: not the bottleneck) and how late it sent
(``send_lag_p99_ms``), with the server process's CPU from /proc (``server_cpu_cores``,
``server_cpu_ms_per_case``). The yardstick, in the same run: the same load against
``benchmarks/api_peer.py``, a minimal FastAPI app with the same wire shape and the same
uvicorn settings that keeps nothing (``peer_p50_ms``, ``peer_p99_ms``; ``ratio_p50`` and
``ratio_p99`` = Baton / peer). Last line: one JSON object.

    .venv/bin/python benchmarks/api.py [--rate 100] [--seconds 60] [--workers 60]
        [--peer-seconds 30] [--py-spy FILE]
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
import uvloop
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


class Http:
    """A lean HTTP/1.1 keep-alive client for the load generator: a pool of connections,
    one request in flight per connection, responses with a Content-Length (what uvicorn
    sends for JSON). httpx costs 1–4 ms of CPU per request on this machine (issue 17), which
    made the generator the bottleneck; this costs tens of µs, so the router is measured."""

    def __init__(self, host: str, port: int, size: int = 64):
        self.host, self.port = host, port
        self._idle: list[_Conn] = []
        self._free = asyncio.Semaphore(size)

    async def post(self, path: str, body: dict | None, token: str) -> tuple[int, bytes]:
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()
        async with self._free:
            conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                _, conn = await asyncio.get_running_loop().create_connection(
                    _Conn, self.host, self.port)
            status, payload = await conn.request(head + data)
            if not conn.closed:
                self._idle.append(conn)
            return status, payload

    def close(self) -> None:
        for conn in self._idle:
            conn.transport.close()


class _Conn(asyncio.Protocol):
    def __init__(self):
        self.transport = None
        self.closed = False
        self._buf = b""
        self._waiter: asyncio.Future | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection closed by the server"))

    def request(self, raw: bytes) -> asyncio.Future:
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self._buf[:end].lower()
        at = head.find(b"content-length:")
        if at < 0:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(RuntimeError(f"no content-length: {head[:200]!r}"))
            self.transport.close()
            return
        eol = head.find(b"\r\n", at)
        length = int(head[at + 15:eol if eol > 0 else len(head)])
        if len(self._buf) < end + 4 + length:
            return
        status = int(head[9:12])
        body, self._buf = self._buf[end + 4:end + 4 + length], self._buf[end + 4 + length:]
        if b"connection: close" in head:
            self.closed = True
            self.transport.close()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, body))


async def worker(url: str, wid: str, offers: dict[str, float], http: Http,
                 ready: asyncio.Event, stop: asyncio.Event, handle_s: float,
                 errors: list[str]) -> None:
    token = f"bench-{wid}-token-000"
    async with websockets.connect(f"{url.replace('http', 'ws', 1)}/v1/ws", max_queue=None,
                                  compression=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        await ws.send(json.dumps({"type": "presence", "presence": "available"}))
        pending: set[asyncio.Task] = set()

        async def finish(case_id: str) -> None:
            await asyncio.sleep(handle_s)
            try:
                status, body = await http.post(f"/v1/cases/{case_id}/close",
                                               {"status": "resolved"}, token)
                if status != 200:
                    errors.append(f"close {status}: {body[:200]!r}")
                # A benchmark worker needs no wrap-up: without this a closed case holds its
                # capacity for routing.wrapup_capacity_s and offers stop (issue 15's wrap-up).
                status, body = await http.post(f"/v1/cases/{case_id}/wrapup/done", None,
                                               token)
                if status != 200:
                    errors.append(f"wrapup/done {status}: {body[:200]!r}")
            except (OSError, RuntimeError) as exc:  # counted, never swallowed
                errors.append(f"close: {exc!r}")

        async def reader() -> None:
            async for raw in ws:
                # Only the frames the worker acts on are parsed (case updates are not):
                # both servers send compact JSON with "type" first.
                if raw.startswith('{"type":"offer",'):
                    at = time.perf_counter()
                    msg = json.loads(raw)
                    offers[msg["case"]["id"]] = at
                    await ws.send(json.dumps({"type": "accept",
                                              "offer_id": msg["offer"]["offer_id"]}))
                elif raw.startswith('{"type":"accepted",'):
                    t = asyncio.create_task(finish(json.loads(raw)["case"]["id"]))
                    pending.add(t)
                    t.add_done_callback(pending.discard)
                elif raw.startswith('{"type":"hello"'):
                    ready.set()
                elif raw.startswith('{"type":"error",'):
                    errors.append(raw[:200])

        task = asyncio.create_task(reader())
        await stop.wait()
        task.cancel()
        for t in pending:
            t.cancel()
        await asyncio.gather(task, *pending, return_exceptions=True)


def _cpu_s(pid: int) -> float:
    """CPU time (user + system) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(args, url: str, seconds: float, pid: int, py_spy: str | None = None) -> dict:
    """The load generator in a child process; its JSON carries its own CPU and that of the
    server process ``pid`` over the same steady phase."""
    cmd = [sys.executable, __file__, "--load", url, "--rate", str(args.rate),
           "--seconds", str(seconds), "--workers", str(args.workers),
           "--handle-s", str(args.handle_s), "--server-pid", str(pid)]
    if py_spy:
        cmd += ["--py-spy", py_spy]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, text=True)
    lines = out.stdout.strip().splitlines()
    print(*lines[:-1], sep="\n")
    return json.loads(lines[-1])


def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="baton-bench-api-") as tmp:
        cfg = make_config(Path(tmp), args.workers)
        proc = RouterProcess(cfg, f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        proc.start().close()
        try:
            result = load(args, proc.url, args.seconds, proc.proc.pid, args.py_spy)
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
            p = load(args, url, args.peer_seconds, peer.pid)
        finally:
            peer.terminate()
            peer.wait(10)
        result.update({"peer_cases": p["cases"], "peer_offers": p["offers"],
                       "peer_errors": p["errors"],
                       "peer_p50_ms": p["p50_ms"], "peer_p99_ms": p["p99_ms"],
                       "peer_server_cpu_ms_per_case": p["server_cpu_ms_per_case"],
                       "peer_load_cpu_cores": p["load_cpu_cores"],
                       "ratio_p50": round(result["p50_ms"] / p["p50_ms"], 1),
                       "ratio_p99": round(result["p99_ms"] / p["p99_ms"], 1)})
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return result


async def drive(url: str, args) -> dict:
    host, _, port = url.removeprefix("http://").partition(":")
    http = Http(host, int(port))
    offers: dict[str, float] = {}
    due: dict[str, float] = {}
    lag: list[float] = []
    errors: list[str] = []
    stop = asyncio.Event()
    readies = [asyncio.Event() for _ in range(args.workers)]
    tasks = [asyncio.create_task(worker(url, f"bw{i:03d}", offers, http, readies[i], stop,
                                        args.handle_s, errors))
             for i in range(args.workers)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 30)
    await asyncio.sleep(0.5)
    device_token = "bench-kiosk-1-token-000"

    async def create(i: int, at: float) -> None:
        cid = f"bench-{i:06d}"
        body = {"case_id": cid, "site": "city-office", "device": "kiosk-1",
                "language": "en" if i % 2 else "ja"}
        due[cid] = at
        lag.append(time.perf_counter() - at)
        try:
            status, answer = await http.post("/v1/cases", body, device_token)
        except (OSError, RuntimeError) as exc:  # counted, never swallowed
            errors.append(f"open: {exc!r}")
            return
        if status != 201:
            errors.append(f"open {status}: {answer[:200]!r}")

    total = int(args.rate * args.seconds)
    spy = None
    if args.py_spy:  # sampled while the server runs the steady phase
        spy = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("py-spy")), "record", "--pid",
            str(args.server_pid), "--duration", str(max(1, int(args.seconds) - 1)),
            "--rate", "200", "--nonblocking", "--format", "raw", "--output", args.py_spy,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu0, server0 = time.process_time(), _cpu_s(args.server_pid)
    start = time.perf_counter()
    creates = []
    # Open loop: case i is due at start + i / rate whatever happened before it, and its
    # latency counts from that due time, so a stall (in the server or here) is measured,
    # not hidden by sending later (no coordinated omission).
    for i in range(total):
        at = start + i / args.rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        creates.append(asyncio.create_task(create(i, at)))
    await asyncio.gather(*creates, return_exceptions=True)
    steady = time.perf_counter() - start
    load_cpu, server_cpu = time.process_time() - cpu0, _cpu_s(args.server_pid) - server0
    deadline = time.perf_counter() + 10
    failed_opens = sum(1 for e in errors if e.startswith("open"))
    while len(offers) < total - failed_opens and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    http.close()
    if spy is not None:
        await spy.wait()
    by_time = sorted((due[c] - start, (offers[c] - due[c]) * 1000) for c in due if c in offers)
    slow = [f"{t:.1f}s:{ms:.0f}ms" for t, ms in by_time if ms > 100]
    if slow:
        print(f"{len(slow)} cases over 100 ms (due at: latency): {' '.join(slow[:40])}")
    if errors:
        print(f"{len(errors)} errors, first: {errors[:3]}")
    lat = sorted(ms for _, ms in by_time)
    if not lat:
        raise SystemExit("no offers arrived: is the router healthy?")
    q = statistics.quantiles(lat, n=100, method="inclusive")
    lag_q = statistics.quantiles(lag, n=100, method="inclusive") if len(lag) > 1 else [0] * 99
    return {"cases": total, "offers": len(lat), "errors": len(errors),
            "missing_offers": total - len(lat), "rate_per_s": args.rate,
            "seconds": round(steady, 1), "p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2),
            "max_ms": round(lat[-1], 2),
            # The generator: its CPU over the steady phase (cores; well under 1: not the
            # bottleneck) and how late it sent (a late send still counts from its due time).
            "load_cpu_cores": round(load_cpu / steady, 3),
            "load_cpu_us_per_case": round(load_cpu / total * 1e6),
            "send_lag_p99_ms": round(lag_q[98] * 1000, 2),
            "server_cpu_cores": round(server_cpu / steady, 3),
            "server_cpu_ms_per_case": round(server_cpu / total * 1000, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=100.0, help="cases per second")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--workers", type=int, default=60)
    p.add_argument("--handle-s", type=float, default=1.0, help="seconds before a case closes")
    p.add_argument("--peer-seconds", type=float, default=30.0,
                   help="the same load against the minimal FastAPI app (0: skip it)")
    p.add_argument("--py-spy", metavar="FILE", help="sample the router with py-spy during "
                   "the steady phase; collapsed stacks to FILE (benchmarks/stacks.py sums them)")
    p.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.load:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            print(json.dumps(runner.run(drive(args.load, args))))
        return
    result = run(args)
    print(f"{result['offers']} offers of {result['cases']} cases at {args.rate}/s: "
          f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; router "
          f"{result['server_cpu_ms_per_case']} ms CPU per case; load generator "
          f"{result['load_cpu_cores']} cores; ratio to the minimal app p50 "
          f"{result.get('ratio_p50')}, p99 {result.get('ratio_p99')}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
