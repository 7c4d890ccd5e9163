"""The guarded store: timeouts, outages as StoreUnavailable, one log line per outage; and end to end, what every
API answers while the real store (SQLite, MariaDB, Redis) is unreachable, and that it heals by itself."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from sqlalchemy import exc as sa_exc

from grok2api.store import make_store
from grok2api.store.base import StoreUnavailable
from grok2api.store.guard import Started, StoreHealth, guard, outage_reason
from grok2api.testing.fake_grok import FakeGrok

from harness import ADMIN_PASSWORD, FlakyStore, LiveGateway, TcpProxy, clean_mysql, drop_redis_prefix, requires


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """A stand-in store: ``versions`` answers, fails or hangs as told; counts the calls that reached it."""

    kind = "test"

    def __init__(self) -> None:
        self.mode = "ok"
        self.calls = 0

    async def versions(self) -> str:
        self.calls += 1
        if self.mode == "down":
            raise sa_exc.OperationalError("SELECT secret FROM t", {"token": "sk-secret"}, ConnectionRefusedError(111))
        if self.mode == "hang":
            await asyncio.Event().wait()
        if self.mode == "bug":
            raise ValueError("a bug, not an outage")
        return "answer"


def _guarded(backend: Backend, clock: Clock, timeout: float = 5.0) -> tuple[Any, StoreHealth]:
    health = StoreHealth(probe_interval=1.0, clock=clock)
    return guard(backend, health, timeout), health  # type: ignore[arg-type]


async def test_answers_pass_through_and_attributes_are_the_stores() -> None:
    store, health = _guarded(Backend(), Clock())
    assert await store.versions() == "answer"
    assert store.kind == "test" and health.up


async def test_an_outage_fails_fast_logs_once_and_ends_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="grok2api.store")
    backend, clock = Backend(), Clock()
    store, health = _guarded(backend, clock)
    backend.mode = "down"
    for _ in range(20):
        with pytest.raises(StoreUnavailable) as exc:
            await store.versions()
        assert exc.value.retry_after > 0
    assert backend.calls == 1  # after the first failure, calls fail at once without reaching the store
    clock.now += 1.0
    with pytest.raises(StoreUnavailable):
        await store.versions()  # one probe per interval goes through
    assert backend.calls == 2 and not health.up
    backend.mode = "ok"
    clock.now += 1.0
    assert await store.versions() == "answer"
    assert health.up
    lines = [r for r in caplog.records if r.name == "grok2api.store"]
    assert [r.levelno for r in lines] == [logging.ERROR, logging.WARNING]
    assert "unreachable" in lines[0].getMessage() and "again" in lines[1].getMessage()
    assert all(r.exc_info is None for r in lines)  # no traceback
    assert "sk-secret" not in lines[0].getMessage() and "SELECT" not in lines[0].getMessage()


async def test_a_store_that_stops_answering_is_an_outage_not_a_hang() -> None:
    backend = Backend()
    store, health = _guarded(backend, Clock(), timeout=0.05)
    backend.mode = "hang"
    with pytest.raises(StoreUnavailable):
        await store.versions()
    assert not health.up


async def test_one_slow_call_while_others_are_answered_fails_alone_without_an_outage() -> None:
    slow, quick = Backend(), Backend()
    health = StoreHealth(probe_interval=1.0, clock=Clock())
    slow_store: Any = guard(slow, health, 0.05)  # type: ignore[arg-type]
    quick_store: Any = guard(quick, health, 0.05)  # type: ignore[arg-type]
    slow.mode = "hang"
    hanging = asyncio.ensure_future(slow_store.versions())
    await asyncio.sleep(0)
    assert await quick_store.versions() == "answer"  # the store answers others while the one call hangs
    with pytest.raises(StoreUnavailable):
        await hanging
    assert health.up  # no outage: the next call goes straight through
    assert await quick_store.versions() == "answer" and quick.calls == 2


async def test_errors_that_are_not_outages_pass_unchanged() -> None:
    backend = Backend()
    store, health = _guarded(backend, Clock())
    backend.mode = "bug"
    with pytest.raises(ValueError, match="a bug"):
        await store.versions()
    assert health.up


async def test_a_call_that_never_waits_is_answered_without_a_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    timers: list[float] = []
    real_timeout = asyncio.timeout

    def counted(delay: float | None) -> asyncio.Timeout:
        timers.append(delay or 0.0)
        return real_timeout(delay)

    monkeypatch.setattr(asyncio, "timeout", counted)
    backend = Backend()
    store, _ = _guarded(backend, Clock())
    assert await store.versions() == "answer"
    assert timers == []  # it returned before it could have been interrupted
    backend.mode = "bug"
    with pytest.raises(ValueError, match="a bug"):
        await store.versions()  # an error raised before any wait is the call's own, as ever
    backend.mode = "hang"
    store, health = _guarded(backend, Clock(), timeout=0.05)
    with pytest.raises(StoreUnavailable):
        await store.versions()
    assert timers and not health.up  # a call that waits is timed


async def test_started_carries_on_a_waiting_coroutine_exactly_as_awaiting_it_would() -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def two_waits() -> str:
        seen.append(await gate)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            seen.append("cancelled")
            return "stopped"
        return "slept"

    started = Started(two_waits())
    assert not started.done
    gate.set_result("first")
    waiter = asyncio.ensure_future(_await(started))
    await asyncio.sleep(0.01)
    waiter.cancel()  # thrown into the coroutine where it waits, which handles it
    assert await waiter == "stopped"
    assert seen == ["first", "cancelled"]

    async def at_once() -> int:
        return 7

    finished = Started(at_once())
    assert finished.done and finished.value == 7 and await finished == 7


async def _await(started: Started[str]) -> str:
    return await started


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (sqlite3.OperationalError("database is locked"), True),
        (sa_exc.OperationalError("SELECT 1", {}, OSError("gone")), True),
        (sa_exc.TimeoutError("QueuePool limit reached"), True),
        (sa_exc.OperationalError("UPDATE t", {}, Exception(1213, "Deadlock found")), False),  # it answered
        (sa_exc.IntegrityError("INSERT", {}, Exception("duplicate")), False),
        (KeyError("x"), False),
    ],
)
def test_outage_reason(error: Exception, outage: bool) -> None:
    assert (outage_reason(error) is not None) is outage


def test_redis_connection_errors_are_outages() -> None:
    from redis import exceptions as redis_exc

    assert outage_reason(redis_exc.ConnectionError("Error 111 connecting")) is not None
    assert outage_reason(redis_exc.TimeoutError("Timeout reading from socket")) is not None
    assert outage_reason(redis_exc.ResponseError("WRONGTYPE")) is None


# ---- end to end: a real gateway while its store is unreachable -------------------------------------


class Outage:
    """Takes a gateway's store away and brings it back: a failing wrapper over SQLite, a cut or hung TCP proxy
    in front of MariaDB or Redis."""

    def __init__(self, flaky: FlakyStore | None = None, proxy: TcpProxy | None = None) -> None:
        self.flaky = flaky
        self.proxy = proxy

    async def start(self, hang: bool = False) -> None:
        if self.flaky is not None:
            self.flaky.failing = {"*"}
        elif hang:
            assert self.proxy is not None
            self.proxy.hang()
        else:
            assert self.proxy is not None
            await self.proxy.cut()

    async def end(self) -> None:
        if self.flaky is not None:
            self.flaky.failing = set()
        else:
            assert self.proxy is not None
            await self.proxy.restore()


@asynccontextmanager
async def gateway_on(kind: str, tmp_path: Path, fake: FakeGrok) -> AsyncIterator[tuple[LiveGateway, Outage]]:
    env = {"GROK2API_STORE_TIMEOUT_SECONDS": "1"}
    if kind == "sqlite":
        flaky = FlakyStore(make_store("file", "", tmp_path / "data"))
        async with LiveGateway(tmp_path / "data", fake.base_url, fake.assets_url, env=env, store=flaky) as gw:
            yield gw, Outage(flaky=flaky)
        return
    url = requires("mysql" if kind == "mysql" else "redis")
    if kind == "mysql":
        await clean_mysql(url)
    else:
        await drop_redis_prefix(url, "g2a")
    proxy = TcpProxy(url.split("//", 1)[1].split("/", 1)[0].rpartition("@")[2])
    await proxy.start()
    try:
        gw = LiveGateway(
            tmp_path / "data", fake.base_url, fake.assets_url, env=env, storage_mode=kind, database_url=proxy.url(url)
        )
        async with gw:
            yield gw, Outage(proxy=proxy)
    finally:
        await proxy.close()


CHAT = {"model": "grok-3-fast", "messages": [{"role": "user", "content": "hi"}]}


async def _call(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, dict[str, str], bytes]:
    async with http.request(method, url, **kwargs) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def _wait_ready(http: aiohttp.ClientSession, gw: LiveGateway) -> None:
    for _ in range(100):
        status, _, _ = await _call(http, "GET", gw.url + "/readyz")
        if status == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the gateway did not become ready again")


@pytest.mark.parametrize(
    "kind", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql), pytest.param("redis", marks=pytest.mark.redis)]
)
async def test_a_store_outage_is_a_503_in_every_apis_shape_logged_once_and_heals_by_itself(
    kind: str, tmp_path: Path, fake: FakeGrok, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    timeout = aiohttp.ClientTimeout(total=20)  # a hang would fail the test, not stall it
    async with (
        gateway_on(kind, tmp_path, fake) as (gw, outage),
        aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
    ):
        await gw.add_accounts("tok-outage")
        status, _, body = await _call(http, "POST", gw.url + "/v1/chat/completions", json=CHAT)
        assert status == 200, body
        login = {"username": "admin", "password": ADMIN_PASSWORD}
        status, _, body = await _call(http, "POST", gw.url + "/api/login", json=login)
        bearer = {"Authorization": "Bearer " + msgspec.json.decode(body)["token"]}
        status, _, body = await _call(http, "GET", gw.url + "/login")
        form_token = re.search(r'name="csrf_token" value="([^"]+)"', body.decode())
        assert form_token is not None
        signed_in = {**login, "csrf_token": form_token.group(1)}
        status, _, _ = await _call(http, "POST", gw.url + "/login", data=signed_in, allow_redirects=False)
        assert status == 303
        status, _, body = await _call(http, "GET", gw.url + "/readyz")
        assert status == 200 and msgspec.json.decode(body)["status"] == "ready"
        caplog.clear()

        await outage.start()
        for _ in range(3):  # every request: a clear 503, never a 500 and a traceback
            status, headers, body = await _call(http, "POST", gw.url + "/v1/chat/completions", json=CHAT)
            assert status == 503 and int(headers["Retry-After"]) > 0, body
            error = msgspec.json.decode(body)["error"]
            assert (error["type"], error["code"]) == ("service_unavailable", "store_unavailable")
        status, headers, body = await _call(http, "GET", gw.url + "/api/tokens", headers=bearer)
        assert status == 503 and "Retry-After" in headers
        assert msgspec.json.decode(body) == {
            "success": False,
            "message": msgspec.json.decode(body)["message"],
            "code": "STORE_UNAVAILABLE",
        }
        status, headers, body = await _call(http, "GET", gw.url + "/manage/accounts")
        assert status == 503 and headers["Content-Type"].startswith("text/html") and b"store" in body
        status, headers, body = await _call(http, "GET", gw.url + "/readyz")
        ready = msgspec.json.decode(body)
        assert status == 503 and ready["status"] == "not_ready" and ready["checks"]["store"]["ok"] is False
        assert ready["checks"]["accounts"]["gating"] is False
        status, _, _ = await _call(http, "GET", gw.url + "/healthz")
        assert status == 200  # the process lives
        status, _, _ = await _call(http, "GET", gw.url + "/v1/models")
        assert status == 200  # what needs no store still works

        await outage.end()
        await _wait_ready(http, gw)
        status, _, body = await _call(http, "POST", gw.url + "/v1/chat/completions", json=CHAT)
        assert status == 200, body

        if kind != "sqlite":  # a server that accepts connections and then never answers
            await outage.start(hang=True)
            status, headers, body = await _call(http, "POST", gw.url + "/v1/chat/completions", json=CHAT)
            assert status == 503 and msgspec.json.decode(body)["error"]["code"] == "store_unavailable"
            await outage.end()
            await _wait_ready(http, gw)

    store_lines = [r for r in caplog.records if r.name == "grok2api.store"]
    starts = [r for r in store_lines if "unreachable" in r.getMessage()]
    ends = [r for r in store_lines if r.getMessage().startswith("the store answers again")]
    outages = 1 if kind == "sqlite" else 2
    assert (len(starts), len(ends)) == (outages, outages)
    assert not [r for r in caplog.records if r.exc_info is not None]  # not one traceback
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r not in store_lines]
