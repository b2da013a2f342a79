"""Request and response shapes of the router's REST and WebSocket surfaces."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator

from protocol.models import Channel, Ident, LangCode, Level, Presence, TurnPayload
from protocol.wire import FreeJson, check_json
from router.casestate import Case

if TYPE_CHECKING:
    from router.service.core import RouterCore


class Body(BaseModel):
    # The wire rules of protocol.models.Strict: finite floats, integers that are integers.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="after")
    def _storable(self):
        # Refused here (422), not by the store at commit time (docs/protocol.md §8).
        check_json(self.model_dump(mode="python"), "body", max_depth=12, max_nodes=20_000)
        return self


class CreateCase(Body):
    case_id: Ident | None = None
    site: Ident
    device: Ident | None = None
    resident: Ident | None = Field(default=None, description="Pseudonymous resident id.")
    language: LangCode
    channel: Channel = Channel.chat
    intent: str | None = Field(default=None, max_length=100)
    account: FreeJson | None = None
    skills: dict[Ident, Level] = Field(default_factory=dict)
    priority: StrictInt = Field(default=0, ge=0, le=100)
    workflow: Ident | None = None
    escalate: bool = Field(default=True, description="Queue the case for a human at once.")
    reasons: list[Annotated[str, StringConstraints(max_length=100)]] = Field(
        default_factory=list, max_length=20)
    transcript: list[TurnPayload] = Field(default_factory=list, max_length=200)


class EscalateCase(Body):
    """Ask for a human on an open case; unset fields come from the case."""

    skills: dict[Ident, Level] = Field(default_factory=dict)
    channel: Channel | None = None
    priority: StrictInt = Field(default=0, ge=0, le=100)
    workflow: Ident | None = None
    reasons: list[Annotated[str, StringConstraints(max_length=100)]] = Field(
        default_factory=list, max_length=20)

    def for_case(self, case: Case) -> CreateCase:
        return CreateCase(case_id=case.id, site=case.site, device=case.device,
                          resident=case.resident, language=case.language,
                          channel=self.channel or case.channel, skills=self.skills,
                          priority=self.priority, workflow=self.workflow, reasons=self.reasons)


class ResidentTurn(Body):
    """What the resident said, as the edge transcribed it (and translated it to the pivot
    language when the resident does not speak it)."""

    text: str = Field(max_length=20_000)
    language: str = Field(max_length=16)
    translated: str | None = Field(default=None, max_length=20_000)
    untranslated: str | None = Field(default=None, max_length=300, description=(
        "Why there is no translation into the pivot language (no model covers the pair): "
        "the turn is recorded as said, marked untranslated."))


class CloseCase(Body):
    status: Literal["resolved", "abandoned"] = "resolved"
    code: str = Field(default="", max_length=100)
    note: str = Field(default="", max_length=4000)
    ai_verdict: Literal["right", "wrong"] | None = None


class TransferCase(Body):
    language: LangCode | None = None
    skills: dict[Ident, Level] = Field(default_factory=dict)
    channel: Channel | None = None
    workflow: Ident | None = None
    priority: StrictInt | None = Field(default=None, ge=0, le=100)
    to_worker: Ident | None = None
    note: str = Field(default="", max_length=4000)


class TakeCase(Body):
    note: str = Field(default="", max_length=4000, description="Recorded as the taker's note.")


class Handback(Body):
    reason: Literal["resolved_question", "routine_remaining", "resident_request", "other"]
    note: str = Field(default="", max_length=4000)


class NoteIn(Body):
    text: str = Field(min_length=1, max_length=4000)


class MessageIn(Body):
    """A worker's message to the resident (the device translates it)."""

    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=2000)]
    language: LangCode | None = Field(default=None, description="What the text is written "
                                      "in; default: the worker's first language.")


class RejectOffer(Body):
    reason: str | None = Field(default=None, max_length=200)


class PresenceIn(Body):
    presence: Presence


_QUERY = object()


def case_view(case: Case, core: RouterCore | None = None, *,
              step: str | None | object = _QUERY) -> dict[str, Any]:
    """The case as the sockets and REST show it. With ``core``: its queue position and
    routing step now; else ``step`` when given (an event's, without the position, which
    would cost a scan of the waiting cases per event)."""
    data = case.model_dump(mode="json")
    if core is not None:
        data["queue_position"] = core.queue_position(case.id)
        data["step"] = core.step_of(case.id)
    elif step is not _QUERY:
        data["step"] = step
    return data


def case_preview(case: Case) -> dict[str, Any]:
    """What an offer shows before accept; the full packet comes with the accept."""
    req = case.requirement
    return {
        "id": case.id, "site": case.site, "device": case.device, "language": case.language,
        "channel": case.channel.value, "intent": case.intent, "state": case.state.value,
        "priority": req.priority if req else 0,
        "skills": dict(req.skills) if req else {},
        "waiting_since": case.queued_at, "transfers": case.transfers,
        "last_handoff": case.handoffs[-1].model_dump(mode="json") if case.handoffs else None,
    }
