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
from grok2api.store.base import ModeQuota, NewAccount, Settlement
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


HEAD = "0006"  # the newest revision


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
        assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar() == HEAD


async def test_open_is_idempotent_and_keeps_data(sql_store: SqlStore, store_factory: StoreFactory) -> None:
    await sql_store.add_accounts([NewAccount(token="tok-a", quotas={"fast": ModeQuota(remaining=3)})])
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
        for table in [*(t.name for t in reversed(Base.metadata.sorted_tables)), "alembic_version"]:
            await conn.execute(text(f"DROP TABLE IF EXISTS `{table}`"))  # children before their parents
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
    await sql_store.add_accounts([NewAccount(token="tok-a", quotas={"fast": ModeQuota(remaining=5)})])
    (a,) = await sql_store.list_accounts()
    seen = _Statements(sql_store)

    assert await sql_store.reserve(a.id, "fast")
    assert seen.sql == ["UPDATE"]  # one guarded statement
    seen.sql.clear()
    await sql_store.settle(a.id, Settlement(mode="fast", refund=1, ok=True))
    await sql_store.settle(a.id, Settlement(mode="fast", refund=1, ok=True, learned=ModeQuota(remaining=40)))
    await sql_store.settle(a.id, Settlement(ok=True))
    # one statement per table: the account, then its window (an UPDATE, or an upsert for a learned one)
    assert seen.sql == ["UPDATE", "UPDATE", "UPDATE", "INSERT", "UPDATE"]

    seen.sql.clear()
    await sql_store.settle(a.id, Settlement(failure="401", counts_towards_invalid=True))
    assert seen.sql == ["UPDATE", "UPDATE"]  # the account, then the (conditional) version bump

    # The first reservation of a mode records its unknown window, once; later ones are the one UPDATE.
    seen.sql.clear()
    assert await sql_store.reserve(a.id, "expert")
    assert await sql_store.reserve(a.id, "expert")
    assert seen.sql == ["UPDATE", "INSERT", "UPDATE", "UPDATE"]


async def _sqlite(store_factory: StoreFactory) -> SqlStore:
    store = await store_factory("sqlite")
    assert isinstance(store, SqlStore)
    return store


def _on_loop_thread(store: SqlStore) -> list[bool]:
    """Records, per hot-path write, whether it ran on the event loop's thread."""
    import threading

    loop_thread = threading.get_ident()
    seen: list[bool] = []
    write = store._sqlite_write

    def spy(*args: Any) -> list[int]:
        seen.append(threading.get_ident() == loop_thread)
        return write(*args)

    store._sqlite_write = spy  # type: ignore[method-assign,assignment]
    return seen


async def test_sqlite_hot_writes_run_on_the_loop_without_a_thread_hop(store_factory: StoreFactory) -> None:
    store = await _sqlite(store_factory)
    await store.add_accounts([NewAccount(token="tok-a", quotas={"fast": ModeQuota(remaining=5)})])
    (a,) = await store.list_accounts()
    seen = _on_loop_thread(store)
    assert await store.reserve(a.id, "fast")
    await store.settle(a.id, Settlement(mode="fast", refund=1, ok=True))
    assert seen == [True, True]
    got = await store.get_account("tok-a")
    assert got is not None and got.quotas["fast"].remaining == 5  # taken, then given back


async def test_sqlite_hot_write_goes_to_the_thread_while_another_connection_writes(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    import sqlite3

    store = await _sqlite(store_factory)
    await store.add_accounts([NewAccount(token="tok-a", quotas={"fast": ModeQuota(remaining=5)})])
    (a,) = await store.list_accounts()
    seen = _on_loop_thread(store)
    other = sqlite3.connect(tmp_path / "grok2api.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's write lock
        reserving = asyncio.ensure_future(store.reserve(a.id, "fast"))
        await asyncio.sleep(0.2)
        assert not reserving.done()  # it waits on the thread; the loop itself is free (this sleep ran)
        other.execute("COMMIT")
        async with asyncio.timeout(10):
            assert await reserving
    finally:
        other.close()
    assert seen == [True, False]  # tried on the loop, refused at once, then done by the thread
    got = await store.get_account("tok-a")
    assert got is not None and got.quotas["fast"].remaining == 4


async def test_sqlite_checkpoints_the_log_on_the_thread(
    store_factory: StoreFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import grok2api.store.sql as sql_module

    monkeypatch.setattr(sql_module, "CHECKPOINT_EVERY", 4)
    store = await _sqlite(store_factory)
    await store.add_accounts([NewAccount(token="tok-a", quotas={"fast": ModeQuota(remaining=50)})])
    (a,) = await store.list_accounts()
    checkpoints: list[int] = []
    real = store._sqlite_checkpoint

    def counted() -> None:
        checkpoints.append(1)
        real()

    monkeypatch.setattr(store, "_sqlite_checkpoint", counted)
    for _ in range(8):
        assert await store.reserve(a.id, "fast")
        if store._checkpoint is not None:
            await store._checkpoint
    assert len(checkpoints) == 2


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
    assert f"{HEAD} (head)" in done.stdout
    assert (tmp_path / "cli" / "g.db").is_file()


# 0001 (the 2025 token budget) → 0002 (per-mode windows), with data in the tables

_RUN = Callable[..., None]


def _alembic(conn: Connection, fn: _RUN, rev: str) -> None:
    fn(alembic_config(conn), rev)


# id, token, tier, state, remaining, heavy_remaining, window_reset_at
_OLD_ROWS = [
    (1, "tok-1", "basic", "active", 5, None, 1_800_000_000.5),
    (2, "tok-2", "super", "active", 40, 3, None),
    (3, "tok-3", "basic", "cooling", 0, None, 1234.25),
    (4, "tok-4", "super", "disabled", None, 0, None),
    (5, "tok-5", "basic", "active", None, None, None),
    (6, "tok-6", "basic", "active", None, None, 99.0),
]
_OLD_INSERT = text(
    "INSERT INTO accounts (id, token_hash, token, tier, state, state_reason, state_changed_at, remaining, "
    "heavy_remaining, window_reset_at, cooldown_until, failure_count, last_failure, last_failure_at, tags, note, "
    "created_at, last_used_at, requests_ok, requests_failed) VALUES (:id, :hash, :token, :tier, :state, '', NULL, "
    ":remaining, :heavy, :reset, NULL, 0, '', NULL, '[\"t\"]', 'n', 100.0, NULL, :id, 0)"
)
_MIGRATED = {
    "tok-1": {"fast": ModeQuota(remaining=5, reset_at=1_800_000_000.5)},
    "tok-2": {"fast": ModeQuota(remaining=40), "heavy": ModeQuota(remaining=3)},
    "tok-3": {"fast": ModeQuota(remaining=0, reset_at=1234.25)},
    "tok-4": {"heavy": ModeQuota(remaining=0)},
    "tok-5": {},
    "tok-6": {"fast": ModeQuota(reset_at=99.0)},
}


async def _schema_0001_with_data(store: SqlStore) -> None:
    from grok2api.store.sql import token_hash

    async with store.engine.begin() as conn:
        await conn.run_sync(_alembic, command.downgrade, "base")
        await conn.run_sync(_alembic, command.upgrade, "0001")
        for id_, token, tier, state, remaining, heavy, reset in [
            *_OLD_ROWS,
            (9, "tok-9", "basic", "active", 1, 1, 1.0),
        ]:
            params = {"id": id_, "hash": token_hash(token), "token": token, "tier": tier, "state": state}
            await conn.execute(_OLD_INSERT, {**params, "remaining": remaining, "heavy": heavy, "reset": reset})
        # The newest account was removed: a new token must still never get its id.
        await conn.execute(text("DELETE FROM accounts WHERE id = 9"))


async def _check_migrated(store: SqlStore) -> None:
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
        assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar() == HEAD
    accounts = {a.token: a for a in await store.list_accounts()}
    assert {t: a.quotas for t, a in accounts.items()} == _MIGRATED
    for id_, token, tier, state, remaining, heavy, reset in _OLD_ROWS:
        a = accounts[token]
        assert (a.id, a.tier, a.state, a.tags, a.note, a.requests_ok, a.user_id) == (
            id_,
            tier,
            state,
            ["t"],
            "n",
            id_,
            "",
        )
        assert (a.remaining, a.heavy_remaining, a.window_reset_at) == (remaining, heavy, reset)
    await store.add_accounts([NewAccount(token="tok-new")])
    new = await store.get_account("tok-new")
    assert new is not None and new.id > 9
    # The windows work like any other: reservable, and removed with their account.
    assert await store.reserve(1, "fast") and not await store.reserve(3, "fast") and not await store.reserve(4, "heavy")
    assert (await store.get_account("tok-1")) is not None
    assert await store.remove_accounts(["tok-2"]) == 1
    async with store.engine.connect() as conn:
        left = await conn.execute(
            text("SELECT account_id, mode, remaining FROM account_quotas ORDER BY account_id, mode")
        )
        assert [tuple(r) for r in left] == [(1, "fast", 4), (3, "fast", 0), (4, "heavy", 0), (6, "fast", None)]


async def test_upgrade_moves_the_2025_counters_into_mode_windows(sql_store: SqlStore) -> None:
    await _schema_0001_with_data(sql_store)
    async with sql_store.engine.begin() as conn:
        await conn.run_sync(_alembic, command.upgrade, "head")
    await _check_migrated(sql_store)


async def test_upgrade_cut_short_runs_again(sql_store: SqlStore) -> None:
    # MySQL commits each DDL statement: a crash after the copy leaves a half-done upgrade at revision 0001.
    await _schema_0001_with_data(sql_store)
    async with sql_store.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE account_quotas (account_id INTEGER NOT NULL, mode VARCHAR(64) NOT NULL, "
                "remaining INTEGER, total INTEGER, window_seconds INTEGER, reset_at DOUBLE, "
                "PRIMARY KEY (account_id, mode))"
            )
        )
        await conn.execute(text("INSERT INTO account_quotas (account_id, mode, remaining) VALUES (1, 'fast', 77)"))
    async with sql_store.engine.begin() as conn:
        await conn.run_sync(_alembic, command.upgrade, "head")
    await _check_migrated(sql_store)


async def test_downgrade_to_0001_keeps_the_fast_and_heavy_counts(sql_store: SqlStore) -> None:
    windows = {
        "fast": ModeQuota(remaining=5, total=30, reset_at=7.5),
        "heavy": ModeQuota(remaining=2),
        "auto": ModeQuota(remaining=9),
    }
    await sql_store.add_accounts([NewAccount(token="tok-a", quotas=windows, user_id="u"), NewAccount(token="tok-b")])
    async with sql_store.engine.begin() as conn:
        await conn.run_sync(_alembic, command.downgrade, "0001")
        rows = await conn.execute(
            text("SELECT token, remaining, heavy_remaining, window_reset_at FROM accounts ORDER BY id")
        )
        assert [tuple(r) for r in rows] == [("tok-a", 5, 2, 7.5), ("tok-b", None, None, None)]
        await conn.run_sync(_alembic, command.upgrade, "head")
    a, b = await sql_store.list_accounts()
    # What 0001 can hold comes back; other modes, totals and the user id do not.
    assert (a.quotas, a.user_id, b.quotas) == (
        {"fast": ModeQuota(remaining=5, reset_at=7.5), "heavy": ModeQuota(remaining=2)},
        "",
        {},
    )


# 0002 → 0003 (video jobs)


async def test_the_video_jobs_upgrade_cut_short_runs_again(sql_store: SqlStore) -> None:
    # MySQL commits each DDL statement: a crash after the table and one index leaves the revision at 0002.
    async with sql_store.engine.begin() as conn:
        on_table = " ON video_jobs" if sql_store.kind == "mysql" else ""
        await conn.execute(text(f"DROP INDEX ix_video_jobs_status_lease_until{on_table}"))
        await conn.execute(text("UPDATE alembic_version SET version_num = '0002'"))
    async with sql_store.engine.begin() as conn:
        await conn.run_sync(_alembic, command.upgrade, "head")
        assert await conn.run_sync(_diff) == []
    async with sql_store.engine.begin() as conn:
        await conn.run_sync(_alembic, command.downgrade, "0002")
        assert "video_jobs" not in await conn.run_sync(lambda c: c.dialect.get_table_names(c))
        await conn.run_sync(_alembic, command.upgrade, "head")
    assert await sql_store.list_video_jobs("") == ([], False)


# 0003 → 0005 (stored responses)


async def test_the_stored_responses_upgrade_cut_short_runs_again(sql_store: SqlStore) -> None:
    # MySQL commits each DDL statement: a crash after the table and before its index leaves the revision at 0003.
    async with sql_store.engine.begin() as conn:
        on_table = " ON stored_responses" if sql_store.kind == "mysql" else ""
        await conn.execute(text(f"DROP INDEX ix_stored_responses_expires_at{on_table}"))
        await conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
    async with sql_store.engine.begin() as conn:
        await conn.run_sync(_alembic, command.upgrade, "head")
        assert await conn.run_sync(_diff) == []
    async with sql_store.engine.begin() as conn:
        await conn.run_sync(_alembic, command.downgrade, "0003")
        assert "stored_responses" not in await conn.run_sync(lambda c: c.dialect.get_table_names(c))
        await conn.run_sync(_alembic, command.upgrade, "head")
    assert await sql_store.get_response("resp_1", "") is None
