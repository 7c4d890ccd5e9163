"""Redis-specific behaviour of RedisStore (the backend-agnostic contract is in test_store.py).

Needs a server: TEST_REDIS_URL=redis://127.0.0.1:6379/15. Every test uses its own key prefix and removes
its keys afterwards, so the suite can share a server (and a database) with other runs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import msgspec
import pytest
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection

from grok2api.store.base import (
    AccountState,
    AdminSession,
    ClientKey,
    MediaEntry,
    ModeQuota,
    NewAccount,
    Settlement,
    UsageRow,
    hour_of,
    now,
)
from grok2api.store.redis import RedisStore

from harness import drop_redis_keys

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("redis_url")]


async def _drop(store: RedisStore) -> None:
    await drop_redis_keys(store.redis, store.prefix)


@pytest.fixture
async def prefix() -> str:
    return f"g2a-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def store(redis_url: str, prefix: str) -> AsyncIterator[RedisStore]:
    s = RedisStore(redis_url, prefix=prefix)
    await s.open()
    try:
        yield s
    finally:
        await _drop(s)
        await s.close()


async def _account_id(store: RedisStore, token: str, **fields: Any) -> int:
    await store.add_accounts([NewAccount(token=token, **fields)])
    account = await store.get_account(token)
    assert account is not None
    return account.id


async def test_concurrent_reserves_are_exact(store: RedisStore) -> None:
    account_id = await _account_id(store, "tok-a", quotas={"fast": ModeQuota(remaining=10, total=30)})
    results = await asyncio.gather(*(store.reserve(account_id, "fast") for _ in range(40)))
    assert sum(results) == 10
    account = await store.get_account("tok-a")
    assert account is not None and account.quotas == {"fast": ModeQuota(remaining=0, total=30)}
    raw = await store.redis.hgetall(f"{store.prefix}:acct:{account_id}")
    assert raw["q:fast:remaining"] == "0" and raw["last_used_at"] == ""  # reserve does not stamp it


async def test_concurrent_reserves_with_unknown_quota_stay_unknown(store: RedisStore) -> None:
    account_id = await _account_id(store, "tok-a")
    assert all(await asyncio.gather(*(store.reserve(account_id, "heavy") for _ in range(20))))
    account = await store.get_account("tok-a")
    assert account is not None and account.quotas == {}
    fields = cast(list[str], await store.redis.hkeys(f"{store.prefix}:acct:{account_id}"))  # decode_responses
    assert not any(f.startswith("q:") for f in fields)


async def test_a_retried_reserve_or_settle_applies_once(store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # A connection drop makes redis-py re-send the same call; the nonce must make the second run a no-op.
    account_id = await _account_id(store, "tok-a", quotas={"fast": ModeQuota(remaining=5)})
    once = f"{store.prefix}:once:fixed"
    monkeypatch.setattr(store, "_once_key", lambda: once)
    assert await store.reserve(account_id, "fast") is True
    assert await store.reserve(account_id, "fast") is True  # replayed: the recorded answer, nothing taken
    account = await store.get_account("tok-a")
    assert account is not None and account.remaining == 4
    await store.redis.delete(once)
    await store.settle(account_id, Settlement(mode="fast", refund=1, ok=True))
    await store.settle(account_id, Settlement(mode="fast", refund=1, ok=True))
    account = await store.get_account("tok-a")
    assert account is not None and account.remaining == 5 and account.requests_ok == 1
    assert 0 < await store.redis.ttl(once) <= 120


async def test_keys_are_namespaced_by_prefix(store: RedisStore, redis_url: str, prefix: str) -> None:
    other = RedisStore(redis_url, prefix="other-" + prefix)
    await other.open()
    try:
        at = now()
        await store.add_accounts([NewAccount(token="tok-a", tags=["x"])])
        await store.save_settings({"a": 1})
        await store.put_session(AdminSession(id_hash="s1", username="u", csrf="c", created_at=at, expires_at=at + 60))
        await store.put_client_key(ClientKey(id="k1", name="n", key_hash="h", prefix="sk-", created_at=at))
        await store.put_media(MediaEntry(name="m1", kind="image", upstream_path="/p", account_token="tok-a"))
        await store.add_usage([UsageRow(hour=hour_of(at), model="grok-4", outcome="ok", count=1)])
        keys = [k async for k in store.redis.scan_iter(match=f"{prefix}*", count=1000)]
        assert keys and all(k.startswith(prefix + ":") for k in keys)
        assert f"{prefix}:acct:1" in keys and f"{prefix}:meta" in keys and f"{prefix}:session:s1" in keys
        assert await other.list_accounts() == [] and await other.load_settings() == {}
        assert await other.get_session("s1") is None and await other.list_client_keys() == []
        assert await other.usage_since(0) == []
    finally:
        await _drop(other)
        await other.close()


async def test_save_settings_publishes_the_new_version(store: RedisStore) -> None:
    pubsub = store.redis.pubsub()
    await pubsub.subscribe(store.settings_channel)
    try:
        await store.save_settings({"retries": 2})
        message = None
        for _ in range(50):
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message is not None:
                break
        assert message is not None and message["channel"] == f"{store.prefix}:settings:changed"
        assert message["data"] == str((await store.versions()).settings) == "1"
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_session_keys_expire_with_the_session(store: RedisStore) -> None:
    at = now()
    await store.put_session(AdminSession(id_hash="s1", username="u", csrf="c", created_at=at, expires_at=at + 100))
    ttl = await store.redis.pttl(f"{store.prefix}:session:s1")
    assert 95_000 < ttl <= 100_000
    # An already expired session is not written at all.
    await store.put_session(AdminSession(id_hash="s2", username="u", csrf="c", created_at=at, expires_at=at - 1))
    assert await store.redis.exists(f"{store.prefix}:session:s2") == 0
    assert await store.get_session("s2") is None


async def test_delete_sessions_escapes_glob_characters_in_the_prefix(redis_url: str, prefix: str) -> None:
    # Unescaped, the pattern "p[x]:session:*" would also match the neighbour's "px:session:..." keys.
    globby, plain = RedisStore(redis_url, prefix=prefix + "[x]"), RedisStore(redis_url, prefix=prefix + "x")
    at = now()
    try:
        for s in (globby, plain):
            await s.open()
            for id_hash in ("s1", "s2"):
                session = AdminSession(id_hash=id_hash, username="u", csrf="c", created_at=at, expires_at=at + 60)
                await s.put_session(session)
        assert await globby.delete_sessions(except_id_hash="s2") == 1
        assert await globby.get_session("s2") is not None
        assert await plain.get_session("s1") is not None and await plain.get_session("s2") is not None
    finally:
        for s in (globby, plain):
            await s.delete_sessions()
            await _drop(s)
            await s.close()


async def test_list_accounts_spans_script_chunks_in_id_order(store: RedisStore) -> None:
    windows = [{"fast": ModeQuota(remaining=i)} for i in range(1234)]
    result = await store.add_accounts([NewAccount(token=f"tok-{i}", quotas=windows[i]) for i in range(1234)])
    assert (result.added, result.updated) == (1234, 0)
    assert await store.remove_accounts(["tok-0", "tok-700"]) == 2
    accounts = await store.list_accounts()
    assert len(accounts) == 1232
    assert [a.id for a in accounts] == sorted(a.id for a in accounts)
    assert {a.token for a in accounts}.isdisjoint({"tok-0", "tok-700"})
    assert accounts[-1].remaining == 1233


async def test_floats_and_unknowns_round_trip_exactly(store: RedisStore) -> None:
    created = 1_700_000_000.123456789
    account_id = await _account_id(store, "tok-a", created_at=created, tags=["a|b", "ü"], note="")
    reset = 1_700_003_600.987654321
    await store.settle(
        account_id,
        Settlement(state=AccountState.COOLING, state_reason="429", cooldown_until=reset),
    )
    await store.settle(account_id, Settlement(mode="fast", learned=ModeQuota(reset_at=reset)))
    await store.settle(account_id, Settlement(mode="heavy", learned=ModeQuota(remaining=0)))
    account = await store.get_account("tok-a")
    assert account is not None
    assert account.created_at == created and account.cooldown_until == reset and account.window_reset_at == reset
    assert account.remaining is None and account.heavy_remaining == 0 and account.tags == ["a|b", "ü"]
    raw = await store.redis.hgetall(f"{store.prefix}:acct:{account_id}")
    assert raw["q:fast:remaining"] == "" and raw["q:heavy:remaining"] == "0" and raw["q:fast:reset"] == repr(reset)


async def test_usage_prunes_hours_older_than_eight_days(store: RedisStore) -> None:
    hour = hour_of(now())
    old = hour - 9 * 86400
    await store.add_usage([UsageRow(hour=old, model="m", outcome="ok", count=1)])
    assert len(await store.usage_since(0)) == 1  # pruning is relative to the newest hour written
    await store.add_usage([UsageRow(hour=hour, model="a|b", outcome="error", key_id="k1", count=2)])
    rows = await store.usage_since(0)
    assert [(r.hour, r.model, r.outcome, r.key_id, r.count) for r in rows] == [(hour, "a|b", "error", "k1", 2)]
    assert await store.redis.exists(f"{store.prefix}:usage:{old}") == 0


async def test_url_schemes_pick_the_connection_class() -> None:
    # Building the client does no I/O, so these need no server.
    tls = RedisStore("rediss://user:secret@cache.example:6380/2?ssl_cert_reqs=none")
    kwargs = tls.redis.connection_pool.connection_kwargs
    assert tls.redis.connection_pool.connection_class is SSLConnection
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("cache.example", 6380, 2, "secret")
    unix = RedisStore("unix:///run/redis.sock?db=3")
    assert unix.redis.connection_pool.connection_class is UnixDomainSocketConnection
    assert unix.redis.connection_pool.connection_kwargs["path"] == "/run/redis.sock"
    assert tls.kind == "redis" and tls.prefix == "g2a"
    await tls.close()
    await unix.close()


# layout 1 (the 2025 counters as account fields) → layout 2 (per-mode windows)


def _v1_account(id_: int, token: str, remaining: str, heavy: str, reset: str) -> dict[str, str]:
    """An account hash exactly as layout 1 wrote it ("" = None)."""
    return {
        "id": str(id_),
        "token": token,
        "tier": "super" if heavy else "basic",
        "state": "active",
        "state_reason": "",
        "state_changed_at": "",
        "remaining": remaining,
        "heavy_remaining": heavy,
        "window_reset_at": reset,
        "cooldown_until": "",
        "failure_count": "0",
        "last_failure": "",
        "last_failure_at": "",
        "tags": '["t"]',
        "note": "n",
        "created_at": "100.0",
        "last_used_at": "",
        "requests_ok": str(id_),
        "requests_failed": "0",
    }


async def _write_v1(redis_url: str, prefix: str) -> None:
    import hashlib

    writer = RedisStore(redis_url, prefix=prefix)  # only its client: not opened, so nothing is migrated yet
    try:
        accounts = [
            _v1_account(1, "tok-1", "5", "", "1800000000.5"),
            _v1_account(2, "tok-2", "40", "3", ""),
            _v1_account(3, "tok-3", "", "", ""),
            _v1_account(4, "tok-4", "", "0", "99.25"),
        ]
        async with writer.redis.pipeline(transaction=True) as pipe:
            pipe.set(f"{prefix}:schema", 1)
            for acc in accounts:
                id_, token = acc["id"], acc["token"]
                pipe.hset(f"{prefix}:acct:{id_}", items=[x for field in acc.items() for x in field])
                pipe.zadd(f"{prefix}:acct:ids", {id_: int(id_)})
                pipe.hset(f"{prefix}:acct:by_token", hashlib.sha256(token.encode()).hexdigest(), id_)
            pipe.set(f"{prefix}:acct:next_id", 4)
            pipe.hset(f"{prefix}:meta", mapping={"accounts_version": 7, "settings_version": 0})
            await pipe.execute()
    finally:
        await writer.close()


async def test_layout_1_is_migrated_when_opened(redis_url: str, prefix: str) -> None:
    await _write_v1(redis_url, prefix)
    # Two instances starting together both run the migration; it must apply exactly once.
    stores = [RedisStore(redis_url, prefix=prefix) for _ in range(2)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        accounts = {a.token: a for a in await stores[1].list_accounts()}
        assert {t: a.quotas for t, a in accounts.items()} == {
            "tok-1": {"fast": ModeQuota(remaining=5, reset_at=1_800_000_000.5)},
            "tok-2": {"fast": ModeQuota(remaining=40), "heavy": ModeQuota(remaining=3)},
            "tok-3": {},
            "tok-4": {"fast": ModeQuota(reset_at=99.25), "heavy": ModeQuota(remaining=0)},
        }
        a1 = accounts["tok-1"]
        assert (a1.id, a1.tier, a1.tags, a1.note, a1.requests_ok, a1.user_id) == (1, "basic", ["t"], "n", 1, "")
        for id_ in range(1, 5):
            fields = await stores[0].redis.hkeys(f"{prefix}:acct:{id_}")
            assert not {"remaining", "heavy_remaining", "window_reset_at"} & set(fields), fields
        assert await stores[0].redis.get(f"{prefix}:schema") == "2"
        assert (await stores[0].versions()).accounts == 7

        # The migrated windows work, and opening again changes nothing.
        assert await stores[0].reserve(1, "fast") and not await stores[1].reserve(4, "heavy")
        await stores[0].open()
        assert (await stores[1].get_account("tok-1")) == msgspec.structs.replace(
            a1, quotas={"fast": ModeQuota(remaining=4, reset_at=1_800_000_000.5)}
        )
        await stores[0].add_accounts([NewAccount(token="tok-new")])
        new = await stores[0].get_account("tok-new")
        assert new is not None and new.id == 5
    finally:
        await _drop(stores[0])
        for s in stores:
            await s.close()


async def test_a_newer_layout_is_refused(redis_url: str, prefix: str) -> None:
    s = RedisStore(redis_url, prefix=prefix)
    try:
        await s.redis.set(f"{prefix}:schema", 3)
        with pytest.raises(RuntimeError, match="layout 3"):
            await s.open()
        assert await s.redis.get(f"{prefix}:schema") == "3"
    finally:
        await _drop(s)
        await s.close()
