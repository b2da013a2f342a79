"""The MQTT topic tree, version in the path (docs/protocol.md is the reference).

    baton/v1/{site}/{device}/events       edge → router   one CaseEvent per message, QoS 1
    baton/v1/{site}/{device}/receipts     edge → router   command receipts, QoS 1
    baton/v1/{site}/{device}/state        edge → router   retained presence, with last will
    baton/v1/{site}/{device}/heartbeat    edge → router   telemetry (battery, dock, network)
    baton/v1/{site}/{device}/signal/up    edge → router   WebRTC offer/answer/ICE
    baton/v1/{site}/{device}/acks         router → edge   retained per-origin high-water mark
    baton/v1/{site}/{device}/commands     router → edge   durable commands, QoS 1
    baton/v1/{site}/{device}/cases        router → edge   state of the device's cases, QoS 1
    baton/v1/{site}/{device}/signal/down  router → edge   WebRTC offer/answer/ICE
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "baton/v1"
SHARE_GROUP = "routers"

EDGE_TO_ROUTER = ("events", "receipts", "state", "heartbeat", "signal/up")
ROUTER_TO_EDGE = ("acks", "commands", "cases", "signal/down")
KINDS = EDGE_TO_ROUTER + ROUTER_TO_EDGE
# Routers split these between them (a shared subscription where the broker has them)...
SHARED_KINDS = ("events", "receipts", "signal/up")
# ...and every router sees these, so each keeps the presence of every device.
BROADCAST_KINDS = ("state", "heartbeat")

_SEGMENT = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}"
_TOPIC = re.compile(rf"^baton/v1/({_SEGMENT})/({_SEGMENT})/(events|receipts|state|heartbeat|"
                    r"signal/up|acks|commands|cases|signal/down)$")


@dataclass(frozen=True, slots=True)
class Topic:
    site: str
    device: str
    kind: str


def topic(site: str, device: str, kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown topic kind {kind!r}; one of {', '.join(KINDS)}")
    return f"{PREFIX}/{site}/{device}/{kind}"


def parse(name: str) -> Topic | None:
    """The parts of a Baton topic, or None when ``name`` is not one."""
    m = _TOPIC.match(name)
    return Topic(m.group(1), m.group(2), m.group(3)) if m else None


def router_filters(shared: bool, sites: list[str] | None = None) -> list[str]:
    """What a router subscribes to. ``shared``: MQTT 5 shared subscriptions, so several
    routers split the device traffic (retained messages are never sent to shared
    subscriptions, which is why state stays a plain subscription). ``sites``: only these
    sites' topics (a partition's leader, docs/scale-out.md); None: every site."""
    out = []
    for site in (["+"] if sites is None else sites):
        for kind in SHARED_KINDS:
            f = f"{PREFIX}/{site}/+/{kind}"
            out.append(f"$share/{SHARE_GROUP}/{f}" if shared else f)
        out += [f"{PREFIX}/{site}/+/{kind}" for kind in BROADCAST_KINDS]
    return out


def device_filters(site: str, device: str) -> list[str]:
    """What an edge subscribes to: its own router → edge topics."""
    return [topic(site, device, kind) for kind in ROUTER_TO_EDGE]
