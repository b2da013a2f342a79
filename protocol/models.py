"""Domain types shared by every part of Baton.

Pure data: nothing here imports web, broker, storage or media libraries. Everything that
crosses a process boundary is a pydantic model with ``extra="forbid"`` so that unknown
fields are rejected at the edge instead of being silently dropped.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    model_validator,
)

from protocol.wire import FreeJson, FreeValue, check_json

# Identifiers are short, printable and safe to embed in MQTT topics and URLs.
Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
LangCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]
Level = Annotated[StrictInt, Field(ge=1, le=5)]


class Strict(BaseModel):
    # Wire rules (docs/protocol.md §8): no unknown fields, floats finite (NaN and ±Infinity
    # are refused), integers are JSON integers (StrictInt: no "5", no true).
    model_config = ConfigDict(extra="forbid", frozen=False, allow_inf_nan=False)


class Channel(StrEnum):
    video = "video"
    voice = "voice"
    chat = "chat"


class WorkerKind(StrEnum):
    agent = "agent"
    specialist = "specialist"
    remote_worker = "remote_worker"
    floor_staff = "floor_staff"


class Role(StrEnum):
    agent = "agent"
    specialist = "specialist"
    remote_worker = "remote_worker"
    supervisor = "supervisor"
    device = "device"
    admin = "admin"


class Presence(StrEnum):
    offline = "offline"
    available = "available"
    away = "away"


class CaseState(StrEnum):
    ai_active = "ai_active"
    escalating = "escalating"
    queued = "queued"
    offered = "offered"
    connected = "connected"
    transferring = "transferring"
    handed_back = "handed_back"
    resolved = "resolved"
    abandoned = "abandoned"


TERMINAL_STATES = frozenset({CaseState.resolved, CaseState.abandoned})
# States in which the case waits in the matching engine for a human.
ROUTABLE_STATES = frozenset({CaseState.queued, CaseState.transferring})


class OfferStatus(StrEnum):
    pending = "pending"
    accepted = "accepted"
    rejected = "rejected"
    timed_out = "timed_out"
    withdrawn = "withdrawn"


class Surface(Strict):
    """Where the help must appear: on a telepresence device at a site, or anywhere."""

    kind: Literal["telepresence", "any"] = "any"
    site: Ident | None = None


class Requirement(Strict):
    language: LangCode
    skills: dict[Ident, Level] = Field(default_factory=dict)
    surface: Surface = Field(default_factory=Surface)
    channel: Channel = Channel.chat
    priority: StrictInt = Field(default=0, ge=0, le=100)
    workflow: Ident | None = None


class Worker(Strict):
    id: Ident
    name: str = ""
    kind: WorkerKind
    languages: dict[LangCode, Level]
    skills: dict[Ident, Level] = Field(default_factory=dict)
    sites: list[Ident] = Field(default_factory=list)
    capacity: dict[Channel, Annotated[StrictInt, Field(ge=0, le=20)]] = Field(default_factory=dict)


class Offer(Strict):
    offer_id: Ident
    case_id: Ident
    worker_id: Ident
    created_at: float
    expires_at: float
    step: str
    status: OfferStatus = OfferStatus.pending


class DecisionKind(StrEnum):
    continue_ai = "continue_ai"
    assist = "assist"
    escalate = "escalate"


class Decision(Strict):
    decision: DecisionKind
    mode: Literal["ai_primary", "human_primary", "joint"] = "ai_primary"
    reasons: list[str] = Field(default_factory=list)
    expected_cost_ai: float = 0.0
    cost_human: float = 0.0
    threshold: float = 0.0
    numbers: dict[str, float] = Field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# Case events: the append-only source of truth. One payload model per event type.


class OpenedPayload(Strict):
    site: Ident
    device: Ident | None = None
    resident: Ident | None = None
    language: LangCode
    channel: Channel = Channel.chat
    intent: str | None = Field(default=None, max_length=100)
    account: FreeJson | None = None


class TurnPayload(Strict):
    speaker: Literal["resident", "ai", "human"]
    language: LangCode
    text: str = Field(min_length=1, max_length=4000)
    translated: str | None = Field(default=None, max_length=8000)
    translated_language: LangCode | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)
    worker_id: Ident | None = None
    # Edge measurements, e.g. asr_ms, translate_ms, eos_to_final_ms.
    timings: Annotated[dict[str, float], Field(max_length=32)] | None = None
    # Set when no translation model covered the pair: why (the turn is kept as said).
    untranslated: str | None = Field(default=None, max_length=300)


class TranslationPayload(Strict):
    turn_event_id: str
    language: LangCode
    text: str = Field(max_length=8000)
    # Set when the turn could not be translated into ``language`` (``text`` is then empty):
    # the resident saw the original with a note.
    untranslated: str | None = Field(default=None, max_length=300)


class ActionPayload(Strict):
    tool: str = Field(min_length=1, max_length=100)
    args: FreeJson = Field(default_factory=dict)
    result: FreeValue = None
    ok: StrictBool = True


class SignalPayload(Strict):
    name: str = Field(min_length=1, max_length=100)
    value: StrictBool | float | Annotated[str, StringConstraints(max_length=500)]
    detail: FreeJson = Field(default_factory=dict)


class DecisionPayload(Strict):
    decision: Decision


class QueuedPayload(Strict):
    requirement: Requirement
    reasons: list[str] = Field(default_factory=list)
    # Repeat contact: asked first, for routing.preferred_worker.fallback_s.
    preferred_worker: Ident | None = None
    # What the case is about as routed (the assistant's intent on an escalating turn); the
    # case takes it, so it need not be known when the case is opened.
    intent: str | None = None


class OfferPayload(Strict):
    offer: Offer


class OfferResultPayload(Strict):
    offer_id: Ident
    worker_id: Ident
    status: Literal[OfferStatus.accepted, OfferStatus.rejected, OfferStatus.timed_out,
                    OfferStatus.withdrawn]
    reason: str | None = None


class ConnectPayload(Strict):
    worker_id: Ident
    media: Literal["video", "voice", "chat"] | None = None


class TransferPayload(Strict):
    from_worker: Ident
    requirement: Requirement
    note: str = Field(default="", max_length=4000)
    to_worker: Ident | None = None


class NotePayload(Strict):
    author: Ident
    text: str = Field(min_length=1, max_length=4000)


class HandbackPayload(Strict):
    worker_id: Ident
    reason: Literal["resolved_question", "routine_remaining", "resident_request", "other"]
    note: str = Field(default="", max_length=4000)


class OutcomePayload(Strict):
    status: Literal["resolved", "abandoned"]
    code: str = Field(default="", max_length=100)
    note: str = Field(default="", max_length=4000)
    by: Ident | None = None
    ai_verdict: Literal["right", "wrong"] | None = None


class RatingPayload(Strict):
    score: StrictInt = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2000)


PAYLOADS: dict[str, type[Strict]] = {
    "opened": OpenedPayload,
    "turn": TurnPayload,
    "translation": TranslationPayload,
    "action": ActionPayload,
    "signal": SignalPayload,
    "decision": DecisionPayload,
    "queued": QueuedPayload,
    "offer": OfferPayload,
    "offer_result": OfferResultPayload,
    "connect": ConnectPayload,
    "transfer": TransferPayload,
    "note": NotePayload,
    "handback": HandbackPayload,
    "outcome": OutcomePayload,
    "rating": RatingPayload,
}


class _EventHeader(Strict):
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=80)]
    case_id: Ident
    origin: Ident
    seq: StrictInt = Field(ge=1, le=2**53,
                           description="Strictly increasing per origin, starting at 1.")
    ts: float = Field(ge=0, le=1e11,
                      description="Seconds since the Unix epoch, set by the origin; finite.")

    @model_validator(mode="after")
    def _storable(self):
        # Every string and number of the payload must be storable as JSON in any backend
        # (finite numbers, valid UTF-8): checked here, not by the store at commit time.
        check_json(self.payload.model_dump(mode="python"), where="payload")
        return self


def _event_class(name: str, type_: str, payload: type[Strict]) -> type[_EventHeader]:
    annotations = {"type": Literal[type_], "payload": payload}  # type: ignore[valid-type]
    return type(name, (_EventHeader,), {"__annotations__": annotations, "__module__": __name__})


OpenedEvent = _event_class("OpenedEvent", "opened", OpenedPayload)
TurnEvent = _event_class("TurnEvent", "turn", TurnPayload)
TranslationEvent = _event_class("TranslationEvent", "translation", TranslationPayload)
ActionEvent = _event_class("ActionEvent", "action", ActionPayload)
SignalEvent = _event_class("SignalEvent", "signal", SignalPayload)
DecisionEvent = _event_class("DecisionEvent", "decision", DecisionPayload)
QueuedEvent = _event_class("QueuedEvent", "queued", QueuedPayload)
OfferEvent = _event_class("OfferEvent", "offer", OfferPayload)
OfferResultEvent = _event_class("OfferResultEvent", "offer_result", OfferResultPayload)
ConnectEvent = _event_class("ConnectEvent", "connect", ConnectPayload)
TransferEvent = _event_class("TransferEvent", "transfer", TransferPayload)
NoteEvent = _event_class("NoteEvent", "note", NotePayload)
HandbackEvent = _event_class("HandbackEvent", "handback", HandbackPayload)
OutcomeEvent = _event_class("OutcomeEvent", "outcome", OutcomePayload)
RatingEvent = _event_class("RatingEvent", "rating", RatingPayload)

CaseEvent = Annotated[
    Union[  # noqa: UP007 - a discriminated union needs the explicit Union form here
        OpenedEvent, TurnEvent, TranslationEvent, ActionEvent, SignalEvent,  # type: ignore[valid-type]
        DecisionEvent, QueuedEvent, OfferEvent, OfferResultEvent, ConnectEvent,  # type: ignore[valid-type]
        TransferEvent, NoteEvent, HandbackEvent, OutcomeEvent, RatingEvent,  # type: ignore[valid-type]
    ],
    Field(discriminator="type"),
]

EVENT_TYPES = tuple(PAYLOADS)


# ---------------------------------------------------------------------------------------
# The context packet: what a human sees on accept. A fold of the case's events
# (router.packet.build_packet); versioned so consumers can check what they read.

PACKET_SCHEMA_VERSION = "1.0"


class TranscriptEntry(Strict):
    event_id: str
    at: float
    speaker: Literal["resident", "ai", "human"]
    language: str
    text: str
    translated: str | None = None
    translated_language: str | None = None
    confidence: float | None = None
    worker_id: str | None = None
    untranslated: str | None = None  # why there is no translation (shown as said)


class ActionRecord(Strict):
    event_id: str
    at: float
    tool: str
    args: dict[str, Any]
    result: Any = None
    ok: bool


class EscalationInfo(Strict):
    at: float
    decision: Decision
    signals: dict[str, float | bool | str] = Field(default_factory=dict)


class HandoffRecord(Strict):
    at: float
    kind: str
    from_owner: str | None = None
    to_owner: str | None = None
    note: str = ""


class NoteRecord(Strict):
    at: float
    author: str
    text: str


class ContextPacket(Strict):
    schema_version: Literal["1.0"] = PACKET_SCHEMA_VERSION
    case_id: str
    revision: int
    site: str
    device: str | None = None
    resident: str | None = None
    language: str
    channel: Channel
    intent: str | None = None
    state: CaseState
    requirement: Requirement | None = None
    account: dict[str, Any] | None = None
    transcript: list[TranscriptEntry] = Field(default_factory=list)
    actions: list[ActionRecord] = Field(default_factory=list)
    escalation: EscalationInfo | None = None
    policy_flags: list[str] = Field(default_factory=list)
    notes: list[NoteRecord] = Field(default_factory=list)
    handoffs: list[HandoffRecord] = Field(default_factory=list)
    summary: str = ""
    next_steps: list[str] = Field(default_factory=list)
