"""Quota is never over-reserved: many concurrent requests, one or two gateway instances per store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import openai
import pytest

from grok2api.store.base import AccountPatch, ModeQuota
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway, clean_mysql, drop_redis_prefix, requires

QUOTA = 6
ACCOUNTS = ("share-1", "share-2", "share-3")


async def _backend(kind: str, tmp_path: Path) -> tuple[str, str]:
    if kind == "sqlite":
        return "file", ""
    url = requires("mysql" if kind == "mysql" else "redis")
    if kind == "mysql":
        await clean_mysql(url)
    else:
        await drop_redis_prefix(url, "g2a")  # the prefix a gateway uses by default
    return kind, url


@pytest.mark.parametrize(
    ("kind", "instances"),
    [
        pytest.param("sqlite", 1, id="sqlite-1"),
        pytest.param("mysql", 1, id="mysql-1", marks=pytest.mark.mysql),
        pytest.param("mysql", 2, id="mysql-2", marks=pytest.mark.mysql),
        pytest.param("redis", 2, id="redis-2", marks=pytest.mark.redis),
    ],
)
async def test_concurrent_requests_never_over_reserve(
    kind: str, instances: int, tmp_path: Path, fake: FakeGrok
) -> None:
    mode, url = await _backend(kind, tmp_path)
    for token in ACCOUNTS:
        fake.add_account(token, quota=QUOTA)  # grok.com agrees with the store, so reconciliation is exact
    gateways = [
        LiveGateway(tmp_path / f"node{i}", fake.base_url, fake.assets_url, storage_mode=mode, database_url=url)
        for i in range(instances)
    ]
    for gw in gateways:
        await gw.start()
    clients = [openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0) for gw in gateways]
    try:
        await gateways[0].add_accounts(*ACCOUNTS)
        for token in ACCOUNTS:
            await gateways[0].services.store.update_account(
                token, AccountPatch(quotas={"fast": ModeQuota(remaining=QUOTA)})
            )
        for gw in gateways:
            await gw.services.reload(force=True)

        async def ask(i: int) -> bool:
            try:
                await clients[i % instances].chat.completions.create(
                    model="grok-3-fast", messages=[{"role": "user", "content": "[[tokens:3]] count me"}]
                )
                return True
            except openai.APIStatusError as exc:
                assert exc.status_code == 429, exc.response.text
                return False

        results = await asyncio.gather(*(ask(i) for i in range(40)))
        await asyncio.sleep(0.3)  # let background quota reconciliation land
        successes = sum(results)
        accounts = await gateways[0].services.store.list_accounts()
        remaining = [a.remaining for a in accounts]
        assert all(r is not None and r >= 0 for r in remaining), remaining
        charged = QUOTA * len(ACCOUNTS) - sum(r or 0 for r in remaining)
        assert successes == QUOTA * len(ACCOUNTS)
        assert charged == successes * 1  # grok-3-fast costs 1
        assert len(fake.chat_calls()) == successes  # no upstream call beyond the quota
        assert sum(fake.account(t).remaining for t in ACCOUNTS) == 0
    finally:
        for c in clients:
            await c.close()
        for gw in gateways:
            await gw.stop()


@pytest.mark.parametrize(
    "kind",
    [pytest.param("mysql", marks=pytest.mark.mysql), pytest.param("redis", marks=pytest.mark.redis)],
)
async def test_settings_and_accounts_propagate_between_instances(kind: str, tmp_path: Path, fake: FakeGrok) -> None:
    mode, url = await _backend(kind, tmp_path)
    a = LiveGateway(tmp_path / "a", fake.base_url, fake.assets_url, storage_mode=mode, database_url=url)
    b = LiveGateway(tmp_path / "b", fake.base_url, fake.assets_url, storage_mode=mode, database_url=url)
    await a.start()
    await b.start()
    try:
        assert b.services.settings.show_thinking is True
        start = time.monotonic()
        await a.settings(show_thinking=False, filtered_tags="xaiartifact")
        await a.services.store.add_accounts([])  # no-op must not break anything
        from grok2api.store.base import NewAccount

        await a.services.store.add_accounts([NewAccount(token="late-account")])
        while time.monotonic() - start < 5:
            seen = b.services.settings.show_thinking is False and any(
                acc.token == "late-account" for acc in b.services.pool.accounts()
            )
            if seen:
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - start
        assert b.services.settings.show_thinking is False
        assert b.services.settings.filtered_tags == "xaiartifact"
        assert any(acc.token == "late-account" for acc in b.services.pool.accounts())
        assert elapsed < 2.5  # picked up by the once-a-second version check
    finally:
        await a.stop()
        await b.stop()
