"""Initial schema: event log, origin high-water marks, case projection, worker presence,
dead letters.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in full (not imported from tables.py) so that later changes to tables.py need
a new revision; tests/store checks that head matches tables.py.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = 64
Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "case_events",
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
    )
    op.create_index("ix_case_events_case_id", "case_events", ["case_id"])
    op.create_table(
        "origins",
        sa.Column("origin", sa.String(ID), primary_key=True),
        sa.Column("high_water", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "cases",
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
    )
    op.create_index("ix_cases_state", "cases", ["state"])
    op.create_index("ix_cases_site", "cases", ["site"])
    op.create_index("ix_cases_assigned_worker", "cases", ["assigned_worker"])
    op.create_index("ix_cases_resident_updated_at", "cases", ["resident", "updated_at"])
    op.create_index("ix_cases_created_at", "cases", ["created_at"])
    op.create_table(
        "worker_presence",
        sa.Column("worker_id", sa.String(ID), primary_key=True),
        sa.Column("presence", sa.String(32), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", Position, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("raw_size", sa.Integer(), nullable=False),
        sa.Column("ts", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    for table in ("dead_letters", "worker_presence", "cases", "origins", "case_events"):
        op.drop_table(table)
