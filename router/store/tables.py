"""Table definitions (SQLAlchemy Core). The schema itself is created by the Alembic
revisions in ``migrations/``; a test checks that they stay identical to this file.

Types are chosen to mean the same on SQLite and PostgreSQL:
- timestamps are seconds since the epoch as DOUBLE (exact round trip of a Python float);
- the event position is INTEGER on SQLite (so it aliases the rowid) and BIGINT elsewhere;
- payloads are JSON (PostgreSQL ``json``, not ``jsonb``: it keeps ``\\u0000`` and key order).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

ID = 64  # protocol.models.Ident is at most 64 characters
Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The append-only log: the source of truth. Position gives the global append order.
case_events = sa.Table(
    "case_events", metadata,
    sa.Column("position", Position, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(80), nullable=False),
    sa.Column("case_id", sa.String(ID), nullable=False),
    sa.Column("origin", sa.String(ID), nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("ts", sa.Double(), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("payload", sa.JSON(), nullable=False),
    sa.UniqueConstraint("event_id", name="uq_case_events_event_id"),
    sa.UniqueConstraint("origin", "seq", name="uq_case_events_origin_seq"),
    sa.Index("ix_case_events_case_id", "case_id"),
)

# Per-origin high-water mark, advanced by compare-and-set in the append transaction. It is
# what makes "seq must be exactly high_water + 1" hold across processes sharing a database.
origins = sa.Table(
    "origins", metadata,
    sa.Column("origin", sa.String(ID), primary_key=True),
    sa.Column("high_water", sa.BigInteger(), nullable=False),
)

# Projection: the latest Case per case_id (``data`` is Case.model_dump_json()). The other
# columns are copies of Case fields, kept only for filtering and ordering.
cases = sa.Table(
    "cases", metadata,
    sa.Column("case_id", sa.String(ID), primary_key=True),
    sa.Column("site", sa.String(ID), nullable=False),
    sa.Column("device", sa.String(ID)),
    sa.Column("resident", sa.String(ID)),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("assigned_worker", sa.String(ID)),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.Column("revision", sa.Integer(), nullable=False),
    sa.Column("data", sa.Text(), nullable=False),
    sa.Index("ix_cases_state", "state"),
    sa.Index("ix_cases_site", "site"),
    sa.Index("ix_cases_assigned_worker", "assigned_worker"),
    sa.Index("ix_cases_resident_updated_at", "resident", "updated_at"),
    sa.Index("ix_cases_created_at", "created_at"),
)

worker_presence = sa.Table(
    "worker_presence", metadata,
    sa.Column("worker_id", sa.String(ID), primary_key=True),
    sa.Column("presence", sa.String(32), nullable=False),
    sa.Column("ts", sa.Double(), nullable=False),
)

# Rejected input, kept for a person to look at. ``raw`` is capped (see events.RAW_LIMIT);
# ``raw_size`` is the length of the input before the cap.
dead_letters = sa.Table(
    "dead_letters", metadata,
    sa.Column("id", Position, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("raw", sa.Text(), nullable=False),
    sa.Column("raw_size", sa.Integer(), nullable=False),
    sa.Column("ts", sa.Double(), nullable=False),
)

# Sequence numbers consumed by refused events (revision 0003_refused): the event id the
# refusal consumed (None when the input named none), so a copy is told from a conflict.
refused_seqs = sa.Table(
    "refused_seqs", metadata,
    sa.Column("origin", sa.String(ID), primary_key=True),
    sa.Column("seq", sa.BigInteger(), primary_key=True),
    sa.Column("event_id", sa.String(80)),
)

# --- device sync (the MQTT bridge; revision 0002) -----------------------------------------

# Router → edge commands: durable until the edge sends a receipt (it dedupes by id).
device_commands = sa.Table(
    "device_commands", metadata,
    sa.Column("command_id", sa.String(80), primary_key=True),
    sa.Column("device", sa.String(ID), nullable=False),
    sa.Column("site", sa.String(ID), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("args", sa.JSON(), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("expires_at", sa.Double()),
    sa.Column("status", sa.String(16), nullable=False),  # pending or the receipt's status
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("sent_at", sa.Double()),
    sa.Column("receipt_at", sa.Double()),
    sa.Column("detail", sa.Text()),
    sa.Index("ix_device_commands_device_status", "device", "status"),
)

# Last known presence of each device (online/offline and its last heartbeat).
device_presence = sa.Table(
    "device_presence", metadata,
    sa.Column("device", sa.String(ID), primary_key=True),
    sa.Column("site", sa.String(ID), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("conn", sa.String(80)),
    sa.Column("since", sa.Double(), nullable=False),
    sa.Column("last_seen", sa.Double(), nullable=False),
    sa.Column("telemetry", sa.JSON()),
    sa.Column("alarms", sa.JSON()),  # raised device alarms (battery_low, …); revision 0006
)

# Device alerts, each stored in the transaction of the presence change that raised it
# (router/mqtt/bridge/presence.py; revision 0006): a partition's next leader neither loses
# nor repeats one.
alerts = sa.Table(
    "alerts", metadata,
    sa.Column("alert_id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("site", sa.String(ID)),
    sa.Column("device", sa.String(ID)),
    sa.Column("at", sa.Double(), nullable=False),
    sa.Column("detail", sa.JSON()),
    sa.Index("ix_alerts_at", "at"),
)

# --- high availability (router/ha/; revision 0004) ----------------------------------------

# One row per partition: who leads it, under which epoch, until when (seconds since the
# epoch, PostgreSQL's clock, so routers' clocks never matter). The epoch grows by one at
# every change of holder; every append of the leader checks its (holder, epoch) row in the
# same transaction (router/ha/leases.py), so a deposed leader cannot write.
leases = sa.Table(
    "leases", metadata,
    sa.Column("partition", sa.String(ID), primary_key=True),
    sa.Column("holder", sa.String(ID), nullable=False),
    sa.Column("epoch", sa.BigInteger(), nullable=False),
    sa.Column("expires_at", sa.Double(), nullable=False),
    # instance/<name> rows only (revision 0005): the router's advertised base URL, where
    # other routers forward requests for the partitions it leads (router/ha/forward.py).
    sa.Column("address", sa.String(300)),
)
