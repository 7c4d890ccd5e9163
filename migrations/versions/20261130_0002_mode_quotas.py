"""move quota to per-(account, mode) windows and add accounts.user_id

The 2025 token budget (``accounts.remaining``, ``heavy_remaining``, ``window_reset_at``) becomes rows of
``account_quotas``: ``remaining`` → mode ``fast``, ``heavy_remaining`` → mode ``heavy``,
``window_reset_at`` → the ``fast`` window's ``reset_at``. Tiers are kept as they are.

MySQL cannot roll DDL back, so an upgrade cut short (a crash between statements) can simply be run
again: every step checks what is already done. Downgrade reverses it, keeping only the ``fast`` and
``heavy`` remaining counts and the ``fast`` reset time (other modes, totals and user ids are lost).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MYSQL: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}
FK_NAME = "fk_account_quotas_account_id_accounts"
OLD_COLUMNS = ("remaining", "heavy_remaining", "window_reset_at")


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


@contextmanager
def _rebuild_accounts() -> Iterator[Any]:
    """``batch_alter_table("accounts")``. On SQLite it rebuilds the table: keep AUTOINCREMENT (batch mode
    does not reflect it) and the id sequence (a rebuilt table would restart it at the highest id left,
    and hand a removed account's id to a new token while workers still cache it)."""
    seq = None
    if _sqlite():
        seq = op.get_bind().scalar(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'accounts'"))
    with op.batch_alter_table("accounts", table_kwargs={"sqlite_autoincrement": True}) as batch:
        yield batch
    if seq is not None:
        # The rebuilt table has no sequence row when it is empty, and a lower one when the newest accounts were removed.
        op.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'accounts'"))
        op.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('accounts', :seq)").bindparams(seq=seq))


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "account_quotas" not in inspector.get_table_names():
        # The foreign key comes last: on SQLite, rebuilding ``accounts`` drops the old table, and with a
        # foreign key already in place that drop would cascade and delete the rows moved here.
        op.create_table(
            "account_quotas",
            sa.Column("account_id", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("mode", sa.String(length=64), nullable=False),
            sa.Column("remaining", sa.Integer(), nullable=True),
            sa.Column("total", sa.Integer(), nullable=True),
            sa.Column("window_seconds", sa.Integer(), nullable=True),
            sa.Column("reset_at", sa.Double(), nullable=True),
            sa.PrimaryKeyConstraint("account_id", "mode", name=op.f("pk_account_quotas")),
            **MYSQL,
        )
    columns = {c["name"] for c in inspector.get_columns("accounts")}
    if "remaining" in columns:
        # Until the old columns are gone, this table holds nothing but what is copied here: start over.
        op.execute("DELETE FROM account_quotas")
        op.execute(
            "INSERT INTO account_quotas (account_id, mode, remaining, total, window_seconds, reset_at) "
            "SELECT id, 'fast', remaining, NULL, NULL, window_reset_at FROM accounts "
            "WHERE remaining IS NOT NULL OR window_reset_at IS NOT NULL"
        )
        op.execute(
            "INSERT INTO account_quotas (account_id, mode, remaining, total, window_seconds, reset_at) "
            "SELECT id, 'heavy', heavy_remaining, NULL, NULL, NULL FROM accounts WHERE heavy_remaining IS NOT NULL"
        )
    if "user_id" not in columns or "remaining" in columns:
        with _rebuild_accounts() as batch:
            if "user_id" not in columns:
                batch.add_column(sa.Column("user_id", sa.String(length=64), server_default="", nullable=False))
            for name in OLD_COLUMNS:
                if name in columns:
                    batch.drop_column(name)
    if not inspector.get_foreign_keys("account_quotas"):
        with op.batch_alter_table("account_quotas") as batch:
            batch.create_foreign_key(FK_NAME, "accounts", ["account_id"], ["id"], ondelete="CASCADE")


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:  # adding columns needs no rebuild, even on SQLite
        batch.add_column(sa.Column("remaining", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("heavy_remaining", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("window_reset_at", sa.Double(), nullable=True))
    window = "SELECT {col} FROM account_quotas q WHERE q.account_id = accounts.id AND q.mode = '{mode}'"
    op.execute(
        "UPDATE accounts SET "
        f"remaining = ({window.format(col='remaining', mode='fast')}), "
        f"heavy_remaining = ({window.format(col='remaining', mode='heavy')}), "
        f"window_reset_at = ({window.format(col='reset_at', mode='fast')})"
    )
    op.drop_table("account_quotas")  # before the rebuild below, which would otherwise cascade into it
    with _rebuild_accounts() as batch:
        batch.drop_column("user_id")
