"""The router's application core: one writer that turns requests and timers into events.

Every change follows one path: build events, fold them into the in-memory case (the state
machine validates them), feed the matching engine, persist the batch in one transaction,
then notify. All of it runs under one lock, so events of one router are totally ordered and
its per-origin ``seq`` has no gaps. If persisting fails, the in-memory state is rebuilt from
the store (the source of truth) before the error is returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import TypeAdapter

from router.audit import device_audit_entry
from router.casestate import Case, TransitionError, apply
from router.config import BatonConfig, workflow_for
from router.matching.engine import (
    EngineError,
    MatchingEngine,
    OfferExpired,
    OfferMade,
    StepChanged,
    WaitExceeded,
    WorkerAway,
)
from router.models import (
    ROUTABLE_STATES,
    CaseEvent,
    CaseState,
    OfferStatus,
    Presence,
    Requirement,
)
from router.service.hub import Hub
from router.service import views

log = logging.getLogger("baton.core")
CLOSED_CACHE = 5000
IDLE_SWEEP_S = 30.0
MAX_CLOCK_SKEW_S = 300.0  # device events dated further ahead are refused  # how often cases the AI holds are checked for inactivity
WRITE_BATCH = 2000  # events per transaction at most
EVENT = TypeAdapter(CaseEvent)
_AUDIT = object()  # an outbox "subject": an audit entry, recorded once its event is durable


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class CoreError(Exception):
    """A request that cannot be carried out; ``status`` maps to HTTP in the web layer."""

    status = 409

    def __init__(self, message: str, status: int | None = None, reason: str | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.reason = reason  # a typed code clients can act on, e.g. target_unavailable


class NotFound(CoreError):
    status = 404


class Forbidden(CoreError):
    status = 403


@dataclass
class AppendResult:
    status: str  # applied | duplicate
    case: Case | None


class RouterCore:
    def __init__(self, cfg: BatonConfig, store, *, clock: Clock | None = None,
                 hub: Hub | None = None, origin: str = "router", autotick: bool = True):
        self.cfg = cfg
        self.store = store
        self.clock = clock or SystemClock()
        self.hub = hub or Hub()
        self.origin = origin
        self.autotick = autotick
        self.lock = asyncio.Lock()
        self.cases: dict[str, Case] = {}  # every open (non-terminal) case
        self.presence: dict[str, Presence] = {w.id: Presence.offline for w in cfg.workers.workers}
        self.high_water: dict[str, int] = {}
        self.answered: deque[tuple[float, float]] = deque(maxlen=10_000)  # (at, waited_s)
        self.alerts: deque[dict[str, Any]] = deque(maxlen=200)
        self.engine = self._new_engine()
        self.closed: OrderedDict[str, Case] = OrderedDict()  # recently closed, for reads
        self._batch: list[tuple[Any, Case]] = []  # the current unit's staged events
        self._outbox: list[tuple[str | None, dict[str, Any], str | None]] = []
        self._left: dict[str, str] = {}  # case id -> the worker it left in this unit
        self._pending: deque[tuple[list, list, asyncio.Future]] = deque()  # not yet durable
        self._writer_wake = asyncio.Event()
        self._writing = False
        self._writer: asyncio.Task | None = None
        self._needs_restore = False
        self._last_sweep = 0.0
        self._wake = asyncio.Event()
        self._timer: asyncio.Task | None = None
        self._grace: dict[str, asyncio.Task] = {}
        self.audit = None  # router.audit.AuditLog (the app sets it): device e-stops go there

    def _new_engine(self) -> MatchingEngine:
        return MatchingEngine(self.cfg.routing, self.cfg.workers.workers, now=self.clock.now())

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        async with self.lock:
            await self._restore()
        # What was just loaded lives long: keep it out of the collector's full passes, which
        # otherwise pause the loop for tens of ms per 100k objects.
        gc.collect()
        gc.freeze()
        # Nobody is connected yet: whoever does not come back within the grace period goes
        # offline, and their connected cases go back to routing.
        for worker_id, presence in self.presence.items():
            if presence is not Presence.offline or self._assigned_to(worker_id):
                self.disconnected(worker_id)
        self._writer = asyncio.create_task(self._writer_loop(), name="baton-router-writer")
        if self.autotick:
            self._timer = asyncio.create_task(self._timer_loop(), name="baton-router-timers")

    async def aclose(self) -> None:
        await self._drain()
        tasks = [t for t in (self._timer, self._writer, *self._grace.values()) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._timer = self._writer = None
        self._grace.clear()

    async def _restore(self) -> None:
        """Rebuild the engine from the store: cases, offers, assignments, presence. On
        failure the core refuses work (503) until a later attempt succeeds."""
        self._needs_restore = True
        await self._rebuild()
        self._needs_restore = False

    async def _ensure_restored(self) -> None:
        if self._needs_restore:
            try:
                await self._restore()
            except Exception as exc:
                raise CoreError("the case store is unavailable; try again shortly",
                                503) from exc

    async def _rebuild(self) -> None:
        now = self.clock.now()
        self.engine = self._new_engine()
        self.high_water = await self.store.high_waters()
        self.cases = {c.id: c for c in await self.store.open_cases()}
        stored_presence = await self.store.worker_presence()
        # Enqueue with everyone offline, so no offer is made before pending ones are restored.
        for case in sorted(self.cases.values(), key=lambda c: c.queued_at or c.created_at):
            if case.state in ROUTABLE_STATES or case.state is CaseState.offered:
                self.engine.enqueue(case.id, case.requirement, queued_at=case.queued_at,
                                    now=now, excluded=case.excluded_workers,
                                    preferred_worker=case.preferred_worker)
                if case.pending_offer is not None:
                    self.engine.restore_offer(case.pending_offer, now)
            elif case.state is CaseState.connected and case.assigned_worker:
                self.engine.restore_assignment(case.id, case.assigned_worker, case.channel, now)
        effects: list = []
        for wid, (stored, _ts) in stored_presence.items():
            if wid in self.presence:
                presence = Presence(stored)
                self.presence[wid] = presence
                if presence is not Presence.available:
                    await self._withdraw_pending(wid)
                effects += self.engine.set_presence(wid, presence, now)
        effects += self.engine.tick(now)  # offers that expired while we were down
        await self._effects(effects)
        # Persisted directly: the writer may be the one restoring.
        batch, self._batch = self._batch, []
        outbox, self._outbox = self._outbox, []
        if batch:
            await self.store.append_many(batch)
        self._deliver(outbox)
        log.info("router state restored", extra={"open_cases": len(self.cases)})

    # --- the write path -----------------------------------------------------------------

    def _event(self, case_id: str, type_: str, payload: dict[str, Any]):
        seq = self.high_water.get(self.origin, 0) + 1
        return EVENT.validate_python({
            "event_id": uuid.uuid4().hex, "case_id": case_id, "origin": self.origin,
            "seq": seq, "ts": self.clock.now(), "type": type_, "payload": payload})

    async def _case(self, case_id: str) -> Case | None:
        case = self.cases.get(case_id) or self.closed.get(case_id)
        if case is None:
            case = await self.store.get_case(case_id)
        return case

    async def _stage(self, event) -> Case:
        """Validate ``event`` against the case's state and stage it for the next commit."""
        # create_case checked a new case's id (or made a fresh one): skip the store lookup.
        new_here = event.type == "opened" and event.origin == self.origin
        current = None if new_here else await self._case(event.case_id)
        try:
            new = apply(current, event)
        except TransitionError as exc:
            raise CoreError(str(exc)) from None
        self._batch.append((event, new))
        if self.audit is not None and event.origin != self.origin \
                and (entry := device_audit_entry(event)) is not None:
            self._outbox.append((_AUDIT, entry, None))
        # The one who had it hears of the change (updates otherwise reach only the assignee):
        # at the transfer, and again when the next person accepts it.
        gone = current.assigned_worker if current is not None else None
        if gone is None and current is not None and len(new.handoffs) > len(current.handoffs) \
                and new.handoffs[-1].kind == "accepted" \
                and new.handoffs[-1].from_owner not in ("queue", "ai"):
            gone = new.handoffs[-1].from_owner
        if gone is not None and gone != new.assigned_worker:
            self._left[new.id] = gone
        self.high_water[event.origin] = max(self.high_water.get(event.origin, 0), event.seq)
        if new.terminal:
            self.cases.pop(new.id, None)
            self.closed[new.id] = new
            while len(self.closed) > CLOSED_CACHE:
                self.closed.popitem(last=False)
        else:
            self.cases[new.id] = new
        return new

    @contextlib.asynccontextmanager
    async def _unit(self):
        """One command. Its state changes happen under the lock; its events are persisted
        by the writer (group commit, outside the lock) and its messages go out once they
        are durable. On any error before the end, the state is rebuilt from the store."""
        async with self.lock:
            await self._ensure_restored()
            try:
                yield
            except BaseException as exc:
                self._outbox, self._left = [], {}
                # A refusal raised before anything was staged changed nothing; anything
                # else may have touched the engine or presence: rebuild from the store.
                if self._batch or not isinstance(exc, CoreError):
                    self._batch = []
                    await self._drain()
                    try:
                        await self._restore()
                    except Exception:
                        log.exception("restoring from the store failed; will retry")
                raise
            batch, self._batch = self._batch, []
            left, self._left = self._left, {}
            for case in {case.id: case for _, case in batch}.values():
                self._publish_case(case, left.get(case.id))
            outbox, self._outbox = self._outbox, []
            durable = None
            if batch:
                durable = asyncio.get_running_loop().create_future()
                self._pending.append((batch, outbox, durable))
                self._writer_wake.set()
            self._wake.set()
        if durable is None:
            self._deliver(outbox)
        else:
            await durable

    async def _router_event(self, case_id: str, type_: str, payload: dict[str, Any]) -> Case:
        return await self._stage(self._event(case_id, type_, payload))

    async def _writer_loop(self) -> None:
        """Persist staged units in order, many per transaction (group commit)."""
        while True:
            await self._writer_wake.wait()
            self._writer_wake.clear()
            while self._pending:
                units, size = [], 0
                while self._pending and size < WRITE_BATCH:
                    units.append(self._pending.popleft())
                    size += len(units[-1][0])
                self._writing = True
                try:
                    await self.store.append_many([item for u in units for item in u[0]])
                except Exception:
                    log.exception("persisting events failed; rebuilding state from the store")
                    self._writing = False
                    async with self.lock:  # no unit may stage on the state being discarded
                        failed = units + list(self._pending)
                        self._pending.clear()
                        for _, _, fut in failed:
                            if not fut.done():
                                fut.set_exception(CoreError(
                                    "the case store is unavailable; the change was not saved, "
                                    "try again", 503))
                        try:
                            await self._restore()
                        except Exception:
                            log.exception("restoring from the store failed; will retry")
                    continue
                self._writing = False
                for _, outbox, fut in units:
                    self._deliver(outbox)
                    if not fut.done():
                        fut.set_result(None)

    async def _drain(self) -> None:
        """Wait until every staged unit has been written (or has failed)."""
        while self._pending or self._writing:
            await asyncio.sleep(0.001)

    def _send(self, subject: str, message: dict[str, Any]) -> None:
        self._outbox.append((subject, message, None))

    def _send_watchers(self, message: dict[str, Any], skip: str | None = None) -> None:
        self._outbox.append((None, message, skip))

    def _deliver(self, outbox: list) -> None:
        for subject, message, skip in outbox:
            if subject is _AUDIT:
                self.audit.record(**message)
            elif subject is None:
                self.hub.to_watchers(message, skip=skip)
            else:
                self.hub.to_subject(subject, message)

    def _publish_case(self, case: Case, previous_worker: str | None = None) -> None:
        # No queue position here: it scans the waiting cases, too costly per event.
        msg = {"type": "case", "case": views.case_view(case, self, position=False)}
        self._send_watchers(msg)
        for worker in {case.assigned_worker, previous_worker} - {None}:
            self._send(worker, msg)

    async def _effects(self, effects: list) -> None:
        for eff in effects:
            if isinstance(eff, OfferMade):
                case = await self._router_event(eff.offer.case_id, "offer",
                                                {"offer": eff.offer.model_dump(mode="json")})
                self._send(eff.offer.worker_id, {
                    "type": "offer", "offer": eff.offer.model_dump(mode="json"),
                    "case": views.case_preview(case)})
            elif isinstance(eff, OfferExpired):
                o = eff.offer
                await self._router_event(o.case_id, "offer_result", {
                    "offer_id": o.offer_id, "worker_id": o.worker_id, "status": "timed_out",
                    "reason": "not answered in time"})
                self._send(o.worker_id, {"type": "offer_closed", "offer_id": o.offer_id,
                                         "status": "timed_out"})
            elif isinstance(eff, WorkerAway):
                await self._presence_changed(eff.worker_id, Presence.away, eff.reason)
            elif isinstance(eff, StepChanged):
                self._send_watchers({"type": "step", "case_id": eff.case_id, "step": eff.step})
            elif isinstance(eff, WaitExceeded):
                case = self.cases.get(eff.case_id)
                transfer = case is not None and case.routing_state is CaseState.transferring
                self._alert("transfer_failed" if transfer else "wait_exceeded",
                            case_id=eff.case_id, reason="no_one_available",
                            message=f"case waited {eff.waited_s:.0f} s with no one free")
                await self._router_event(eff.case_id, "outcome", {
                    "status": "abandoned",
                    "code": "transfer_failed:no_one_available" if transfer
                    else "max_wait_exceeded",
                    "note": "no one was free within routing.max_wait_s"})
                await self._remove(eff.case_id)

    async def _remove(self, case_id: str) -> None:
        """The case left routing (closed): a pending offer disappears from its worker's desk
        (the outcome event already cleared it from the case), capacity comes back."""
        for offer, _ in [v for v in self.engine.offers.values() if v[0].case_id == case_id]:
            self._send(offer.worker_id, {"type": "offer_closed", "offer_id": offer.offer_id,
                                         "status": "withdrawn", "reason": "case closed"})
        await self._effects(self.engine.remove_case(case_id, self.clock.now()))

    async def _withdraw_pending(self, worker_id: str) -> None:
        """Record the withdrawal of a worker's pending offers (before the engine re-routes)."""
        for offer, _ in [v for v in self.engine.offers.values() if v[0].worker_id == worker_id]:
            await self._router_event(offer.case_id, "offer_result", {
                "offer_id": offer.offer_id, "worker_id": worker_id, "status": "withdrawn",
                "reason": "worker is no longer available"})
            self._send(worker_id, {"type": "offer_closed", "offer_id": offer.offer_id,
                                            "status": "withdrawn"})

    async def _presence_changed(self, worker_id: str, presence: Presence, reason: str) -> None:
        now = self.clock.now()
        self.presence[worker_id] = presence
        await self.store.set_worker_presence(worker_id, presence.value, now)
        msg = {"type": "presence", "worker_id": worker_id, "presence": presence.value,
               "reason": reason}
        self._send(worker_id, msg)
        self._send_watchers(msg, skip=worker_id)
        if presence is Presence.away:
            self._alert("worker_away", worker_id=worker_id, message=reason)

    def _alert(self, kind: str, **fields: Any) -> None:
        alert = {"kind": kind, "at": self.clock.now(), **fields}
        self.alerts.append(alert)
        self._send_watchers({"type": "alert", "alert": alert})

    # --- timers -------------------------------------------------------------------------

    async def run_timers(self, sweep: bool = True) -> None:
        """Due engine timers; with ``sweep`` (at least every IDLE_SWEEP_S from the timer
        loop) also the scans of open cases for inactivity and for orphaned connections."""
        async with self._unit():
            now = self.clock.now()
            await self._effects(self.engine.tick(now))
            if sweep or now - self._last_sweep >= IDLE_SWEEP_S:
                self._last_sweep = now
                await self._close_idle(now)
                await self._requeue_orphans()

    async def _close_idle(self, now: float) -> None:
        """A case the AI holds with no event for routing.idle_case_timeout_s: the resident
        walked away without the device noticing. Nothing waits forever."""
        limit = self.cfg.routing.idle_case_timeout_s
        for case in [c for c in self.cases.values()
                     if c.state in (CaseState.ai_active, CaseState.handed_back,
                                    CaseState.escalating)
                     and now - c.updated_at >= limit]:
            await self._router_event(case.id, "outcome", {
                "status": "abandoned", "code": "inactive",
                "note": f"no activity for {limit:.0f} s"})

    async def _requeue_orphans(self) -> None:
        """Connected cases whose worker is offline with no browser open (and no grace
        period running) go back to routing as transfers: no resident is left with nobody,
        whether the browser closed, the worker signed out mid-case, or the router restarted
        and they never came back."""
        for case in [c for c in self.cases.values() if c.state is CaseState.connected
                     and c.assigned_worker and c.requirement is not None]:
            worker = case.assigned_worker
            if self.presence.get(worker) is not Presence.offline \
                    or self.hub.connected(worker) or worker in self._grace:
                continue
            await self._transfer(case.id, worker, case.requirement, "worker disconnected",
                                 None)
            self._alert("worker_disconnected", worker_id=worker, case_id=case.id,
                        message=f"{case.id} went back to the queue: worker disconnected")

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.engine.next_deadline()
            delay = IDLE_SWEEP_S if deadline is None else \
                min(IDLE_SWEEP_S, max(0.0, deadline - self.clock.now()))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            try:
                await self.run_timers(sweep=False)
            except Exception:  # the loop must outlive any failure, or nothing times out
                log.exception("timer run failed; retrying shortly")
                await asyncio.sleep(1.0)

    # --- commands -----------------------------------------------------------------------

    async def create_case(self, req) -> Case:
        """``req`` is views.CreateCase (validated by the web layer)."""
        self._check_request(req)
        case_id = req.case_id or "c-" + uuid.uuid4().hex[:12]
        preferred = await self._preferred_worker(req.resident) if req.escalate else None
        async with self._unit():
            if req.case_id is not None and await self._case(case_id) is not None:
                raise CoreError(f"case {case_id!r} exists already")
            await self._router_event(case_id, "opened", {
                "site": req.site, "device": req.device, "resident": req.resident,
                "language": req.language, "channel": req.channel.value, "intent": req.intent,
                "account": req.account})
            for turn in req.transcript:
                await self._router_event(case_id, "turn", turn.model_dump(mode="json"))
            if req.escalate:
                await self._queue(case_id, req, preferred)
            return self.cases.get(case_id) or await self._case(case_id)

    def _check_request(self, req) -> None:
        site = self.cfg.site(req.site)
        if site is None:
            raise NotFound(f"unknown site {req.site!r}; GET /v1/sites lists them")
        if req.device is not None and not any(d.id == req.device for d in site.devices):
            raise NotFound(f"device {req.device!r} is not at site {req.site!r}")
        if req.language not in site.languages:
            raise CoreError(f"site {req.site!r} does not serve language {req.language!r}; it "
                            f"serves {', '.join(site.languages)}", status=422)
        unknown = [s for s in req.skills if s not in self.cfg.skills.skills]
        if unknown:
            raise CoreError(f"unknown skills {unknown}; see config/skills.yaml", status=422)
        if req.workflow and req.workflow not in self.cfg.routing.workflows:
            raise CoreError(f"unknown workflow {req.workflow!r}; see config/routing.yaml",
                            status=422)

    async def escalate(self, case_id: str, req) -> Case:
        """Queue an open case (AI active or handed back) for a human."""
        case = await self._case(case_id)
        preferred = await self._preferred_worker(case.resident if case else None)
        async with self._unit():
            case = await self._case(case_id)
            if case is None:
                raise NotFound(f"unknown case {case_id!r}")
            req = req.for_case(case)
            self._check_request(req)
            await self._queue(case_id, req, preferred)
            return self.cases.get(case_id) or case

    async def _preferred_worker(self, resident: str | None) -> str | None:
        """The worker of the resident's last resolved case within the window (repeat
        contact). Read before taking the lock: it is a query, and a stale answer only
        changes who is asked first."""
        if not resident:
            return None
        window = self.cfg.routing.preferred_worker.window_days * 86400
        return await self.store.resident_last_worker(resident, self.clock.now() - window)

    def requirement(self, req) -> Requirement:
        """What a person must have for ``req`` (views.CreateCase): a video case from a
        device needs someone on that site's telepresence devices."""
        surface = {"kind": "any", "site": None}
        if req.channel.value == "video" and req.device is not None:
            surface = {"kind": "telepresence", "site": req.site}
        return Requirement.model_validate({
            "language": req.language, "skills": req.skills, "surface": surface,
            "channel": req.channel.value, "priority": req.priority,
            "workflow": workflow_for(self.cfg.routing, self.cfg.site(req.site), req.channel,
                                     req.workflow)})

    async def _queue(self, case_id: str, req, preferred: str | None) -> None:
        now = self.clock.now()
        requirement = self.requirement(req)
        case = await self._router_event(case_id, "queued", {
            "requirement": requirement.model_dump(mode="json"), "reasons": req.reasons,
            "preferred_worker": preferred, "intent": req.intent})
        await self._effects(self.engine.enqueue(
            case_id, requirement, queued_at=case.queued_at, now=now,
            excluded=case.excluded_workers, preferred_worker=preferred))

    async def answer_offer(self, worker_id: str, offer_id: str, accept: bool,
                           reason: str | None = None) -> Case:
        async with self._unit():
            entry = self.engine.offers.get(offer_id)
            if entry is None:
                raise CoreError(f"offer {offer_id!r} is no longer pending (it expired, was "
                                "withdrawn or was answered)")
            offer = entry[0]
            if offer.worker_id != worker_id:
                raise Forbidden(f"offer {offer_id!r} was not made to you")
            now = self.clock.now()
            status = OfferStatus.accepted if accept else OfferStatus.rejected
            case = await self._router_event(offer.case_id, "offer_result", {
                "offer_id": offer_id, "worker_id": worker_id, "status": status.value,
                "reason": reason})
            await self._effects(self.engine.offer_result(offer_id, status, now))
            if accept and case.queued_at is not None:
                self.answered.append((now, now - case.queued_at))
            return self.cases.get(case.id) or case

    async def close_case(self, case_id: str, by: str, status: str, code: str = "",
                         note: str = "", ai_verdict: str | None = None) -> Case:
        async with self._unit():
            case = await self._case(case_id)
            if case is None:
                raise NotFound(f"unknown case {case_id!r}")
            case = await self._router_event(case_id, "outcome", {
                "status": status, "code": code, "note": note, "by": by,
                "ai_verdict": ai_verdict})
            await self._remove(case_id)
            return case

    async def transfer(self, case_id: str, worker_id: str, requirement: Requirement,
                       note: str, to_worker: str | None) -> Case:
        if to_worker is not None:
            target = self.engine.pool.get(to_worker)
            if target is None or self.presence.get(to_worker) is not Presence.available \
                    or not self.engine.pool.can_take(target, requirement.channel):
                raise CoreError(f"transfer failed: {to_worker} cannot take a "
                                f"{requirement.channel.value} case now; the case stays with "
                                "you — transfer to a skill or language instead",
                                reason="target_unavailable")
        async with self._unit():
            return await self._transfer(case_id, worker_id, requirement, note, to_worker)

    async def _transfer(self, case_id: str, worker_id: str, requirement: Requirement,
                        note: str, to_worker: str | None) -> Case:
        now = self.clock.now()
        case = await self._router_event(case_id, "transfer", {
            "from_worker": worker_id, "requirement": requirement.model_dump(mode="json"),
            "note": note, "to_worker": to_worker})
        effects = self.engine.release(case_id, now)
        effects += self.engine.enqueue(case_id, requirement, queued_at=case.queued_at,
                                       now=now, excluded=case.excluded_workers,
                                       preferred_worker=to_worker)
        await self._effects(effects)
        return self.cases.get(case_id) or case

    async def take(self, case_id: str, taker: str, note: str = "") -> Case:
        """A supervisor on the worker roster takes a connected case: a warm transfer to
        them, accepted at once (their desk picks it up); ``note`` is recorded as theirs.
        Everything is checked before anything is staged, so a refusal changes nothing."""
        worker = next((w for w in self.cfg.workers.workers if w.id == taker), None)
        if worker is None:
            raise Forbidden(f"you ({taker}) are not in the worker roster, so no case can be "
                            f"assigned to you: add a worker with id {taker!r} to "
                            "config/workers.yaml, or reassign the case to a worker",
                            reason="not_in_roster")
        async with self._unit():
            case = await self._case(case_id)
            if case is None:
                raise NotFound(f"unknown case {case_id!r}")
            req, holder = case.requirement, case.assigned_worker
            if case.state is not CaseState.connected or req is None or holder is None:
                raise CoreError(f"case {case_id!r} is {case.state.value}: only a case a "
                                "worker is connected to can be taken; a waiting case goes to "
                                "whoever comes free first", reason="not_connected")
            if holder == taker:
                raise CoreError(f"case {case_id!r} is yours already", reason="already_yours")
            if worker.languages.get(req.language, 0) < 1:
                raise CoreError(f"you do not speak {req.language} (config/workers.yaml lists "
                                f"{', '.join(worker.languages)} for you): reassign case "
                                f"{case_id!r} to a worker who does", 422,
                                reason="language")
            if taker in case.excluded_workers:
                raise CoreError(f"you passed on or declined case {case_id!r} before, and the "
                                "router does not route a case back: reassign it instead",
                                reason="excluded")
            presence = self.presence[taker]
            if presence is not Presence.available:
                raise CoreError(f"you are {presence.value}: open your desk (/desk) with your "
                                "token, set yourself available, then take the case",
                                reason="taker_unavailable")
            if not self.engine.pool.can_take(self.engine.pool.get(taker), req.channel):
                raise CoreError(f"you cannot take another {req.channel.value} case now (at "
                                "capacity): close or transfer one of yours first",
                                reason="taker_at_capacity")
            # No transfer note: the packet would show it as the holder's.
            case = await self._transfer(case_id, holder, req, "", taker)
            offer = case.pending_offer
            if offer is None or offer.worker_id != taker:  # pragma: no cover - checked above
                raise CoreError(f"case {case_id!r} could not be offered to you; try again", 503)
            now = self.clock.now()
            case = await self._router_event(case_id, "offer_result", {
                "offer_id": offer.offer_id, "worker_id": taker, "status": "accepted",
                "reason": "taken by a supervisor"})
            await self._effects(self.engine.offer_result(offer.offer_id, OfferStatus.accepted,
                                                         now))
            if note:
                case = await self._router_event(case_id, "note", {"author": taker,
                                                                  "text": note})
            self._send(taker, {"type": "offer_closed", "offer_id": offer.offer_id,
                               "status": "accepted"})
            return case

    async def handback(self, case_id: str, worker_id: str, reason: str, note: str) -> Case:
        async with self._unit():
            case = await self._router_event(case_id, "handback", {
                "worker_id": worker_id, "reason": reason, "note": note})
            await self._effects(self.engine.release(case_id, self.clock.now()))
            return case

    async def add_note(self, case_id: str, author: str, text: str) -> Case:
        async with self._unit():
            case = await self._router_event(case_id, "note", {"author": author, "text": text})
            return case

    async def human_message(self, case_id: str, worker_id: str, text: str,
                            language: str | None = None) -> tuple[Any, Case]:
        """A message from the connected worker to the resident, recorded as a human turn.
        ``language`` defaults to the worker's strongest language in the roster (the first of
        those when several tie). Returns the turn event and the case; the web layer sends it
        on to the device."""
        async with self._unit():
            case = await self._case(case_id)
            if case is None:
                raise NotFound(f"unknown case {case_id!r}")
            if case.assigned_worker != worker_id:
                raise Forbidden(f"case {case_id!r} is not assigned to you: only the worker it "
                                "is connected to may write to the resident (take the case "
                                "first, or add a note)")
            if case.state is not CaseState.connected:
                raise CoreError(f"case {case_id!r} is {case.state.value}, not connected: "
                                "messages reach the resident only while the case is connected "
                                f"to you; add a note instead (POST /v1/cases/{case_id}/notes)")
            if language is None:
                worker = next((w for w in self.cfg.workers.workers if w.id == worker_id), None)
                if worker is None or not worker.languages:
                    raise CoreError(f"no language on record for {worker_id!r}: say which "
                                    "language the message is in ('language')", 422)
                language = max(worker.languages, key=worker.languages.__getitem__)
            event = self._event(case_id, "turn", {"speaker": "human", "worker_id": worker_id,
                                                  "language": language, "text": text})
            case = await self._stage(event)
            return event, case

    async def append_external(self, event) -> AppendResult:
        """An event from another origin (a device). Duplicates are no-ops; gaps are refused."""
        async with self._unit():
            hw = self.high_water.get(event.origin, 0)
            if event.seq <= hw:
                # Only a durable copy of the same event makes this a duplicate.
                await self._drain()
                held = await self.store.event_id_at(event.origin, event.seq)
                if held == event.event_id:
                    return AppendResult("duplicate", await self._case(event.case_id))
                raise CoreError(f"origin {event.origin!r} seq {event.seq} is taken by another "
                                f"event ({held}); a restarted device must continue from seq "
                                f"{hw + 1}", reason="seq_conflict")
            if event.ts > self.clock.now() + MAX_CLOCK_SKEW_S:
                raise CoreError(f"event ts {event.ts} is more than {MAX_CLOCK_SKEW_S:.0f} s in "
                                "the future: fix the device clock (NTP)", 422,
                                reason="clock_skew")
            if event.seq != hw + 1:
                raise CoreError(f"sequence gap for origin {event.origin!r}: expected seq "
                                f"{hw + 1}, got {event.seq}; resend from {hw + 1}",
                                reason="seq_gap")
            case = await self._stage(event)
            if event.type == "outcome":
                await self._remove(case.id)
            return AppendResult("applied", case)

    async def skip_external(self, event, skip) -> bool:
        """Consume the seq of an external event the state machine refused, so the origin's
        later events are not blocked behind it. ``skip(origin, seq)`` records it durably
        (router.store.sync.SyncStore.skip_seq). False when the seq was consumed already."""
        async with self.lock:
            hw = self.high_water.get(event.origin, 0)
            if event.seq <= hw:
                return False
            if event.seq != hw + 1:
                raise CoreError(f"sequence gap for origin {event.origin!r}: expected seq "
                                f"{hw + 1}, got {event.seq}; resend from {hw + 1}",
                                reason="seq_gap")
            await self._drain()  # seq - 1 must be durable before seq is consumed
            done = await skip(event.origin, event.seq)
            self.high_water[event.origin] = event.seq
            return done

    async def raise_alert(self, kind: str, **fields: Any) -> None:
        """A floor alert from an adapter (e.g. a device went offline), pushed at once."""
        async with self._unit():
            self._alert(kind, **fields)

    async def set_presence(self, worker_id: str, presence: Presence, reason: str = "") -> None:
        if worker_id not in self.presence:
            raise NotFound(f"unknown worker {worker_id!r}")
        async with self._unit():
            now = self.clock.now()
            if presence is not Presence.available:
                await self._withdraw_pending(worker_id)
            try:
                effects = self.engine.set_presence(worker_id, presence, now)
            except EngineError as exc:
                raise NotFound(str(exc)) from None
            await self._presence_changed(worker_id, presence, reason or "set by request")
            await self._effects(effects)

    # --- connections (presence follows the browser, with a grace period) ----------------

    def connected(self, worker_id: str) -> None:
        task = self._grace.pop(worker_id, None)
        if task is not None:
            task.cancel()

    def _assigned_to(self, worker_id: str) -> bool:
        return any(c.assigned_worker == worker_id and c.state is CaseState.connected
                   for c in self.cases.values())

    def disconnected(self, worker_id: str) -> None:
        if worker_id not in self.presence:
            return
        if self.presence[worker_id] is Presence.offline and not self._assigned_to(worker_id):
            return
        old = self._grace.pop(worker_id, None)
        if old is not None:
            old.cancel()
        self._grace[worker_id] = asyncio.create_task(self._offline_after_grace(worker_id),
                                                     name=f"grace-{worker_id}")

    async def _offline_after_grace(self, worker_id: str) -> None:
        await asyncio.sleep(self.cfg.routing.presence_grace_s)
        self._grace.pop(worker_id, None)
        if not self.hub.connected(worker_id):
            if self.presence[worker_id] is not Presence.offline:
                await self.set_presence(worker_id, Presence.offline, "browser closed")
            await self.run_timers()  # the sweep sends their connected cases back
