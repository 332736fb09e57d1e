"""Runs record who submitted them: ``runs.submitted_by`` (existing runs get "").

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table; PostgreSQL runs a plain ALTER TABLE ADD COLUMN,
    # which with a constant default fills existing rows without rewriting them.
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("submitted_by", sa.String(128), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("submitted_by")
