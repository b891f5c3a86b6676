"""Licenses get an id that is no secret: tasks and messages name a license by it, never by its key.

Revision ID: 0003_license_ids
Revises: 0002_console_access
Create Date: 2026-12-01
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003_license_ids"
down_revision = "0002_console_access"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("licenses") as batch:
        batch.add_column(sa.Column("id", sa.String(36), nullable=True))
    licenses = sa.table("licenses", sa.column("key", sa.String), sa.column("id", sa.String))
    connection = op.get_bind()
    for (key,) in connection.execute(sa.select(licenses.c.key)).all():
        connection.execute(sa.update(licenses).where(licenses.c.key == key).values(id=str(uuid.uuid4())))
    with op.batch_alter_table("licenses") as batch:
        batch.alter_column("id", existing_type=sa.String(36), nullable=False)
        batch.create_unique_constraint("uq_licenses_id", ["id"])


def downgrade() -> None:
    with op.batch_alter_table("licenses") as batch:
        batch.drop_constraint("uq_licenses_id", type_="unique")
        batch.drop_column("id")
