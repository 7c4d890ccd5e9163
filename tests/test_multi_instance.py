"""Quota is never over-reserved: many concurrent requests, one or two gateway instances per store."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import openai
import pytest

from grok2api.client_keys import hash_key, new_key
from grok2api.store import make_store
from grok2api.store.base import AccountPatch, ClientKey, ModeQuota, NewAccount
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


# ---- limits across processes: two replicas of two workers each, through the serve command ---------------------

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_ready(http: aiohttp.ClientSession, url: str, server: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url + "/readyz") as resp:
                if resp.status == 200:
                    return
        assert server.poll() is None, "a server process exited while starting"
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} did not become ready")


@pytest.mark.parametrize(
    "kind",
    [pytest.param("mysql", marks=pytest.mark.mysql), pytest.param("redis", marks=pytest.mark.redis)],
)
async def test_rpm_and_login_limits_are_exact_across_replicas_and_workers(
    kind: str, tmp_path: Path, fake: FakeGrok
) -> None:
    """2 server processes × 2 workers on one store: a key limited to 10 requests a minute gets exactly 10 of 40,
    and an address exactly 5 sign-in attempts, wherever the requests land."""
    mode, url = await _backend(kind, tmp_path)
    secret = new_key()
    store = make_store(mode, url, tmp_path)
    await store.open()
    try:
        await store.put_client_key(
            ClientKey(id="k-rpm", name="rpm", key_hash=hash_key(secret), prefix=secret[:10], rpm=10, created_at=1.0)
        )
        await store.add_accounts([NewAccount(token="tok-shared")])
    finally:
        await store.close()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "STORAGE_MODE": mode,
        "DATABASE_URL": url,
        "GROK2API_UPSTREAM_URL": fake.base_url,
        "GROK2API_ASSETS_URL": fake.assets_url,
        "GROK2API_UPSTREAM_TRANSPORT": "aiohttp",
        "GROK2API_ADMIN_PASSWORD": "replicas-password",
    }
    servers: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for i in range(2):
            port = _free_port()
            command = [sys.executable, "-m", "grok2api", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
            replica_env = {**env, "GROK2API_DATA_DIR": str(tmp_path / f"replica{i}")}
            servers.append(
                subprocess.Popen(
                    command, cwd=tmp_path, env=replica_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for server_url, server in zip(urls, servers, strict=True):
                await _wait_ready(http, server_url, server)

            async def ask(i: int) -> tuple[int, str | None]:
                # A new connection each time, so the kernel spreads the requests over both workers of a replica.
                headers = {"Authorization": f"Bearer {secret}", "Connection": "close"}
                body = {"model": "grok-3-fast", "messages": [{"role": "user", "content": "[[tokens:2]] hi"}]}
                async with http.post(urls[i % 2] + "/v1/chat/completions", json=body, headers=headers) as resp:
                    await resp.read()
                    return resp.status, resp.headers.get("Retry-After")

            results = await asyncio.gather(*(ask(i) for i in range(40)))
            assert Counter(status for status, _ in results) == {200: 10, 429: 30}
            assert all(retry is not None and 1 <= int(retry) <= 60 for status, retry in results if status == 429), (
                results
            )

            statuses = []
            for i in range(8):
                login = {"username": "admin", "password": f"guess-{i}"}
                headers = {"Connection": "close"}
                async with http.post(urls[i % 2] + "/api/login", json=login, headers=headers) as resp:
                    statuses.append(resp.status)
            assert statuses == [401] * 5 + [429] * 3
    finally:
        for server in servers:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                await asyncio.to_thread(server.wait, 30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
