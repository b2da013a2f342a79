"""``baton demo``: the router, simulated workers and simulated devices on one machine."""

from __future__ import annotations

import asyncio
import logging
import random
import tempfile
from pathlib import Path

import httpx
import uvicorn

from endpoints.desk_sim import SimulatedWorker
from edge.outbox import Outbox
from edge.simulated import DeviceProfile, MqttSimulatedDevice
from edge.sync import EdgeSettings, EdgeSync, edge_mqtt_settings
from router.config import BatonConfig, ConfigError, load_config
from router.models import WorkerKind
from router.mqtt.bridge import BridgeSettings
from router.mqtt.client import Settings
from router.mqtt.embedded import EmbeddedBroker
from router.service.app import create_app

log = logging.getLogger("baton.demo")


def run_demo(args) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"baton demo: invalid configuration: {exc}")
        return 2
    with tempfile.TemporaryDirectory(prefix="baton-demo-") as tmp:
        db = args.db or f"sqlite+aiosqlite:///{Path(tmp) / 'demo.db'}"
        try:
            asyncio.run(_demo(cfg, db, args, Path(tmp)))
        except KeyboardInterrupt:
            pass
    return 0


async def _demo(cfg: BatonConfig, db: str, args, data: Path) -> None:
    async with EmbeddedBroker(args.host, getattr(args, "mqtt_port", None)) as broker:
        await _demo_on(cfg, db, args, broker, data)


async def _demo_on(cfg: BatonConfig, db: str, args, broker: EmbeddedBroker,
                   data: Path) -> None:
    """The devices talk MQTT to the router through the embedded broker (amqtt, 3.1.1)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    bridge = BridgeSettings(Settings(broker.host, broker.port, client_id="baton-demo-router",
                                     protocol="3.1.1"))
    app = create_app(cfg, db, mqtt=bridge)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port,
                                           log_level="warning"))
    base = f"http://{args.host}:{args.port}"
    tokens = {e.subject: t for t, e in cfg.resolved_tokens().items()}
    rng = random.Random(args.seed)
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=base, timeout=10) as client, \
            asyncio.TaskGroup() as tg:
        serving = tg.create_task(server.serve(), name="demo-router")
        while not server.started:
            if serving.done():
                return  # failed to start (port in use?): uvicorn said why
            await asyncio.sleep(0.05)
        supervisor = next((t for s, t in tokens.items() if s == "floor-supervisor"), "")
        yours = [w for w in args.leave_for_you.split(",") if w in tokens]
        desks = "".join(f"{'  Desk as ' + w + ':':<21}{base}/desk#token={tokens[w]}\n"
                        for w in yours)
        print(f"\nBaton demo is running.\n"
              f"  Floor monitor:     {base}/#token={supervisor}\n{desks}"
              f"  API docs:          {base}/docs\n"
              f"  Stop with Ctrl-C.\n", flush=True)
        for w in cfg.workers.workers:
            if w.kind is WorkerKind.floor_staff or w.id not in tokens or w.id in yours:
                continue  # floor staff and the workers left for you are not simulated
            sim = SimulatedWorker(base, w.id, tokens[w.id], random.Random(rng.random()))
            tg.create_task(sim.run(stop), name=f"demo-worker-{w.id}")
        devices = [(s, d) for s in cfg.sites.sites for d in s.devices if d.id in tokens]
        per_device = args.cases_per_minute / max(1, len(devices))
        for site, dev in devices:
            edge = EdgeSettings(site.id, dev.id, dev.kind, edge_mqtt_settings(
                dev.id, tokens[dev.id], broker.host, broker.port, protocol="3.1.1"))
            tg.create_task(_device(edge, data / f"edge-{dev.id}.db", client, tokens[dev.id],
                                   DeviceProfile(site.id, dev.id, dev.kind,
                                                 list(site.languages)),
                                   random.Random(rng.random()), per_device, stop),
                           name=f"demo-device-{dev.id}")

        async def until_done() -> None:
            waits = [asyncio.ensure_future(stop.wait()), serving]
            await asyncio.wait(waits, timeout=args.seconds, return_when=asyncio.FIRST_COMPLETED)
            waits[0].cancel()
            stop.set()
            server.should_exit = True

        tg.create_task(until_done(), name="demo-stop")


async def _device(edge: EdgeSettings, outbox_path: Path, client: httpx.AsyncClient, token: str,
                  profile: DeviceProfile, rng: random.Random, per_minute: float,
                  stop: asyncio.Event) -> None:
    async with Outbox(outbox_path, profile.device) as outbox, EdgeSync(edge, outbox) as sync:
        await MqttSimulatedDevice(client, token, profile, rng, sync).run(per_minute, stop)
