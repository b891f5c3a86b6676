"""Alerts: the open ones, the channels notices go to, and every delivery attempt.

Revision ID: 0005_alerts
Revises: 0004_reserved_seats
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_alerts"
down_revision = "0004_reserved_seats"
branch_labels = None
depends_on = None

INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "open_alerts",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("raised_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_open_alerts"),
    )
    op.create_table(
        "notice_channels",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(2000), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_notice_channels"),
    )
    op.create_table(
        "notice_deliveries",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("notice_id", sa.String(36), nullable=False),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("alert_key", sa.String(300), nullable=False),
        sa.Column("notice_kind", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", INSTANT, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notice_deliveries"),
    )
    op.create_index("ix_notice_deliveries_at", "notice_deliveries", ["at"])


def downgrade() -> None:
    op.drop_index("ix_notice_deliveries_at", table_name="notice_deliveries")
    op.drop_table("notice_deliveries")
    op.drop_table("notice_channels")
    op.drop_table("open_alerts")
