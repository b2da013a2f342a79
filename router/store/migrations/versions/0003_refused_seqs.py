"""Refused sequence numbers: which event id a refusal consumed (origin, seq), so a later
copy of it is a duplicate and other content at that seq a ``seq_conflict``.

Revision ID: 0003_refused
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_refused"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = 64


def upgrade() -> None:
    op.create_table(
        "refused_seqs",
        sa.Column("origin", sa.String(ID), primary_key=True),
        sa.Column("seq", sa.BigInteger(), primary_key=True),
        sa.Column("event_id", sa.String(80)),
    )


def downgrade() -> None:
    op.drop_table("refused_seqs")
