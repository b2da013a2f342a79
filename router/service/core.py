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
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import TypeAdapter

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
EVENT = TypeAdapter(CaseEvent)


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class CoreError(Exception):
    """A request that cannot be carried out; ``status`` maps to HTTP in the web layer."""

    status = 409

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        if status is not None:
            self.status = status


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
        self._batch: list[tuple[Any, Case]] = []
        self._wake = asyncio.Event()
        self._timer: asyncio.Task | None = None
        self._grace: dict[str, asyncio.Task] = {}

    def _new_engine(self) -> MatchingEngine:
        return MatchingEngine(self.cfg.routing, self.cfg.workers.workers, now=self.clock.now())

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        async with self.lock:
            await self._restore()
        if self.autotick:
            self._timer = asyncio.create_task(self._timer_loop(), name="baton-router-timers")

    async def aclose(self) -> None:
        tasks = [t for t in (self._timer, *self._grace.values()) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._timer = None
        self._grace.clear()

    async def _restore(self) -> None:
        """Rebuild the engine from the store: cases, offers, assignments, presence."""
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
        for wid, (presence, _ts) in stored_presence.items():
            if wid in self.presence:
                self.presence[wid] = Presence(presence)
                effects += self.engine.set_presence(wid, Presence(presence), now)
        effects += self.engine.tick(now)  # offers that expired while we were down
        await self._effects(effects)
        await self._commit()
        log.info("router state restored", extra={"open_cases": len(self.cases)})

    # --- the write path -----------------------------------------------------------------

    def _event(self, case_id: str, type_: str, payload: dict[str, Any], *, origin: str | None
               = None, seq: int | None = None, ts: float | None = None):
        if origin is None:
            origin = self.origin
            seq = self.high_water.get(origin, 0) + 1 + sum(
                1 for e, _ in self._batch if e.origin == origin)
        return EVENT.validate_python({
            "event_id": uuid.uuid4().hex, "case_id": case_id, "origin": origin, "seq": seq,
            "ts": self.clock.now() if ts is None else ts, "type": type_, "payload": payload})

    async def _case(self, case_id: str) -> Case | None:
        case = self.cases.get(case_id)
        if case is None:
            case = await self.store.get_case(case_id)
        return case

    async def _stage(self, event) -> Case:
        """Validate ``event`` against the case's state and stage it for the next commit."""
        staged = next((c for e, c in reversed(self._batch) if e.case_id == event.case_id), None)
        current = staged or await self._case(event.case_id)
        try:
            new = apply(current, event)
        except TransitionError as exc:
            raise CoreError(str(exc)) from None
        self._batch.append((event, new))
        if new.terminal:
            self.cases.pop(new.id, None)
        else:
            self.cases[new.id] = new
        return new

    @contextlib.asynccontextmanager
    async def _unit(self):
        """One command: under the lock; committed at the end, or undone on any error."""
        async with self.lock:
            try:
                yield
            except BaseException:
                if self._batch:
                    self._batch = []
                    await self._restore()
                raise
            await self._commit()

    async def _router_event(self, case_id: str, type_: str, payload: dict[str, Any]) -> Case:
        return await self._stage(self._event(case_id, type_, payload))

    async def _commit(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            await self.store.append_many(batch)
        except Exception:
            log.exception("persisting events failed; rebuilding state from the store")
            await self._restore()
            raise CoreError("the case store is unavailable; nothing was changed, try again",
                            status=503) from None
        for event, case in batch:
            self.high_water[event.origin] = max(self.high_water.get(event.origin, 0), event.seq)
        # Notify once per case, with its latest state.
        latest = {case.id: case for _, case in batch}
        for case in latest.values():
            self._publish_case(case)
        self._wake.set()

    def _publish_case(self, case: Case) -> None:
        msg = {"type": "case", "case": views.case_view(case, self)}
        self.hub.to_watchers(msg)
        if case.assigned_worker:
            self.hub.to_subject(case.assigned_worker, msg)

    async def _effects(self, effects: list) -> None:
        for eff in effects:
            if isinstance(eff, OfferMade):
                case = await self._router_event(eff.offer.case_id, "offer",
                                                {"offer": eff.offer.model_dump(mode="json")})
                self.hub.to_subject(eff.offer.worker_id, {
                    "type": "offer", "offer": eff.offer.model_dump(mode="json"),
                    "case": views.case_preview(case)})
            elif isinstance(eff, OfferExpired):
                o = eff.offer
                await self._router_event(o.case_id, "offer_result", {
                    "offer_id": o.offer_id, "worker_id": o.worker_id, "status": "timed_out",
                    "reason": "not answered in time"})
                self.hub.to_subject(o.worker_id, {"type": "offer_closed", "offer_id": o.offer_id,
                                                  "status": "timed_out"})
            elif isinstance(eff, WorkerAway):
                await self._presence_changed(eff.worker_id, Presence.away, eff.reason)
            elif isinstance(eff, StepChanged):
                self.hub.to_watchers({"type": "step", "case_id": eff.case_id, "step": eff.step})
            elif isinstance(eff, WaitExceeded):
                self._alert("wait_exceeded", case_id=eff.case_id,
                            message=f"case waited {eff.waited_s:.0f} s with no one free")
                await self._router_event(eff.case_id, "outcome", {
                    "status": "abandoned", "code": "max_wait_exceeded",
                    "note": "no one was free within routing.max_wait_s"})
                await self._effects(self.engine.remove_case(eff.case_id, self.clock.now()))

    async def _withdraw_pending(self, worker_id: str) -> None:
        """Record the withdrawal of a worker's pending offers (before the engine re-routes)."""
        for offer, _ in [v for v in self.engine.offers.values() if v[0].worker_id == worker_id]:
            await self._router_event(offer.case_id, "offer_result", {
                "offer_id": offer.offer_id, "worker_id": worker_id, "status": "withdrawn",
                "reason": "worker is no longer available"})
            self.hub.to_subject(worker_id, {"type": "offer_closed", "offer_id": offer.offer_id,
                                            "status": "withdrawn"})

    async def _presence_changed(self, worker_id: str, presence: Presence, reason: str) -> None:
        now = self.clock.now()
        self.presence[worker_id] = presence
        await self.store.set_worker_presence(worker_id, presence.value, now)
        msg = {"type": "presence", "worker_id": worker_id, "presence": presence.value,
               "reason": reason}
        self.hub.to_subject(worker_id, msg)
        self.hub.to_watchers(msg, skip=worker_id)
        if presence is Presence.away:
            self._alert("worker_away", worker_id=worker_id, message=reason)

    def _alert(self, kind: str, **fields: Any) -> None:
        alert = {"kind": kind, "at": self.clock.now(), **fields}
        self.alerts.append(alert)
        self.hub.to_watchers({"type": "alert", "alert": alert})

    # --- timers -------------------------------------------------------------------------

    async def run_timers(self) -> None:
        async with self._unit():
            await self._effects(self.engine.tick(self.clock.now()))

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.engine.next_deadline()
            delay = None if deadline is None else max(0.0, deadline - self.clock.now())
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            try:
                await self.run_timers()
            except CoreError:
                await asyncio.sleep(1.0)  # the store is down: try again shortly

    # --- commands -----------------------------------------------------------------------

    async def create_case(self, req) -> Case:
        """``req`` is views.CreateCase (validated by the web layer)."""
        self._check_request(req)
        case_id = req.case_id or "c-" + uuid.uuid4().hex[:12]
        async with self._unit():
            if await self._case(case_id) is not None:
                raise CoreError(f"case {case_id!r} exists already")
            await self._router_event(case_id, "opened", {
                "site": req.site, "device": req.device, "resident": req.resident,
                "language": req.language, "channel": req.channel.value, "intent": req.intent,
                "account": req.account})
            for turn in req.transcript:
                await self._router_event(case_id, "turn", turn.model_dump(mode="json"))
            if req.escalate:
                await self._queue(case_id, req)
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
        async with self._unit():
            case = await self._case(case_id)
            if case is None:
                raise NotFound(f"unknown case {case_id!r}")
            req = req.for_case(case)
            self._check_request(req)
            await self._queue(case_id, req)
            return self.cases.get(case_id) or case

    async def _queue(self, case_id: str, req) -> None:
        now = self.clock.now()
        surface = {"kind": "any", "site": None}
        if req.channel.value == "video" and req.device is not None:
            surface = {"kind": "telepresence", "site": req.site}
        requirement = Requirement.model_validate({
            "language": req.language, "skills": req.skills, "surface": surface,
            "channel": req.channel.value, "priority": req.priority,
            "workflow": workflow_for(self.cfg.routing, self.cfg.site(req.site), req.channel,
                                     req.workflow)})
        preferred = None
        if req.resident:
            window = self.cfg.routing.preferred_worker.window_days * 86400
            preferred = await self.store.resident_last_worker(req.resident, now - window)
        case = await self._router_event(case_id, "queued", {
            "requirement": requirement.model_dump(mode="json"), "reasons": req.reasons,
            "preferred_worker": preferred})
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
            await self._effects(self.engine.remove_case(case_id, self.clock.now()))
            return case

    async def transfer(self, case_id: str, worker_id: str, requirement: Requirement,
                       note: str, to_worker: str | None) -> Case:
        async with self._unit():
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

    async def append_external(self, event) -> AppendResult:
        """An event from another origin (a device). Duplicates are no-ops; gaps are refused."""
        async with self._unit():
            hw = self.high_water.get(event.origin, 0)
            if event.seq <= hw:
                return AppendResult("duplicate", await self._case(event.case_id))
            if event.seq != hw + 1:
                raise CoreError(f"sequence gap for origin {event.origin!r}: expected seq "
                                f"{hw + 1}, got {event.seq}; resend from {hw + 1}")
            case = await self._stage(event)
            if event.type == "outcome":
                await self._effects(self.engine.remove_case(case.id, self.clock.now()))
            return AppendResult("applied", case)

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

    def disconnected(self, worker_id: str) -> None:
        if worker_id not in self.presence or self.presence[worker_id] is Presence.offline:
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
            await self.set_presence(worker_id, Presence.offline, "browser closed")
