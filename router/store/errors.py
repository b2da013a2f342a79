"""The store's own errors. Library exceptions (SQLAlchemy, aiosqlite, asyncpg, Alembic,
OSError) never cross this boundary: ``translating`` turns them into these.

Messages never carry SQL parameters (they may hold transcripts or resident ids).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from alembic.util import CommandError
from sqlalchemy import exc as sa_exc

from common.errors import BatonError


class StoreError(BatonError):
    """The store could not do what was asked. The message says what to do."""

    reason = "store_error"


class StoreUnavailable(StoreError):
    """The database cannot be reached, or stayed locked: retrying later may succeed."""

    reason = "store_unavailable"


class SeqGap(StoreError):
    """The origin skipped sequence numbers: events expected..got-1 have not been stored."""

    reason = "seq_gap"

    def __init__(self, origin: str, expected: int, got: int):
        self.origin, self.expected, self.got = origin, expected, got
        missing = f"seq {expected}" if got == expected + 1 else f"seqs {expected}..{got - 1}"
        super().__init__(
            f"origin {origin!r}: expected seq {expected}, got {got}; {missing} not stored yet: "
            f"replay the origin's events from seq {expected}; nothing was written")


class SeqConflict(StoreError):
    """A different event already holds this (origin, seq), or this event_id is stored at a
    different (origin, seq). Either way the origin's log and ours disagree."""

    reason = "seq_conflict"

    def __init__(self, origin: str, seq: int, event_id: str, *, held_by: str | None = None,
                 stored_at: tuple[str, int] | None = None):
        self.origin, self.seq, self.event_id = origin, seq, event_id
        self.held_by, self.stored_at = held_by, stored_at
        if held_by is not None:
            why = (f"origin {origin!r} seq {seq} is already event {held_by!r}, not {event_id!r}: "
                   "the origin reused a sequence number (was its outbox reset?); give it a new "
                   "origin id or continue after the stored high-water mark")
        else:
            where = f"origin {stored_at[0]!r} seq {stored_at[1]}" if stored_at else "elsewhere"
            why = (f"event_id {event_id!r} is already stored as {where}, not origin {origin!r} "
                   f"seq {seq}: event ids must be unique; mint a new id")
        super().__init__(why + "; nothing was written")


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


@contextmanager
def translating(action: str, where: str) -> Iterator[None]:
    """Re-raise library errors from the body as StoreError subclasses.

    ``action`` says what was being done, ``where`` names the database (password hidden).
    A plain (sync) context manager also works around ``await`` inside an ``async def``.
    """
    try:
        yield
    except StoreError:
        raise
    except CommandError as e:
        raise StoreError(
            f"{action}: schema migration failed on {where}: {e}. If the revision is unknown, "
            "the database was migrated by a newer Baton: upgrade Baton or use another database"
        ) from e
    except sa_exc.OperationalError as e:
        msg = _first_line(e)
        if "locked" in msg or "busy" in msg:
            raise StoreUnavailable(
                f"{action}: {where} stayed locked by another writer past busy_timeout ({msg}): "
                "retry, and make sure only Baton processes write to this file") from e
        if "unable to open" in msg:
            raise StoreUnavailable(f"{action}: cannot open {where} ({msg}): check that the "
                                   "path is right and its directory is writable") from e
        raise StoreUnavailable(f"{action}: {where} is unavailable ({msg}): check that the "
                               "database is running and the URL is right, then retry") from e
    except OSError as e:
        if e.filename is not None:
            raise StoreUnavailable(f"{action}: cannot use {where} ({e}): check that the path "
                                   "is right and its directory is writable") from e
        raise StoreUnavailable(f"{action}: cannot reach {where} ({e}): check that the "
                               "database is running and the URL is right, then retry") from e
    except (sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError,
            asyncio.TimeoutError) as e:
        raise StoreUnavailable(f"{action}: cannot reach {where} ({_first_line(e)}): check that "
                               "the database is running and the URL is right, then retry") from e
    except sa_exc.DBAPIError as e:
        if getattr(e, "connection_invalidated", False):
            raise StoreUnavailable(f"{action}: connection to {where} was lost "
                                   f"({_first_line(e)}): retry") from e
        raise StoreError(f"{action}: {where} rejected the operation ({_first_line(e)})") from e
    except sa_exc.SQLAlchemyError as e:
        raise StoreError(f"{action}: {_first_line(e)}") from e
