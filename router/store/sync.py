"""What the MQTT bridge keeps besides events: router → edge commands (durable until
receipted), device presence, and origin sequence numbers consumed by rejected events.

    sync = SyncStore(store)   # shares the EventStore's database and connections
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, delete, or_, select, update

from router.store.events import RAW_LIMIT, EventStore, _text
from router.store.errors import SeqGap
from router.store.tables import (
    alerts,
    dead_letters,
    device_commands,
    device_presence,
    origins,
    refused_seqs,
)


class SyncStore:
    def __init__(self, store: EventStore):
        self._store = store
        self._b = store._b

    def _guard(self, action: str):
        return self._store._guard(action)

    # --- sequence numbers of rejected events ------------------------------------------------

    async def skip_seq(self, origin: str, seq: int, *, source: str, reason: str, raw: str,
                       ts: float, event_id: str | None = None) -> bool:
        """Consume ``seq`` of ``origin`` without an event (the state machine refused it) and
        keep the input as a dead letter, in one transaction, so the origin's later events
        are not blocked behind it. False when ``seq`` was consumed already; SeqGap when
        seq - 1 is not stored yet."""
        ins = self._b.insert(origins).values(origin=origin, high_water=1) \
            .on_conflict_do_nothing(index_elements=[origins.c.origin])
        adv = update(origins).where(origins.c.origin == origin,
                                    origins.c.high_water == seq - 1).values(high_water=seq)
        with self._guard(f"skip seq {seq} of {origin!r}"):
            async with self._b.write() as conn:
                result = await conn.execute(ins if seq == 1 else adv)
                if result.rowcount != 1:
                    high = await conn.scalar(select(origins.c.high_water)
                                             .where(origins.c.origin == origin)) or 0
                    if high >= seq:
                        return False
                    raise SeqGap(origin, high + 1, seq)
                await conn.execute(refused_seqs.insert().values(
                    origin=origin, seq=seq,
                    event_id=None if event_id is None else _text(event_id, 80)))
                await conn.execute(dead_letters.insert().values(
                    source=_text(source, 200), reason=_text(reason),
                    raw=_text(raw, RAW_LIMIT), raw_size=len(raw), ts=ts))
        return True

    # --- commands ----------------------------------------------------------------------------

    async def put_command(self, *, command_id: str, device: str, site: str, type: str,
                          args: dict[str, Any], created_at: float,
                          expires_at: float | None) -> None:
        with self._guard(f"store command {command_id!r}"):
            async with self._b.write() as conn:
                await conn.execute(device_commands.insert().values(
                    command_id=command_id, device=device, site=site, type=type, args=args,
                    created_at=created_at, expires_at=expires_at, status="pending",
                    attempts=0))

    async def due_commands(self, now: float, resend_before: float,
                           device: str | None = None, limit: int = 500) -> list[dict]:
        """Pending, unexpired commands never sent or last sent before ``resend_before``,
        oldest first."""
        query = select(device_commands).where(
            device_commands.c.status == "pending",
            or_(device_commands.c.expires_at.is_(None), device_commands.c.expires_at > now),
            or_(device_commands.c.sent_at.is_(None),
                device_commands.c.sent_at < resend_before))
        if device is not None:
            query = query.where(device_commands.c.device == device)
        query = query.order_by(device_commands.c.created_at).limit(limit)
        with self._guard("read due commands"):
            async with self._b.read() as conn:
                return [dict(r._mapping) for r in await conn.execute(query)]

    async def mark_sent(self, command_ids: list[str], ts: float) -> None:
        if not command_ids:
            return
        with self._guard("mark commands sent"):
            async with self._b.write() as conn:
                await conn.execute(update(device_commands)
                                   .where(device_commands.c.command_id.in_(command_ids))
                                   .values(sent_at=ts,
                                           attempts=device_commands.c.attempts + 1))

    async def set_receipt(self, command_id: str, device: str, status: str, detail: str,
                          ts: float) -> bool:
        """Record the edge's receipt; False when there is no such pending command of the
        device (unknown, another device's, or receipted before)."""
        with self._guard(f"record the receipt of command {command_id!r}"):
            async with self._b.write() as conn:
                result = await conn.execute(update(device_commands).where(
                    device_commands.c.command_id == command_id,
                    device_commands.c.device == device,
                    device_commands.c.status == "pending",
                ).values(status=status, detail=_text(detail, 500), receipt_at=ts))
                return result.rowcount == 1

    async def expire_commands(self, now: float) -> int:
        with self._guard("expire commands"):
            async with self._b.write() as conn:
                result = await conn.execute(update(device_commands).where(and_(
                    device_commands.c.status == "pending",
                    device_commands.c.expires_at.is_not(None),
                    device_commands.c.expires_at <= now)).values(status="expired"))
                return result.rowcount

    async def prune_commands(self, before: float) -> int:
        """Forget finished commands created before ``before``."""
        with self._guard("prune commands"):
            async with self._b.write() as conn:
                result = await conn.execute(delete(device_commands).where(
                    device_commands.c.status != "pending",
                    device_commands.c.created_at < before))
                return result.rowcount

    async def command(self, command_id: str) -> dict | None:
        with self._guard(f"read command {command_id!r}"):
            async with self._b.read() as conn:
                row = (await conn.execute(select(device_commands).where(
                    device_commands.c.command_id == command_id))).first()
        return dict(row._mapping) if row else None

    # --- presence ----------------------------------------------------------------------------

    async def put_presence(self, *, device: str, site: str, status: str, conn_id: str | None,
                           since: float, last_seen: float,
                           telemetry: dict[str, Any] | None, alarms: list[str] | None = None,
                           alert: dict[str, Any] | None = None) -> None:
        """The device's presence (and its raised alarms), with ``alert`` (alert_id, kind,
        at and detail fields) stored in the same transaction when one is raised."""
        stmt = self._b.insert(device_presence).values(
            device=device, site=site, status=status, conn=conn_id, since=since,
            last_seen=last_seen, telemetry=telemetry, alarms=alarms)
        stmt = stmt.on_conflict_do_update(
            index_elements=[device_presence.c.device],
            set_={k: stmt.excluded[k] for k in ("site", "status", "conn", "since",
                                                "last_seen", "telemetry", "alarms")})
        with self._guard(f"store presence of {device!r}"):
            async with self._b.write() as conn:
                await conn.execute(stmt)
                if alert is not None:
                    detail = {k: v for k, v in alert.items()
                              if k not in ("alert_id", "kind", "at", "site", "device")}
                    await conn.execute(alerts.insert().values(
                        alert_id=alert["alert_id"], kind=alert["kind"], site=site,
                        device=device, at=alert["at"], detail=detail))

    async def alerts(self, sites: Iterable[str], since: float = 0.0,
                     limit: int = 10_000) -> list[dict]:
        """Stored alerts of ``sites`` at or after ``since``, oldest first."""
        query = select(alerts).where(alerts.c.site.in_(list(sites)), alerts.c.at >= since) \
            .order_by(alerts.c.at).limit(limit)
        with self._guard("read alerts"):
            async with self._b.read() as conn:
                return [dict(r._mapping) for r in await conn.execute(query)]

    async def presences(self) -> dict[str, dict]:
        with self._guard("read device presence"):
            async with self._b.read() as conn:
                rows = await conn.execute(select(device_presence))
                return {r.device: dict(r._mapping) for r in rows}
