"""The case state machine: a case is the fold of its events.

``apply(case, event)`` is pure: it returns a new Case and never mutates its input, so a
caller can validate an event against the current state before it is persisted.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from common.errors import BatonError
from protocol.models import (
    ROUTABLE_STATES,
    TERMINAL_STATES,
    CaseState,
    Channel,
    HandoffRecord,
    Ident,
    Offer,
    OfferStatus,
    Requirement,
)


class TransitionError(BatonError, ValueError):
    """An event that is not allowed in the case's current state."""

    reason = "transition_not_allowed"


# Who had the case and why it moved: the packet shows the same records.
Handoff = HandoffRecord


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Ident
    site: Ident
    device: Ident | None = None
    resident: Ident | None = None
    language: str
    channel: Channel = Channel.chat
    intent: str | None = None
    state: CaseState = CaseState.ai_active
    created_at: float
    updated_at: float
    requirement: Requirement | None = None
    queued_at: float | None = None
    # Where a rejected or expired offer sends the case back to.
    routing_state: CaseState | None = None
    preferred_worker: str | None = None
    pending_offer: Offer | None = None
    assigned_worker: str | None = None
    excluded_workers: list[str] = Field(default_factory=list)
    handbacks: int = 0
    transfers: int = 0
    outcome: str | None = None
    outcome_code: str | None = None
    revision: int = 0
    handoffs: list[Handoff] = Field(default_factory=list)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def waiting(self) -> bool:
        """Waiting for a human: in the routing queue or holding an offer."""
        return self.state in ROUTABLE_STATES or self.state is CaseState.offered


_ALWAYS_ALLOWED = {"turn", "translation", "action", "signal", "note", "connect", "decision"}


def apply(case: Case | None, event) -> Case:  # event: protocol.models.CaseEvent
    """Return the case after ``event``. Raises TransitionError when it is not allowed."""
    if event.type == "opened":
        if case is not None:
            raise TransitionError(f"case {event.case_id} is already open")
        p = event.payload
        return Case(id=event.case_id, site=p.site, device=p.device, resident=p.resident,
                    language=p.language, channel=p.channel, intent=p.intent,
                    created_at=event.ts, updated_at=event.ts, revision=1)
    if case is None:
        raise TransitionError(f"case {event.case_id} does not exist: open it first")
    if case.terminal and event.type != "rating":
        raise TransitionError(f"case {case.id} is {case.state.value}: no further changes")
    nxt = _copy(case)
    if event.type != "rating":
        _HANDLERS.get(event.type, _no_state_change)(nxt, event)
    nxt.revision = case.revision + 1
    nxt.updated_at = max(case.updated_at, event.ts)
    return nxt


def _copy(case: Case) -> Case:
    """A copy safe to change: handlers reassign nested models and only append to the two
    lists, so copying those lists is enough (a deep copy costs ~10x more on the hot path)."""
    nxt = case.model_copy()
    nxt.excluded_workers = list(case.excluded_workers)
    nxt.handoffs = list(case.handoffs)
    return nxt


def _no_state_change(case: Case, event) -> None:
    if event.type not in _ALWAYS_ALLOWED:  # pragma: no cover - every type has a handler
        raise TransitionError(f"unknown event type {event.type}")
    if event.type == "decision" and event.payload.decision.decision == "escalate":
        if case.state in (CaseState.ai_active, CaseState.handed_back):
            case.state = CaseState.escalating
            case.handoffs.append(Handoff(at=event.ts, kind="escalated", from_owner="ai",
                                         note=", ".join(event.payload.decision.reasons)))


def _queued(case: Case, event) -> None:
    if case.state not in (CaseState.ai_active, CaseState.escalating, CaseState.handed_back):
        raise TransitionError(f"case {case.id} is {case.state.value}: cannot queue it")
    case.state = CaseState.queued
    case.routing_state = CaseState.queued
    case.requirement = event.payload.requirement
    case.preferred_worker = event.payload.preferred_worker
    if event.payload.intent is not None:
        case.intent = event.payload.intent
    case.queued_at = event.ts


def _offer(case: Case, event) -> None:
    if case.state not in ROUTABLE_STATES:
        raise TransitionError(f"case {case.id} is {case.state.value}: cannot offer it")
    offer = event.payload.offer
    if offer.worker_id in case.excluded_workers:
        raise TransitionError(f"worker {offer.worker_id} declined case {case.id} already")
    case.pending_offer = offer
    case.state = CaseState.offered


def _offer_result(case: Case, event) -> None:
    p = event.payload
    offer = case.pending_offer
    if case.state is not CaseState.offered or offer is None or offer.offer_id != p.offer_id:
        raise TransitionError(f"offer {p.offer_id} is not pending on case {case.id}")
    if p.worker_id != offer.worker_id:
        raise TransitionError(f"offer {p.offer_id} was made to {offer.worker_id}")
    case.pending_offer = None
    if p.status == OfferStatus.accepted:
        previous = case.handoffs[-1].from_owner if case.routing_state is CaseState.transferring \
            and case.handoffs else "queue"
        case.state = CaseState.connected
        case.assigned_worker = p.worker_id
        case.handoffs.append(Handoff(at=event.ts, kind="accepted", from_owner=previous,
                                     to_owner=p.worker_id))
        return
    if p.status in (OfferStatus.rejected, OfferStatus.timed_out):
        case.excluded_workers.append(p.worker_id)
    case.state = case.routing_state or CaseState.queued


def _transfer(case: Case, event) -> None:
    p = event.payload
    if case.state is not CaseState.connected or case.assigned_worker != p.from_worker:
        raise TransitionError(f"only the connected worker can transfer case {case.id}")
    case.handoffs.append(Handoff(at=event.ts, kind="transferred", from_owner=p.from_worker,
                                 to_owner=p.to_worker, note=p.note))
    case.excluded_workers.append(p.from_worker)
    case.assigned_worker = None
    case.requirement = p.requirement
    case.preferred_worker = p.to_worker
    case.queued_at = event.ts
    case.transfers += 1
    case.state = CaseState.transferring
    case.routing_state = CaseState.transferring


def _handback(case: Case, event) -> None:
    p = event.payload
    if case.state is not CaseState.connected or case.assigned_worker != p.worker_id:
        raise TransitionError(f"only the connected worker can hand case {case.id} back")
    if case.handbacks >= 1:
        raise TransitionError(f"case {case.id} was handed back to the AI once already "
                              "(loop guard): resolve or transfer it instead")
    case.handbacks += 1
    case.handoffs.append(Handoff(at=event.ts, kind="handed_back", from_owner=p.worker_id,
                                 to_owner="ai", note=p.note or p.reason))
    case.assigned_worker = None
    case.state = CaseState.handed_back
    case.routing_state = None


def _outcome(case: Case, event) -> None:
    p = event.payload
    case.pending_offer = None
    case.state = CaseState.resolved if p.status == "resolved" else CaseState.abandoned
    case.outcome = p.status
    case.outcome_code = p.code or None
    case.handoffs.append(Handoff(at=event.ts, kind="closed", from_owner=case.assigned_worker,
                                 note=p.note or p.code))


_HANDLERS = {
    "queued": _queued,
    "offer": _offer,
    "offer_result": _offer_result,
    "transfer": _transfer,
    "handback": _handback,
    "outcome": _outcome,
}


def fold(events) -> Case | None:
    case: Case | None = None
    for event in events:
        case = apply(case, event)
    return case
