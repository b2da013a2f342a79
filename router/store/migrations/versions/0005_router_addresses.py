"""Routers' advertised addresses (router/ha/forward.py): the ``instance/<name>`` lease row of
a live router carries the base URL other routers forward its partitions' requests to.

Revision ID: 0005_router_addresses
Revises: 0004_leases
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_router_addresses"
down_revision = "0004_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("leases", sa.Column("address", sa.String(300), nullable=True))


def downgrade() -> None:
    op.drop_column("leases", "address")
