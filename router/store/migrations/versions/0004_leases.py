"""Partition leases for several routers on one PostgreSQL (router/ha/leases.py).

Revision ID: 0004_leases
Revises: 0003_refused
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_leases"
down_revision = "0003_refused"
branch_labels = None
depends_on = None

ID = 64


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("partition", sa.String(ID), primary_key=True),
        sa.Column("holder", sa.String(ID), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
