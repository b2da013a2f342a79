"""REST for the sync layer (staff only): bridge status with device presence and counters,
dead letters, and commands to a device."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from protocol.models import Role
from router.mqtt.bridge import Bridge, BridgeError
from router.service.auth import Principal, require

sync_api = APIRouter(prefix="/v1/sync", tags=["sync"])
Staff = require(Role.supervisor, Role.admin)


def _bridge(request: Request) -> Bridge:
    bridge = getattr(request.app.state, "bridge", None)
    if bridge is None:
        raise HTTPException(503, "the MQTT bridge is not running: start the router with "
                            "BATON_MQTT_HOST (or --mqtt-host) set")
    return bridge


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$")
    args: dict[str, Any] = Field(default_factory=dict)
    ttl_s: float | None = Field(default=None, gt=0, le=7 * 86400)


@sync_api.get("")
async def sync_status(request: Request, principal: Principal = Staff) -> dict[str, Any]:
    return _bridge(request).status()


@sync_api.get("/dead-letters")
async def dead_letters(request: Request, principal: Principal = Staff,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                       before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                       source: Annotated[str | None, Query(max_length=200)] = None
                       ) -> dict[str, Any]:
    """Newest first. Next page: ``before_id`` = the ``next_before_id`` of this one (absent
    on the last page). ``source``: a prefix, e.g. ``mqtt:baton/v1/lab/kiosk-1/`` or
    ``rest:``."""
    rows = await request.app.state.core.store.dead_letters(limit, before_id, source)
    out: dict[str, Any] = {"dead_letters": rows}
    if len(rows) == limit:
        out["next_before_id"] = rows[-1]["id"]
    return out


@sync_api.post("/devices/{device}/commands", status_code=202)
async def send_command(device: str, body: CommandIn, request: Request,
                       principal: Principal = Staff) -> dict[str, Any]:
    try:
        command_id = await _bridge(request).send_command(device, body.type, body.args,
                                                         body.ttl_s)
    except BridgeError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"command_id": command_id}


@sync_api.get("/commands/{command_id}")
async def command(command_id: str, request: Request,
                  principal: Principal = Staff) -> dict[str, Any]:
    row = await _bridge(request).sync.command(command_id)
    if row is None:
        raise HTTPException(404, f"no command {command_id!r}")
    return row
