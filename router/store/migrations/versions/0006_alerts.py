"""Device alerts kept with the presence change that raised them (router/mqtt/bridge/presence.py):
the ``alerts`` table, and the device's raised alarms on its presence row, so a router that
takes a partition over neither loses nor repeats an alert.

Revision ID: 0006_alerts
Revises: 0005_router_addresses
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_alerts"
down_revision = "0005_router_addresses"
branch_labels = None
depends_on = None

ID = 64


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("site", sa.String(ID)),
        sa.Column("device", sa.String(ID)),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("detail", sa.JSON()),
    )
    op.create_index("ix_alerts_at", "alerts", ["at"])
    with op.batch_alter_table("device_presence") as batch:
        batch.add_column(sa.Column("alarms", sa.JSON()))


def downgrade() -> None:
    with op.batch_alter_table("device_presence") as batch:
        batch.drop_column("alarms")
    op.drop_index("ix_alerts_at", "alerts")
    op.drop_table("alerts")
