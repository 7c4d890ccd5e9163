"""Admin credentials and sessions, on every store backend (sessions are shared by replicas)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from grok2api.admin import sessions as admin_auth
from grok2api.admin.session_throttle import LoginThrottle
from grok2api.admin.sessions import SESSION_TTL, AdminAuth, PasswordChangeError, session_hash
from grok2api.config import BootConfig
from grok2api.passwords import ADMIN_HASH_KEY, ADMIN_USER_KEY, hash_password, verify_password
from grok2api.services import Services
from grok2api.store.base import AdminSession, Store
from grok2api.store.redis import RedisStore
from grok2api.store.sql import SqlStore

from harness import STORE_BACKENDS, StoreFactory


def services(tmp_path: Path, store: Store, **env: str) -> Services:
    boot = BootConfig(data_dir=tmp_path / "data", environ=env, admin_password=env.get("GROK2API_ADMIN_PASSWORD", ""))
    return Services(boot, store=store)


async def test_first_start_generates_a_password_logs_it_once_and_stores_a_hash(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="grok2api.admin")
    auth = AdminAuth(services(tmp_path, store))
    await auth.ensure_credentials()
    found = [m.group(1) for r in caplog.records if (m := re.search(r"with password: (\S+)", r.getMessage()))]
    assert len(found) == 1 and len(found[0]) >= 16
    password = found[0]
    stored = await store.load_settings()
    assert password not in repr(stored)  # only the hash is stored
    assert verify_password(password, stored[ADMIN_HASH_KEY])

    caplog.clear()
    again = AdminAuth(services(tmp_path, store))  # a restart, or another worker
    await again.ensure_credentials()
    assert not [r for r in caplog.records if "password" in r.getMessage()]
    assert (await store.load_settings())[ADMIN_HASH_KEY] == stored[ADMIN_HASH_KEY]
    assert (await again.login("admin", password, "1.2.3.4")).token is not None
    assert (await again.login("admin", "admin", "1.2.3.4")).token is None  # no admin/admin


async def _lose_all_data(store: Store) -> None:
    """What a flushed Redis or a fresh database looks like to a running gateway: nothing stored any more."""
    if isinstance(store, RedisStore):
        await store.redis.flushdb()  # the test Redis database is this run's own
        return
    assert isinstance(store, SqlStore)
    async with store.engine.begin() as conn:
        await conn.execute(text("DELETE FROM settings"))


async def test_the_env_password_still_works_after_the_store_lost_its_data(tmp_path: Path, store: Store) -> None:
    auth = AdminAuth(services(tmp_path, store, GROK2API_ADMIN_PASSWORD="from-env-pw"))
    assert (await auth.login("admin", "from-env-pw", "c")).token is not None
    await _lose_all_data(store)
    assert (await auth.login("admin", "from-env-pw", "c")).token is not None  # no restart needed
    assert (await auth.login("admin", "wrong-password", "d")).token is None
    assert ADMIN_HASH_KEY in await store.load_settings()


async def test_env_password_and_username_are_applied_and_follow_changes(tmp_path: Path, store: Store) -> None:
    auth = AdminAuth(services(tmp_path, store, GROK2API_ADMIN_PASSWORD="from-env-1"))
    assert (await auth.login("admin", "from-env-1", "c")).token is not None
    changed = AdminAuth(services(tmp_path, store, GROK2API_ADMIN_PASSWORD="from-env-2", GROK2API_ADMIN_USERNAME="root"))
    assert (await changed.login("admin", "from-env-2", "c")).token is None
    assert (await changed.login("root", "from-env-1", "c")).token is None
    assert (await changed.login("root", "from-env-2", "c")).token is not None
    assert (await store.load_settings())[ADMIN_USER_KEY] == "root"
    assert await changed.username() == "root"
    session = (await changed.login("root", "from-env-2", "c")).session
    assert session is not None
    with pytest.raises(PasswordChangeError, match="GROK2API_ADMIN_PASSWORD"):
        await changed.change_password(session, "from-env-2", "another-one", "another-one")


@pytest.mark.parametrize("kind", STORE_BACKENDS)
async def test_sessions_are_shared_between_replicas_and_a_password_change_ends_the_others(
    tmp_path: Path, store_factory: StoreFactory, kind: str
) -> None:
    one = AdminAuth(services(tmp_path, await store_factory(kind)))
    two = AdminAuth(services(tmp_path, await store_factory(kind, fresh=False)))
    await one.ensure_credentials()
    await one.svc.store.save_settings({ADMIN_HASH_KEY: hash_password("replica-password")})
    a = await one.login("admin", "replica-password", "c")
    b = await two.login("admin", "replica-password", "c")
    assert a.token and b.token and a.session and b.session
    assert (await two.session(a.token)) is not None  # made on one replica, valid on the other
    assert await one.svc.store.get_session(a.token) is None  # the raw token is never the key
    assert (await one.svc.store.get_session(session_hash(a.token))) is not None

    with pytest.raises(PasswordChangeError, match="do not match"):
        await two.change_password(b.session, "replica-password", "new-password-1", "new-password-2")
    with pytest.raises(PasswordChangeError, match="current password is wrong"):
        await two.change_password(b.session, "wrong", "new-password-1", "new-password-1")
    with pytest.raises(PasswordChangeError, match="at least 8"):
        await two.change_password(b.session, "replica-password", "short", "short")
    assert await two.change_password(b.session, "replica-password", "new-password-1", "new-password-1") == 1
    assert await one.session(a.token) is None
    assert await two.session(b.token) is not None
    await two.logout(b.session)
    assert await one.session(b.token) is None
    assert (await one.login("admin", "new-password-1", "c")).token is not None


async def test_session_expiry_slides_only_past_half_life(tmp_path: Path, store: Store) -> None:
    auth = AdminAuth(services(tmp_path, store, GROK2API_ADMIN_PASSWORD="slide-password"))
    now = time.time()
    fresh = AdminSession(
        id_hash=session_hash("fresh"), username="admin", csrf="c", created_at=now, expires_at=now + SESSION_TTL - 60
    )
    old = AdminSession(
        id_hash=session_hash("old"), username="admin", csrf="c", created_at=now - SESSION_TTL, expires_at=now + 60
    )
    await store.put_session(fresh)
    await store.put_session(old)
    got = await auth.session("fresh")
    assert got is not None and got.expires_at == pytest.approx(fresh.expires_at)
    slid = await auth.session("old")
    assert slid is not None and slid.expires_at > now + SESSION_TTL - 5
    stored = await store.get_session(session_hash("old"))
    assert stored is not None and stored.expires_at > now + SESSION_TTL - 5
    expired = AdminSession(
        id_hash=session_hash("gone"), username="admin", csrf="c", created_at=now - 10, expires_at=now - 1
    )
    await store.put_session(expired)
    assert await auth.session("gone") is None
    assert await auth.session(None) is None and await auth.session("x" * 1000) is None


async def test_throttled_login_checks_nothing(tmp_path: Path, store: Store) -> None:
    auth = AdminAuth(
        services(tmp_path, store, GROK2API_ADMIN_PASSWORD="throttle-pass"),
        LoginThrottle(store, max_failures=2, window=60),
    )
    for _ in range(2):
        assert (await auth.login("admin", "bad", "10.0.0.1")).retry_after == 0
    locked = await auth.login("admin", "throttle-pass", "10.0.0.1")
    assert locked.token is None and 50 < locked.retry_after <= 60
    other_client = await auth.login("admin", "throttle-pass", "10.0.0.2")
    assert other_client.token is not None


async def test_parallel_failed_logins_cannot_outrun_the_throttle(tmp_path: Path, store: Store) -> None:
    """A burst of guesses sent at once must not all be checked before the first failure is counted."""
    auth = AdminAuth(
        services(tmp_path, store, GROK2API_ADMIN_PASSWORD="burst-password"),
        LoginThrottle(store, max_failures=5, window=60),
    )
    await auth.ensure_credentials()
    results = await asyncio.gather(*(auth.login("admin", f"guess-{i}", "10.9.9.9") for i in range(30)))
    checked = [r for r in results if r.retry_after == 0]
    assert len(checked) <= 5
    assert (await auth.login("admin", "burst-password", "10.9.9.9")).token is None  # still locked out


async def test_first_start_password_is_logged_once_even_when_a_worker_hashes_slowly(
    tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers start together; one of them is slow to hash (a busy CPU). Exactly one password may be
    printed, and it must be the one that works."""
    caplog.set_level(logging.WARNING, logger="grok2api.admin")
    calls = 0

    def slow_second_hash(password: str) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            time.sleep(0.8)
        return hash_password(password)

    monkeypatch.setattr(admin_auth, "hash_password", slow_second_hash)
    one, two = AdminAuth(services(tmp_path, store)), AdminAuth(services(tmp_path, store))
    await asyncio.gather(one.ensure_credentials(), two.ensure_credentials())
    printed = [m.group(1) for r in caplog.records if (m := re.search(r"with password: (\S+)", r.getMessage()))]
    assert len(printed) == 1
    assert verify_password(printed[0], (await store.load_settings())[ADMIN_HASH_KEY])


async def test_password_change_guesses_are_throttled_per_session(tmp_path: Path, store: Store) -> None:
    """A stolen session must not be a way to brute-force the current password without limit."""
    auth = AdminAuth(services(tmp_path, store), LoginThrottle(store, max_failures=3, window=60))
    await auth.ensure_credentials()
    await store.save_settings({ADMIN_HASH_KEY: hash_password("the-real-one")})
    session = (await auth.login("admin", "the-real-one", "10.1.1.1")).session
    assert session is not None
    guesses = [auth.change_password(session, f"guess-{i}", "new-password-1", "new-password-1") for i in range(10)]
    errors = [str(r) for r in await asyncio.gather(*guesses, return_exceptions=True)]
    assert sum("current password is wrong" in e for e in errors) <= 3
    with pytest.raises(PasswordChangeError, match="[Tt]oo many"):
        await auth.change_password(session, "the-real-one", "new-password-1", "new-password-1")
    assert (await auth.login("admin", "the-real-one", "10.1.1.2")).token is not None  # unchanged
