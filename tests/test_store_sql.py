"""SQL-only behaviour of SqlStore: URLs, engine setup, migrations, and the one-statement quota updates."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from grok2api.store import make_store
from grok2api.store.base import NewAccount, Settlement
from grok2api.store.migrate import alembic_config, migrations_dir
from grok2api.store.sql import SqlStore
from grok2api.store.sql_engine import normalize_url
from grok2api.store.sql_schema import Base

from harness import StoreFactory

REPO = Path(__file__).resolve().parents[1]

SQL_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
]


@pytest.fixture(params=SQL_BACKENDS)
async def sql_store(request: pytest.FixtureRequest, store_factory: StoreFactory) -> SqlStore:
    store = await store_factory(request.param)
    assert isinstance(store, SqlStore)
    return store


@pytest.mark.parametrize(
    ("url", "expected", "kind"),
    [
        ("sqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db", "sqlite"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db", "sqlite"),
        ("mysql://u:p@db:3306/g2a", "mysql+asyncmy://u:p@db:3306/g2a?charset=utf8mb4", "mysql"),
        ("mysql://u@db/g2a?charset=utf8", "mysql+asyncmy://u@db/g2a?charset=utf8", "mysql"),
        ("mysql+asyncmy://u:p@db/g2a", "mysql+asyncmy://u:p@db/g2a", "mysql"),
        ("mariadb://u@db/g2a", "mariadb+asyncmy://u@db/g2a?charset=utf8mb4", "mysql"),
    ],
)
def test_normalize_url(url: str, expected: str, kind: str) -> None:
    assert normalize_url(url).render_as_string(hide_password=False) == expected
    assert SqlStore(url).kind == kind


def test_unsupported_url() -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        SqlStore("postgresql://u@db/g2a")


def test_migrations_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GROK2API_MIGRATIONS_DIR", raising=False)
    assert migrations_dir() == REPO / "migrations"
    assert (migrations_dir() / "env.py").is_file()
    monkeypatch.setenv("GROK2API_MIGRATIONS_DIR", str(tmp_path))
    assert migrations_dir() == tmp_path
    assert alembic_config().get_main_option("script_location") == str(tmp_path)


async def test_sqlite_engine_setup(tmp_path: Path) -> None:
    store = make_store("file", "", tmp_path / "nested" / "dir")
    assert isinstance(store, SqlStore) and store.kind == "sqlite"
    await store.open()
    try:
        assert (tmp_path / "nested" / "dir" / "grok2api.db").is_file()
        async with store.engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 5000
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await store.close()


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


async def test_migration_matches_models(sql_store: SqlStore) -> None:
    async with sql_store.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
        assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar() == "0001"


async def test_open_is_idempotent_and_keeps_data(sql_store: SqlStore, store_factory: StoreFactory) -> None:
    await sql_store.add_accounts([NewAccount(token="tok-a", remaining=3)])
    await sql_store.save_settings({"k": "v"})
    await sql_store.open()  # upgrade again on the same engine: a no-op
    again = await store_factory(sql_store.kind, fresh=False)
    assert [a.token for a in await again.list_accounts()] == ["tok-a"]
    assert await again.load_settings() == {"k": "v"}
    assert (await again.versions()).settings == 1


async def test_downgrade_and_upgrade(sql_store: SqlStore) -> None:
    def run(conn: Connection, fn: Callable[..., None], rev: str) -> None:
        fn(alembic_config(conn), rev)

    async with sql_store.engine.begin() as conn:
        await conn.run_sync(run, command.downgrade, "base")
        tables = await conn.run_sync(lambda c: set(c.dialect.get_table_names(c)))
        assert tables <= {"alembic_version"}
        await conn.run_sync(run, command.upgrade, "head")
    assert (await sql_store.versions()).accounts == 0  # meta rows are seeded again


@pytest.mark.mysql
async def test_mysql_instances_migrate_concurrently(store_factory: StoreFactory) -> None:
    first = await store_factory("mysql")  # skips without TEST_MYSQL_URL; wipes the database, then migrates
    assert isinstance(first, SqlStore)
    async with first.engine.begin() as conn:
        for table in [*Base.metadata.tables, "alembic_version"]:
            await conn.execute(text(f"DROP TABLE IF EXISTS `{table}`"))
    # Several gateway instances starting together against an empty database.
    stores = [SqlStore(first.url) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        assert (await stores[0].versions()).accounts == 0
        async with stores[0].engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        for s in stores:
            await s.close()


class _Statements:
    """Records the SQL a store sends, to check quota updates stay single statements."""

    def __init__(self, store: SqlStore) -> None:
        self.sql: list[str] = []
        store.trace = self._record

    def _record(self, statement: str) -> None:
        self.sql.append(statement.split(None, 1)[0].upper())


async def test_reserve_and_settle_are_single_statements(sql_store: SqlStore) -> None:
    await sql_store.add_accounts([NewAccount(token="tok-a", remaining=5)])
    (a,) = await sql_store.list_accounts()
    seen = _Statements(sql_store)

    assert await sql_store.reserve(a.id, 2)
    assert not await sql_store.reserve(a.id, 9)
    await sql_store.settle(a.id, Settlement(refund=2, ok=True, remaining=40, window_reset_at=1.0))
    assert seen.sql == ["UPDATE", "UPDATE", "UPDATE"]

    seen.sql.clear()
    await sql_store.settle(a.id, Settlement(failure="401", counts_towards_invalid=True))
    assert seen.sql == ["UPDATE", "UPDATE"]  # the account, then the (conditional) version bump


async def test_settle_counts_failures_before_they_are_incremented(sql_store: SqlStore) -> None:
    # MySQL evaluates SET assignments left to right; a wrong order would trip "invalid" one failure early.
    await sql_store.add_accounts([NewAccount(token="tok-a")])
    (a,) = await sql_store.list_accounts()
    s = Settlement(failure="x", counts_towards_invalid=True, invalid_after=2)
    await sql_store.settle(a.id, s)
    got = await sql_store.get_account("tok-a")
    assert got is not None and (got.state, got.failure_count, got.state_changed_at) == ("active", 1, None)
    await sql_store.settle(a.id, s)
    got = await sql_store.get_account("tok-a")
    assert got is not None and (got.state, got.failure_count) == ("invalid", 2)


async def test_long_failure_text_is_truncated(sql_store: SqlStore) -> None:
    await sql_store.add_accounts([NewAccount(token="t" * 1500)])
    (a,) = await sql_store.list_accounts()
    assert a.token == "t" * 1500
    await sql_store.settle(a.id, Settlement(failure="e" * 5000, counts_towards_invalid=True, invalid_after=1))
    got = await sql_store.get_account("t" * 1500)
    assert got is not None and got.state == "invalid"
    assert got.last_failure == "e" * 1024 and got.state_reason == "e" * 1024


def test_alembic_cli(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli' / 'g.db'}"}
    env.pop("GROK2API_MIGRATIONS_DIR", None)
    for args in (["upgrade", "head"], ["check"], ["current"]):
        done = subprocess.run(
            [sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini"), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    assert "0001 (head)" in done.stdout
    assert (tmp_path / "cli" / "g.db").is_file()
