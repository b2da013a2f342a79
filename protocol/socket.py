"""The worker WebSocket (/v1/ws, router/service/ws.py) as every surface speaks it: the first
frame signs in, pings keep it open. What each surface sends besides lives with the surface
(endpoints/desk/messages.py, endpoints/telepresence/messages.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SocketMessage(BaseModel):
    """A frame from a browser: unknown fields refused, floats finite."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AuthMsg(SocketMessage):
    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=512)


class PingMsg(SocketMessage):
    type: Literal["ping"]
