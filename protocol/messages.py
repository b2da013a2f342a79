"""Payloads of the MQTT protocol other than the case events themselves (which are
``protocol.models.CaseEvent`` as JSON). Versioned with ``v``; unknown fields are rejected.
``docs/protocol.md`` shows examples; ``schemas()`` gives their JSON Schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

PROTOCOL_VERSION = 1
MAX_EVENT_BYTES = 64 * 1024  # like the REST body limit
MAX_MESSAGE_BYTES = 16 * 1024  # every other payload

Id = Annotated[str, StringConstraints(min_length=1, max_length=80)]
Text = Annotated[str, StringConstraints(max_length=500)]


class _Msg(BaseModel):
    # The wire rules of protocol.models.Strict: no unknown fields, finite numbers only.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    v: Literal[1] = PROTOCOL_VERSION


class Ack(_Msg):
    """Router → edge on ``…/acks`` (retained): every event of ``origin`` with seq ≤
    ``high_water`` is durable at the router. ``resend``: the router saw a gap; send again
    from ``high_water + 1``."""

    origin: str
    high_water: int = Field(ge=0)
    resend: bool = False
    ts: float


class Command(_Msg):
    """Router → edge on ``…/commands``. Delivered at least once until receipted; the edge
    runs each ``command_id`` once."""

    command_id: Id
    type: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,63}$")]
    args: dict[str, Any] = Field(default_factory=dict)
    ts: float
    expires_at: float | None = None


class Receipt(_Msg):
    """Edge → router on ``…/receipts``: what became of a command."""

    command_id: Id
    status: Literal["done", "failed", "duplicate", "expired", "unsupported"]
    detail: Text = ""
    ts: float


class DeviceState(_Msg):
    """Edge → router on ``…/state``, retained. ``online`` when the edge connects; the
    broker publishes the edge's last will (``offline``) when it vanishes. ``conn`` names the
    connection, so a late will of an old connection cannot mark a new one offline."""

    status: Literal["online", "offline"]
    conn: Id
    ts: float
    kind: Literal["kiosk", "robot"] | None = None
    reason: Text = ""
    software: Text = ""


class Battery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    percent: float = Field(ge=0, le=100)
    charging: bool | None = None


class Network(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["wifi", "ethernet", "cellular", "other"] = "other"
    rssi_dbm: float | None = Field(default=None, ge=-150, le=0)
    latency_ms: float | None = Field(default=None, ge=0)


class OutboxStats(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pending: int = Field(ge=0)
    capacity: int = Field(ge=1)
    full: bool = False


class Heartbeat(_Msg):
    """Edge → router on ``…/heartbeat`` every ``interval_s``. Robots fill battery, docked
    and network; a kiosk on mains leaves battery out."""

    conn: Id
    ts: float
    interval_s: float = Field(gt=0, le=3600)
    battery: Battery | None = None
    docked: bool | None = None
    network: Network | None = None
    outbox: OutboxStats | None = None


class CaseUpdate(_Msg):
    """Router → edge on ``…/cases``: the state of one of the device's cases, e.g. so the AI
    stops talking once a human is connected. Newer ``revision`` wins."""

    case_id: str
    state: str
    revision: int
    updated_at: float
    assigned_worker: str | None = None
    # Who the resident sees (the roster's name and kind), for the resident's screen.
    worker_name: str | None = None
    worker_kind: str | None = None
    outcome: str | None = None


MESSAGES: dict[str, type[_Msg]] = {"ack": Ack, "command": Command, "receipt": Receipt,
                                   "state": DeviceState, "heartbeat": Heartbeat,
                                   "case-update": CaseUpdate}


def dumps(msg: BaseModel) -> bytes:
    return msg.model_dump_json(exclude_none=True).encode()


def schemas() -> dict[str, dict]:
    out = {}
    for name, model in MESSAGES.items():
        schema = model.model_json_schema()
        schema.update({"$schema": "https://json-schema.org/draft/2020-12/schema",
                       "$id": f"https://baton.example/schemas/mqtt/{name}-v1.json"})
        out[f"{name}-v1.json"] = schema
    return out


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, schema in schemas().items():
        path = out / name
        path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
