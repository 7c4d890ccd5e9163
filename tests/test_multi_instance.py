"""Quota is never over-reserved: many concurrent requests, one or two gateway instances per store."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

import openai
import pytest

from grok2api.store.base import AccountPatch, ModeQuota
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway, clean_mysql, drop_redis_prefix, requires

# Small per-mode windows on super accounts (auto needs super): two modes drain side by side.
WINDOWS = {"fast": 6, "auto": 4}
ACCOUNTS = ("super-share-1", "super-share-2", "super-share-3")
ASKS = {"fast": 40, "auto": 30}  # more than the windows hold
MODELS = {"fast": "grok-3-fast", "auto": "grok-4-fast"}  # an older id of each mode


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
    for token in ACCOUNTS:  # grok.com agrees with the store, so reconciliation is exact
        fake.add_account(token, tier="super", quotas=WINDOWS)
    gateways = [
        LiveGateway(tmp_path / f"node{i}", fake.base_url, fake.assets_url, storage_mode=mode, database_url=url)
        for i in range(instances)
    ]
    for gw in gateways:
        await gw.start()
    clients = [openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0) for gw in gateways]
    store = gateways[0].services.store
    try:
        await gateways[0].add_accounts(*ACCOUNTS, tier="super")
        for token in ACCOUNTS:
            quotas = {m: ModeQuota(remaining=n, total=n) for m, n in WINDOWS.items()}
            await store.update_account(token, AccountPatch(quotas=quotas))
        for gw in gateways:
            await gw.services.reload(force=True)

        lowest: dict[str, int] = {}

        async def watch(done: asyncio.Event) -> None:
            """The lowest count each (account, mode) window shows while the burst runs."""
            while not done.is_set():
                for acc in await store.list_accounts():
                    for m, window in acc.quotas.items():
                        if window.remaining is not None:
                            key = f"{acc.token}/{m}"
                            lowest[key] = min(lowest.get(key, window.remaining), window.remaining)
                await asyncio.sleep(0.005)

        async def ask(i: int, m: str) -> bool:
            try:
                await clients[i % instances].chat.completions.create(
                    model=MODELS[m], messages=[{"role": "user", "content": "[[tokens:3]] count me"}]
                )
                return True
            except openai.APIStatusError as exc:
                assert exc.status_code == 429, exc.response.text
                assert int(exc.response.headers["retry-after"]) >= 1
                return False

        done = asyncio.Event()
        watcher = asyncio.ensure_future(watch(done))
        asks = [(i, m) for m, n in ASKS.items() for i in range(n)]
        random.Random(3).shuffle(asks)
        results = await asyncio.gather(*(ask(i, m) for i, m in asks))
        await asyncio.sleep(0.3)  # let background quota reconciliation land
        done.set()
        await watcher

        served = {m: sum(ok for (_, am), ok in zip(asks, results, strict=True) if am == m) for m in ASKS}
        assert served == {m: n * len(ACCOUNTS) for m, n in WINDOWS.items()}  # every query used, none beyond
        accounts = await store.list_accounts()
        assert {(a.token, m): w.remaining for a in accounts for m, w in a.quotas.items() if m in WINDOWS} == {
            (t, m): 0 for t in ACCOUNTS for m in WINDOWS
        }
        assert all(a.state == "active" and a.requests_failed == 0 for a in accounts)
        assert lowest and min(lowest.values()) >= 0  # no window was ever overdrawn, even for a moment
        # grok.com saw exactly what was served, each account exactly its windows, and never refused one.
        chats = [r for r in fake.mgw_sessions() if r.responses]
        assert all(r.refused is None for r in fake.mgw_sessions())
        assert Counter((r.token, r.mode) for r in chats) == {(t, m): n for t in ACCOUNTS for m, n in WINDOWS.items()}
        assert not [e for r in chats for e in r.sent_events("error")]
        assert all(fake.account(t).window(m).remaining == 0 for t in ACCOUNTS for m in WINDOWS)
        # Every instance served its share from the one shared count.
        by_instance = Counter(i % instances for (i, _), ok in zip(asks, results, strict=True) if ok)
        assert sorted(by_instance) == list(range(instances))
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
