"""Signaling: plain SDP offer/answer and ICE candidates as JSON objects.

The peer talks to an injected ``Signaler`` (send/receive dicts). The router relays the same
objects between the browser's WebSocket and the device's MQTT ``…/signal`` topic; in tests
``MemorySignaler.pair()`` connects two peers in one process.

Messages (all with ``type``; ``session`` names the case/session when a relay needs it):
    {"type": "offer",     "sdp": "v=0…"}
    {"type": "answer",    "sdp": "v=0…"}
    {"type": "candidate", "candidate": "candidate:…" | null, "sdpMid": "0", "sdpMLineIndex": 0}
    {"type": "bye",       "reason": "…"}
The field names are the browser's (RTCSessionDescriptionInit, RTCIceCandidateInit), so a page
passes them to and from its RTCPeerConnection unchanged. ``candidate: null`` or "" marks the
end of candidates. aiortc gathers all its candidates before its SDP is sent, so the edge sends
none separately; it accepts trickled candidates from the other side.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from common.errors import BatonError


class SignalingError(BatonError):
    reason = "signaling"


class SignalingClosed(SignalingError):
    reason = "signaling_closed"


class Signaler(Protocol):
    async def send(self, message: dict[str, Any]) -> None: ...

    async def receive(self) -> dict[str, Any]:
        """The next message; raises ``SignalingClosed`` when the channel is gone."""
        ...


class _Msg(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    session: str | None = Field(None, max_length=200)


class Offer(_Msg):
    type: Literal["offer"] = "offer"
    sdp: str = Field(max_length=200_000)


class Answer(_Msg):
    type: Literal["answer"] = "answer"
    sdp: str = Field(max_length=200_000)


class Candidate(_Msg):
    type: Literal["candidate"] = "candidate"
    candidate: str | None = Field(None, max_length=2000)
    sdpMid: str | None = Field(None, max_length=64)  # noqa: N815 (browser field name)
    sdpMLineIndex: int | None = Field(None, ge=0, le=64)  # noqa: N815


class Bye(_Msg):
    type: Literal["bye"] = "bye"
    reason: str = Field("", max_length=200)


SignalMessage = Annotated[Offer | Answer | Candidate | Bye, Field(discriminator="type")]
signal_adapter: TypeAdapter[SignalMessage] = TypeAdapter(SignalMessage)


def parse_signal(data: Any) -> SignalMessage:
    """Raises pydantic ``ValidationError`` for anything that is not a signaling message."""
    return signal_adapter.validate_python(data)


class MemorySignaler:
    """One end of an in-process signaling pipe. ``close()`` ends both directions."""

    _CLOSED = object()

    def __init__(self, inbox: asyncio.Queue, outbox: asyncio.Queue):
        self._inbox, self._outbox = inbox, outbox
        self.sent: list[dict[str, Any]] = []
        self.closed = False

    @classmethod
    def pair(cls) -> tuple[MemorySignaler, MemorySignaler]:
        a, b = asyncio.Queue(), asyncio.Queue()
        return cls(a, b), cls(b, a)

    async def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            raise SignalingClosed("signaler closed")
        self.sent.append(message)
        await self._outbox.put(dict(message))

    async def receive(self) -> dict[str, Any]:
        if self.closed:
            raise SignalingClosed("signaler closed")
        item = await self._inbox.get()
        if item is self._CLOSED:
            self.closed = True
            raise SignalingClosed("signaler closed by the other end")
        return item

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self._outbox.put(self._CLOSED)
            await self._inbox.put(self._CLOSED)
