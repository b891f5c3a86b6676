"""Reserved users: a seat the administrator reserved is never reclaimed and never refused as newest.

Revision ID: 0004_reserved_seats
Revises: 0003_license_ids
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_reserved_seats"
down_revision = "0003_license_ids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("seats") as seats:
        seats.add_column(sa.Column("reserved", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("seats") as seats:
        seats.drop_column("reserved")
