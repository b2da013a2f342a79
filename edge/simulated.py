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


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--router-url", default=os.environ.get("BATON_ROUTER_URL",
                                                          "http://127.0.0.1:8080"))
    p.add_argument("--site", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--token-env", default=None, help="environment variable holding the "
                   "device token (default BATON_TOKEN_<DEVICE>)")
    p.add_argument("--cases-per-minute", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=None)


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
            sim = SimulatedDevice(client, token, profile, random.Random(args.seed))
            await sim.run(args.cases_per_minute, stop)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return 0
