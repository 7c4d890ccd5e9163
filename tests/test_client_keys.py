"""Client authentication for /v1: the shared api_key, stored client keys, model allowlists and rpm limits."""

from __future__ import annotations

import asyncio
import hashlib
import re
from types import SimpleNamespace
from typing import Any

import pytest

from grok2api import client_keys as auth
from grok2api.client_keys import ClientKeys, hash_key, new_key
from grok2api.errors import AuthError, PermissionDenied, RateLimited
from grok2api.store.base import ClientKey, Store

from harness import StoreFactory


class Clock:
    """Stands in for the ``time`` module inside grok2api.auth."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock(1_700_000_000.0 - 1_700_000_000.0 % 60)  # the start of a minute
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=c.time))
    return c


def _key(secret: str, **fields: Any) -> ClientKey:
    return ClientKey(
        id=fields.pop("id", "k-" + secret[-4:]), name="test", key_hash=hash_key(secret), prefix=secret[:10], **fields
    )


def _keys(*keys: ClientKey) -> ClientKeys:
    ck = ClientKeys()
    ck.load(list(keys))
    return ck


# ---- keys --------------------------------------------------------------------------------------


def test_new_key_format_and_uniqueness() -> None:
    keys = {new_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert re.fullmatch(r"sk-g2a-[A-Za-z0-9_-]{43}", key), key


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("sk-abc") == hashlib.sha256(b"sk-abc").hexdigest()
    assert hash_key("sk-abc") != hash_key("sk-abd")


def test_load_replaces_the_previous_keys() -> None:
    ck = _keys(_key("sk-old-0001"))
    ck.load([_key("sk-new-0002")])
    assert set(ck.by_hash) == {hash_key("sk-new-0002")}
    with pytest.raises(AuthError):
        ck.authenticate("Bearer sk-old-0001", "")


# ---- authenticate ------------------------------------------------------------------------------


def test_open_gateway_when_no_api_key_and_no_keys() -> None:
    ck = ClientKeys()
    assert ck.authenticate(None, "") is None
    assert ck.authenticate("Bearer anything", "") is None
    assert ck.authenticate("garbage", "") is None


@pytest.mark.parametrize("header", [None, "", "sk-shared", "Basic c2stc2hhcmVk", "Bearer", "Token sk-shared"])
def test_missing_or_malformed_header_is_refused(header: str | None) -> None:
    with pytest.raises(AuthError) as exc:
        ClientKeys().authenticate(header, "sk-shared")
    assert exc.value.status == 401
    assert exc.value.code == "missing_api_key"


def test_missing_header_refused_when_only_stored_keys_exist() -> None:
    ck = _keys(_key("sk-stored-0001"))
    with pytest.raises(AuthError) as exc:
        ck.authenticate(None, "")
    assert exc.value.code == "missing_api_key"


def test_shared_api_key() -> None:
    ck = ClientKeys()
    assert ck.authenticate("Bearer sk-shared", "sk-shared") is None
    assert ck.authenticate("bearer   sk-shared  ", "sk-shared") is None  # scheme is case-insensitive
    for wrong in ("Bearer sk-share", "Bearer sk-shared2", "Bearer SK-SHARED"):
        with pytest.raises(AuthError) as exc:
            ck.authenticate(wrong, "sk-shared")
        assert exc.value.code == "invalid_api_key" and exc.value.status == 401


def test_stored_key_is_found_by_hash() -> None:
    stored = _key("sk-g2a-stored-one", id="k1")
    ck = _keys(stored, _key("sk-g2a-stored-two", id="k2"))
    found = ck.authenticate("Bearer sk-g2a-stored-one", "")
    assert found is not None and found.id == "k1"
    # Alongside a shared api_key, both work.
    assert ck.authenticate("Bearer sk-g2a-stored-two", "sk-shared").id == "k2"  # type: ignore[union-attr]
    assert ck.authenticate("Bearer sk-shared", "sk-shared") is None
    # The secret is only ever looked up by its hash.
    with pytest.raises(AuthError) as exc:
        ck.authenticate(f"Bearer {stored.key_hash}", "")
    assert exc.value.code == "invalid_api_key"


def test_revoked_key_is_refused() -> None:
    ck = _keys(_key("sk-revoked-1", revoked=True))
    with pytest.raises(AuthError) as exc:
        ck.authenticate("Bearer sk-revoked-1", "")
    assert exc.value.code == "invalid_api_key"


def test_expired_key_is_refused(clock: Clock) -> None:
    ck = _keys(_key("sk-expiring", expires_at=clock.now + 30))
    assert ck.authenticate("Bearer sk-expiring", "") is not None
    clock.now += 31
    with pytest.raises(AuthError) as exc:
        ck.authenticate("Bearer sk-expiring", "")
    assert exc.value.code == "expired_api_key" and exc.value.status == 401


# ---- check ------------------------------------------------------------------------------------


@pytest.fixture
async def windows(store_factory: StoreFactory) -> Store:
    """Where rpm windows are counted: the store (SQLite here; every backend passes the store's own tests)."""
    return await store_factory("sqlite")


def _counted(windows: Store, *keys: ClientKey) -> ClientKeys:
    ck = ClientKeys(windows)
    ck.load(list(keys))
    return ck


async def test_check_allows_everything_for_the_shared_key() -> None:
    ck = _keys(_key("sk-tight", id="k-tight", rpm=1, models=["grok-3-fast"]))
    for _ in range(50):  # no key object (shared api_key or open gateway): no allowlist, no rpm, nothing counted
        await ck.check(None, "grok-4-heavy")


async def test_model_allowlist() -> None:
    key = _key("sk-limited", models=["grok-3-fast", "grok-4"])
    ck = _keys(key)
    await ck.check(key, "grok-3-fast")
    await ck.check(key, "grok-4")
    with pytest.raises(PermissionDenied) as exc:
        await ck.check(key, "grok-4-heavy")
    assert exc.value.status == 403 and exc.value.code == "model_not_allowed"
    assert "grok-4-heavy" in exc.value.message
    # An empty list allows every model.
    everything = _key("sk-all", models=[])
    await ck.check(everything, "grok-4-heavy")


async def test_rpm_limit_then_a_new_window(windows: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _key("sk-rpm", id="k-rpm", rpm=3)
    ck = _counted(windows, key)
    for _ in range(3):
        await ck.check(key, "grok-3-fast")
    with pytest.raises(RateLimited) as exc:
        await ck.check(key, "grok-3-fast")
    assert exc.value.status == 429 and exc.value.code == "rate_limit_exceeded"
    retry_after = exc.value.headers.get("Retry-After")
    assert retry_after is not None and 59 <= int(retry_after) <= 60  # until the key's window ends

    monkeypatch.setattr(auth, "RPM_WINDOW", 0.6)
    short = _key("sk-short", id="k-short", rpm=1)
    ck.load([short])
    await ck.check(short, "grok-3-fast")
    with pytest.raises(RateLimited) as exc:
        await ck.check(short, "grok-3-fast")
    assert exc.value.headers["Retry-After"] == "1"  # never 0
    await asyncio.sleep(0.7)
    await ck.check(short, "grok-3-fast")  # the next window


async def test_rpm_is_counted_per_key(windows: Store) -> None:
    one, two = _key("sk-one", id="k-one", rpm=1), _key("sk-two", id="k-two", rpm=1)
    ck = _counted(windows, one, two)
    await ck.check(one, "grok-3-fast")
    await ck.check(two, "grok-3-fast")
    with pytest.raises(RateLimited):
        await ck.check(one, "grok-3-fast")
    unlimited = _key("sk-free", id="k-free", rpm=0)
    for _ in range(100):
        await ck.check(unlimited, "grok-3-fast")
    assert await windows.hit_window("rpm:k-free", 60, 1) == 0.0  # an unlimited key is never counted


async def test_workers_share_one_rpm_window(windows: Store) -> None:
    """Every worker has its own ClientKeys; the store holds the one count they all take from."""
    key = _key("sk-shared", id="k-shared", rpm=10)
    workers = [_counted(windows, key) for _ in range(4)]
    results = await asyncio.gather(
        *(workers[i % 4].check(key, "grok-3-fast") for i in range(40)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 10
    assert all(isinstance(r, RateLimited) for r in results if r is not None)


async def test_model_refusal_does_not_spend_the_rpm_budget(windows: Store) -> None:
    key = _key("sk-both", id="k-both", rpm=1, models=["grok-3-fast"])
    ck = _counted(windows, key)
    for _ in range(3):
        with pytest.raises(PermissionDenied):
            await ck.check(key, "grok-4")
    await ck.check(key, "grok-3-fast")
