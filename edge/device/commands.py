"""Device commands as they cross the wire (WebRTC data channel, MQTT ``…/commands``).

``parse_command`` validates a JSON object into one of the command models;
``apply_command`` runs it on a driver and returns a ``CommandResult`` — never raises for a bad
or refused command, so a remote peer cannot crash the edge with one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from edge.device.base import DeviceDriver, DeviceError

_finite = {"allow_inf_nan": False}


class _Cmd(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, **_finite)


class Move(_Cmd):
    type: Literal["move"] = "move"
    linear: float = Field(description="m/s, forward positive; clamped to the device's limit")
    angular: float = Field(0.0, description="rad/s, counter-clockwise positive; clamped")
    duration_s: float | None = Field(None, gt=0, le=10,
                                     description="stop after this long (never beyond timeout)")


class Turn(_Cmd):
    type: Literal["turn"] = "turn"
    angular: float
    duration_s: float | None = Field(None, gt=0, le=10)


class Renew(_Cmd):
    type: Literal["renew"] = "renew"


class Head(_Cmd):
    type: Literal["head"] = "head"
    pan: float = Field(description="rad, left positive; clamped")
    tilt: float = Field(0.0, description="rad, up positive; clamped")


class Stop(_Cmd):
    type: Literal["stop"] = "stop"


class EmergencyStop(_Cmd):
    type: Literal["estop"] = "estop"
    reason: str = Field("operator", max_length=200)


class ResetEmergencyStop(_Cmd):
    type: Literal["estop_reset"] = "estop_reset"


class Display(_Cmd):
    type: Literal["display"] = "display"
    text: str = Field(max_length=2000)
    lang: str | None = Field(None, max_length=16)


class Dock(_Cmd):
    type: Literal["dock"] = "dock"


class Undock(_Cmd):
    type: Literal["undock"] = "undock"


class GetState(_Cmd):
    type: Literal["state"] = "state"


DeviceCommand = Annotated[
    Move | Turn | Renew | Head | Stop | EmergencyStop | ResetEmergencyStop | Display | Dock
    | Undock | GetState,
    Field(discriminator="type"),
]
_adapter: TypeAdapter[DeviceCommand] = TypeAdapter(DeviceCommand)


class CommandResult(BaseModel):
    ok: bool
    error: str | None = None  # stable code: invalid_command, emergency_stop, …
    message: str | None = None
    detail: dict[str, Any] | None = None
    state: dict[str, Any] | None = None


def parse_command(data: Any) -> DeviceCommand:
    """Raises pydantic ``ValidationError`` on anything that is not a known, valid command."""
    return _adapter.validate_python(data)


def _run(driver: DeviceDriver, cmd: DeviceCommand) -> dict[str, Any] | None:
    match cmd:
        case Move():
            g = driver.move(cmd.linear, cmd.angular, cmd.duration_s)
            return {"linear": g.linear, "angular": g.angular, "until": g.until,
                    "clamped": g.clamped}
        case Turn():
            g = driver.turn(cmd.angular, cmd.duration_s)
            return {"linear": g.linear, "angular": g.angular, "until": g.until,
                    "clamped": g.clamped}
        case Renew():
            g = driver.renew()
            return {"until": g.until}
        case Head():
            pan, tilt = driver.head(cmd.pan, cmd.tilt)
            return {"pan": pan, "tilt": tilt}
        case Stop():
            driver.stop()
        case EmergencyStop():
            driver.emergency_stop(cmd.reason)
        case ResetEmergencyStop():
            driver.reset_emergency_stop()
        case Display():
            driver.display_text(cmd.text, cmd.lang)
        case Dock():
            driver.dock()
        case Undock():
            driver.undock()
        case GetState():
            pass
    return None


def apply_command(driver: DeviceDriver, data: Any) -> CommandResult:
    """Validate ``data`` (a dict or a parsed command) and run it; errors become results."""
    try:
        cmd = data if isinstance(data, BaseModel) else parse_command(data)
    except ValidationError as e:
        first = e.errors()[0] if e.errors() else {}
        msg = f"{'.'.join(map(str, first.get('loc', ())))}: {first.get('msg', 'invalid')}"
        return CommandResult(ok=False, error="invalid_command", message=msg)
    try:
        detail = _run(driver, cmd)
    except DeviceError as e:
        return CommandResult(ok=False, error=e.reason, message=str(e),
                             state=driver.state().as_dict())
    except ValueError as e:
        return CommandResult(ok=False, error="invalid_command", message=str(e))
    return CommandResult(ok=True, detail=detail, state=driver.state().as_dict())
