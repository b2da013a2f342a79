"""EventStore: the case event log, the case projection, worker presence and dead letters.

Every public method is a short unit of work on the backend (one transaction for writes)
and translates library errors into StoreError subclasses (see errors.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import bindparam, desc, select
from sqlalchemy.exc import IntegrityError

from protocol.models import TERMINAL_STATES, CaseEvent, CaseState
from common.tasks import Supervisor
from router.casestate import Case
from router.store.append import Appender, OneTrip, batch_rows
from router.store.backend import Backend
from router.store.errors import StoreError, translating
from router.store.ids import IdIndex
from router.store.lookups import GroupedLookup
from router.store.status import AppendStatus
from router.store.tables import (
    case_events,
    cases,
    dead_letters,
    origins,
    refused_seqs,
    worker_presence,
)

log = logging.getLogger(__name__)

_EVENT = TypeAdapter(CaseEvent)
RAW_LIMIT = 64 * 1024  # dead-letter input kept, in characters; oversized input is cut
_TERMINAL = sorted(s.value for s in TERMINAL_STATES)
_EVENT_COLUMNS = (case_events.c.event_id, case_events.c.case_id, case_events.c.origin,
                  case_events.c.seq, case_events.c.ts, case_events.c.type,
                  case_events.c.payload)


def _text(value: str, limit: int | None = None) -> str:
    """Text any database accepts: PostgreSQL rejects NUL and lone surrogates."""
    if limit is not None:
        value = value[:limit]
    return value.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _parse_case(data: str) -> Case:
    try:
        return Case.model_validate_json(data)
    except ValidationError as e:
        raise StoreError(f"a stored case does not fit the current Case model ({e.error_count()} "
                         "errors): rebuild the projection from the event log") from e


def _parse_event(row: dict[str, Any]) -> Any:
    try:
        return _EVENT.validate_python(row)
    except ValidationError as e:
        raise StoreError(f"stored event {row['event_id']!r} does not fit the current event "
                         f"models ({e.error_count()} errors): add a migration that upgrades "
                         "old payloads") from e


class _SlowPath(Exception):
    """The batch does not fit the fast path (see Appender.append_batch)."""


class EventStore:
    """Open with ``open_store(url)``; close with ``close()`` (or ``async with``)."""

    def __init__(self, backend: Backend):
        self._b = backend
        self._appender = Appender(backend.insert)
        # SQLite: the group commit's fast path in one round trip to the driver's thread.
        self._one_trip = None if backend.one_trip is None else OneTrip(
            self._appender, backend.engine.dialect)
        self._closed = False
        # Is this event id stored? Asked for every device event: concurrent asks share a
        # query (router.store.lookups).
        self._ids_at = select(case_events.c.event_id, case_events.c.origin,
                              case_events.c.seq).where(
            case_events.c.event_id.in_(bindparam("ids", expanding=True)))
        self._id_lookup = GroupedLookup(self._events_stored_at)
        # The ids stored, in memory (router/store/ids.py), when this process is the one
        # writer of events: not under HA's fenced partition stores, whose database other
        # routers write too. Loaded in the background on the first ask.
        self._ids: IdIndex | None = IdIndex() if backend.fence is None else None
        # Likewise the case ids: a caller may name a new case's id, and almost every such
        # open asks "is it taken?" of an id that is not (POST /v1/cases by devices).
        self._case_ids: IdIndex | None = IdIndex() if backend.fence is None else None
        self._tasks = Supervisor("store", logger=log)
        self._loads: dict[str, asyncio.Task] = {}  # index -> its load task (first ask)

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._b.name

    async def __aenter__(self) -> EventStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._tasks.aclose()
            with translating("close the store", self._b.where):
                await self._b.engine.dispose()

    aclose = close

    def _guard(self, action: str) -> Any:
        if self._closed:
            raise StoreError(f"{action}: the store is closed; open it again with open_store()")
        return translating(action, self._b.where)

    # --- events ---------------------------------------------------------------------------

    async def append(self, event: CaseEvent, case: Case) -> AppendStatus:
        """Store ``event`` and the case it produced, in one transaction (see append.py for
        the sequence rules). Raises SeqGap or SeqConflict, having written nothing."""
        with self._guard(f"append event {event.event_id!r}"):
            self._will_store([event])
            async with self._b.write() as conn:
                return await self._appender.append(conn, event, case)

    async def append_many(self, items: list[tuple[CaseEvent, Case]]) -> list[AppendStatus]:
        """Like ``append`` for each item in order, in one transaction: all or nothing."""
        if not items:
            return []
        with self._guard(f"append {len(items)} events"):
            self._will_store([e for e, _ in items])
            if self._one_trip is not None and self._b.fence is None:
                rows = batch_rows(items)
                if rows is not None and await self._b.one_trip(self._one_trip,
                                                               self._one_trip.rows(rows)):
                    return [AppendStatus.applied] * len(items)
                # did not fit (rolled back): sorted out item by item below
            try:
                async with self._b.write() as conn:
                    fast = await self._appender.append_batch(conn, items)
                    if fast is None:
                        raise _SlowPath
                    return fast
            except (_SlowPath, IntegrityError):
                pass  # rolled back: duplicates, gaps or conflicts are sorted out item by item
            async with self._b.write() as conn:
                return [await self._appender.append(conn, e, c) for e, c in items]

    async def append_and_skip(self, items: list[tuple[CaseEvent, Case]],
                              skips: list[dict[str, Any]]) -> bool:
        """The group commit of ``items`` (the fast path of ``append_many``) and, after them,
        the seqs consumed by refused events (each as ``SyncStore.skip_seq``'s arguments,
        whose origins have no event in ``items``), in one transaction. False, having written
        nothing, when that does not fit: the caller then writes them apart."""
        with self._guard(f"append {len(items)} events and {len(skips)} refusals"):
            self._will_store([e for e, _ in items])
            try:
                async with self._b.write() as conn:
                    if items and await self._appender.append_batch(conn, items) is None:
                        raise _SlowPath
                    for sk in skips:
                        if not await self._appender._advance(conn, sk["origin"], sk["seq"]):
                            raise _SlowPath
                        event_id = sk.get("event_id")
                        await conn.execute(refused_seqs.insert().values(
                            origin=sk["origin"], seq=sk["seq"],
                            event_id=None if event_id is None else _text(event_id, 80)))
                        await conn.execute(dead_letters.insert().values(
                            source=_text(sk["source"], 200), reason=_text(sk["reason"]),
                            raw=_text(sk["raw"], RAW_LIMIT), raw_size=len(sk["raw"]),
                            ts=sk["ts"]))
                return True
            except (_SlowPath, IntegrityError):
                return False

    async def high_water(self, origin: str) -> int:
        """The highest seq stored for ``origin`` (0 when none)."""
        with self._guard(f"read the high-water mark of {origin!r}"):
            async with self._b.read() as conn:
                return await conn.scalar(select(origins.c.high_water)
                                         .where(origins.c.origin == origin)) or 0

    async def event_id_at(self, origin: str, seq: int) -> str | None:
        """The id of the event stored at (origin, seq), or None."""
        with self._guard(f"look up {origin!r} seq {seq}"):
            async with self._b.read() as conn:
                return await conn.scalar(select(case_events.c.event_id).where(
                    case_events.c.origin == origin, case_events.c.seq == seq))

    async def held_at(self, origin: str, seq: int) -> tuple[str, str | None] | None:
        """What holds (origin, seq): ("event", id), ("refused", id or None) for a seq a
        refused event consumed, or None."""
        with self._guard(f"look up {origin!r} seq {seq}"):
            async with self._b.read() as conn:
                held = await conn.scalar(select(case_events.c.event_id).where(
                    case_events.c.origin == origin, case_events.c.seq == seq))
                if held is not None:
                    return "event", held
                row = (await conn.execute(select(refused_seqs.c.event_id).where(
                    refused_seqs.c.origin == origin, refused_seqs.c.seq == seq))).first()
        return None if row is None else ("refused", row[0])

    def _will_store(self, events: list) -> None:
        """Before a transaction that may store ``events``: their ids join the index (a
        transaction that fails leaves only false "maybe"s)."""
        if self._ids is not None:
            self._ids.add_all(e.event_id for e in events)
        if self._case_ids is not None:  # an event's transaction writes its case's row
            self._case_ids.add_all({e.case_id for e in events})

    def _surely_absent(self, name: str, index: IdIndex | None, key: str, pages) -> bool:
        """True when ``index`` is loaded and certain ``key`` is not stored. Otherwise False
        (ask the database), and the index's load starts if it has not (first ask, or the
        last load failed): ``pages()`` gives the stored keys, page by page."""
        if index is None:
            return False
        if index.ready:
            return not index.maybe(key)
        task = self._loads.get(name)
        if task is None or task.done():
            self._loads[name] = self._tasks.spawn(index.load(pages()), f"{name}-index")
        return False

    async def event_stored_at(self, event_id: str) -> tuple[str, int] | None:
        """(origin, seq) of the stored event with this id, or None."""
        with self._guard(f"look up event {event_id!r}"):
            if self._surely_absent("event-id", self._ids, event_id, self._stored_ids):
                return None  # certain: no query
            return await self._id_lookup.get(event_id)

    def _stored_case_ids(self):
        """Every stored case id, in pages (keyset on the id itself)."""
        return self._stored_keys(cases.c.case_id, cases.c.case_id, "", "case ids")

    def _stored_ids(self):
        """Every stored event id, in pages by position."""
        return self._stored_keys(case_events.c.position, case_events.c.event_id, 0, "event ids")

    async def _stored_keys(self, order, value, start, what: str, page: int = 20_000):
        """Every ``value`` stored, in pages of ``page`` by the unique column ``order``
        (keyset from ``start``: each page one query), for the id indexes' loads."""
        query = select(order, value).where(order > bindparam("after")).order_by(order).limit(page)
        after = start
        while True:
            with self._guard(f"read the stored {what}"):
                async with self._b.read() as conn:
                    rows = (await conn.execute(query, {"after": after})).all()
            if rows:
                after = rows[-1][0]
                yield [r[1] for r in rows]
            if len(rows) < page:
                return

    async def _events_stored_at(self, event_ids: list[str]) -> dict[str, tuple[str, int]]:
        async with self._b.read() as conn:
            rows = await conn.execute(self._ids_at, {"ids": event_ids})
            return {event_id: (origin, seq) for event_id, origin, seq in rows}

    async def high_waters(self) -> dict[str, int]:
        with self._guard("read the high-water marks"):
            async with self._b.read() as conn:
                rows = await conn.execute(select(origins.c.origin, origins.c.high_water))
                return {origin: high for origin, high in rows}

    async def case_events(self, case_id: str) -> list[CaseEvent]:
        """The case's events in append order."""
        with self._guard(f"read the events of case {case_id!r}"):
            async with self._b.read() as conn:
                rows = (await conn.execute(select(*_EVENT_COLUMNS)
                                           .where(case_events.c.case_id == case_id)
                                           .order_by(case_events.c.position))).all()
        return [_parse_event(row._asdict()) for row in rows]

    async def recent_cases_with_events(self, limit: int) -> list[tuple[Case, list[CaseEvent]]]:
        """The ``limit`` newest cases (by created_at) with their events in append order, in
        one query (the KPIs' read: not one query per case)."""
        if limit < 0:
            raise ValueError(f"limit ({limit}) must be >= 0")
        recent = select(cases.c.case_id, cases.c.data, cases.c.created_at) \
            .order_by(desc(cases.c.created_at), desc(cases.c.case_id)).limit(limit).subquery()
        query = select(recent.c.case_id.label("_case"), recent.c.data, *_EVENT_COLUMNS) \
            .select_from(recent.outerjoin(case_events,
                                          case_events.c.case_id == recent.c.case_id)) \
            .order_by(desc(recent.c.created_at), desc(recent.c.case_id),
                      case_events.c.position)
        with self._guard(f"read the {limit} newest cases with their events"):
            async with self._b.read() as conn:
                rows = (await conn.execute(query)).all()
        out: list[tuple[Case, list[CaseEvent]]] = []
        current = None
        for row in rows:
            data = row._asdict()
            if current != data["_case"]:
                current = data["_case"]
                out.append((_parse_case(data["data"]), []))
            if data["event_id"] is not None:
                out[-1][1].append(_parse_event({k: data[k] for k in (
                    "event_id", "case_id", "origin", "seq", "ts", "type", "payload")}))
        return out

    # --- case projection ------------------------------------------------------------------

    async def put_case(self, case: Case) -> None:
        """Write a projection row without an event (repair or rebuild from the log). Like
        append, it never replaces a newer revision."""
        with self._guard(f"write case {case.id!r}"):
            if self._case_ids is not None:
                self._case_ids.add_all([case.id])
            async with self._b.write() as conn:
                await self._appender.put_case(conn, case)

    async def get_case(self, case_id: str) -> Case | None:
        with self._guard(f"read case {case_id!r}"):
            if self._surely_absent("case-id", self._case_ids, case_id, self._stored_case_ids):
                return None  # certain: no query
            async with self._b.read() as conn:
                data = await conn.scalar(select(cases.c.data).where(cases.c.case_id == case_id))
        return None if data is None else _parse_case(data)

    async def list_cases(self, *, states: Iterable[str] | None = None, site: str | None = None,
                         worker: str | None = None, resident: str | None = None,
                         case_ids: Iterable[str] | None = None, limit: int = 100,
                         offset: int = 0) -> list[Case]:
        """Cases matching every given filter, newest (by created_at) first. A filter left
        as None does not filter; an empty list matches nothing. ``worker`` matches the
        assigned worker (kept on resolved cases)."""
        if limit < 0 or offset < 0:
            raise ValueError(f"limit ({limit}) and offset ({offset}) must be >= 0")
        query = select(cases.c.data)
        if states is not None:
            query = query.where(cases.c.state.in_([str(s) for s in states]))
        if case_ids is not None:
            query = query.where(cases.c.case_id.in_(list(case_ids)))
        for column, value in ((cases.c.site, site), (cases.c.assigned_worker, worker),
                              (cases.c.resident, resident)):
            if value is not None:
                query = query.where(column == value)
        query = query.order_by(desc(cases.c.created_at), desc(cases.c.case_id)) \
            .limit(limit).offset(offset)
        return await self._cases("list cases", query)

    async def open_cases(self) -> list[Case]:
        """Every case not resolved or abandoned, oldest first (restart recovery)."""
        query = select(cases.c.data).where(cases.c.state.not_in(_TERMINAL)) \
            .order_by(cases.c.created_at, cases.c.case_id)
        return await self._cases("list open cases", query)

    async def _cases(self, action: str, query: Any) -> list[Case]:
        with self._guard(action):
            async with self._b.read() as conn:
                rows = (await conn.scalars(query)).all()
        return [_parse_case(data) for data in rows]

    async def resident_last_worker(self, resident: str, since_ts: float) -> str | None:
        """The worker of the resident's most recent resolved case updated at/after
        ``since_ts`` that had one: its assigned worker, else (handed back to the AI before
        closing) the last worker who accepted it."""
        query = select(cases.c.assigned_worker, cases.c.data).where(
            cases.c.resident == resident, cases.c.state == CaseState.resolved.value,
            cases.c.updated_at >= since_ts,
        ).order_by(desc(cases.c.updated_at), desc(cases.c.case_id))
        with self._guard("find the resident's last worker"):
            async with self._b.read() as conn:
                rows = (await conn.execute(query)).all()
        for worker, data in rows:
            if worker:
                return worker
            accepted = [h.to_owner for h in _parse_case(data).handoffs
                        if h.kind == "accepted" and h.to_owner]
            if accepted:
                return accepted[-1]
        return None

    # --- workers and dead letters ---------------------------------------------------------

    async def set_worker_presence(self, worker_id: str, presence: str, ts: float) -> None:
        """Last writer by ``ts`` wins: an older report (late or replayed) is ignored."""
        with self._guard(f"set presence of worker {worker_id!r}"):
            async with self._b.write() as conn:
                stmt = self._b.insert(worker_presence).values(
                    worker_id=worker_id, presence=str(presence), ts=ts)
                await conn.execute(stmt.on_conflict_do_update(
                    index_elements=[worker_presence.c.worker_id],
                    set_={"presence": stmt.excluded.presence, "ts": stmt.excluded.ts},
                    where=worker_presence.c.ts <= stmt.excluded.ts))

    async def set_worker_presences(self, rows: list[tuple[str, str, float]]) -> None:
        """Several (worker_id, presence, ts) in one transaction, as ``set_worker_presence``."""
        if not rows:
            return
        with self._guard(f"set presence of {len(rows)} workers"):
            async with self._b.write() as conn:
                for worker_id, presence, ts in rows:
                    stmt = self._b.insert(worker_presence).values(
                        worker_id=worker_id, presence=str(presence), ts=ts)
                    await conn.execute(stmt.on_conflict_do_update(
                        index_elements=[worker_presence.c.worker_id],
                        set_={"presence": stmt.excluded.presence, "ts": stmt.excluded.ts},
                        where=worker_presence.c.ts <= stmt.excluded.ts))

    async def worker_presence(self) -> dict[str, tuple[str, float]]:
        with self._guard("read worker presence"):
            async with self._b.read() as conn:
                rows = await conn.execute(select(worker_presence))
                return {w: (p, ts) for w, p, ts in rows}

    async def dead_letter(self, source: str, reason: str, raw: str | bytes, ts: float) -> None:
        """Keep rejected input with the reason. ``raw`` beyond RAW_LIMIT characters is cut
        (``raw_size`` keeps its length); NUL and invalid characters are escaped; bytes are
        decoded as UTF-8 with invalid bytes escaped."""
        await self.dead_letters_many([(source, reason, raw, ts)])

    async def dead_letters_many(self, items: list[tuple[str, str, str | bytes, float]]) -> None:
        """``dead_letter`` for each (source, reason, raw, ts), in one transaction."""
        rows = []
        for source, reason, raw, ts in items:
            if isinstance(raw, bytes):
                raw = raw.decode("utf-8", "backslashreplace")
            rows.append({"source": _text(source, 200), "reason": _text(reason),
                         "raw": _text(raw, RAW_LIMIT), "raw_size": len(raw), "ts": ts})
        if not rows:
            return
        with self._guard("record dead letters"):
            async with self._b.write() as conn:
                await conn.execute(dead_letters.insert(), rows)
        for row in rows:  # the reason may quote the input (a validation error): it is PII
            log.warning("input dead-lettered", extra={"source": row["source"],
                                                      "raw_size": row["raw_size"],
                                                      "pii": {"reason": row["reason"][:200]}})

    async def dead_letters(self, limit: int = 100, before_id: int | None = None,
                           source_prefix: str | None = None) -> list[dict]:
        """Newest first: {id, source, reason, raw, raw_size, ts}. Page with ``before_id``
        (the smallest id of the previous page); ``source_prefix`` e.g. ``mqtt:baton/v1/s/d/``."""
        if limit < 0:
            raise ValueError(f"limit ({limit}) must be >= 0")
        query = select(dead_letters)
        if before_id is not None:
            query = query.where(dead_letters.c.id < before_id)
        if source_prefix:
            query = query.where(dead_letters.c.source.startswith(source_prefix,
                                                                autoescape=True))
        with self._guard("read dead letters"):
            async with self._b.read() as conn:
                rows = await conn.execute(query.order_by(desc(dead_letters.c.id)).limit(limit))
                return [dict(row._mapping) for row in rows]
