from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import NoReturn

import pytest

from grok2api.store import make_store
from grok2api.store.base import Store

# Store backends. SQLite always runs; MySQL and Redis need a server (TEST_MYSQL_URL, TEST_REDIS_URL).
STORE_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]

StoreFactory = Callable[..., Awaitable[Store]]


def _unavailable(reason: str) -> NoReturn:
    """Skip, unless CI asked for every service (TEST_REQUIRE_SERVICES): then a missing one is a failure."""
    if os.environ.get("TEST_REQUIRE_SERVICES"):
        pytest.fail(reason)
    pytest.skip(reason)


async def _clean_mysql(url: str) -> None:
    """Drop every table (alembic_version too), so the store migrates an empty database."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from grok2api.store.sql_engine import normalize_url

    engine = create_async_engine(normalize_url(url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))  # any order, child tables included
            tables = (await conn.execute(text("SHOW TABLES"))).scalars().all()
            for table in tables:
                await conn.execute(text(f"DROP TABLE IF EXISTS `{table}`"))
    finally:
        await engine.dispose()


async def _drop_redis_prefix(url: str, prefix: str) -> None:
    """Delete this test's keys only: the Redis test database may be shared with concurrent runs."""
    import redis.asyncio as aioredis

    redis_client = aioredis.Redis.from_url(url)
    try:
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + ":*"
        keys = [k async for k in redis_client.scan_iter(match=pattern, count=1000)]
        if keys:
            await redis_client.delete(*keys)
    finally:
        await redis_client.aclose()


@pytest.fixture
async def store_factory(tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """``await store_factory(kind, fresh=True)`` opens a store on ``kind``; ``fresh`` wipes the backend first.
    Open a second instance on the same data with ``fresh=False``. Everything opened is closed afterwards."""
    opened: list[Store] = []
    redis_prefix = f"g2a-test-{uuid.uuid4().hex[:12]}"
    redis_url = ""

    async def factory(kind: str, *, fresh: bool = True) -> Store:
        nonlocal redis_url
        store: Store
        if kind == "sqlite":
            if fresh:
                for suffix in ("", "-wal", "-shm"):
                    (tmp_path / f"grok2api.db{suffix}").unlink(missing_ok=True)
            store = make_store("sqlite", "", tmp_path)  # grok2api.db in the data dir
        elif kind == "mysql":
            url = os.environ.get("TEST_MYSQL_URL", "")
            if not url:
                _unavailable("TEST_MYSQL_URL is not set (e.g. mysql://root@127.0.0.1:3306/test)")
            if fresh:
                await _clean_mysql(url)
            store = make_store("mysql", url, tmp_path)
        elif kind == "redis":
            redis_url = os.environ.get("TEST_REDIS_URL", "")
            if not redis_url:
                _unavailable("TEST_REDIS_URL is not set (e.g. redis://127.0.0.1:6379/15)")
            try:
                from grok2api.store.redis import RedisStore
            except ImportError as exc:
                _unavailable(f"grok2api.store.redis cannot be imported: {exc}")
            if fresh:
                await _drop_redis_prefix(redis_url, redis_prefix)
            # Built directly rather than by make_store, to give each test its own key prefix.
            store = RedisStore(redis_url, prefix=redis_prefix)
        else:
            raise ValueError(f"unknown store backend {kind!r}")
        await store.open()
        opened.append(store)
        return store

    yield factory
    for store in reversed(opened):
        await store.close()
    if redis_url:
        await _drop_redis_prefix(redis_url, redis_prefix)


@pytest.fixture(params=STORE_BACKENDS)
async def store(request: pytest.FixtureRequest, store_factory: StoreFactory) -> Store:
    """A freshly opened store on each backend."""
    kind: str = request.param
    return await store_factory(kind)


# End-to-end fixtures: the fake grok.com, the live gateway and the OpenAI SDK client.
from live import client, fake, gateway  # noqa: E402,F401
