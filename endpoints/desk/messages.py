"""What the desk sends on the worker socket (besides sign-in and ping, protocol/socket.py):
presence, and the answer to an offer."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from protocol.models import Presence
from protocol.socket import SocketMessage


class PresenceMsg(SocketMessage):
    type: Literal["presence"]
    presence: Presence


class AcceptMsg(SocketMessage):
    type: Literal["accept"]
    offer_id: str = Field(max_length=80)


class RejectMsg(SocketMessage):
    type: Literal["reject"]
    offer_id: str = Field(max_length=80)
    reason: str | None = Field(default=None, max_length=200)
