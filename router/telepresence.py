"""``config/telepresence.yaml``: the ICE servers the router hands to browsers and devices when
a video session starts (``router.mqtt.signal_relay``), per site or for all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.config import ConfigError, read_yaml
from protocol.signaling import IceServer

TELEPRESENCE_FILE = "telepresence.yaml"


class _SiteIce(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    ice_servers: list[IceServer]


class TelepresenceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    ice_servers: list[IceServer] = Field(default_factory=list)
    sites: dict[str, _SiteIce] = Field(default_factory=dict)  # per-site override

    def ice_for(self, site: str) -> list[dict[str, Any]]:
        servers = self.sites[site].ice_servers if site in self.sites else self.ice_servers
        return [s.model_dump(exclude_none=True) for s in servers]


def load_telepresence_config(directory: str | Path, site_ids: set[str]) -> TelepresenceConfig:
    """``telepresence.yaml`` in the config directory; absent means no ICE servers (host
    candidates only: fine on one LAN, not across NATs). Raises ConfigError naming the key."""
    path = Path(directory) / TELEPRESENCE_FILE
    if not path.exists():
        return TelepresenceConfig()
    data = read_yaml(path) or {}
    try:
        cfg = TelepresenceConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(str(path), ".".join(str(p) for p in err["loc"]), err["msg"]) from None
    for site in cfg.sites:
        if site not in site_ids:
            raise ConfigError(str(path), f"sites.{site}", "not a site of sites.yaml")
    return cfg
