"""add rate_windows, the counters of client-key rpm limits and the admin login throttle

One row per window name, shared by every worker and replica. Safe to run again after an upgrade cut short
on MySQL (no transactional DDL).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    if "rate_windows" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "rate_windows",
        sa.Column("name", sa.String(length=191), nullable=False),
        sa.Column("ends_at", sa.Double(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rate_windows")),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("rate_windows")
