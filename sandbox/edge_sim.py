"""A simulated kiosk or robot: opens cases at the router the way a real edge node does.

This is an honest stand-in for the resident side of ``baton edge`` (speech, translation and
the AI front arrive with later work): it speaks the same REST protocol with the device's own
token, so swapping it for a real edge node changes nothing at the router.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
from dataclasses import dataclass

import httpx

log = logging.getLogger("baton.edge.sim")

# What residents say first, per language (pivot translations for the human).
OPENERS = {
    "ja": ("在留カードの更新について相談したいです。", "I want to ask about renewing my residence card."),
    "en": ("I need help with my tax payment notice.", "I need help with my tax payment notice."),
    "es": ("Necesito ayuda con la inscripción de mi hijo en la guardería.",
           "I need help enrolling my child in daycare."),
    "pt": ("Quero saber sobre os benefícios de assistência social.",
           "I want to know about welfare benefits."),
    "zh": ("我想预约办理住民登记。", "I would like to book an appointment for resident registration."),
}
SKILLS = ["general", "residency", "tax", "childcare", "welfare", "appointments"]


@dataclass
class DeviceProfile:
    site: str
    device: str
    kind: str  # kiosk | robot
    languages: list[str]


class SimulatedDevice:
    def __init__(self, client: httpx.AsyncClient, token: str, profile: DeviceProfile,
                 rng: random.Random):
        self.client, self.token, self.profile, self.rng = client, token, profile, rng
        self.opened = 0

    async def open_case(self) -> dict:
        p = self.profile
        lang = self.rng.choice(p.languages)
        text, pivot = OPENERS.get(lang, OPENERS["en"])
        # Half the residents need nothing special; the rest one skill at a modest level.
        skills = {self.rng.choice(SKILLS): self.rng.randint(1, 2)} if self.rng.random() < 0.5 \
            else {}
        body = {
            "site": p.site, "device": p.device, "language": lang,
            "resident": f"res-{self.rng.randrange(200):03d}",
            "channel": "video" if p.kind == "robot" else "chat",
            "skills": skills,
            "priority": self.rng.choice([0, 0, 0, 5]),
            "reasons": ["resident asked for a person"],
            "transcript": [{"speaker": "resident", "language": lang, "text": text,
                            "translated": pivot if lang != "en" else None,
                            "translated_language": "en" if lang != "en" else None}],
        }
        resp = await self.client.post("/v1/cases", json=body,
                                      headers={"Authorization": f"Bearer {self.token}"})
        resp.raise_for_status()
        self.opened += 1
        return resp.json()

    async def run(self, cases_per_minute: float, stop: asyncio.Event) -> None:
        while not stop.is_set():
            delay = self.rng.expovariate(cases_per_minute / 60.0) if cases_per_minute > 0 else 3600
            try:
                await asyncio.wait_for(stop.wait(), delay)
                return
            except TimeoutError:
                pass
            try:
                case = await self.open_case()
                log.info("case opened", extra={"case": case["id"], "device": self.profile.device})
            except httpx.HTTPError as exc:
                log.warning("could not open a case: %s", exc)


class MqttSimulatedDevice(SimulatedDevice):
    """The same residents, through the edge's outbox and MQTT (``baton edge-sim --mqtt``):
    the case is opened and the resident's first turn sent as events; once the router has
    acknowledged them, the device asks for a human over REST."""

    def __init__(self, client: httpx.AsyncClient, token: str, profile: DeviceProfile,
                 rng: random.Random, sync):
        super().__init__(client, token, profile, rng)
        self.sync = sync  # edge.sync.EdgeSync

    async def open_case(self) -> dict:
        p = self.profile
        lang = self.rng.choice(p.languages)
        text, pivot = OPENERS.get(lang, OPENERS["en"])
        case_id = f"{p.device}-{self.rng.getrandbits(48):012x}"
        channel = "video" if p.kind == "robot" else "chat"
        await self.sync.emit(case_id, "opened", {
            "site": p.site, "device": p.device, "language": lang, "channel": channel,
            "resident": f"res-{self.rng.randrange(200):03d}"})
        turn = await self.sync.emit(case_id, "turn", {
            "speaker": "resident", "language": lang, "text": text,
            "translated": pivot if lang != "en" else None,
            "translated_language": "en" if lang != "en" else None})
        await self.sync.wait_acked(turn["seq"], timeout=60)
        skills = {self.rng.choice(SKILLS): self.rng.randint(1, 2)} \
            if self.rng.random() < 0.5 else {}
        out = await self.escalate(case_id, {"skills": skills,
                                            "priority": self.rng.choice([0, 0, 0, 5]),
                                            "reasons": ["resident asked for a person"]})
        self.opened += 1
        return out

    async def escalate(self, case_id: str, body: dict) -> dict:
        """Ask the router for a human on the case (REST, the device's token)."""
        resp = await self.client.post(
            f"/v1/cases/{case_id}/escalate", headers={"Authorization": f"Bearer {self.token}"},
            json=body)
        resp.raise_for_status()
        return resp.json()

    async def run(self, cases_per_minute: float, stop: asyncio.Event) -> None:
        from edge.outbox import OutboxError

        while not stop.is_set():
            try:
                return await super().run(cases_per_minute, stop)
            except (OutboxError, TimeoutError) as exc:  # e.g. the router is away: later
                log.warning("could not open a case over MQTT: %s", exc)
                try:
                    await asyncio.wait_for(stop.wait(), 5)
                except TimeoutError:
                    pass


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--router-url", default=os.environ.get("BATON_ROUTER_URL",
                                                          "http://127.0.0.1:8080"))
    p.add_argument("--site", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--token-env", default=None, help="environment variable holding the "
                   "device token (default BATON_TOKEN_<DEVICE>)")
    p.add_argument("--cases-per-minute", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--mqtt", action="store_true", help="send events through the outbox and "
                   "MQTT (broker from --mqtt-host/--mqtt-port) instead of REST")
    p.add_argument("--mqtt-host", default=os.environ.get("BATON_MQTT_HOST", "127.0.0.1"))
    p.add_argument("--mqtt-port", type=int, default=int(os.environ.get("BATON_MQTT_PORT")
                                                        or 1883))
    p.add_argument("--mqtt-protocol", choices=["5", "3.1.1"],
                   default=os.environ.get("BATON_MQTT_PROTOCOL") or "5",
                   help="the version the broker speaks (default $BATON_MQTT_PROTOCOL or 5)")
    p.add_argument("--outbox", default=None, help="outbox file (default "
                   "$BATON_DATA_DIR/edge-<device>.db)")


def run_cli(args) -> int:
    from router.config import load_config

    cfg = load_config(args.config)
    found = cfg.device(args.device)
    if found is None or found[0].id != args.site:
        print(f"baton edge-sim: device {args.device!r} is not at site {args.site!r} in "
              f"{cfg.directory}/sites.yaml", flush=True)
        return 2
    env = args.token_env or "BATON_TOKEN_" + args.device.upper().replace("-", "_")
    token = os.environ.get(env) or next(
        (t for t, e in cfg.resolved_tokens().items() if e.subject == args.device), None)
    if not token:
        print(f"baton edge-sim: no token: set {env}", flush=True)
        return 2
    site, dev = found
    profile = DeviceProfile(site.id, dev.id, dev.kind, list(site.languages))

    async def main() -> None:
        stop = asyncio.Event()
        async with httpx.AsyncClient(base_url=args.router_url, timeout=10) as client:
            if getattr(args, "mqtt", False):
                return await _run_mqtt(args, client, token, profile, stop)
            sim = SimulatedDevice(client, token, profile, random.Random(args.seed))
            await sim.run(args.cases_per_minute, stop)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return 0


async def _run_mqtt(args, client: httpx.AsyncClient, token: str, profile: DeviceProfile,
                    stop: asyncio.Event) -> None:
    from pathlib import Path

    from edge.outbox import Outbox
    from edge.sync import EdgeSettings, EdgeSync, edge_mqtt_settings

    path = Path(args.outbox or Path(os.environ.get("BATON_DATA_DIR", "var")) /
                f"edge-{profile.device}.db")
    settings = EdgeSettings(profile.site, profile.device, profile.kind,
                            edge_mqtt_settings(profile.device, token, args.mqtt_host,
                                               args.mqtt_port, protocol=args.mqtt_protocol))
    async with Outbox(path, profile.device) as outbox, EdgeSync(settings, outbox) as sync:
        sim = MqttSimulatedDevice(client, token, profile, random.Random(args.seed), sync)
        await sim.run(args.cases_per_minute, stop)
