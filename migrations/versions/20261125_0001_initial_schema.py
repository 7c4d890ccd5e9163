"""create the initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out rather than imported from the app: a revision must keep producing the same schema.
MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.CHAR(length=64), nullable=False),
        sa.Column("token", sa.String(length=2048), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_reason", sa.String(length=1024), nullable=False),
        sa.Column("state_changed_at", sa.Double(), nullable=True),
        sa.Column("remaining", sa.Integer(), nullable=True),
        sa.Column("heavy_remaining", sa.Integer(), nullable=True),
        sa.Column("window_reset_at", sa.Double(), nullable=True),
        sa.Column("cooldown_until", sa.Double(), nullable=True),
        sa.Column("failure_count", sa.Integer(), nullable=False),
        sa.Column("last_failure", sa.String(length=1024), nullable=False),
        sa.Column("last_failure_at", sa.Double(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_used_at", sa.Double(), nullable=True),
        sa.Column("requests_ok", sa.BigInteger(), nullable=False),
        sa.Column("requests_failed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_accounts_token_hash")),
        sqlite_autoincrement=True,
        **MYSQL,
    )
    op.create_table(
        "settings",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_settings")),
        **MYSQL,
    )
    meta = op.create_table(
        "meta",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_meta")),
        **MYSQL,
    )
    # The store bumps these with UPDATE ... SET value = value + 1, so the rows must exist.
    op.bulk_insert(meta, [{"name": "accounts_version", "value": 0}, {"name": "settings_version", "value": 0}])
    op.create_table(
        "admin_sessions",
        sa.Column("id_hash", sa.CHAR(length=64), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("csrf", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_admin_sessions")),
        **MYSQL,
    )
    op.create_table(
        "client_keys",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("key_hash", sa.CHAR(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("models", sa.Text(), nullable=False),
        sa.Column("rpm", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_used_at", sa.Double(), nullable=True),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_client_keys_key_hash")),
        **MYSQL,
    )
    op.create_table(
        "media",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("upstream_path", sa.String(length=2048), nullable=False),
        sa.Column("account_token", sa.String(length=2048), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_media")),
        **MYSQL,
    )
    op.create_table(
        "usage",
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "model", "outcome", "key_id", name=op.f("pk_usage")),
        **MYSQL,
    )


def downgrade() -> None:
    for table in ("usage", "media", "client_keys", "admin_sessions", "meta", "settings", "accounts"):
        op.drop_table(table)
