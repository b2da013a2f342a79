"""What the remote worker's page sends on the worker socket for live video: a session start,
then WebRTC signals (offer, candidates, bye) that router.mqtt.signal_relay validates
(protocol/signaling.py) and forwards to the device."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from protocol.socket import SocketMessage


class SignalStartMsg(SocketMessage):
    type: Literal["signal_start"]
    case_id: str = Field(max_length=80)


class SignalMsg(SocketMessage):
    type: Literal["signal"]
    case_id: str = Field(max_length=80)
    signal: dict[str, Any]  # validated by the relay (protocol/signaling.py)
