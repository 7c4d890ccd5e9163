"""Async SQLAlchemy engines for the SQL store and Alembic: user-facing URLs mapped to async drivers,
SQLite tuned for one writer beside many readers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MYSQL_DEADLOCK = 1213  # ER_LOCK_DEADLOCK: two transactions collided; the one chosen as victim may simply go again


def normalize_url(url: str | URL) -> URL:
    """Map user-facing URLs to async drivers: ``mysql://`` → asyncmy (utf8mb4), ``sqlite://`` → aiosqlite."""
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        return u.set(drivername="sqlite+aiosqlite") if u.drivername == "sqlite" else u
    if backend in ("mysql", "mariadb"):
        if u.drivername == backend:
            u = u.set(drivername=f"{backend}+asyncmy")
            if "charset" not in u.query:
                u = u.update_query_dict({"charset": "utf8mb4"})
        return u
    raise ValueError(f"unsupported database URL {u.render_as_string()!r}: use sqlite:/// or mysql://")


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the single writer; busy_timeout makes writers queue instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    # With WAL, NORMAL only risks the last commits on power loss (never corruption) and skips an fsync per commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str | URL, timeout: float | None = None) -> AsyncEngine:
    """``timeout``: seconds a MySQL connect, a read of an answer, or a wait for a pooled connection may take, so a
    server that stopped answering fails the call instead of hanging it."""
    u = normalize_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:" and not u.database.startswith("file:"):
            Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(u)
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    # The server closes idle connections after wait_timeout: recycle early and ping before use.
    if timeout is None:
        return create_async_engine(u, pool_pre_ping=True, pool_recycle=1800)
    return create_async_engine(
        u,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_timeout=timeout,
        connect_args={"connect_timeout": max(1, round(timeout)), "read_timeout": timeout},
    )
