"""Data-channel messages: JSON text, one object per message, ``type`` first.

Two channels, pre-negotiated on both sides (``negotiated: true``) so either side may make the
offer and a browser opens them with the same two lines:
    captions  id 1   {"type": "caption", …} both ways
    device    id 2   worker → edge {"type": "command"}; edge → worker {"type": "command_result"},
                     {"type": "device_state"}, {"type": "error"}
Anything invalid is answered with an ``error`` message (device channel) or dropped and logged
(captions); it never closes the channel or the session.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

CAPTIONS = ("captions", 1)
DEVICE = ("device", 2)
MAX_MESSAGE_BYTES = 16_384


class _Msg(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class CaptionText(BaseModel):
    text: str = Field(max_length=4000)
    lang: str = Field(max_length=16)


class Caption(_Msg):
    """A line of live caption. ``original`` is the speaker's words when ``text`` is a
    translation; ``final`` is false for partials (which a later message with the same
    ``id`` replaces)."""

    type: Literal["caption"] = "caption"
    id: str = Field(max_length=64)
    speaker: Literal["resident", "worker", "ai"]
    text: str = Field(max_length=4000)
    lang: str = Field(max_length=16)
    final: bool = True
    original: CaptionText | None = None
    ts: float | None = None


class Command(_Msg):
    """Worker → edge. ``command`` is validated against edge.device.commands on arrival."""

    type: Literal["command"] = "command"
    id: str = Field(max_length=64)
    command: dict[str, Any]


class CommandResultMsg(_Msg):
    type: Literal["command_result"] = "command_result"
    id: str
    ok: bool
    error: str | None = None
    message: str | None = None
    detail: dict[str, Any] | None = None
    state: dict[str, Any] | None = None


class DeviceStateMsg(_Msg):
    type: Literal["device_state"] = "device_state"
    state: dict[str, Any]


class ErrorMsg(_Msg):
    type: Literal["error"] = "error"
    error: str
    message: str
    id: str | None = None


DeviceMessage = Annotated[Command | CommandResultMsg | DeviceStateMsg | ErrorMsg,
                          Field(discriminator="type")]
device_adapter: TypeAdapter[DeviceMessage] = TypeAdapter(DeviceMessage)
