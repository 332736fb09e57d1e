"""Resource metrics and leaderboards: where each run's resource samples were read up to, the
samples of each node, the project's leaderboard metric, and an index for sorting runs by a
metric.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(
            sa.Column("resource_cursor", sa.BigInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("leaderboard_metric", sa.String(250), nullable=True))
        batch.add_column(sa.Column("leaderboard_goal", sa.String(8), nullable=True))
    op.create_table(
        "node_samples",
        sa.Column(
            "node_id",
            sa.Integer(),
            sa.ForeignKey("nodes.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("time", sa.Float(), primary_key=True),
        sa.Column("value", sa.Float(), nullable=False),
    )
    op.create_index("ix_node_samples_time", "node_samples", ["time"])
    op.create_index("ix_metric_series_key_value", "metric_series", ["key", "last_value"])


def downgrade() -> None:
    op.drop_index("ix_metric_series_key_value", table_name="metric_series")
    op.drop_index("ix_node_samples_time", table_name="node_samples")
    op.drop_table("node_samples")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("leaderboard_goal")
        batch.drop_column("leaderboard_metric")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("resource_cursor")
