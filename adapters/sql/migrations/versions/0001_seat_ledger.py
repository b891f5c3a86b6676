"""The seat ledger: installation, licenses, seats, audit events, agreement acceptances.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

INSTANT = sa.DateTime(timezone=True)


def upgrade() -> None:
    installation = op.create_table(
        "installation",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("installation_id", sa.String(36), nullable=False),
        sa.Column("seats_in_use", sa.Integer, nullable=False),
        sa.Column("licenses_version", sa.Integer, nullable=False),
        sa.Column("created_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_installation"),
    )
    op.create_table(
        "licenses",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("added_at", INSTANT, nullable=False),
        sa.Column("seats", sa.Integer, nullable=False),
        sa.Column("service_status", sa.String(16), nullable=True),
        sa.Column("expires_at", INSTANT, nullable=True),
        sa.Column("customer", sa.String(200), nullable=False),
        sa.Column("verified_at", INSTANT, nullable=True),
        sa.Column("latest_issued_at", INSTANT, nullable=True),
        sa.Column("last_checked_at", INSTANT, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("next_check_at", INSTANT, nullable=True),
        sa.Column("failed_checks", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_licenses"),
    )
    op.create_index("ix_licenses_next_check_at", "licenses", ["next_check_at"])
    op.create_table(
        "seats",
        sa.Column("username", sa.String(256), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("assignment", sa.String(16), nullable=False),
        sa.Column("assigned_at", INSTANT, nullable=False),
        sa.Column("assigned_by", sa.String(200), nullable=False),
        sa.Column("last_seen_at", INSTANT, nullable=True),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("username", name="pk_seats"),
    )
    op.create_index("ix_seats_assigned_at", "seats", ["assigned_at", "username"])
    op.create_table(
        "audit_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", INSTANT, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("seats_total_before", sa.Integer, nullable=False),
        sa.Column("seats_total_after", sa.Integer, nullable=False),
        sa.Column("seats_used_before", sa.Integer, nullable=False),
        sa.Column("seats_used_after", sa.Integer, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.UniqueConstraint("request_id", name="uq_audit_events_request_id"),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_kind_at", "audit_events", ["kind", "at"])
    op.create_table(
        "agreement_acceptances",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("accepted_by", sa.String(200), nullable=False),
        sa.Column("accepted_at", INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_agreement_acceptances"),
    )
    # The installation's identity is made once, here, and kept for its lifetime.
    op.bulk_insert(
        installation,
        [
            {
                "id": 1,
                "installation_id": str(uuid.uuid4()),
                "seats_in_use": 0,
                "licenses_version": 0,
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    for table in ("agreement_acceptances", "audit_events", "seats", "licenses", "installation"):
        op.drop_table(table)
