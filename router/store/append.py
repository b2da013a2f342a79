"""The append algorithm: one event plus its case projection, inside a caller's transaction.

Sequence rule: an origin's events are stored with seq 1, 2, 3, ... and nothing else. The
``origins`` row is advanced by compare-and-set (UPDATE ... WHERE high_water = seq - 1) in
the same transaction as the event insert, so the rule holds for any number of processes
sharing the database, and a failed insert rolls the mark back with everything else. The
happy path is three statements; lookups happen only when the compare-and-set misses.

Statements are built once per store: building and cache-keying an upsert costs more than
executing it on SQLite.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from router.casestate import Case
from router.store.errors import SeqConflict, SeqGap, StoreError
from router.store.status import AppendStatus
from router.store.tables import case_events, cases, origins

# A miss can be a concurrent append of seq - 1 committing between our compare-and-set and
# our lookup (PostgreSQL, several connections): then the compare-and-set is retried.
CAS_ATTEMPTS = 3
_CASE_COLUMNS = [c.name for c in cases.columns]
_EVENT_COLUMNS = ("event_id", "case_id", "origin", "seq", "ts", "type", "payload")
# OneTrip.rows builds the case rows in this order; a column added to ``cases`` fails here
# at start, not in a transaction.
_CASE_TUPLE = ("case_id", "site", "device", "resident", "state", "assigned_worker",
               "created_at", "updated_at", "revision", "data")


class Appender:
    def __init__(self, insert: Any):
        """``insert``: the dialect's insert (it has on_conflict_do_nothing/_update)."""
        self.first = insert(origins).values(origin=bindparam("o"), high_water=1) \
            .on_conflict_do_nothing(index_elements=[origins.c.origin])
        self.advance = update(origins).where(
            origins.c.origin == bindparam("o"), origins.c.high_water == bindparam("prev"),
        ).values(high_water=bindparam("seq"))
        # Only event_id can collide here: the compare-and-set made (origin, seq) ours.
        self.event = insert(case_events).on_conflict_do_nothing()
        upsert = insert(cases)
        # The projection never goes back: an older revision (a stale writer) is ignored.
        self.case = upsert.on_conflict_do_update(
            index_elements=[cases.c.case_id],
            set_={k: upsert.excluded[k] for k in _CASE_COLUMNS if k != "case_id"},
            where=cases.c.revision <= upsert.excluded.revision)
        # Batch fast path: a plain insert (an event_id collision fails the transaction, and
        # the caller retries item by item, which diagnoses it).
        self.events = insert(case_events)
        self.high = select(origins.c.high_water).where(origins.c.origin == bindparam("o"))
        self.held_by = select(case_events.c.event_id).where(
            case_events.c.origin == bindparam("o"), case_events.c.seq == bindparam("seq"))
        self.stored_at = select(case_events.c.origin, case_events.c.seq).where(
            case_events.c.event_id == bindparam("event_id"))

    async def append(self, conn: AsyncConnection, event: Any, case: Case) -> AppendStatus:
        if event.case_id != case.id:
            raise StoreError(f"event {event.event_id!r} is for case {event.case_id!r} but the "
                             f"projection given is case {case.id!r}: pass the case it yields")
        for _ in range(CAS_ATTEMPTS):
            if await self._advance(conn, event.origin, event.seq):
                break
            status = await self._diagnose(conn, event)
            if status is not None:
                return status
        else:
            raise StoreError(f"origin {event.origin!r} seq {event.seq}: the high-water mark "
                             "kept moving under concurrent appends; retry the append")
        inserted = await conn.execute(self.event, {
            "event_id": event.event_id, "case_id": event.case_id, "origin": event.origin,
            "seq": event.seq, "ts": event.ts, "type": event.type,
            "payload": event.payload.model_dump(mode="json")})
        if inserted.rowcount != 1:
            stored = (await conn.execute(self.stored_at, {"event_id": event.event_id})).first()
            raise SeqConflict(event.origin, event.seq, event.event_id,
                              stored_at=(stored[0], stored[1]) if stored else None)
        await self.put_case(conn, case)
        return AppendStatus.applied

    async def append_batch(self, conn: AsyncConnection,
                           items: list[tuple[Any, Case]]) -> list[AppendStatus] | None:
        """The group-commit fast path: when each origin's events in the batch continue its
        sequence, one compare-and-set per origin, one multi-row insert and one multi-row
        upsert of the latest projection per case. Returns None, having possibly written,
        when the batch does not fit: the caller must roll back and use ``append`` per item.
        """
        rows = batch_rows(items)
        if rows is None:
            return None
        firsts, advances, events, latest = rows
        multi = conn.dialect.supports_sane_multi_rowcount
        for stmt, rows in ((self.first, firsts), (self.advance, advances)):
            if not rows:
                continue
            if len(rows) == 1 or not multi:
                for row in rows:
                    if (await conn.execute(stmt, row)).rowcount != 1:
                        return None
            elif (await conn.execute(stmt, rows)).rowcount != len(rows):
                return None
        await conn.execute(self.events, [{
            "event_id": e.event_id, "case_id": e.case_id, "origin": e.origin, "seq": e.seq,
            "ts": e.ts, "type": e.type, "payload": e.payload.model_dump(mode="json")}
            for e in events])
        await conn.execute(self.case, [_case_row(c) for c in latest])
        return [AppendStatus.applied] * len(items)

    async def put_case(self, conn: AsyncConnection, case: Case) -> None:
        await conn.execute(self.case, _case_row(case))

    async def _advance(self, conn: AsyncConnection, origin: str, seq: int) -> bool:
        if seq == 1:
            result = await conn.execute(self.first, {"o": origin})
        else:
            result = await conn.execute(self.advance, {"o": origin, "prev": seq - 1, "seq": seq})
        return result.rowcount == 1

    async def _diagnose(self, conn: AsyncConnection, event: Any) -> AppendStatus | None:
        """Why the compare-and-set missed: duplicate (returned), conflict or gap (raised),
        or None when seq now fits and the compare-and-set should be retried."""
        high = await conn.scalar(self.high, {"o": event.origin}) or 0
        if event.seq == high + 1:
            return None
        if event.seq > high + 1:
            raise SeqGap(event.origin, high + 1, event.seq)
        held_by = await conn.scalar(self.held_by, {"o": event.origin, "seq": event.seq})
        if held_by == event.event_id:
            return AppendStatus.duplicate
        if held_by is None:
            raise StoreError(f"origin {event.origin!r} has high-water mark {high} but seq "
                             f"{event.seq} is not in the log: the origins table was edited by "
                             "hand; restore it from max(seq) per origin in case_events")
        raise SeqConflict(event.origin, event.seq, event.event_id, held_by=held_by)


def batch_rows(items: list[tuple[Any, Case]]) -> tuple[list, list, list, list] | None:
    """The fast path's rows: (first marks, compare-and-set advances, events, the latest
    projection per case), or None when the batch does not fit (an event for another case
    than its projection, or an origin's seqs that do not follow on)."""
    runs: dict[str, list[int]] = {}
    for event, case in items:
        if event.case_id != case.id:
            return None  # append() explains it
        runs.setdefault(event.origin, []).append(event.seq)
    for seqs in runs.values():
        if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
            return None
    # One statement per kind for all origins (executemany: one round trip to the driver's
    # thread, not one per origin); its row count is the sum over the rows.
    firsts = [{"o": o} for o, seqs in runs.items() if seqs[0] == 1]
    advances = [{"o": o, "prev": seqs[0] - 1 if seqs[0] > 1 else 1, "seq": seqs[-1]}
                for o, seqs in runs.items() if seqs[0] > 1 or len(seqs) > 1]
    latest = {case.id: case for _, case in items}
    return firsts, advances, [e for e, _ in items], list(latest.values())


class OneTrip:
    """The fast path as one function of a DB-API (sqlite3) connection, for a backend that
    runs it in its driver's thread in one round trip (``Backend.one_trip``, SQLite): the
    same statements as ``Appender.append_batch``, compiled once for the dialect.

    Returns False when the batch does not fit (a compare-and-set that misses; an event id
    that is taken raises the driver's IntegrityError): the backend rolls back, and the
    caller sorts the items out one by one (``append``), which says what is wrong."""

    def __init__(self, appender: Appender, dialect: Any):
        def compiled(stmt, order: tuple[str, ...], keys=None) -> str:
            c = stmt.compile(dialect=dialect, column_keys=keys)
            if tuple(c.positiontup) != order or tuple(_CASE_COLUMNS) != _CASE_TUPLE:  # the rows below are built in this order
                raise StoreError(f"the {dialect.name} dialect orders the parameters of "
                                 f"{c} as {c.positiontup}, not {order}: update OneTrip")
            return str(c)
        self._first = compiled(appender.first, ("o", "high_water"))
        self._advance = compiled(appender.advance, ("seq", "o", "prev"))
        self._events = compiled(appender.events, _EVENT_COLUMNS, list(_EVENT_COLUMNS))
        self._case = compiled(appender.case, _CASE_TUPLE, _CASE_COLUMNS)

    def rows(self, batch: tuple[list, list, list, list]) -> tuple:
        """The parameters, as tuples in each statement's order, prepared in the loop (the
        thread touches no model)."""
        firsts, advances, events, latest = batch
        return ([(r["o"], 1) for r in firsts],
                [(r["seq"], r["o"], r["prev"]) for r in advances],
                [(e.event_id, e.case_id, e.origin, e.seq, e.ts, e.type,
                  e.payload.model_dump_json()) for e in events],
                [(c.id, c.site, c.device, c.resident, c.state.value, c.assigned_worker,
                  c.created_at, c.updated_at, c.revision, c.model_dump_json())
                 for c in latest])

    def __call__(self, db: Any, prepared: tuple) -> bool:
        firsts, advances, events, cases_ = prepared
        for sql, rows in ((self._first, firsts), (self._advance, advances)):
            if rows and db.executemany(sql, rows).rowcount != len(rows):
                return False
        db.executemany(self._events, events)  # an id taken: IntegrityError, a misfit
        db.executemany(self._case, cases_)
        return True


def _case_row(case: Case) -> dict[str, Any]:
    return {"case_id": case.id, "site": case.site, "device": case.device,
            "resident": case.resident, "state": case.state.value,
            "assigned_worker": case.assigned_worker, "created_at": case.created_at,
            "updated_at": case.updated_at, "revision": case.revision,
            "data": case.model_dump_json()}
