"""Scheduling: groups, pools, nodes, GPUs, placements, GPU allocations, the scheduler lock;
projects belong to a group; runs get priority, start_immediately, timeout, demand, overtaken.

Creates the default group and the default pool (ids 1) and the scheduler row; existing
projects join the default group, existing runs keep priority 0 and an empty demand (a run
still queued from before this migration has its demand computed by the scheduler).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    groups = op.create_table(
        "groups",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        _ts("created_at"),
    )
    pools = op.create_table(
        "pools",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("gpu_type", sa.String(128), nullable=True),
        sa.Column(
            "group_id",
            sa.Integer(),
            sa.ForeignKey("groups.id", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        _ts("created_at"),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(253), nullable=False, unique=True),
        sa.Column("cpu_millis", sa.BigInteger(), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        _ts("registered_at"),
        _ts("heartbeat_at"),
    )
    op.create_table(
        "gpus",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "node_id", sa.Integer(), sa.ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(96), nullable=False, unique=True),
        sa.Column("product", sa.String(128), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("present", sa.Boolean(), nullable=False),
        sa.Column(
            "pool_id", sa.Integer(), sa.ForeignKey("pools.id", ondelete="RESTRICT"), nullable=False
        ),
        sa.UniqueConstraint("node_id", "index", name="uq_gpus_node_index"),
    )
    scheduler = op.create_table(
        "scheduler",
        sa.Column("id", sa.Integer(), primary_key=True),
        _ts("pass_at", nullable=True),
        sa.Column("pass_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "placements",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("replica", sa.String(80), nullable=False),
        sa.Column("node", sa.String(253), nullable=False),
        sa.Column("cpu_millis", sa.BigInteger(), nullable=False),
        sa.Column("memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("gpus", sa.JSON(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        _ts("placed_at"),
        _ts("released_at", nullable=True),
        sa.UniqueConstraint("run_id", "replica", name="uq_placements_run_replica"),
    )
    op.create_index("ix_placements_active", "placements", ["released_at", "node"])
    op.create_table(
        "gpu_allocations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "gpu_id", sa.Integer(), sa.ForeignKey("gpus.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("replica", sa.String(80), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "uq_gpu_allocations_exclusive",
        "gpu_allocations",
        ["gpu_id"],
        unique=True,
        sqlite_where=sa.text("NOT shared"),
        postgresql_where=sa.text("NOT shared"),
    )
    op.create_index("ix_gpu_allocations_run", "gpu_allocations", ["run_id"])

    op.bulk_insert(groups, [{"id": 1, "name": "default", "is_default": True, "created_at": now}])
    op.bulk_insert(
        pools,
        [
            {
                "id": 1,
                "name": "default",
                "gpu_type": None,
                "group_id": 1,
                "is_default": True,
                "created_at": now,
            }
        ],
    )
    op.bulk_insert(scheduler, [{"id": 1, "pass_at": None, "pass_by": ""}])
    if op.get_bind().dialect.name == "postgresql":
        # Explicit ids above: move the sequences past them.
        op.execute("SELECT setval('groups_id_seq', 1)")
        op.execute("SELECT setval('pools_id_seq', 1)")

    with op.batch_alter_table("projects") as batch:
        batch.add_column(
            sa.Column(
                "group_id",
                sa.Integer(),
                sa.ForeignKey("groups.id", name="fk_projects_group", ondelete="RESTRICT"),
                nullable=False,
                server_default="1",
            )
        )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("start_immediately", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("timeout_seconds", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("demand", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("gpus", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("overtaken", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_runs_queue", "runs", ["status", "priority", "id"])


def downgrade() -> None:
    op.drop_index("ix_runs_queue", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        for column in ("overtaken", "gpus", "demand", "timeout_seconds", "start_immediately"):
            batch.drop_column(column)
        batch.drop_column("priority")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("group_id")
    for table in ("gpu_allocations", "placements", "scheduler", "gpus", "nodes", "pools"):
        op.drop_table(table)
    op.drop_table("groups")
