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


def ha_settings_from_env(env=None) -> HaSettings | None:
    env = os.environ if env is None else env
    instance = env.get("BATON_HA_INSTANCE", "").strip()
    if not instance:
        return None
    return HaSettings(instance=instance, ttl_s=float(env.get("BATON_HA_LEASE_S", "3")),
                      poll_s=float(env.get("BATON_HA_POLL_S", "0.5")))
