"""WebRTC signaling on the wire: the envelopes on MQTT ``…/signal/down`` and ``…/signal/up``,
the signaling messages they carry, and the ICE server entry (``config/telepresence.yaml`` is
loaded by ``router.telepresence``).

Shared by the router (``router.mqtt.signal_relay``) and the edge
(``edge.webrtc.mqtt_signaler``); it imports neither aiortc nor the router. The
signaling messages mirror ``edge.webrtc.signaling`` (the browser's field names); unknown
fields are dropped, so what is forwarded is only what the models know.

    router → edge  {"v": 1, "case_id": "…", "session": "s-…", "worker": "aiko", "ts": …,
                    "signal": {"type": "offer", "sdp": "v=0…"}}
                   the session start has "signal": null and "ice_servers": […]
    edge → router  {"v": 1, "case_id": "…", "session": "s-…", "origin": "robot-1", "ts": …,
                    "signal": {"type": "answer", "sdp": "v=0…"}}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from protocol.models import Ident

# SDPs of a browser with audio, video and data channels are 5–20 KB; the router's other
# MQTT payloads stay at 16 KiB.
MAX_SIGNAL_BYTES = 64 * 1024


class _Sig(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class Offer(_Sig):
    type: Literal["offer"]
    sdp: str = Field(min_length=1, max_length=60_000)


class Answer(_Sig):
    type: Literal["answer"]
    sdp: str = Field(min_length=1, max_length=60_000)


class Candidate(_Sig):
    type: Literal["candidate"]
    candidate: str | None = Field(None, max_length=2000)
    sdpMid: str | None = Field(None, max_length=64)  # noqa: N815 (browser field name)
    sdpMLineIndex: int | None = Field(None, ge=0, le=64)  # noqa: N815
    usernameFragment: str | None = Field(None, max_length=256)  # noqa: N815


class Bye(_Sig):
    type: Literal["bye"]
    reason: str = Field("", max_length=200)


Signal = Annotated[Offer | Answer | Candidate | Bye, Field(discriminator="type")]
SIGNAL: TypeAdapter[Signal] = TypeAdapter(Signal)


class IceServer(BaseModel):
    """RTCIceServer as the browser and ``MediaPeer(ice_servers=…)`` take it."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    urls: str | list[str] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None


class _Env(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    v: Literal[1] = 1
    case_id: Ident
    session: str = Field(min_length=1, max_length=80)
    ts: float | None = None


class SignalDown(_Env):
    worker: str = Field(max_length=80)
    signal: Signal | None = None  # None: a new session starts (with ice_servers)
    ice_servers: list[IceServer] | None = None


class SignalUp(_Env):
    origin: Ident
    signal: Signal


def dump(model: BaseModel) -> bytes:
    return model.model_dump_json(exclude_none=True).encode()


def signal_dict(sig: Any) -> dict[str, Any]:
    """A validated signal as the JSON the other side gets (``candidate: null`` is kept: it
    ends the candidates)."""
    out = sig.model_dump()
    if sig.type != "candidate":
        out = {k: v for k, v in out.items() if v is not None}
    elif sig.usernameFragment is None:
        out.pop("usernameFragment")
    return out
