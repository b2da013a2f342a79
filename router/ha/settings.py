"""Whether this router runs in partitioned mode (router/ha/), from the environment. Kept
free of heavy imports: create_app reads it for every router."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class HaSettings:
    instance: str
    ttl_s: float = 3.0
    poll_s: float = 0.5
    # The base URL other routers reach this one at (forwarded requests and sockets,
    # router/ha/forward.py); `baton router` defaults it from --host/--port.
    advertise_url: str | None = None
    forward_timeout_s: float = 5.0  # a forwarded request's bound, connect to last byte


def ha_settings_from_env(env=None) -> HaSettings | None:
    env = os.environ if env is None else env
    instance = env.get("BATON_HA_INSTANCE", "").strip()
    if not instance:
        return None
    url = env.get("BATON_HA_ADVERTISE_URL", "").strip().rstrip("/") or None
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError(f"BATON_HA_ADVERTISE_URL={url!r}: give the base URL other routers "
                         "reach this one at, e.g. http://router-1:8080")
    return HaSettings(instance=instance, ttl_s=float(env.get("BATON_HA_LEASE_S", "3")),
                      poll_s=float(env.get("BATON_HA_POLL_S", "0.5")), advertise_url=url,
                      forward_timeout_s=float(env.get("BATON_HA_FORWARD_TIMEOUT_S", "5")))


def default_advertise_url(host: str, port: int, *, tls: bool = False) -> str:
    """What `baton router --host H --port P` advertises when BATON_HA_ADVERTISE_URL is unset:
    the machine's name when it listens on every interface, else the address it listens on."""
    import socket

    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"
