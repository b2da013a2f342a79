"""Warm transfer as people mean it (a collaborator of the core, inside its package): the first worker keeps the case — video, chat, capacity —
while the router looks for the next person; the case moves only when that person accepts;
if nobody accepts within the timeout it simply stays with the first worker, who is told why.

How: the search runs in the matching engine under a *shadow* id (``w:…``), so offers, their
expiry, declines, workflow steps and capacity reservations work exactly as for any waiting
case, while the real case stays ``connected``. The case records what happened as notes (the
request, the acceptance, or the return with its reason), and the accept is recorded as the
usual transfer → offer → accepted events, so the packet's handoffs read as for any transfer.

Consult: while the transfer is pending (with the person it is offered to, or the person
named) and after the accept (the previous and the new holder, while the case is open), the
two workers write to each other through the router (``consult`` WorkerSignal messages to
both desks). Consult messages never go to the device and are not case events: they are the
workers' side conversation; the receiver accepting is the handover.

Pending warm transfers and consult pairs live in memory: after a router restart the case is
simply still with its holder (the safe side), and they may ask again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router.matching.engine import OfferExpired, OfferMade, StepChanged, WaitExceeded
from protocol.models import CaseState, OfferStatus, Requirement
from router.service.core import events

if TYPE_CHECKING:
    from router.service.core import RouterCore

DEFAULT_TIMEOUT_S = 60.0


@dataclass(slots=True)
class Pending:
    case_id: str
    shadow: str
    from_worker: str
    requirement: Requirement
    note: str
    to_worker: str | None
    deadline: float
    offered_to: str | None = None


class WarmTransfers:
    def __init__(self, core: RouterCore):
        self.core = core
        self.by_case: dict[str, Pending] = {}
        self.by_shadow: dict[str, Pending] = {}
        # case_id -> (previous holder, new holder) after an accepted warm transfer: the two
        # may keep consulting while the case is open (dropped when it closes or moves on).
        self.after: dict[str, tuple[str, str]] = {}

    def owns(self, case_id: str) -> bool:
        return case_id in self.by_shadow

    def real_id(self, case_id: str) -> str:
        p = self.by_shadow.get(case_id)
        return p.case_id if p else case_id

    def status(self, case_id: str) -> dict[str, Any] | None:
        p = self.by_case.get(case_id)
        if p is None:
            return None
        return {"case_id": case_id, "status": "pending", "from_worker": p.from_worker,
                "to_worker": p.to_worker, "offered_to": p.offered_to, "deadline": p.deadline,
                "note": p.note}

    # --- commands (called under the core's unit lock) -------------------------------------

    async def start(self, case_id: str, worker_id: str, requirement: Requirement, note: str,
                    to_worker: str | None, timeout_s: float) -> dict[str, Any]:
        from router.service.core import CoreError

        core = self.core
        case = await core.case(case_id)
        if case is None or case.state is not CaseState.connected \
                or case.assigned_worker != worker_id:
            raise CoreError(f"only the worker connected to case {case_id!r} can transfer it",
                            reason="not_connected")
        if case_id in self.by_case:
            raise CoreError(f"a transfer of case {case_id!r} is already pending; wait for it "
                            "or cancel it first", reason="transfer_pending")
        now = core.clock.now()
        self.after.pop(case_id, None)
        shadow = "w:" + uuid.uuid4().hex[:16]
        p = Pending(case_id, shadow, worker_id, requirement, note, to_worker, now + timeout_s)
        self.by_case[case_id], self.by_shadow[shadow] = p, p
        whom = f"to {to_worker}" if to_worker else "to the next available person"
        await core._router_event(case_id, "note", {
            "author": worker_id,
            "text": f"Warm transfer requested {whom} (you keep the resident until they "
                    f"accept, {timeout_s:.0f} s at most){': ' + note if note else ''}"})
        excluded = set(case.excluded_workers) | {worker_id}
        core._engine._schedule(p.deadline, "warm", shadow, 0)  # wakes the timer loop
        await core._effects(core._engine.enqueue(
            shadow, requirement, queued_at=now, now=now, excluded=excluded,
            preferred_worker=to_worker))
        self._tell(p, "pending")
        return self.status(case_id)

    async def cancel(self, case_id: str, reason: str, *, record: bool = True) -> bool:
        p = self.by_case.get(case_id)
        if p is None:
            return False
        await self._drop(p)
        if record and (await self.core.case(case_id)) is not None \
                and not (await self.core.case(case_id)).terminal:
            await self.core._router_event(case_id, "note", {
                "author": p.from_worker, "text": f"Warm transfer cancelled: {reason}"})
        self._tell(p, "cancelled", reason=reason)
        return True

    def closed(self, case_id: str) -> None:
        """The case closed: no more consulting about it."""
        self.after.pop(case_id, None)

    def consult(self, case, sender: str, text: str) -> dict[str, Any]:
        """``sender`` writes to the other worker of the case's warm transfer; both desks get
        the message (the sender's copy confirms it went through the router)."""
        from router.service.core import CoreError

        other = self._counterpart(case, sender)
        if other is None:
            raise CoreError(f"no one to consult about case {case.id!r}: consulting works "
                            "between the two workers of a warm transfer — while it is "
                            "offered to someone (or names them), and after they accepted",
                            reason="no_consult")
        msg = {"type": "consult", "id": uuid.uuid4().hex[:12], "case_id": case.id,
               "from": sender, "to": other, "text": text, "at": self.core.clock.now()}
        self._to(sender, msg)
        self._to(other, msg)
        return msg

    def _counterpart(self, case, sender: str) -> str | None:
        p = self.by_case.get(case.id)
        if p is not None:
            other = p.offered_to or p.to_worker
            if other is None:
                return None
            return other if sender == p.from_worker else p.from_worker if sender == other \
                else None
        pair = self.after.get(case.id)
        if pair is None or case.terminal or case.assigned_worker != pair[1]:
            return None
        return pair[1] if sender == pair[0] else pair[0] if sender == pair[1] else None

    async def expire(self, now: float) -> None:
        for p in [p for p in self.by_case.values() if p.deadline <= now]:
            await self._return(p, "no_one_accepted", "no one accepted in time")

    # --- engine effects and answers on the shadow -----------------------------------------

    async def effect(self, eff) -> None:
        core = self.core
        if isinstance(eff, OfferMade):
            p = self.by_shadow[eff.offer.case_id]
            p.offered_to = eff.offer.worker_id
            case = await core.case(p.case_id)
            offer = eff.offer.model_copy(update={"case_id": p.case_id})
            preview = _preview(case, p)
            self._to(eff.offer.worker_id, {"type": "offer", "offer": offer.model_dump(
                mode="json"), "case": preview})
            self._tell(p, "pending")
        elif isinstance(eff, OfferExpired):
            p = self.by_shadow.get(eff.offer.case_id)
            self._to(eff.offer.worker_id, {"type": "offer_closed",
                                             "offer_id": eff.offer.offer_id,
                                             "status": "timed_out"})
            if p is not None:
                p.offered_to = None
                self._tell(p, "pending")
        elif isinstance(eff, WaitExceeded):
            p = self.by_shadow.get(eff.case_id)
            if p is not None:
                await self._return(p, "no_one_available", "no one was free")
        elif isinstance(eff, StepChanged):
            pass  # the shadow's steps are not the floor's business

    async def answer(self, worker_id: str, offer, accept: bool, reason: str | None):
        core = self.core
        p = self.by_shadow[offer.case_id]
        now = core.clock.now()
        if not accept:
            self._to(worker_id, {"type": "offer_closed", "offer_id": offer.offer_id,
                                   "status": "rejected"})
            await core._router_event(p.case_id, "note", {
                "author": worker_id, "text": f"Declined the warm transfer"
                f"{': ' + reason if reason else ''}"})
            p.offered_to = None
            await core._effects(core._engine.offer_result(offer.offer_id, OfferStatus.rejected,
                                                         now))
            if p.case_id in self.by_case:
                self._tell(p, "pending", reason=f"{worker_id} declined")
            return await core.case(p.case_id)
        # Accepted: the engine holds the receiver's reservation under the shadow; the real
        # case moves now, recorded as transfer → offer → accepted.
        core._engine.offer_result(offer.offer_id, OfferStatus.accepted, now)
        held = core._engine.assignments.pop(p.shadow, None)
        self._forget(p)
        case = await core._router_event(p.case_id, "transfer", {
            "from_worker": p.from_worker, "requirement": p.requirement.model_dump(mode="json"),
            "note": p.note, "to_worker": worker_id})
        real = offer.model_copy(update={"case_id": p.case_id, "step": "warm_transfer"})
        await core._router_event(p.case_id, "offer", {"offer": real.model_dump(mode="json")})
        case = await core._router_event(p.case_id, "offer_result", {
            "offer_id": offer.offer_id, "worker_id": worker_id, "status": "accepted",
            "reason": "warm transfer"})
        effects = core._engine.release(p.case_id, now)  # the first worker's capacity
        if held is not None:
            core._engine.assignments[p.case_id] = held
        await core._effects(effects)
        self._to(worker_id, {"type": "offer_closed", "offer_id": offer.offer_id,
                               "status": "accepted"})
        self.after[p.case_id] = (p.from_worker, worker_id)
        self._tell(p, "accepted", to=worker_id)
        return case

    # --- helpers --------------------------------------------------------------------------

    async def _return(self, p: Pending, reason: str, text: str) -> None:
        await self._drop(p)
        case = await self.core.case(p.case_id)
        if case is None or case.terminal:
            return
        await self.core._router_event(p.case_id, "note", {
            "author": p.from_worker,
            "text": f"Warm transfer not completed ({reason}): {text}; the case stays with "
                    f"{p.from_worker}"})
        self.core._alert("transfer_failed", case_id=p.case_id, worker_id=p.from_worker,
                         reason=reason, message=f"warm transfer of {p.case_id} not "
                         f"completed: {text}; it stays with {p.from_worker}")
        self._tell(p, "returned", reason=reason, text=text)

    async def _drop(self, p: Pending) -> None:
        self._forget(p)
        core = self.core
        for offer, _ in [v for v in core._engine.offers.values() if v[0].case_id == p.shadow]:
            self._to(offer.worker_id, {"type": "offer_closed", "offer_id": offer.offer_id,
                                         "status": "withdrawn", "reason": "transfer ended"})
        await core._effects(core._engine.remove_case(p.shadow, core.clock.now()))

    def _forget(self, p: Pending) -> None:
        self.by_case.pop(p.case_id, None)
        self.by_shadow.pop(p.shadow, None)

    def _tell(self, p: Pending, status: str, **extra: Any) -> None:
        msg = {"type": "transfer", "case_id": p.case_id, "status": status,
               "from_worker": p.from_worker, "to_worker": p.to_worker,
               "offered_to": p.offered_to, "deadline": p.deadline, **extra}
        self._to(p.from_worker, msg)

    def _to(self, worker_id: str, message: dict[str, Any]) -> None:
        # A message for one worker's browser sockets (the hub delivers WorkerSignal as is).
        self.core._emit(events.WorkerSignal(worker_id, message))


def _preview(case, p: Pending) -> dict[str, Any]:
    """What the receiver's offer shows (the shape of views.case_preview), with the transfer's
    requirement and note."""
    return {"id": case.id, "site": case.site, "device": case.device,
            "language": case.language, "channel": case.channel.value, "intent": case.intent,
            "state": case.state.value, "priority": p.requirement.priority,
            "skills": dict(p.requirement.skills), "waiting_since": None,
            "transfers": case.transfers,
            "last_handoff": {"at": case.updated_at, "kind": "warm transfer",
                             "from_owner": p.from_worker, "to_owner": p.to_worker,
                             "note": p.note}}
