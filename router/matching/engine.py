"""The matching engine: pure, clock injected (every call takes ``now``), no I/O.

It holds the waiting cases, the workers and the pending offers, and answers every change
with a list of effects (offers made, offers expired, workers set away, steps widened, waits
exceeded). The router service turns effects into events and messages; the simulator feeds
them back on a virtual clock. Everything it holds can be rebuilt from the event log
(``enqueue``/``restore_offer``/``restore_assignment``), so a router restart loses nothing.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

from common.errors import BatonError
from protocol.models import Channel, Offer, OfferStatus, Presence, Requirement, Worker
from router.config import RoutingFile
from router.matching.queues import QueuedCase, Queues
from router.matching.targets import matches, preferred, resolve
from router.matching.workers import WorkerPool, WorkerState


@dataclass(frozen=True, slots=True)
class OfferMade:
    offer: Offer


@dataclass(frozen=True, slots=True)
class OfferExpired:
    offer: Offer


@dataclass(frozen=True, slots=True)
class WorkerAway:
    worker_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class StepChanged:
    case_id: str
    step: str


@dataclass(frozen=True, slots=True)
class WaitExceeded:
    case_id: str
    waited_s: float


Effect = OfferMade | OfferExpired | WorkerAway | StepChanged | WaitExceeded


_OFFER_SET = frozenset(("offer_id", "case_id", "worker_id", "created_at", "expires_at", "step"))
_new_object, _set_slot = object.__new__, object.__setattr__


def _new_offer(offer_id: str, case_id: str, worker_id: str, created_at: float,
               expires_at: float, step: str) -> Offer:
    """A pending Offer built without validation: what ``Offer(...)`` with these keywords
    builds (same fields, field set and defaults; tests/router/test_matching.py checks it),
    at a third of its cost, on every decision. The values are already valid: ids of a
    validated case and worker, the engine's own offer id (``new_id`` must return an Ident),
    finite times from the injected clock and the validated configuration. Pydantic checks
    at the process edges (protocol/models.py); this is inside the pure core."""
    offer = _new_object(Offer)
    _set_slot(offer, "__dict__", {
        "offer_id": offer_id, "case_id": case_id, "worker_id": worker_id,
        "created_at": created_at, "expires_at": expires_at, "step": step,
        "status": OfferStatus.pending})
    _set_slot(offer, "__pydantic_fields_set__", set(_OFFER_SET))
    _set_slot(offer, "__pydantic_extra__", None)
    _set_slot(offer, "__pydantic_private__", None)
    return offer


class EngineError(BatonError, ValueError):
    """A call that does not fit the engine's state (unknown case, worker or offer)."""

    reason = "engine_state"


class MatchingEngine:
    def __init__(self, routing: RoutingFile, workers: Iterable[Worker] = (), *, now: float = 0.0,
                 new_id: Callable[[], str] | None = None):
        """``new_id`` makes offer ids (default: ``o-`` and 16 hex digits); each must be a
        valid, unique protocol Ident (offers are built without validation: _new_offer)."""
        self.cfg = routing
        self.pool = WorkerPool(routing.channels)
        self.queues = Queues()
        self.cases: dict[str, QueuedCase] = {}
        self.offers: dict[str, tuple[Offer, QueuedCase]] = {}
        self._worker_offers: dict[str, set[str]] = {}  # worker -> pending offer ids
        self._case_offer: dict[str, str] = {}  # case -> its pending offer id
        self.assignments: dict[str, tuple[str, Channel]] = {}  # case -> (worker, channel)
        self.wrapups: dict[str, tuple[str, Channel]] = {}  # closed case -> (worker, channel)
        # Timers (at, seq, kind, key, token), fired in (at, seq) order from two sources: a
        # deque of those scheduled no earlier than the last one it holds (most of them: a
        # fixed timeout after a clock that only moves on; an append instead of a heap push
        # per case) and a heap of the others.
        self._timers: list[tuple[float, int, str, str, int]] = []
        self._timers_in_order: deque[tuple[float, int, str, str, int]] = deque()
        self._seq = itertools.count()
        self._new_id = new_id or (lambda: "o-" + uuid.uuid4().hex[:16])
        self._last_resolved: tuple | None = None
        self._last_workflow: tuple | None = None
        for w in workers:
            self.pool.upsert(w, now)

    # --- workers ------------------------------------------------------------------------

    def upsert_worker(self, worker: Worker, now: float) -> list[Effect]:
        w = self.pool.upsert(worker, now)
        return self._fill_worker(w, now)

    def set_presence(self, worker_id: str, presence: Presence, now: float) -> list[Effect]:
        w = self._worker(worker_id)
        effects: list[Effect] = []
        # Out of selection first, so the cases withdrawn below cannot come back to them.
        self.pool.set_presence(w, presence, now)
        if presence is not Presence.available:
            # A worker who leaves gives back the offers they had not answered yet.
            for offer_id in sorted(self._worker_offers.get(worker_id, ())):
                effects += self._offer_closed(offer_id, OfferStatus.withdrawn, now)
        return effects + self._fill_worker(w, now)

    def _worker(self, worker_id: str) -> WorkerState:
        w = self.pool.get(worker_id)
        if w is None:
            raise EngineError(f"unknown worker {worker_id!r}")
        return w

    # --- cases --------------------------------------------------------------------------

    def enqueue(self, case_id: str, req: Requirement, *, queued_at: float, now: float,
                excluded: Iterable[str] = (), preferred_worker: str | None = None) -> list[Effect]:
        """Add a waiting case. ``queued_at`` fixes its age (and its step on a restore)."""
        if case_id in self.cases or case_id in self.assignments:
            raise EngineError(f"case {case_id!r} is already routed")
        workflow = self._workflow(req)
        # Positional: case_id, req, steps, queued_at, seq, excluded (a call per case).
        qc = QueuedCase(case_id, req, workflow.steps, queued_at, next(self._seq),
                        set(excluded) if excluded else set())
        if preferred_worker and preferred_worker not in qc.excluded \
                and self.pool.get(preferred_worker) is not None:
            qc.preferred = preferred_worker
            qc.steps_start = queued_at + self.cfg.preferred_worker.fallback_s
        else:
            qc.steps_start = queued_at
        self.cases[case_id] = qc
        self._schedule(queued_at + self.cfg.max_wait_s, "wait", case_id, 0)
        return self._route(qc, now)

    def _workflow(self, req: Requirement):
        last = self._last_workflow  # remembered for the last requirement object (_resolve)
        if last is not None and last[0] is req:
            return last[1]
        workflow = self._workflow_of(req)
        self._last_workflow = (req, workflow)
        return workflow

    def _workflow_of(self, req: Requirement):
        name = req.workflow or self.cfg.channel_workflows.get(req.channel) \
            or self.cfg.default_workflow
        workflow = self.cfg.workflows.get(name)
        if workflow is None:
            raise EngineError(f"unknown workflow {req.workflow!r}")
        return workflow

    def remove_case(self, case_id: str, now: float) -> list[Effect]:
        """The case left routing (closed, abandoned, or handled elsewhere)."""
        effects: list[Effect] = []
        offer_id = self._case_offer.get(case_id)
        if offer_id is not None:
            effects += self._offer_closed(offer_id, OfferStatus.withdrawn, now, requeue=False)
        qc = self.cases.pop(case_id, None)
        if qc is not None:
            self.queues.discard(qc)
        if case_id in self.assignments:
            effects += self.release(case_id, now)
        return effects

    def release(self, case_id: str, now: float) -> list[Effect]:
        """A connected case ended or moved on: the worker's capacity comes back."""
        assigned = self.assignments.pop(case_id, None)
        if assigned is None:
            return []
        w = self.pool.get(assigned[0])
        if w is None:
            return []
        self.pool.add_load(w, assigned[1], -1, now)
        return self._fill_worker(w, now)

    # --- offers -------------------------------------------------------------------------

    def offer_result(self, offer_id: str, status: OfferStatus, now: float) -> list[Effect]:
        if offer_id not in self.offers:
            raise EngineError(f"offer {offer_id!r} is not pending")
        return self._offer_closed(offer_id, status, now)

    def _offer_closed(self, offer_id: str, status: OfferStatus, now: float,
                      requeue: bool = True) -> list[Effect]:
        offer, qc = self.offers.pop(offer_id)
        self._unlink(offer)
        w = self.pool.get(offer.worker_id)
        effects: list[Effect] = []
        if status is OfferStatus.accepted:
            self.cases.pop(qc.case_id, None)
            self.assignments[qc.case_id] = (offer.worker_id, qc.req.channel)
            if w is not None:
                w.consecutive_timeouts = 0
            return effects
        if w is not None:
            # The reservation never became work: the worker keeps their place in line.
            self.pool.add_load(w, qc.req.channel, -1, now, worked=False)
            if status is OfferStatus.rejected:
                w.consecutive_timeouts = 0  # an answer ends a run of unanswered offers
        if status in (OfferStatus.rejected, OfferStatus.timed_out):
            qc.excluded.add(offer.worker_id)
            if qc.preferred == offer.worker_id and qc.step_index < 0:
                qc.steps_start = now  # the preferred worker said no: widen at once
        if status is OfferStatus.timed_out and w is not None:
            w.consecutive_timeouts += 1
            if w.consecutive_timeouts >= self.cfg.away_after_timeouts \
                    and w.presence is Presence.available:
                self.pool.set_presence(w, Presence.away, now)
                effects.append(WorkerAway(w.id, f"{w.consecutive_timeouts} offers in a row "
                                          "timed out"))
        if requeue and qc.case_id in self.cases:
            effects += self._route(qc, now)
        if w is not None:
            effects += self._fill_worker(w, now)
        return effects

    def _make_offer(self, qc: QueuedCase, w: WorkerState, now: float) -> OfferMade:
        if qc.waiting:  # filed in a bucket (not when offered as it arrives: _route)
            self.queues.discard(qc)
        offer = _new_offer(self._new_id(), qc.case_id, w.id, now,
                           now + self.cfg.offer_timeout_s, qc.step_name)
        self.pool.add_load(w, qc.req.channel, +1, now)  # the reservation
        self._hold(offer, qc)
        return OfferMade(offer)

    def _hold(self, offer: Offer, qc: QueuedCase) -> None:
        self.offers[offer.offer_id] = (offer, qc)
        held = self._worker_offers.get(offer.worker_id)
        if held is None:
            held = self._worker_offers[offer.worker_id] = set()
        held.add(offer.offer_id)
        self._case_offer[offer.case_id] = offer.offer_id
        self._schedule(offer.expires_at, "offer", offer.offer_id, 0)

    def _unlink(self, offer: Offer) -> None:
        held = self._worker_offers.get(offer.worker_id)
        if held is not None:
            held.discard(offer.offer_id)
            if not held:
                del self._worker_offers[offer.worker_id]
        if self._case_offer.get(offer.case_id) == offer.offer_id:
            del self._case_offer[offer.case_id]

    # --- restore after a restart ---------------------------------------------------------

    def restore_offer(self, offer: Offer, now: float) -> list[Effect]:
        """Re-hold a pending offer of a case already enqueued; past expiry it times out on
        the next tick and the case is routed again."""
        qc = self.cases.get(offer.case_id)
        if qc is None:
            raise EngineError(f"case {offer.case_id!r} is not routed: enqueue it first")
        if offer.case_id in self._case_offer or offer.offer_id in self.offers:
            raise EngineError(f"case {offer.case_id!r} already holds an offer")
        w = self._worker(offer.worker_id)
        self.queues.discard(qc)
        self.pool.add_load(w, qc.req.channel, +1, now)
        self._hold(offer, qc)
        return []

    def restore_assignment(self, case_id: str, worker_id: str, channel: Channel,
                           now: float) -> None:
        w = self._worker(worker_id)
        self.assignments[case_id] = (worker_id, channel)
        self.pool.add_load(w, channel, +1, now)

    # --- wrap-up ------------------------------------------------------------------------

    def hold_for_wrapup(self, case_id: str, until: float) -> str | None:
        """A closed case's capacity stays taken by its worker until ``until`` (or
        end_wrapup): the wrap-up counts in capacity, so no offer interrupts the notes.
        Returns the worker id, or None when the case was not assigned."""
        assigned = self.assignments.pop(case_id, None)
        if assigned is None:
            return None
        self.wrapups[case_id] = assigned
        self._schedule(until, "wrapup", case_id, 0)
        return assigned[0]

    def end_wrapup(self, case_id: str, now: float) -> list[Effect]:
        held = self.wrapups.pop(case_id, None)
        if held is None:
            return []
        w = self.pool.get(held[0])
        if w is None:
            return []
        self.pool.add_load(w, held[1], -1, now)
        return self._fill_worker(w, now)

    # --- time ---------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        heap, in_order = self._timers, self._timers_in_order
        if in_order:
            return heap[0][0] if heap and heap[0] < in_order[0] else in_order[0][0]
        return heap[0][0] if heap else None

    def tick(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        heap, in_order = self._timers, self._timers_in_order
        while True:
            if in_order and (not heap or in_order[0] < heap[0]):
                if in_order[0][0] > now:
                    break
                _, _, kind, key, token = in_order.popleft()
            elif heap and heap[0][0] <= now:
                _, _, kind, key, token = heapq.heappop(heap)
            else:
                break
            if kind == "offer":
                if key in self.offers:
                    offer = self.offers[key][0]
                    effects.append(OfferExpired(offer))
                    effects += self._offer_closed(key, OfferStatus.timed_out, now)
            elif kind == "step":
                qc = self.cases.get(key)
                if qc is not None and qc.token == token and qc.waiting:
                    effects += self._route(qc, now)
            elif kind == "wrapup":
                effects += self.end_wrapup(key, now)
            elif kind == "wait":
                qc = self.cases.get(key)
                if qc is not None and not qc.wait_exceeded \
                        and now - qc.queued_at >= self.cfg.max_wait_s:
                    qc.wait_exceeded = True
                    effects.append(WaitExceeded(key, now - qc.queued_at))
        return effects

    def _schedule(self, at: float, kind: str, key: str, token: int) -> None:
        in_order = self._timers_in_order
        if not in_order or at >= in_order[-1][0]:  # seq grows: still in (at, seq) order
            in_order.append((at, next(self._seq), kind, key, token))
        else:
            heapq.heappush(self._timers, (at, next(self._seq), kind, key, token))

    # --- placement and matching ----------------------------------------------------------

    def _step_at(self, qc: QueuedCase, now: float) -> tuple[int, float | None]:
        """Current step index (-1: preferred worker only) and when it ends."""
        if qc.preferred and now < qc.steps_start:
            return -1, qc.steps_start
        if qc.steps[0].timeout_s is None:
            return 0, None  # a first step without a timeout: the only one that applies
        t = qc.steps_start
        for i, step in enumerate(qc.steps):
            if step.timeout_s is None or now < t + step.timeout_s:
                return i, (t + step.timeout_s) if step.timeout_s is not None else None
            t += step.timeout_s
        return len(qc.steps) - 1, None

    def _route(self, qc: QueuedCase, now: float) -> list[Effect]:
        """Route the case at its current step: offer it to the best free worker of the
        step's target, or else put it in the target's bucket and arm the step's timer.

        The same as filing it and then asking for a worker (selection does not read the
        buckets), without filing and withdrawing a case that is offered at once. A case
        offered at once arms no step timer: a step timer only acts on a waiting case with
        the token it was armed with, and filing it again arms a new one."""
        index, ends = self._step_at(qc, now)
        effects: list[Effect] = []
        if qc.waiting:
            self.queues.discard(qc)  # out of the old bucket before the target changes
        if index != qc.step_index or qc.target is None:
            changed = qc.target is not None
            qc.step_index = index
            if changed:
                effects.append(StepChanged(qc.case_id, qc.step_name))
        target = qc.target = preferred(qc.req, qc.preferred) if index < 0 else \
            self._resolve(qc.steps[index].target, qc.req)
        w = self.pool.best_for(target, qc.excluded)
        if w is not None:
            effects.append(self._make_offer(qc, w, now))
            return effects
        self.queues.push(qc)
        if ends is not None:
            self._schedule(ends, "step", qc.case_id, qc.token)
        return effects

    def _resolve(self, target, req: Requirement):
        """``resolve``, remembered for the last (target, requirement) objects: cases that
        share a requirement object (the simulator's calls, a burst of one kind) resolve once.
        Keyed by identity and holding both objects, so an id cannot be reused meanwhile."""
        last = self._last_resolved
        if last is not None and last[0] is target and last[1] is req:
            return last[2]
        resolved = resolve(target, req)
        self._last_resolved = (target, req, resolved)
        return resolved

    def _fill_worker(self, w: WorkerState, now: float) -> list[Effect]:
        """Offer the freed-up worker the best waiting cases it can take, until it is full."""
        effects: list[Effect] = []
        if not self.queues.waiting:
            return effects  # nothing waits: nothing to offer (the common case below load)
        while True:
            best = None
            for channel in self.pool.available_channels(w):
                qc = self.queues.head_for(w, channel)
                if qc is not None and (best is None or qc.order < best.order):
                    best = qc
            if best is None:
                return effects
            effects.append(self._make_offer(best, w, now))

    # --- read side ----------------------------------------------------------------------

    def waiting_cases(self) -> list[QueuedCase]:
        return [qc for qc in self.cases.values()]

    def pools(self, req: Requirement) -> list[tuple[float, int, int, int]]:
        """For wait estimates, per workflow step: (seconds until the step applies, cases
        waiting for that step's pool, workers of the pool signed in, of those how many
        could take the case now). Scans the roster: read side, not the decision path."""
        out = []
        starts = 0.0
        lengths = self.queues.lengths()
        for step in self._workflow(req).steps:
            t = resolve(step.target, req)
            staffed = free = 0
            for w in self.pool.workers.values():
                if w.presence is Presence.offline or not matches(w, t):
                    continue
                staffed += 1
                free += self.pool.can_take(w, t.channel)
            out.append((starts, lengths.get(t, 0), staffed, free))
            if step.timeout_s is None:
                break
            starts += step.timeout_s
        return out

    def position(self, case_id: str) -> int | None:
        """1-based position among waiting cases of the same bucket (priority, then age)."""
        qc = self.cases.get(case_id)
        if qc is None or not qc.waiting:
            return None
        ahead = sum(1 for o in self.cases.values()
                    if o.waiting and o.target == qc.target and o.order < qc.order)
        return ahead + 1
