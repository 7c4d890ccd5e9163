"""add video_jobs, the jobs of the OpenAI Videos API

One row per job, claimed by a runner under a lease; the input image rides along as base64 text. Every
step checks what is already done, so an upgrade cut short on MySQL (no transactional DDL) can simply run
again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
# A client's listing, and what a runner may claim.
INDEXES = {"ix_video_jobs_key_id_id": ["key_id", "id"], "ix_video_jobs_status_lease_until": ["status", "lease_until"]}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "video_jobs" not in inspector.get_table_names():
        op.create_table(
            "video_jobs",
            sa.Column("id", sa.String(length=64), nullable=False),
            sa.Column("key_id", sa.String(length=64), nullable=False),
            sa.Column("idempotency_key", sa.String(length=64), nullable=True),
            sa.Column("model", sa.String(length=128), nullable=False),
            sa.Column("prompt", sa.Text(), nullable=False),
            sa.Column("seconds", sa.Integer(), nullable=False),
            sa.Column("size", sa.String(length=32), nullable=False),
            sa.Column("aspect_ratio", sa.String(length=16), nullable=False),
            sa.Column("resolution", sa.String(length=16), nullable=False),
            sa.Column("status", sa.String(length=16), nullable=False),
            sa.Column("progress", sa.Integer(), nullable=False),
            sa.Column("created_at", sa.Double(), nullable=False),
            sa.Column("completed_at", sa.Double(), nullable=True),
            sa.Column("error_code", sa.String(length=64), nullable=False),
            sa.Column("error_message", sa.String(length=1024), nullable=False),
            sa.Column("media_name", sa.String(length=255), nullable=False),
            sa.Column("thumbnail_name", sa.String(length=255), nullable=False),
            sa.Column("has_image", sa.Boolean(), nullable=False),
            sa.Column("attempt", sa.Integer(), nullable=False),
            sa.Column("lease_owner", sa.String(length=128), nullable=False),
            sa.Column("lease_until", sa.Double(), nullable=True),
            sa.Column("account_id", sa.Integer(), nullable=True),
            sa.Column("upstream_accepted", sa.Boolean(), nullable=False),
            sa.Column("image_name", sa.String(length=255), nullable=True),
            sa.Column("image_mime", sa.String(length=64), nullable=True),
            sa.Column("image_b64", sa.Text().with_variant(mysql.LONGTEXT(), "mysql"), nullable=True),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_video_jobs")),
            sa.UniqueConstraint("key_id", "idempotency_key", name="uq_video_jobs_key_id_idempotency_key"),
            **MYSQL,
        )
    indexes = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("video_jobs")}
    for name, columns in INDEXES.items():
        if name not in indexes:
            op.create_index(name, "video_jobs", columns)


def downgrade() -> None:
    op.drop_table("video_jobs")
