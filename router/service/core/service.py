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
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from pydantic import TypeAdapter, ValidationError

from common.tasks import Supervisor

from protocol.models import (
    ROUTABLE_STATES,
    CaseEvent,
    CaseState,
    Channel,
    Offer,
    OfferStatus,
    Presence,
    Requirement,
)
from router.audit import device_audit_entry
from router.casestate import Case, TransitionError, apply
from router.config import BatonConfig, workflow_for
from router.device_rules import EVENT_ID_REUSED, REFUSED, SEQ_CONFLICT, refusal
from router.matching.engine import (
    EngineError,
    MatchingEngine,
    OfferExpired,
    OfferMade,
    StepChanged,
    WaitExceeded,
    WorkerAway,
)
from router.packet import full_packet
from router.service.alerts import AlertBuffer
from router.service.core import events
from router.service.core.errors import CoreError, Forbidden, Invalid, NotFound, Unavailable
from router.service.core.recent import OpenCaseEvents
from router.service.core.warm import WarmTransfers
from router.store.sync import SyncStore

# How far back a (re)started core lists the device alerts the bridge stored.
ALERT_RESTORE_S = 24 * 3600.0
log = logging.getLogger("baton.core")
CLOSED_CACHE = 5000
IDLE_SWEEP_S = 30.0  # how often cases the AI holds are checked for inactivity
WRITE_BATCH = 2000  # events per transaction at most
EVENT = TypeAdapter(CaseEvent)
T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


@dataclass(frozen=True, slots=True)
class _AuditEntry:
    """An audit entry in a unit's outbox, recorded once its event is durable."""

    entry: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _PresenceRow:
    """A worker's presence in a unit's outbox: written by the writer, outside the lock."""

    worker_id: str
    presence: str
    ts: float


@dataclass(slots=True)
class Skip:
    """A refused event's seq, to be consumed in order by the writer: a unit of its own.
    Iterates as an empty batch (it stores no event)."""

    origin: str
    seq: int
    cls: str
    reason: str
    event_id: str | None
    source: str  # where the input came from, e.g. mqtt:<topic> or rest:/v1/events
    raw: str  # the input as received, kept with the dead letter
    ts: float

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 1

    def __bool__(self) -> bool:
        return True


def _skip_row(skip: Skip) -> dict[str, Any]:
    return {"origin": skip.origin, "seq": skip.seq, "source": skip.source,
            "reason": f"{skip.cls}: {skip.reason}", "raw": skip.raw, "ts": skip.ts,
            "event_id": skip.event_id}


@dataclass
class AppendResult:
    status: str  # applied | duplicate | refused | seq_conflict
    case: Case | None
    cls: str | None = None  # why not applied (router.device_rules classes)
    reason: str | None = None


class RouterCore:
    def __init__(self, cfg: BatonConfig, store, *, clock: Clock | None = None,
                 origin: str = "router", autotick: bool = True):
        self.cfg = cfg
        self.store = store
        self.clock = clock or SystemClock()
        self._bus = events.EventBus()
        self._online: set[str] = set()  # subjects with a browser connected (connected())
        self.origin = origin
        self.autotick = autotick
        self.lock = asyncio.Lock()
        self._open: dict[str, Case] = {}  # every open (non-terminal) case
        self._presence: dict[str, Presence] = {w.id: Presence.offline for w in cfg.workers.workers}
        self._high_water: dict[str, int] = {}
        self._answered: deque[tuple[float, float]] = deque(maxlen=10_000)  # (at, waited_s)
        self._alerts = AlertBuffer()
        self._engine = self._new_engine()
        self.warm = WarmTransfers(self)
        self._closed: OrderedDict[str, Case] = OrderedDict()  # recently closed, for reads
        self._recent = OpenCaseEvents()  # open cases' events: packets without a store read
        self._batch: list[tuple[Any, Case]] = []  # the current unit's staged events
        # event id -> (origin, seq) of every staged event not yet written (or failed): the
        # current unit's, the writer's queue and what it is writing (_event_id_taken).
        self._staged_ids: dict[str, tuple[str, int]] = {}
        self._outbox: list[tuple[str | None, dict[str, Any], str | None]] = []
        self._left: dict[str, str] = {}  # case id -> the worker it left in this unit
        self._pending: deque[tuple[list, list, asyncio.Future]] = deque()  # not yet durable
        self._writer_wake = asyncio.Event()
        self._idle = asyncio.Event()  # set by the writer after each pass (see _drain)
        self._writing = False
        self._in_flight: list = []  # the units the writer is persisting
        self._stopping = False  # aclose() began: no new commands
        self._skip: Skip | None = None  # the current unit's refusal, if it is one
        self._tainted: set[str] = set()  # cases whose staged state the store refused
        self._store_down = False
        self.rebuilds = 0  # state rebuilt after a failed write (an input the checks missed)
        self._writer: asyncio.Task | None = None
        self._needs_restore = False
        self._last_sweep = 0.0
        self._wake = asyncio.Event()
        self._timer_at = float("inf")  # when the timer loop wakes next (clock time)
        self._timer: asyncio.Task | None = None
        self._grace: dict[str, asyncio.Task] = {}
        # The writer, the timer loop and the presence grace periods: every failure is
        # logged with its context (common/tasks.py), none dies unseen.
        self.tasks = Supervisor("core", logger=log)
        self.audit = None  # router.audit.AuditLog (the app sets it): device e-stops go there

    def _new_engine(self) -> MatchingEngine:
        return MatchingEngine(self.cfg.routing, self.cfg.workers.workers, now=self.clock.now())

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        if self.tasks.closed:  # started again after aclose
            self.tasks = Supervisor("core", logger=log)
        async with self.lock:
            await self._restore()
        # What was just loaded lives long: keep it out of the collector's full passes, which
        # otherwise pause the loop for tens of ms per 100k objects.
        gc.collect()
        gc.freeze()
        # Nobody is connected yet: whoever does not come back within the grace period goes
        # offline, and their connected cases go back to routing.
        for worker_id, presence in self._presence.items():
            if presence is not Presence.offline or self._assigned_to(worker_id):
                self.disconnected(worker_id)
        self._writer = self.tasks.spawn(self._writer_loop(), "writer")
        if self.autotick:
            self._timer = self.tasks.keep("timers", self._timer_loop)

    async def aclose(self) -> None:
        self._stopping = True  # commands that have not staged yet are refused (_unit)
        await self._drain()
        await self.tasks.aclose()
        self._timer = self._writer = None
        # Nobody writes any more: a command still waiting for durability must not hang
        # (partitioned mode stops a term's core while requests may be in flight).
        for units in (self._in_flight, self._pending):
            for _, _, fut in units:
                if not fut.done():
                    fut.set_exception(Unavailable("this router stopped running these cases; "
                                                  "the change was not confirmed, try again"))
        self._pending.clear()
        self._grace.clear()
        await self._bus.aclose()  # ends every subscriber's iteration

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
                raise Unavailable("the case store is unavailable; try again shortly") \
                    from exc

    async def _rebuild(self) -> None:
        now = self.clock.now()
        self._engine = self._new_engine()
        self._recent.clear()
        self._high_water = await self.store.high_waters()
        self._open = {c.id: c for c in await self.store.open_cases()}
        stored_presence = await self.store.worker_presence()
        # Enqueue with everyone offline, so no offer is made before pending ones are restored.
        for case in sorted(self._open.values(), key=lambda c: c.queued_at or c.created_at):
            if case.state in ROUTABLE_STATES or case.state is CaseState.offered:
                self._engine.enqueue(case.id, case.requirement, queued_at=case.queued_at,
                                    now=now, excluded=case.excluded_workers,
                                    preferred_worker=case.preferred_worker)
                if case.pending_offer is not None:
                    self._engine.restore_offer(case.pending_offer, now)
            elif case.state is CaseState.connected and case.assigned_worker:
                self._engine.restore_assignment(case.id, case.assigned_worker, case.channel, now)
        effects: list = []
        for wid, (stored, _ts) in stored_presence.items():
            if wid in self._presence:
                presence = Presence(stored)
                self._presence[wid] = presence
                if presence is not Presence.available:
                    await self._withdraw_pending(wid)
                effects += self._engine.set_presence(wid, presence, now)
        await self._restore_alerts(now)
        effects += self._engine.tick(now)  # offers that expired while we were down
        await self._effects(effects)
        # Persisted directly: the writer may be the one restoring.
        batch, self._batch = self._batch, []
        outbox, self._outbox = self._outbox, []
        if batch:
            try:
                await self.store.append_many(batch)
            finally:
                self._unstage(batch)
        await self._write_presence(outbox)
        self._deliver(outbox)
        log.info("router state restored", extra={"open_cases": len(self._open)})

    # --- the write path -----------------------------------------------------------------

    def _event(self, case_id: str, type_: str, payload: dict[str, Any]):
        seq = self._high_water.get(self.origin, 0) + 1
        try:
            return EVENT.validate_python({
                "event_id": uuid.uuid4().hex, "case_id": case_id, "origin": self.origin,
                "seq": seq, "ts": self.clock.now(), "type": type_, "payload": payload})
        except ValidationError as exc:  # a request's text the wire rules refuse
            err = exc.errors()[0]
            raise Invalid(f"{'.'.join(str(p) for p in err['loc'][1:])}: {err['msg']}") \
                from None

    async def case(self, case_id: str) -> Case | None:
        """The case as the core knows it now: open, recently closed, else from the store."""
        case = self._open.get(case_id) or self._closed.get(case_id)
        if case is None:
            case = await self.store.get_case(case_id)
        return case

    async def _stage(self, event) -> Case:
        """Validate ``event`` against the case's state and stage it for the next commit."""
        # create_case checked a new case's id (or made a fresh one): skip the store lookup.
        new_here = event.type == "opened" and event.origin == self.origin
        current = None if new_here else await self.case(event.case_id)
        try:
            new = apply(current, event)
        except TransitionError as exc:
            raise CoreError(str(exc)) from None
        self._batch.append((event, new))
        self._staged_ids[event.event_id] = (event.origin, event.seq)
        if self.audit is not None and event.origin != self.origin \
                and (entry := device_audit_entry(event)) is not None:
            self._outbox.append(_AuditEntry(entry))
        # The one who had it hears of the change (updates otherwise reach only the assignee):
        # at the transfer, and again when the next person accepts it.
        gone = current.assigned_worker if current is not None else None
        if gone is None and current is not None and len(new.handoffs) > len(current.handoffs) \
                and new.handoffs[-1].kind == "accepted" \
                and new.handoffs[-1].from_owner not in ("queue", "ai"):
            gone = new.handoffs[-1].from_owner
        if gone is not None and gone != new.assigned_worker:
            self._left[new.id] = gone
        self._high_water[event.origin] = max(self._high_water.get(event.origin, 0), event.seq)
        self._recent.staged(event, current is None, new.terminal)  # packets from memory
        if new.terminal:
            self._open.pop(new.id, None)
            self._closed[new.id] = new
            while len(self._closed) > CLOSED_CACHE:
                self._closed.popitem(last=False)
        else:
            self._open[new.id] = new
        return new

    @contextlib.asynccontextmanager
    async def _unit(self):
        """One command. Its state changes happen under the lock; its events are persisted
        by the writer (group commit, outside the lock) and its messages go out once they
        are durable. On any error before the end, the state is rebuilt from the store."""
        async with self.lock:
            if self._stopping:
                raise Unavailable("this router stopped running these cases (shutting down, "
                                  "or another router took them over); try again")
            await self._ensure_restored()
            try:
                yield
            except BaseException as exc:
                self._outbox, self._left, self._skip = [], {}, None
                # A refusal raised before anything was staged changed nothing; anything
                # else may have touched the engine or presence: rebuild from the store.
                if self._batch or not isinstance(exc, CoreError):
                    self._unstage(self._batch)
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
            if self._skip is not None:  # a refusal: written in order by the writer
                self._unstage(batch)
                batch, self._skip = self._skip, None
            if batch or any(isinstance(item, _PresenceRow) for item in outbox):
                durable = asyncio.get_running_loop().create_future()
                self._pending.append((batch, outbox, durable))
                self._idle.clear()
                self._writer_wake.set()
            # The timer loop sleeps until the engine's next deadline: wake it only when
            # this unit made one earlier (not after every command).
            deadline = self._engine.next_deadline()
            if deadline is not None and deadline < self._timer_at:
                self._wake.set()
        if durable is None:
            self._deliver(outbox)
        else:
            await durable

    async def _router_event(self, case_id: str, type_: str, payload: dict[str, Any]) -> Case:
        return await self._stage(self._event(case_id, type_, payload))

    async def _writer_loop(self) -> None:
        """Persist staged units in order, many per transaction (group commit). When a group
        fails, its units are written one by one: a unit the store refuses fails alone (its
        seqs are consumed and it is dead-lettered, so later units still fit), units staged
        on top of it (same case) fail with it, the rest are saved. Once the queue is empty
        the state is rebuilt from the store, under the lock, before anything else stages."""
        while True:
            await self._writer_wake.wait()
            self._writer_wake.clear()
            while self._pending:
                units, size = [], 0
                while self._pending and size < WRITE_BATCH:
                    units.append(self._pending.popleft())
                    size += len(units[-1][0])
                await self._write_units(units)
                self._idle.set()
            self._idle.set()
            if not self._pending and len(self._staged_ids) > len(self._batch):
                # Nothing queued: only the current unit's events can be staged (a guard
                # against an id left behind by a path that forgot to unstage).
                self._staged_ids = {e.event_id: (e.origin, e.seq) for e, _ in self._batch}
            if self._tainted:
                await self._recover()

    async def _write_units(self, units: list) -> None:
        """The units of origins without a refusal in this batch go in one transaction and
        are answered at once (group commit); then, in order, the refusals (Skip) and the
        units of their origins: a device's refusals never delay the others' commits."""
        self._writing = True
        self._in_flight = units
        await self._write_presence([item for u in units for item in u[1]])
        skipping = {u[0].origin for u in units if isinstance(u[0], Skip)}
        free = [u for u in units if not isinstance(u[0], Skip)
                and not {e.origin for e, _ in u[0]} & skipping]
        rest = [u for u in units if isinstance(u[0], Skip)
                or {e.origin for e, _ in u[0]} & skipping]
        try:
            skips = [u for u in rest if isinstance(u[0], Skip)]
            if skips and len(skips) == len(rest) and not self._tainted:
                # The common case: one transaction for the group and the refusals.
                try:
                    done = await self.store.append_and_skip(
                        [item for u in free for item in u[0]], [_skip_row(u[0]) for u in skips])
                except Exception:
                    log.warning("a group commit with refusals failed", exc_info=True)
                    done = False
                if done:
                    self._settle([*free, *skips], [])
                    return
            if free:
                self._settle(*await self._write_run(free))
            run: list = []
            for unit in [*rest, None]:
                if unit is not None and not isinstance(unit[0], Skip):
                    run.append(unit)
                    continue
                if run:
                    self._settle(*await self._write_run(run))
                    run = []
                if unit is None:
                    break
                skip = unit[0]
                try:
                    await SyncStore(self.store).skip_seq(**_skip_row(skip))
                    self._settle([unit], [])
                except Exception as exc:
                    log.warning("could not record a refused event", extra={
                        "origin": skip.origin, "seq": skip.seq, "error": str(exc)[:300]})
                    self._tainted.add(f"origin:{skip.origin}")  # its seq is not consumed
                    self._settle([], [unit])
        finally:
            self._writing = False
            self._in_flight = []

    async def _write_presence(self, outbox: list) -> None:
        """The units' presence changes, in one transaction. A failure is logged, not
        retried: presence is not a case event, and the worst case after a restart is an
        older presence, which the grace period at start corrects."""
        rows = [(p.worker_id, p.presence, p.ts) for p in outbox if isinstance(p, _PresenceRow)]
        if not rows:
            return
        try:
            await self.store.set_worker_presences(rows)
        except Exception as exc:
            log.warning("could not store worker presence", extra={
                "workers": sorted({r[0] for r in rows})[:20], "error": str(exc)[:300]})

    def _unstage(self, items) -> None:
        staged = self._staged_ids
        for event, _ in items:
            staged.pop(event.event_id, None)

    def _settle(self, written: list, failed: list) -> None:
        for unit in (*written, *failed):
            self._unstage(unit[0])
        for _, outbox, fut in written:
            self._deliver(outbox)
            if not fut.done():
                fut.set_result(None)
        for _, _, fut in failed:
            if not fut.done():
                fut.set_exception(Unavailable("the case store refused this change; it was "
                                              "not saved (see the dead letters), try again"))

    async def _write_run(self, units: list) -> tuple[list, list]:
        if not self._tainted:
            try:
                await self.store.append_many([item for u in units for item in u[0]])
                return units, []
            except Exception:
                log.warning("a group commit failed; writing its units one by one",
                            exc_info=True)
        return await self._write_one_by_one(units)

    async def _write_one_by_one(self, units: list) -> tuple[list, list]:
        written, failed = [], []
        for unit in units:
            cases = {c.id for _, c in unit[0]}
            if not cases & self._tainted:
                try:
                    await self.store.append_many(unit[0])
                    written.append(unit)
                    continue
                except Exception as exc:
                    log.error("the store refused a unit", extra={
                        "events": len(unit[0]), "error": str(exc)[:300]})
            failed.append(unit)
            self._tainted |= cases
            await self._consume(unit[0])
        return written, failed

    async def _consume(self, items: list) -> None:
        """Consume the seqs of events that were not saved, keeping them as dead letters, so
        the origins' later events (the router's own too) still follow on."""
        sync = SyncStore(self.store)
        for event, _ in items:
            try:
                await sync.skip_seq(event.origin, event.seq, source="router:group-commit",
                                    reason="store_refused: the store refused this event; "
                                    "it was not applied", raw=event.model_dump_json(),
                                    ts=self.clock.now(), event_id=event.event_id)
            except Exception:
                log.exception("could not consume the seq of an unsaved event")
                self._store_down = True

    async def _recover(self) -> None:
        """Rebuild the state from the store after units failed. Under the lock: units
        staged meanwhile are written (same rules) first."""
        async with self.lock:
            while self._pending and not self._store_down:
                units = list(self._pending)
                self._pending.clear()
                await self._write_units(units)
            for batch, _, fut in self._pending:
                self._unstage(batch)
                if not fut.done():
                    fut.set_exception(Unavailable("the case store is unavailable; the change "
                                                  "was not saved, try again"))
            self._pending.clear()
            self.rebuilds += 1
            self._idle.set()
            log.error("persisting events failed; rebuilding state from the store",
                      extra={"cases": sorted(self._tainted)[:20]})
            self._tainted, self._store_down = set(), False
            try:
                await self._restore()
            except Exception:
                log.exception("restoring from the store failed; will retry")

    async def _drain(self) -> None:
        """Wait until every staged unit has been written (or has failed). The writer sets
        ``_idle`` after each pass; a waiter re-checks, since more may have been staged."""
        while self._pending or self._writing:
            self._idle.clear()
            await self._idle.wait()

    def _emit(self, event) -> None:
        """Publish ``event`` once the current unit is durable (events.py's contract)."""
        self._outbox.append(event)

    def _deliver(self, outbox: list) -> None:
        published = []
        for item in outbox:
            if isinstance(item, _AuditEntry):
                self.audit.record(**item.entry)
            elif isinstance(item, _PresenceRow):
                continue  # written by the writer already
            else:
                published.append(item)
        if published:
            self._bus.publish(published)

    def _publish_case(self, case: Case, previous_worker: str | None = None) -> None:
        qc = self._engine.cases.get(case.id)
        self._emit(events.CaseChanged(case, qc.step_name if qc is not None else None,
                                      previous_worker))

    async def _effects(self, effects: list) -> None:
        for eff in effects:
            shadow = getattr(getattr(eff, "offer", None), "case_id", None) \
                or getattr(eff, "case_id", None)
            if shadow is not None and self.warm.owns(shadow):
                await self.warm.effect(eff)  # a warm transfer's search (router/service/core/warm.py)
                continue
            if isinstance(eff, OfferMade):
                case = await self._router_event(eff.offer.case_id, "offer",
                                                {"offer": eff.offer.model_dump(mode="json")})
                self._emit(events.OfferMade(eff.offer, case))
            elif isinstance(eff, OfferExpired):
                o = eff.offer
                await self._router_event(o.case_id, "offer_result", {
                    "offer_id": o.offer_id, "worker_id": o.worker_id, "status": "timed_out",
                    "reason": "not answered in time"})
                self._emit(events.OfferClosed(o.offer_id, o.worker_id, "timed_out"))
            elif isinstance(eff, WorkerAway):
                await self._presence_changed(eff.worker_id, Presence.away, eff.reason)
            elif isinstance(eff, StepChanged):
                self._emit(events.StepChanged(eff.case_id, eff.step))
            elif isinstance(eff, WaitExceeded):
                case = self._open.get(eff.case_id)
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
        await self.warm.cancel(case_id, "the case closed", record=False)
        self.warm.closed(case_id)
        for offer, _ in [v for v in self._engine.offers.values() if v[0].case_id == case_id]:
            self._emit(events.OfferClosed(offer.offer_id, offer.worker_id, "withdrawn",
                                          "case closed"))
        await self._effects(self._engine.remove_case(case_id, self.clock.now()))

    async def _withdraw_pending(self, worker_id: str) -> None:
        """Record the withdrawal of a worker's pending offers (before the engine re-routes)."""
        for offer, _ in [v for v in self._engine.offers.values() if v[0].worker_id == worker_id]:
            await self._router_event(offer.case_id, "offer_result", {
                "offer_id": offer.offer_id, "worker_id": worker_id, "status": "withdrawn",
                "reason": "worker is no longer available"})
            self._emit(events.OfferClosed(offer.offer_id, worker_id, "withdrawn"))

    async def _presence_changed(self, worker_id: str, presence: Presence, reason: str) -> None:
        now = self.clock.now()
        self._presence[worker_id] = presence
        # Persisted by the writer with the unit, not here under the lock.
        self._outbox.append(_PresenceRow(worker_id, presence.value, now))
        self._emit(events.PresenceChanged(worker_id, presence, reason))
        if presence is Presence.away:
            self._alert("worker_away", worker_id=worker_id, message=reason)

    async def _restore_alerts(self, now: float) -> None:
        """The device alerts the bridge stored (alerts table) in the last ALERT_RESTORE_S,
        for this core's sites, back in the floor's list after a restart or a failover. They
        were pushed when raised: listed again, not raised again."""
        sites = [site.id for site in self.cfg.sites.sites]
        known = {a.get("alert_id") for a in self._alerts}
        for row in await SyncStore(self.store).alerts(sites, since=now - ALERT_RESTORE_S):
            if row["alert_id"] not in known:
                self._alerts.append({**(row.get("detail") or {}), "kind": row["kind"],
                                     "at": row["at"], "alert_id": row["alert_id"],
                                     "site": row["site"], "device": row["device"]})

    def _alert(self, kind: str, **fields: Any) -> None:
        # Every alert has an id, so any supervisor can acknowledge it for the whole floor.
        fields.setdefault("alert_id", "al-" + uuid.uuid4().hex[:16])
        alert = {"kind": kind, "at": self.clock.now(), **fields}
        self._alerts.append(alert)
        self._emit(events.AlertRaised(dict(alert)))

    # --- timers -------------------------------------------------------------------------

    async def run_timers(self, sweep: bool = True) -> None:
        """Due engine timers; with ``sweep`` (at least every IDLE_SWEEP_S from the timer
        loop) also the scans of open cases for inactivity and for orphaned connections."""
        async with self._unit():
            now = self.clock.now()
            await self._effects(self._engine.tick(now))
            await self.warm.expire(now)
            if sweep or now - self._last_sweep >= IDLE_SWEEP_S:
                self._last_sweep = now
                await self._close_idle(now)
                await self._requeue_orphans()

    async def _close_idle(self, now: float) -> None:
        """A case the AI holds with no event for routing.idle_case_timeout_s: the resident
        walked away without the device noticing. Nothing waits forever."""
        limit = self.cfg.routing.idle_case_timeout_s
        for case in [c for c in self._open.values()
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
        for case in [c for c in self._open.values() if c.state is CaseState.connected
                     and c.assigned_worker and c.requirement is not None]:
            worker = case.assigned_worker
            if self._presence.get(worker) is not Presence.offline \
                    or worker in self._online or worker in self._grace:
                continue
            await self._transfer(case.id, worker, case.requirement, "worker disconnected",
                                 None)
            self._alert("worker_disconnected", worker_id=worker, case_id=case.id,
                        message=f"{case.id} went back to the queue: worker disconnected")

    async def _timer_loop(self) -> None:
        while True:
            deadline = self._engine.next_deadline()
            now = self.clock.now()
            delay = IDLE_SWEEP_S if deadline is None else \
                min(IDLE_SWEEP_S, max(0.0, deadline - now))
            self._timer_at = now + delay
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

    async def open_case(self, req) -> Case:
        """``req`` is views.CreateCase (validated by the web layer)."""
        self._check_request(req)
        case_id = req.case_id or "c-" + uuid.uuid4().hex[:12]
        preferred = await self.preferred_worker(req.resident) if req.escalate else None
        # A caller's id is looked up in the store before the lock (no I/O under it, issue
        # 13); under the lock memory answers: a case opened since then is in _open/_closed.
        if req.case_id is not None and await self.case(case_id) is not None:
            raise CoreError(f"case {case_id!r} exists already")
        async with self._unit():
            if req.case_id is not None and (case_id in self._open or case_id in self._closed):
                raise CoreError(f"case {case_id!r} exists already")
            await self._router_event(case_id, "opened", {
                "site": req.site, "device": req.device, "resident": req.resident,
                "language": req.language, "channel": req.channel.value, "intent": req.intent,
                "account": req.account})
            for turn in req.transcript:
                await self._router_event(case_id, "turn", turn.model_dump(mode="json"))
            if req.escalate:
                await self._queue(case_id, req, preferred)
            return self._open.get(case_id) or await self.case(case_id)

    def _check_request(self, req) -> None:
        site = self.cfg.site(req.site)
        if site is None:
            raise NotFound(f"unknown site {req.site!r}; GET /v1/sites lists them")
        if req.device is not None and not any(d.id == req.device for d in site.devices):
            raise NotFound(f"device {req.device!r} is not at site {req.site!r}")
        if req.language not in site.languages:
            raise Invalid(f"site {req.site!r} does not serve language {req.language!r}; it "
                          f"serves {', '.join(site.languages)}")
        unknown = [s for s in req.skills if s not in self.cfg.skills.skills]
        if unknown:
            raise Invalid(f"unknown skills {unknown}; see config/skills.yaml")
        if req.workflow and req.workflow not in self.cfg.routing.workflows:
            raise Invalid(f"unknown workflow {req.workflow!r}; see config/routing.yaml")

    async def escalate(self, case_id: str, req) -> Case:
        """Queue an open case (AI active or handed back) for a human."""
        case = await self.case(case_id)
        preferred = await self.preferred_worker(case.resident if case else None)
        async with self._unit():
            case = await self.case(case_id)
            if case is None:
                raise NotFound(f"unknown case {case_id!r}")
            req = req.for_case(case)
            self._check_request(req)
            await self._queue(case_id, req, preferred)
            return self._open.get(case_id) or case

    async def preferred_worker(self, resident: str | None) -> str | None:
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
        await self._effects(self._engine.enqueue(
            case_id, requirement, queued_at=case.queued_at, now=now,
            excluded=case.excluded_workers, preferred_worker=preferred))

    async def accept_offer(self, worker_id: str, offer_id: str) -> Case:
        return await self._answer_offer(worker_id, offer_id, OfferStatus.accepted, None)

    async def reject_offer(self, worker_id: str, offer_id: str,
                           reason: str | None = None) -> Case:
        return await self._answer_offer(worker_id, offer_id, OfferStatus.rejected, reason)

    async def _answer_offer(self, worker_id: str, offer_id: str, status: OfferStatus,
                            reason: str | None) -> Case:
        async with self._unit():
            entry = self._engine.offers.get(offer_id)
            if entry is None:
                raise CoreError(f"offer {offer_id!r} is no longer pending (it expired, was "
                                "withdrawn or was answered)")
            offer = entry[0]
            if offer.worker_id != worker_id:
                raise Forbidden(f"offer {offer_id!r} was not made to you")
            if self.warm.owns(offer.case_id):
                return await self.warm.answer(worker_id, offer,
                                              status is OfferStatus.accepted, reason)
            now = self.clock.now()
            case = await self._router_event(offer.case_id, "offer_result", {
                "offer_id": offer_id, "worker_id": worker_id, "status": status.value,
                "reason": reason})
            await self._effects(self._engine.offer_result(offer_id, status, now))
            if status is OfferStatus.accepted and case.queued_at is not None:
                self._answered.append((now, now - case.queued_at))
            return self._open.get(case.id) or case

    async def close(self, case_id: str, by: str, status: str, code: str = "",
                    note: str = "", ai_verdict: str | None = None) -> Case:
        async with self._unit():
            case = await self.case(case_id)
            if case is None:
                raise NotFound(f"unknown case {case_id!r}")
            case = await self._router_event(case_id, "outcome", {
                "status": status, "code": code, "note": note, "by": by,
                "ai_verdict": ai_verdict})
            hold = self.cfg.routing.wrapup_capacity_s
            if hold > 0 and by == case.assigned_worker:
                # The closing worker's wrap-up keeps their capacity (engine.hold_for_wrapup).
                self._engine.hold_for_wrapup(case_id, self.clock.now() + hold)
            await self._remove(case_id)
            return case

    async def warm_transfer(self, case_id: str, worker_id: str, requirement: Requirement,
                            note: str, to_worker: str | None, timeout_s: float) -> dict:
        """Start a warm transfer (router/service/core/warm.py): the case stays with ``worker_id``
        until the next person accepts, or returns to them after ``timeout_s``."""
        async with self._unit():
            return await self.warm.start(case_id, worker_id, requirement, note, to_worker,
                                         timeout_s)

    async def cancel_warm_transfer(self, case_id: str, reason: str) -> bool:
        async with self._unit():
            return await self.warm.cancel(case_id, reason)

    async def consult(self, case_id: str, worker_id: str, text: str) -> dict[str, Any]:
        """A message between the two workers of a warm transfer (router/service/core/warm.py):
        to both their desks, never to the device."""
        async with self._unit():
            case = await self.case(case_id)
            if case is None:
                raise NotFound(f"unknown case {case_id!r}")
            return self.warm.consult(case, worker_id, text)

    async def end_wrapup(self, case_id: str, worker_id: str) -> bool:
        """The worker is done with a closed case's wrap-up: their capacity comes back."""
        async with self._unit():
            held = self._engine.wrapups.get(case_id)
            if held is None or held[0] != worker_id:
                return False
            await self._effects(self._engine.end_wrapup(case_id, self.clock.now()))
            return True

    async def transfer(self, case_id: str, worker_id: str, requirement: Requirement,
                       note: str, to_worker: str | None) -> Case:
        if to_worker is not None:
            target = self._engine.pool.get(to_worker)
            if target is None or self._presence.get(to_worker) is not Presence.available \
                    or not self._engine.pool.can_take(target, requirement.channel):
                raise CoreError(f"transfer failed: {to_worker} cannot take a "
                                f"{requirement.channel.value} case now; the case stays with "
                                "you — transfer to a skill or language instead",
                                reason="target_unavailable")
        async with self._unit():
            return await self._transfer(case_id, worker_id, requirement, note, to_worker)

    async def _transfer(self, case_id: str, worker_id: str, requirement: Requirement,
                        note: str, to_worker: str | None) -> Case:
        await self.warm.cancel(case_id, "transferred another way")
        now = self.clock.now()
        case = await self._router_event(case_id, "transfer", {
            "from_worker": worker_id, "requirement": requirement.model_dump(mode="json"),
            "note": note, "to_worker": to_worker})
        effects = self._engine.release(case_id, now)
        effects += self._engine.enqueue(case_id, requirement, queued_at=case.queued_at,
                                       now=now, excluded=case.excluded_workers,
                                       preferred_worker=to_worker)
        await self._effects(effects)
        return self._open.get(case_id) or case

    async def take(self, case_id: str, taker: str, note: str = "") -> Case:
        """A supervisor on the worker roster (workers.yaml, or a supervisor with languages in
        tokens.yaml: router/config.py) takes a connected case: a warm transfer to
        them, accepted at once (their desk picks it up); ``note`` is recorded as theirs.
        Everything is checked before anything is staged, so a refusal changes nothing."""
        worker = next((w for w in self.cfg.workers.workers if w.id == taker), None)
        if worker is None:
            raise Forbidden(f"you ({taker}) are not in the worker roster, so no case can be "
                            f"assigned to you: give your entry in config/tokens.yaml the "
                            "languages you work in (or add a worker with id "
                            f"{taker!r} to config/workers.yaml), or reassign the case to a "
                            "worker", reason="not_in_roster")
        async with self._unit():
            case = await self.case(case_id)
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
                raise Invalid(f"you do not speak {req.language} (config/workers.yaml lists "
                              f"{', '.join(worker.languages)} for you): reassign case "
                              f"{case_id!r} to a worker who does", reason="language")
            if taker in case.excluded_workers:
                raise CoreError(f"you passed on or declined case {case_id!r} before, and the "
                                "router does not route a case back: reassign it instead",
                                reason="excluded")
            presence = self._presence[taker]
            if presence is not Presence.available:
                raise CoreError(f"you are {presence.value}: open your desk (/desk) with your "
                                "token, set yourself available, then take the case",
                                reason="taker_unavailable")
            if not self._engine.pool.can_take(self._engine.pool.get(taker), req.channel):
                raise CoreError(f"you cannot take another {req.channel.value} case now (at "
                                "capacity): close or transfer one of yours first",
                                reason="taker_at_capacity")
            # No transfer note: the packet would show it as the holder's.
            case = await self._transfer(case_id, holder, req, "", taker)
            offer = case.pending_offer
            if offer is None or offer.worker_id != taker:  # pragma: no cover - checked above
                raise Unavailable(f"case {case_id!r} could not be offered to you; try again")
            now = self.clock.now()
            case = await self._router_event(case_id, "offer_result", {
                "offer_id": offer.offer_id, "worker_id": taker, "status": "accepted",
                "reason": "taken by a supervisor"})
            await self._effects(self._engine.offer_result(offer.offer_id, OfferStatus.accepted,
                                                         now))
            if note:
                case = await self._router_event(case_id, "note", {"author": taker,
                                                                  "text": note})
            self._emit(events.OfferClosed(offer.offer_id, taker, "accepted"))
            return case

    async def assign(self, case_id: str, worker_id: str, by: str, note: str = "") -> Case:
        """A supervisor assigns a waiting case (queued, offered or transferring) to a chosen
        person, who gets it connected at once (their desk opens it). A pending offer to
        someone else is withdrawn first. Checked before anything is staged."""
        target = self._engine.pool.get(worker_id)
        if target is None:
            raise NotFound(f"unknown worker {worker_id!r}; GET /v1/directory lists them")
        async with self._unit():
            case = await self.case(case_id)
            if case is None:
                raise NotFound(f"unknown case {case_id!r}")
            req = case.requirement
            if case.state not in (CaseState.queued, CaseState.offered,
                                  CaseState.transferring) or req is None:
                raise CoreError(f"case {case_id!r} is {case.state.value}: only a waiting case "
                                "can be assigned; reassign a connected one", reason="not_waiting")
            if self._presence.get(worker_id) is not Presence.available:
                raise CoreError(f"{worker_id} is {self._presence.get(worker_id, Presence.offline).value}"
                                ": only an available person can be assigned a case",
                                reason="target_unavailable")
            if target.languages.get(req.language, 0) < 1:
                raise CoreError(f"{worker_id} does not speak {req.language}",
                                reason="language")
            pending = case.pending_offer
            if pending is not None and pending.worker_id == worker_id:
                pass  # their own pending offer is accepted below
            elif pending is not None:
                await self._router_event(case_id, "offer_result", {
                    "offer_id": pending.offer_id, "worker_id": pending.worker_id,
                    "status": "withdrawn", "reason": f"assigned to {worker_id} by {by}"})
                self._emit(events.OfferClosed(pending.offer_id, pending.worker_id, "withdrawn",
                                              f"assigned to {worker_id}"))
            if pending is None or pending.worker_id != worker_id:
                if not self._engine.pool.can_take(target, req.channel):
                    raise CoreError(f"{worker_id} cannot take another {req.channel.value} "
                                    "case now (at capacity)", reason="target_at_capacity")
                now = self.clock.now()
                await self._effects(self._engine.remove_case(case_id, now))
                case = await self.case(case_id)
                await self._effects(self._engine.enqueue(
                    case_id, req, queued_at=case.queued_at or now, now=now,
                    excluded=[w for w in case.excluded_workers if w != worker_id],
                    preferred_worker=worker_id))
                case = await self.case(case_id)
            offer = case.pending_offer
            if offer is None or offer.worker_id != worker_id:
                raise CoreError(f"case {case_id!r} could not be offered to {worker_id} (they "
                                "declined or missed it before); try another person",
                                reason="excluded")
            now = self.clock.now()
            case = await self._router_event(case_id, "offer_result", {
                "offer_id": offer.offer_id, "worker_id": worker_id, "status": "accepted",
                "reason": f"assigned by {by}"})
            await self._effects(self._engine.offer_result(offer.offer_id, OfferStatus.accepted,
                                                         now))
            if case.queued_at is not None:
                self._answered.append((now, now - case.queued_at))
            if note:
                case = await self._router_event(case_id, "note", {"author": by, "text": note})
            self._emit(events.OfferClosed(offer.offer_id, worker_id, "accepted"))
            return case

    async def handback(self, case_id: str, worker_id: str, reason: str, note: str) -> Case:
        async with self._unit():
            await self.warm.cancel(case_id, "handed back to the AI")
            case = await self._router_event(case_id, "handback", {
                "worker_id": worker_id, "reason": reason, "note": note})
            await self._effects(self._engine.release(case_id, self.clock.now()))
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
            case = await self.case(case_id)
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
                    raise Invalid(f"no language on record for {worker_id!r}: say which "
                                  "language the message is in ('language')")
                language = max(worker.languages, key=worker.languages.__getitem__)
            event = self._event(case_id, "turn", {"speaker": "human", "worker_id": worker_id,
                                                  "language": language, "text": text})
            case = await self._stage(event)
            return event, case

    async def take_external(self, event, *, device: str, site: str | None, may_open: bool,
                            source: str, raw: str) -> AppendResult:
        """An event from a device, under the one rule of router.device_rules: applied,
        duplicate (seq ≤ high-water with the same id, or a seq a refusal consumed), refused
        (dead-lettered with ``source`` and ``raw``, its seq consumed — by the writer, in
        order, in the group's transaction; we return once it is durable), or seq_conflict (a lower seq with another
        id: the caller dead-letters it; nothing is consumed). Everything the store could
        refuse is refused here, before the group commit. Raises CoreError seq_gap (ask for
        a resend from high-water + 1) or 503."""
        # Read before the lock: no I/O under it. An id made durable between this read and
        # the lock is a unique-key refusal at commit instead (the writer's one-by-one path).
        stored_at = await self.store.event_stored_at(event.event_id)
        async with self._unit():
            hw = self._high_water.get(event.origin, 0)
            if event.seq <= hw:
                await self._drain()  # only a durable copy makes it a duplicate
                held = await self.store.held_at(event.origin, event.seq)
                if held is None or held[1] in (None, event.event_id):
                    return AppendResult("duplicate", None)
                held = held[1] if held[0] == "event" else f"{held[1]}, refused"
                return AppendResult("seq_conflict", None, SEQ_CONFLICT, (
                    f"origin {event.origin!r} seq {event.seq} is taken by another event "
                    f"({held}); a restarted device must continue from seq {hw + 1}"))
            if event.seq != hw + 1:
                raise CoreError(f"sequence gap for origin {event.origin!r}: expected seq "
                                f"{hw + 1}, got {event.seq}; resend from {hw + 1}",
                                reason="seq_gap")
            case = await self.case(event.case_id)
            site_cfg = self.cfg.site(site) if site else None
            found = refusal(event, device=device, site=site, case=case,
                            site_languages=site_cfg.languages if site_cfg else (),
                            may_open=may_open, now=self.clock.now(),
                            max_age_s=self.cfg.routing.max_event_age_s)
            if found is None:
                where = self._event_id_taken(event.event_id, stored_at)
                if where is not None:
                    found = (EVENT_ID_REUSED, f"event_id {event.event_id!r} is stored already "
                             f"(as {where}): every event needs a new id")
            if found is None:
                try:
                    case = await self._stage(event)
                except CoreError as exc:  # the state machine refused it; nothing staged
                    found = (REFUSED, str(exc))
                else:
                    if event.type == "outcome":
                        await self._remove(case.id)
                    return AppendResult("applied", case)
            # Consumed in order by the writer (after seq - 1, before seq + 1), outside the
            # lock; the caller hears back once it is durable.
            self._skip = Skip(event.origin, event.seq, found[0], found[1], event.event_id,
                              source, raw, self.clock.now())
            self._high_water[event.origin] = event.seq
            return AppendResult("refused", None, *found)

    async def refuse_seq(self, origin: str, seq: int, *, cls: str, reason: str,
                         event_id: str | None, source: str, raw: str) -> str:
        """Consume ``seq`` of ``origin`` for input that is not an event at all (its header
        names origin and seq, the rest fails the schema): "refused", "duplicate" (consumed
        already) or "gap" (seq is ahead; the caller asks for a resend)."""
        async with self._unit():
            hw = self._high_water.get(origin, 0)
            if seq <= hw:
                return "duplicate"
            if seq != hw + 1:
                return "gap"
            self._skip = Skip(origin, seq, cls, reason, event_id, source, raw,
                              self.clock.now())
            self._high_water[origin] = seq
            return "refused"

    def _event_id_taken(self, event_id: str, stored_at: tuple[str, int] | None) -> str | None:
        staged = self._staged_ids.get(event_id)
        if staged is not None:
            return f"{staged[0]} seq {staged[1]}, not yet durable"
        return None if stored_at is None else f"{stored_at[0]} seq {stored_at[1]}"

    async def ack_alert(self, alert_id: str, by: str) -> dict[str, Any]:
        """A supervisor acknowledges a blocking alert (the emergency protocol): recorded on
        its case as an ``emergency_acknowledged`` signal (who, when) and pushed to every
        floor monitor, which closes the alert. Acknowledging twice keeps the first."""
        async with self._unit():
            alert = next((a for a in self._alerts if a.get("alert_id") == alert_id), None)
            if alert is None:
                raise NotFound(f"no alert {alert_id!r} (alerts are kept in memory: it may be "
                               "from before a restart)")
            if alert.get("acknowledged_by"):
                return alert
            now = self.clock.now()
            alert["acknowledged_by"], alert["acknowledged_at"] = by, now
            if alert.get("kind") == "emergency" and alert.get("case_id") \
                    and alert["case_id"] in self._open:
                await self._router_event(alert["case_id"], "signal", {
                    "name": "emergency_acknowledged", "value": True,
                    "detail": {"alert_id": alert_id, "by": by, "at": now}})
            self._emit(events.AlertRaised(dict(alert)))
            return alert

    async def raise_alert(self, kind: str, **fields: Any) -> None:
        """A floor alert from an adapter (e.g. a device went offline), pushed at once."""
        async with self._unit():
            self._alert(kind, **fields)

    async def set_presence(self, worker_id: str, presence: Presence, reason: str = "") -> None:
        if worker_id not in self._presence:
            raise NotFound(f"unknown worker {worker_id!r}")
        async with self._unit():
            now = self.clock.now()
            if presence is not Presence.available:
                await self._withdraw_pending(worker_id)
            try:
                effects = self._engine.set_presence(worker_id, presence, now)
            except EngineError as exc:
                raise NotFound(str(exc)) from None
            await self._presence_changed(worker_id, presence, reason or "set by request")
            await self._effects(effects)

    # --- connections (presence follows the browser, with a grace period) ----------------

    def connected(self, subject: str) -> None:
        """A browser of ``subject`` opened its socket (the web layer calls it)."""
        self._online.add(subject)
        task = self._grace.pop(subject, None)
        if task is not None:
            task.cancel()

    def _assigned_to(self, worker_id: str) -> bool:
        return any(c.assigned_worker == worker_id and c.state is CaseState.connected
                   for c in self._open.values())

    def disconnected(self, subject: str, *, presence_follows: bool = True) -> None:
        """The last browser of ``subject`` closed. With ``presence_follows`` (desk roles),
        a worker who does not come back within the grace period goes offline."""
        self._online.discard(subject)
        if not presence_follows or subject not in self._presence:
            return
        if self._presence[subject] is Presence.offline and not self._assigned_to(subject):
            return
        old = self._grace.pop(subject, None)
        if old is not None:
            old.cancel()
        self._grace[subject] = self.tasks.spawn(self._offline_after_grace(subject),
                                                f"grace-{subject}", worker_id=subject)

    async def _offline_after_grace(self, worker_id: str) -> None:
        await asyncio.sleep(self.cfg.routing.presence_grace_s)
        self._grace.pop(worker_id, None)
        if worker_id in self._online:
            return
        # A failure is logged by the supervisor (with worker_id); the next sweep retries.
        if self._presence[worker_id] is not Presence.offline:
            await self.set_presence(worker_id, Presence.offline, "browser closed")
        await self.run_timers()  # the sweep sends their connected cases back

    # --- the resident's turn (router/service/conversation.py decides, the core records) ---

    async def record_turn(self, case_id: str,
                          step: Callable[[Case, Unit], Awaitable[T]]) -> T:
        """One resident turn as one unit: ``step(case, unit)`` runs under the core's lock
        with the case as it is now and stages what the turn produced through ``unit``;
        its events are durable (and published) when this returns ``step``'s result.
        ``step`` must not do I/O: whatever it needs from outside is read before."""
        async with self._unit():
            case = await self.case(case_id)
            if case is None:
                raise NotFound(f"unknown case {case_id!r}")
            if case.terminal:
                raise CoreError(f"case {case_id!r} is {case.state.value}: open a new one",
                                reason="closed")
            unit = Unit(self)
            try:
                return await step(case, unit)
            finally:
                unit.done = True

    # --- queries ----------------------------------------------------------------------------

    def open_cases(self) -> list[Case]:
        """Every open case, as of now (a snapshot for subscribers that resynchronise)."""
        return list(self._open.values())

    def recently_closed(self) -> list[Case]:
        """The last closed cases the core keeps in memory (CLOSED_CACHE), oldest first: what
        a resynchronising subscriber checks for closings it missed."""
        return list(self._closed.values())

    def open_case_of(self, case_id: str) -> Case | None:
        """The open case ``case_id`` from memory (no store read), else None."""
        return self._open.get(case_id)

    async def packet(self, case_id: str) -> dict[str, Any]:
        """The context packet a person sees on accept (router/packet.py). An open case of
        this core's is built from its events in memory (recent.py), others from the store."""
        events = None if case_id in self._tainted else self._recent.events(case_id)
        return await full_packet(self, case_id, events)

    def offers_of(self, worker_id: str) -> list[Offer]:
        """The worker's pending offers."""
        return [o for o, _ in self._engine.offers.values() if o.worker_id == worker_id]

    def queue_position(self, case_id: str) -> int | None:
        return self._engine.position(case_id)

    def step_of(self, case_id: str) -> str | None:
        """The routing step a waiting case is at (None when it is not waiting)."""
        qc = self._engine.cases.get(case_id)
        return qc.step_name if qc is not None else None

    def pools(self, req: Requirement) -> list:
        """Per workflow step of ``req``: (starts_after_s, ahead, staffed, free)."""
        return self._engine.pools(req)

    def stats(self) -> dict[str, Any]:
        from router.service.core.stats import stats

        return stats(self, self._engine, self._open, self._presence, self._answered)

    def presence_of(self, worker_id: str) -> Presence | None:
        """None when ``worker_id`` is not on the roster (config/workers.yaml)."""
        return self._presence.get(worker_id)

    def worker_load(self, worker_id: str) -> dict[str, Any]:
        """Cases the worker holds per channel, and since when they are idle."""
        state = self._engine.pool.get(worker_id)
        return {"load": {c.value: n for c, n in state.load.items()} if state else {},
                "idle_since": state.idle_since if state else None}

    # --- workspace queries (router/service/routes_workspace.py) ---------------------------

    def offer(self, offer_id: str) -> Offer | None:
        """A pending offer by id (a warm transfer's carries its search id: see warm.real_id)."""
        entry = self._engine.offers.get(offer_id)
        return entry[0] if entry else None

    def availability(self, worker_id: str) -> dict[str, Any]:
        """What the directory shows of a person: channels they can take now, and whether a
        closed case's wrap-up still holds their capacity."""
        state = self._engine.pool.get(worker_id)
        return {"can_take": [c.value for c in Channel if state is not None
                             and self._engine.pool.can_take(state, c)],
                "wrapping_up": any(w == worker_id for w, _ in self._engine.wrapups.values())}

    def waiting_by_queue(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for qc in self._engine.cases.values():
            if self.warm.owns(qc.case_id):
                continue
            name = qc.req.workflow or "default"
            out[name] = out.get(name, 0) + 1
        return out

    def why_not(self, case: Case) -> list[dict[str, Any]]:
        """Per workflow step, who could take ``case`` now or the requirement no one available
        meets (router/matching/explain.py)."""
        from router.matching.explain import explain

        req = case.requirement
        pool = self._engine.pool
        workers = [w for w in (pool.get(x.id) for x in self.cfg.workers.workers) if w]
        return explain(self._engine._workflow(req).steps, req, workers,
                       lambda w: pool.can_take(w, req.channel), excluded=case.excluded_workers,
                       current_step=self.step_of(case.id))

    def high_water_of(self, origin: str) -> int:
        """The highest seq of ``origin`` the core has taken (staged, maybe not yet durable)."""
        return self._high_water.get(origin, 0)

    def recent_alerts(self, limit: int, kind: str | None = None) -> list[dict[str, Any]]:
        return self._alerts.recent(limit, kind)

    # --- domain events (router/service/core/events.py holds the contract) -----------------

    def subscribe(self, name: str, maxsize: int | None = None) -> events.Subscription:
        """A bounded feed of the core's events (``maxsize``: routing.event_queue)."""
        return self._bus.subscribe(name, maxsize or self.cfg.routing.event_queue)

    def publish(self, event: events.Event) -> None:
        """An adapter's transient notice (DeviceChanged, WorkerSignal) to every subscriber,
        now; not stored."""
        self._bus.publish([event])

    def subscribers(self) -> dict[str, dict[str, int]]:
        return self._bus.subscribers()


class Unit:
    """What a ``record_turn`` step may do inside the core's unit; invalid once it returns."""

    def __init__(self, core: RouterCore):
        self._core = core
        self.done = False

    def _check(self) -> RouterCore:
        if self.done:
            raise RuntimeError("the unit is over: stage changes inside the record_turn step")
        return self._core

    async def case(self, case_id: str) -> Case | None:
        return await self._check().case(case_id)

    async def record(self, case_id: str, type_: str, payload: dict[str, Any]) -> CaseEvent:
        """Stage a router event on the case; returns it (its event_id names it)."""
        core = self._check()
        event = core._event(case_id, type_, payload)
        await core._stage(event)
        return event

    def alert(self, kind: str, **fields: Any) -> None:
        self._check()._alert(kind, **fields)

    def suggest(self, suggestion: events.Suggestion) -> None:
        self._check()._emit(suggestion)

    async def queue(self, case_id: str, req, preferred: str | None) -> Case:
        """Queue the case for a person (``req`` as views.CreateCase); returns the case."""
        core = self._check()
        await core._queue(case_id, req, preferred)
        return core._open.get(case_id) or await core.case(case_id)

    def pools(self, req: Requirement) -> list:
        return self._check().pools(req)

    def requirement(self, req) -> Requirement:
        return self._check().requirement(req)
