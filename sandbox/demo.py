"""``baton demo``: the router, simulated workers and simulated devices on one machine."""

from __future__ import annotations

import asyncio
import logging
import random
import tempfile
from pathlib import Path

import httpx
import uvicorn

from common.config import ConfigError
from common.mqtt.client import Settings
from edge.outbox import Outbox
from edge.sync import EdgeSettings, EdgeSync, edge_mqtt_settings
from protocol.models import WorkerKind
from router.config import BatonConfig, load_config
from router.mqtt.bridge import BridgeSettings
from router.service.app import create_app
from router.service.ws import WS_MAX_SIZE
from sandbox.desk_sim import SimulatedWorker
from sandbox.edge_sim import DeviceProfile, MqttSimulatedDevice
from sandbox.embedded_broker import EmbeddedBroker

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
                                           log_level="warning", ws_max_size=WS_MAX_SIZE))
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
        kinds = {w.id: w.kind for w in cfg.workers.workers}
        desks = "".join(
            f"{'  ' + _surface(kinds.get(w)) + ' as ' + w + ':':<28}"
            f"{base}/{'telepresence' if _surface(kinds.get(w)) == 'Remote worker' else 'desk'}"
            f"#token={tokens[w]}\n" for w in yours)
        live = _live_robot(cfg, args, tokens, broker, base, data)
        print(f"\nBaton demo is running.\n"
              f"  {'Floor monitor:':<26}{base}/#token={supervisor}\n{desks}"
              f"  {'API docs:':<26}{base}/docs\n"
              + (f"  {live.cfg.device} is a live edge station (video, captions, robot): type a "
                 f"resident's turn here as '<language>: <text>', e.g.\n"
                 f"    ja: 在留カードの更新について相談したいです。\n" if live else "")
              + "  Stop with Ctrl-C.\n", flush=True)
        if live is not None:
            tg.create_task(_run_station(live, stop), name="demo-live-robot")
        for w in cfg.workers.workers:
            if w.kind is WorkerKind.floor_staff or w.id not in tokens or w.id in yours:
                continue  # floor staff and the workers left for you are not simulated
            sim = SimulatedWorker(base, w.id, tokens[w.id], random.Random(rng.random()))
            tg.create_task(sim.run(stop), name=f"demo-worker-{w.id}")
        devices = [(s, d) for s in cfg.sites.sites for d in s.devices if d.id in tokens
                   and (live is None or d.id != live.cfg.device)]
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


def _surface(kind) -> str:
    return "Remote worker" if kind is WorkerKind.remote_worker else "Desk"


def _live_robot(cfg: BatonConfig, args, tokens: dict[str, str], broker: EmbeddedBroker,
                base: str, data: Path):
    """The edge station for ``--live-robot`` (default robot-1) with its edge config from
    ``<config>/edge/<device>.yaml``: video (test pattern or camera), captions, robot
    controls; the simulated devices leave it alone. None when it cannot run here."""
    from edge.node import load_edge_config
    from edge.station import Station, StationOptions

    device = getattr(args, "live_robot", "robot-1")
    from router.config import config_dir

    path = config_dir(args.config) / "edge" / f"{device}.yaml"
    if not device or device not in tokens or not path.exists():
        return None
    try:
        ecfg = load_edge_config(path)
    except ConfigError as exc:
        print(f"baton demo: {device} runs simulated: {exc}")
        return None
    opts = StationOptions(router_url=base, token=tokens[device], mqtt_host=broker.host,
                          mqtt_port=broker.port, mqtt_protocol="3.1.1",
                          outbox_path=data / f"edge-{device}.db", video="auto",
                          display="auto", speech=False, kiosk=False,
                          screen_port=0)  # a free port: the link is printed
    return Station(ecfg, opts)


async def _run_station(station, stop: asyncio.Event) -> None:
    from edge.station import read_resident_lines

    try:
        async with station:
            if station.screen is not None:
                print(f"  {'Resident screen:':<26}{station.screen.url}  ({station.cfg.device}'s "
                      "kiosk page: the resident's side; type or touch there too)", flush=True)
            reader = asyncio.create_task(read_resident_lines(station))
            try:
                await stop.wait()
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
    except Exception:  # the rest of the demo goes on without it
        logging.getLogger("baton.demo").exception("the live edge station stopped")
