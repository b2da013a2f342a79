"""Shared pieces of the MQTT tests: a config with a fleet of devices, a broker with the
generated password file and ACL, a router child process wired to it, edges that emit
deterministic events, a TCP proxy that can cut an edge off, and the store check."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import time
from pathlib import Path

import httpx
import yaml

from edge.outbox import Outbox
from edge.sync import EdgeSettings, EdgeSync, edge_mqtt_settings
from router.config import load_config
from router.mqtt.auth import write_auth
from sandbox.mosquitto import MosquittoProcess
from sandbox.procs import RouterProcess

REPO = Path(__file__).resolve().parents[2]
LAB = "sync-lab"
ADMIN = "demo-admin-token-0001"


def fleet_config(tmp: Path, devices: int = 12) -> Path:
    """config/ plus a site with ``devices`` devices (lab-00, lab-01, …) and their tokens."""
    cfg = tmp / "config"
    shutil.copytree(REPO / "config", cfg)
    sites = yaml.safe_load((cfg / "sites.yaml").read_text())
    sites["sites"].append({"id": LAB, "name": "Sync lab", "languages": ["en", "ja"],
                           "devices": [{"id": f"lab-{i:02d}",
                                        "kind": "robot" if i % 2 else "kiosk"}
                                       for i in range(devices)]})
    (cfg / "sites.yaml").write_text(yaml.safe_dump(sites))
    tokens = yaml.safe_load((cfg / "tokens.yaml").read_text())
    tokens["tokens"] += [{"subject": f"lab-{i:02d}", "role": "device",
                          "token": f"lab-{i:02d}-token-000000"} for i in range(devices)]
    (cfg / "tokens.yaml").write_text(yaml.safe_dump(tokens))
    return cfg


def lab_devices(n: int) -> list[str]:
    return [f"lab-{i:02d}" for i in range(n)]


def token(device: str) -> str:
    return f"{device}-token-000000" if device.startswith("lab-") else \
        f"demo-{device}-token-0001"


def start_broker(tmp: Path, cfg_dir: Path, port: int | None = None) -> MosquittoProcess:
    passwd, acl = write_auth(load_config(cfg_dir), tmp / "auth")
    broker = MosquittoProcess(tmp / "broker", port, passwd=passwd, acl=acl)
    broker.start()
    return broker


def router_env(broker_port: int) -> dict[str, str]:
    return {"BATON_MQTT_HOST": "127.0.0.1", "BATON_MQTT_PORT": str(broker_port),
            "BATON_MQTT_CLIENT_ID": "baton-router-test"}


class MqttRouter(RouterProcess):
    """RouterProcess with the bridge's environment."""

    def __init__(self, cfg_dir: Path, db: Path, broker_port: int):
        super().__init__(cfg_dir, f"sqlite+aiosqlite:///{db}")
        self.db, self.broker_port = db, broker_port

    def start(self, timeout: float = 120.0) -> httpx.Client:  # as RouterProcess.start
        saved = {k: os.environ.get(k) for k in router_env(self.broker_port)}
        os.environ.update(router_env(self.broker_port))
        try:
            client = super().start(timeout)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        client.headers["Authorization"] = f"Bearer {ADMIN}"
        return client


def wait_until(fn, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


async def await_until(fn, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)


def edge_settings(device: str, port: int, site: str = LAB, **kw) -> EdgeSettings:
    mqtt = edge_mqtt_settings(device, token(device), "127.0.0.1", port, keepalive=5,
                              connect_timeout_s=3, backoff_max_s=3)
    defaults = dict(ack_timeout_s=2.0, ack_timeout_max_s=8.0, heartbeat_s=1.0, will_delay_s=0)
    defaults.update(kw)
    return EdgeSettings(site=site, device=device, kind="robot", mqtt=mqtt, **defaults)


def event_for(device: str, seq: int) -> tuple[str, str, dict, str]:
    """The deterministic event number ``seq`` of ``device``: (case_id, type, payload, id)."""
    case = f"case-{device}"
    if seq == 1:
        return case, "opened", {"site": LAB, "device": device, "language": "en"}, f"{device}-1"
    return case, "turn", {"speaker": "resident", "language": "en",
                          "text": f"turn {seq} of {device}"}, f"{device}-{seq}"


async def emit_until(sync: EdgeSync, device: str, total: int, rate: float,
                     stop: asyncio.Event | None = None) -> None:
    """Emit the device's events from where its outbox stands up to ``total``."""
    while sync.outbox.last_seq < total and not (stop and stop.is_set()):
        case, type_, payload, event_id = event_for(device, sync.outbox.last_seq + 1)
        await sync.emit(case, type_, payload, event_id=event_id)
        await asyncio.sleep(1 / rate)


@contextlib.asynccontextmanager
async def edge(tmp: Path, device: str, port: int, **kw):
    async with Outbox(tmp / "edges" / f"{device}.db", device) as outbox, \
            EdgeSync(edge_settings(device, port, **kw), outbox) as sync:
        yield sync


def stored_events(db: Path) -> dict[str, list[tuple[int, str]]]:
    """origin -> [(seq, event_id)] in append order, read from the router's SQLite store."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT origin, seq, event_id FROM case_events ORDER BY position")
        out: dict[str, list[tuple[int, str]]] = {}
        for origin, seq, event_id in rows:
            out.setdefault(origin, []).append((seq, event_id))
        return out
    finally:
        con.close()


def assert_exactly_sent(db: Path, totals: dict[str, int]) -> None:
    """The store holds exactly the events sent: per origin seq 1..N with the expected ids,
    in order, no duplicates, nothing else from these devices."""
    stored = stored_events(db)
    for device, n in totals.items():
        got = stored.get(device, [])
        want = [(k, event_for(device, k)[3]) for k in range(1, n + 1)]
        assert len(got) == len(set(got)), f"{device}: duplicates stored"
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), n))
        assert got == want, f"{device}: stored {len(got)} events, want {n}; first difference " \
                            f"at {first}"


class BlackholeProxy:
    """TCP proxy to the broker. ``cut()`` black-holes every byte both ways, for existing and
    new connections, like a dead network link (no RST, no FIN); ``heal()`` closes the
    black-holed connections (as the dead link's NAT would) and forwards again."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = 0
        self.cut_off = False
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader, writer) -> None:
        self._conns.add(writer)
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._conns.add(up_w)

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    if not self.cut_off:
                        dst.write(data)
                        await dst.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                dst.close()

        tasks = [asyncio.ensure_future(pipe(reader, up_w)),
                 asyncio.ensure_future(pipe(up_r, writer))]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)
        self._conns.discard(writer)
        self._conns.discard(up_w)

    def cut(self) -> None:
        self.cut_off = True

    def heal(self) -> None:
        for w in list(self._conns):
            w.transport.abort()
        self.cut_off = False

    async def aclose(self) -> None:
        self.heal()
        if self._server is not None:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
