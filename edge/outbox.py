"""The edge outbox: every event of this device is committed to a local SQLite file before
it is published, and stays there until the router acknowledges it (a per-origin high-water
mark). After a reconnect or a restart the unacknowledged events are replayed in order.

The outbox assigns ``seq`` (1, 2, 3, … per origin, never reused), so order and identity
survive crashes. It is bounded: when ``capacity`` events are unacknowledged, ``append``
raises OutboxFull and the alarm callback fires — nothing is ever dropped silently.

All SQLite work runs in one thread of its own (never on the event loop), in WAL mode with
``synchronous=FULL`` by default: a committed event survives a power cut, not only a crash.

It also remembers which router commands were carried out, so a command delivered twice
runs once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from common.errors import BatonError
from protocol.models import CaseEvent

log = logging.getLogger("baton.edge.outbox")
EVENT = TypeAdapter(CaseEvent)
COMMANDS_KEPT = 10_000
PRUNE_EVERY_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,
                                   data BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS commands (command_id TEXT PRIMARY KEY, status TEXT NOT NULL,
                                     detail TEXT NOT NULL, at REAL NOT NULL);
"""


class OutboxError(BatonError):
    reason = "outbox"


class OutboxFull(OutboxError):
    """The outbox holds ``capacity`` unacknowledged events: the router has not confirmed
    anything for a long time. Nothing was written; the caller decides what to do."""

    reason = "outbox_full"


class Outbox:
    def __init__(self, path: str | Path, origin: str, *, capacity: int = 10_000,
                 synchronous: str = "FULL",
                 on_alarm: Callable[[str, dict[str, Any]], None] | None = None):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.path, self.origin, self.capacity = Path(path), origin, capacity
        self.synchronous = synchronous
        self.on_alarm = on_alarm
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self.last_seq = 0  # highest seq assigned
        self.acked = 0  # highest seq the router confirmed
        self.alarm: str | None = None  # None | "high" | "full"
        self._append_lock = asyncio.Lock()
        # Events appended by this process and not yet acked, so the sender need not read
        # them back from disk (the disk copy is for replays after a restart).
        self._tail: dict[int, bytes] = {}
        self._pruned = 0  # acked mark last written to disk
        self._prune_at = 0.0

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Outbox:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"outbox-{self.origin}")
        self.last_seq, self.acked = await self._run(self._open)
        self._pruned = self.acked

    def _open(self) -> tuple[int, int]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.executescript(_SCHEMA)
        self._db = db
        meta = dict(db.execute("SELECT key, value FROM meta"))
        top = db.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
        origin = db.execute("SELECT value FROM meta WHERE key = 'origin_hash'").fetchone()
        want = _hash(self.origin)
        if origin is None:
            db.execute("INSERT INTO meta VALUES ('origin_hash', ?)", (want,))
        elif origin[0] != want:
            raise OutboxError(f"{self.path} is the outbox of another device; give each "
                              "device its own outbox file")
        return max(meta.get("last_seq", 0), top), meta.get("acked", 0)

    async def aclose(self) -> None:
        if self._pool is None:
            return
        if self.acked > self._pruned:
            await self._run(self._prune, self.acked)
        await self._run(self._close)
        self._pool.shutdown(wait=True)
        self._pool = None

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _run(self, fn, *args):
        if self._pool is None:
            raise OutboxError("the outbox is closed; open() it first")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # --- events -----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return self.last_seq - self.acked

    async def append(self, case_id: str, type: str, payload: dict[str, Any], *,
                     event_id: str | None = None, ts: float | None = None) -> dict[str, Any]:
        """Validate, give the next seq, commit. Returns the event as sent on the wire.
        Raises ValueError for an invalid event and OutboxFull when the outbox is full."""
        if self.pending >= self.capacity:
            self._set_alarm("full")
            raise OutboxFull(f"outbox of {self.origin} is full: {self.pending} events are not "
                             f"acknowledged by the router (capacity {self.capacity}); check "
                             "the connection to the broker and that the router runs")
        seq = self.last_seq + 1
        try:
            event = EVENT.validate_python({
                "event_id": event_id or uuid.uuid4().hex, "case_id": case_id,
                "origin": self.origin, "seq": seq, "ts": time.time() if ts is None else ts,
                "type": type, "payload": payload})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ValueError(f"invalid {type!r} event: {'.'.join(str(p) for p in err['loc'])}: "
                             f"{err['msg']}") from None
        data = event.model_dump_json().encode()
        async with self._append_lock:  # seqs are committed in order, without holes
            if seq != self.last_seq + 1:
                event.seq = seq = self.last_seq + 1
                data = event.model_dump_json().encode()
            await self._run(self._insert, seq, event.event_id, data)
            self.last_seq = seq
            self._tail[seq] = data
        if self.pending >= 0.8 * self.capacity:
            self._set_alarm("high")
        return event.model_dump(mode="json")

    def _insert(self, seq: int, event_id: str, data: bytes) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO events VALUES (?, ?, ?, ?)", (seq, event_id, data,
                                                                time.time()))
            db.execute("INSERT INTO meta VALUES ('last_seq', ?) ON CONFLICT(key) DO UPDATE "
                       "SET value = excluded.value", (seq,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def unacked(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        """Events with seq > ``after`` (and above the acked mark), in order."""
        after = max(after, self.acked)
        if after >= self.last_seq:
            return []
        if after + 1 in self._tail:
            top = min(self.last_seq, after + limit)
            return [(seq, self._tail[seq]) for seq in range(after + 1, top + 1)]
        return await self._run(self._select, after, limit)

    def _select(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        return self._db.execute("SELECT seq, data FROM events WHERE seq > ? ORDER BY seq "
                                "LIMIT ?", (after, limit)).fetchall()

    async def ack(self, high_water: int, *, lazy: bool = False) -> int:
        """The router holds every event up to ``high_water``: forget them. Returns how many
        were pruned from disk. ``lazy``: prune the disk at most once per PRUNE_EVERY_S (a
        prune lost in a crash only means a few duplicates replayed, which the router
        drops), saving a disk write per ack."""
        if high_water > self.acked:
            high_water = min(high_water, self.last_seq)
            for seq in range(self.acked + 1, high_water + 1):
                self._tail.pop(seq, None)
            self.acked = high_water
            if self.alarm and self.pending < 0.8 * self.capacity:
                self._set_alarm(None)
        now = time.monotonic()
        if self.acked <= self._pruned or (lazy and now - self._prune_at < PRUNE_EVERY_S):
            return 0
        self._prune_at, mark = now, self.acked
        pruned = await self._run(self._prune, mark)
        self._pruned = max(self._pruned, mark)
        return pruned

    async def flush(self) -> None:
        """Write a lazily kept acked mark to disk once it is due."""
        if self.acked > self._pruned:
            await self.ack(self.acked, lazy=True)

    def _prune(self, high_water: int) -> int:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            n = db.execute("DELETE FROM events WHERE seq <= ?", (high_water,)).rowcount
            db.execute("INSERT INTO meta VALUES ('acked', ?) ON CONFLICT(key) DO UPDATE "
                       "SET value = max(value, excluded.value)", (high_water,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return n

    async def rebase(self, router_high_water: int) -> int:
        """The router holds more of this origin than the outbox ever assigned: the outbox
        was replaced (reinstall, old backup). Renumber the unacknowledged events after the
        router's mark, or they would be taken for duplicates. Returns how many moved."""
        if router_high_water <= self.last_seq:
            return 0
        log.error("outbox behind the router: renumbering unsent events",
                  extra={"origin": self.origin, "outbox_last_seq": self.last_seq,
                         "router_high_water": router_high_water})
        moved, self.last_seq = await self._run(self._rebase, router_high_water)
        self.acked = self._pruned = router_high_water
        self._tail.clear()
        return moved

    def _rebase(self, base: int) -> tuple[int, int]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute("SELECT seq, event_id, data, created FROM events ORDER BY seq")\
                .fetchall()
            db.execute("DELETE FROM events")
            seq = base
            for _, event_id, data, created in rows:
                seq += 1
                event = EVENT.validate_json(data)
                event.seq = seq
                db.execute("INSERT INTO events VALUES (?, ?, ?, ?)",
                           (seq, event_id, event.model_dump_json().encode(), created))
            for key, value in (("last_seq", seq), ("acked", base)):
                db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                           "value = excluded.value", (key, value))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return len(rows), seq

    def _set_alarm(self, level: str | None) -> None:
        if level == self.alarm:
            return
        self.alarm = level
        info = {"origin": self.origin, "pending": self.pending, "capacity": self.capacity}
        if level == "full":
            log.error("edge outbox full: new events are refused", extra=info)
        elif level == "high":
            log.warning("edge outbox over 80% full", extra=info)
        else:
            log.info("edge outbox back to normal", extra=info)
        if self.on_alarm is not None:
            self.on_alarm(level or "clear", info)

    # --- commands already carried out ---------------------------------------------------------

    async def command_status(self, command_id: str) -> tuple[str, str] | None:
        return await self._run(self._command_status, command_id)

    def _command_status(self, command_id: str) -> tuple[str, str] | None:
        row = self._db.execute("SELECT status, detail FROM commands WHERE command_id = ?",
                               (command_id,)).fetchone()
        return (row[0], row[1]) if row else None

    async def record_command(self, command_id: str, status: str, detail: str = "") -> None:
        await self._run(self._record_command, command_id, status, detail)

    def _record_command(self, command_id: str, status: str, detail: str) -> None:
        db = self._db
        db.execute("INSERT OR REPLACE INTO commands VALUES (?, ?, ?, ?)",
                   (command_id, status, detail, time.time()))
        db.execute("DELETE FROM commands WHERE command_id IN (SELECT command_id FROM commands "
                   "ORDER BY at DESC LIMIT -1 OFFSET ?)", (COMMANDS_KEPT,))


def _hash(origin: str) -> int:
    import zlib

    return zlib.crc32(origin.encode())
