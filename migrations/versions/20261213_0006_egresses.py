"""add egresses, the shared state of each way out to grok.com

One row per egress (a proxy, or the direct connection): the Cloudflare cookies issued to it, the User-Agent
they were issued with, and its last challenge. Creating the table only when it is missing lets an upgrade cut
short on MySQL (no transactional DDL) simply run again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    if "egresses" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "egresses",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("cookies", sa.Text(), nullable=False),
        sa.Column("user_agent", sa.String(length=512), nullable=False),
        sa.Column("clearance_source", sa.String(length=16), nullable=False),
        sa.Column("clearance_at", sa.Double(), nullable=True),
        sa.Column("challenged_at", sa.Double(), nullable=True),
        sa.Column("evidence", sa.String(length=1024), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_egresses")),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("egresses")
