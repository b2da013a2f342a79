"""Device sync: durable router → edge commands and device presence.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = 64


def upgrade() -> None:
    op.create_table(
        "device_commands",
        sa.Column("command_id", sa.String(80), primary_key=True),
        sa.Column("device", sa.String(ID), nullable=False),
        sa.Column("site", sa.String(ID), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.Double()),
        sa.Column("receipt_at", sa.Double()),
        sa.Column("detail", sa.Text()),
    )
    op.create_index("ix_device_commands_device_status", "device_commands",
                    ["device", "status"])
    op.create_table(
        "device_presence",
        sa.Column("device", sa.String(ID), primary_key=True),
        sa.Column("site", sa.String(ID), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("conn", sa.String(80)),
        sa.Column("since", sa.Double(), nullable=False),
        sa.Column("last_seen", sa.Double(), nullable=False),
        sa.Column("telemetry", sa.JSON()),
    )


def downgrade() -> None:
    op.drop_table("device_presence")
    op.drop_index("ix_device_commands_device_status", "device_commands")
    op.drop_table("device_commands")
