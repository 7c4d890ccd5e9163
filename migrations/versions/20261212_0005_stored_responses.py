"""add stored_responses, the responses the Responses API keeps for GET and previous_response_id

One row per response: its JSON body, the client key it belongs to and when it expires. Creating the table and
its index only when missing lets an upgrade cut short on MySQL (no transactional DDL) simply run again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
INDEX = "ix_stored_responses_expires_at"


def upgrade() -> None:
    if "stored_responses" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "stored_responses",
            sa.Column("id", sa.String(length=64), nullable=False),
            sa.Column("key_id", sa.String(length=64), nullable=False),
            sa.Column("body", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql"), nullable=False),
            sa.Column("expires_at", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_responses")),
            **MYSQL,
        )
    if INDEX not in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("stored_responses")}:
        op.create_index(INDEX, "stored_responses", ["expires_at"])


def downgrade() -> None:
    op.drop_table("stored_responses")
