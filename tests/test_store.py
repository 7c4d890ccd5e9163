"""The storage contract, run against every backend (see the ``store`` fixture in harness.py)."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

from grok2api.store.base import (
    Account,
    AccountPatch,
    AccountState,
    AddResult,
    AdminSession,
    Charge,
    ClientKey,
    MediaEntry,
    ModeQuota,
    NewAccount,
    Settlement,
    Store,
    Tier,
    UsageRow,
    VideoImage,
    VideoJob,
    VideoPatch,
    VideoStatus,
)

from harness import StoreFactory


def fast(remaining: int | None = None, **window: Any) -> dict[str, ModeQuota]:
    return {"fast": ModeQuota(remaining=remaining, **window)}


def learned(remaining: int | None = None, **window: Any) -> ModeQuota:
    return ModeQuota(remaining=remaining, **window)


async def _add(store: Store, *items: NewAccount) -> list[Account]:
    await store.add_accounts(items)
    return await store.list_accounts()


async def _get(store: Store, token: str) -> Account:
    account = await store.get_account(token)
    assert account is not None, token
    return account


# accounts


async def test_add_and_list(store: Store) -> None:
    before = time.time()
    windows = {
        "fast": ModeQuota(remaining=10, total=30, window_seconds=7200, reset_at=before + 3600.25),
        "heavy": ModeQuota(remaining=2),
    }
    result = await store.add_accounts(
        [
            NewAccount(token="tok-a", quotas=windows, tags=["eu", "x"], note="first", user_id="u-a"),
            NewAccount(token="tok-b", tier=Tier.SUPER, created_at=1234.5),
            NewAccount(token="tok-c", state=AccountState.DISABLED, state_reason="manual"),
        ]
    )
    assert result == AddResult(added=3, updated=0)
    accounts = await store.list_accounts()
    assert [a.token for a in accounts] == ["tok-a", "tok-b", "tok-c"]
    assert accounts[0].id < accounts[1].id < accounts[2].id
    a, b, c = accounts
    assert (a.tier, a.state, a.remaining, a.heavy_remaining, a.tags, a.note) == (
        "basic",
        "active",
        10,
        2,
        ["eu", "x"],
        "first",
    )
    assert (a.quotas, a.window_reset_at, a.user_id) == (windows, before + 3600.25, "u-a")
    assert before - 1 <= a.created_at <= time.time() + 1
    assert (a.failure_count, a.requests_ok, a.requests_failed, a.last_used_at) == (0, 0, 0, None)
    assert (b.tier, b.created_at, b.remaining, b.heavy_remaining, b.tags, b.note) == (
        "super",
        1234.5,
        None,
        None,
        [],
        "",
    )
    assert (b.quotas, b.user_id, b.window_reset_at) == ({}, "", None)
    assert (c.state, c.state_reason) == ("disabled", "manual")
    assert await store.get_account("tok-b") == b
    assert await store.get_account("tok-a") == a
    assert await store.get_account("missing") is None


async def test_heavy_tier(store: Store) -> None:
    (a,) = await _add(store, NewAccount(token="tok-h", tier=Tier.HEAVY))
    assert a.tier == "heavy"
    assert await store.update_account("tok-h", AccountPatch(tier=Tier.SUPER))
    assert (await _get(store, "tok-h")).tier == "super"


async def test_add_existing_keeps_history(store: Store) -> None:
    (a,) = await _add(store, NewAccount(token="tok-a", quotas=fast(5), tags=["old"], note="n", created_at=100.0))
    assert await store.reserve(a.id, "fast")
    await store.settle(a.id, Settlement(ok=True))
    await store.settle(a.id, Settlement(failure="boom"))

    again_item = NewAccount(token="tok-a", tier=Tier.SUPER, quotas=fast(99, total=140), created_at=999.0)
    result = await store.add_accounts([again_item])
    assert result == AddResult(added=0, updated=1)
    again = await _get(store, "tok-a")
    assert again.id == a.id
    assert again.tier == "super"
    # quota windows, counters, created_at and the fields given as None are kept
    assert (again.quotas, again.requests_ok, again.requests_failed, again.created_at) == (fast(4), 1, 1, 100.0)
    assert (again.tags, again.note, again.state, again.last_failure, again.user_id) == (
        ["old"],
        "n",
        "active",
        "boom",
        "",
    )

    result = await store.add_accounts(
        [
            NewAccount(
                token="tok-a", tags=["new"], note="m", state=AccountState.DISABLED, state_reason="off", user_id="u1"
            )
        ]
    )
    assert result == AddResult(added=0, updated=1)
    again = await _get(store, "tok-a")
    assert (again.tier, again.tags, again.note, again.state, again.state_reason, again.user_id) == (
        "basic",
        ["new"],
        "m",
        "disabled",
        "off",
        "u1",
    )
    assert again.remaining == 4
    changed_at = again.state_changed_at
    assert changed_at is not None

    # the same state again is not a state change; a user id given as None is kept
    await store.add_accounts([NewAccount(token="tok-a", state=AccountState.DISABLED)])
    again = await _get(store, "tok-a")
    assert (again.state_changed_at, again.user_id) == (changed_at, "u1")


async def test_add_dedupes_within_one_call(store: Store) -> None:
    result = await store.add_accounts(
        [NewAccount(token="tok-a"), NewAccount(token="tok-b"), NewAccount(token="tok-a", tier=Tier.SUPER)]
    )
    assert result == AddResult(added=2, updated=0)
    accounts = await store.list_accounts()
    assert [(x.token, x.tier) for x in accounts] == [("tok-a", "super"), ("tok-b", "basic")]

    result = await store.add_accounts([NewAccount(token="tok-b"), NewAccount(token="tok-b"), NewAccount(token="tok-c")])
    assert result == AddResult(added=1, updated=1)
    assert len(await store.list_accounts()) == 3


async def test_add_nothing(store: Store) -> None:
    assert await store.add_accounts([]) == AddResult(added=0, updated=0)
    assert await store.list_accounts() == []


async def test_remove_accounts(store: Store) -> None:
    await _add(store, NewAccount(token="tok-a", quotas=fast(3)), NewAccount(token="tok-b"), NewAccount(token="tok-c"))
    assert await store.remove_accounts(["tok-a", "missing", "tok-c", "tok-a"]) == 2
    assert [a.token for a in await store.list_accounts()] == ["tok-b"]
    assert await store.get_account("tok-a") is None
    assert await store.remove_accounts(["tok-a"]) == 0
    # a removed account's windows go with it: the same token added again starts unknown
    (_, again) = await _add(store, NewAccount(token="tok-a"))
    assert again.token == "tok-a" and again.quotas == {}


async def test_removed_id_is_not_reused(store: Store) -> None:
    a, b = await _add(store, NewAccount(token="tok-a"), NewAccount(token="tok-b"))
    await store.remove_accounts(["tok-b"])
    (_, c) = await _add(store, NewAccount(token="tok-c"))
    assert c.id > b.id > a.id


async def test_update_account(store: Store) -> None:
    windows = {"fast": ModeQuota(remaining=7, total=30), "heavy": ModeQuota(remaining=3)}
    (a,) = await _add(store, NewAccount(token="tok-a", quotas=windows, tags=["x"], note="n"))
    await store.settle(a.id, Settlement(failure="f", counts_towards_invalid=True))
    assert (await _get(store, "tok-a")).failure_count == 1

    patch = AccountPatch(tier=Tier.SUPER, tags=["y", "z"], quotas=fast(None))
    assert await store.update_account("tok-a", patch)
    got = await _get(store, "tok-a")
    # the fast window is replaced whole (here by an unknown one); heavy is untouched
    assert (got.tier, got.tags, got.remaining, got.quotas) == ("super", ["y", "z"], None, {"heavy": windows["heavy"]})
    # fields left UNSET are untouched
    assert (got.heavy_remaining, got.note, got.failure_count, got.state, got.user_id) == (3, "n", 1, "active", "")
    assert got.state_changed_at is None

    before = time.time()
    patch = AccountPatch(
        state=AccountState.COOLING,
        state_reason="manual",
        cooldown_until=before + 60,
        failure_count=0,
        quotas={"fast": ModeQuota(reset_at=before + 3600), "heavy": ModeQuota(remaining=9)},
        note="",
        user_id="u-1",
    )
    assert await store.update_account("tok-a", patch)
    got = await _get(store, "tok-a")
    assert (got.state, got.state_reason, got.cooldown_until, got.failure_count) == (
        "cooling",
        "manual",
        before + 60,
        0,
    )
    assert (got.window_reset_at, got.heavy_remaining, got.note, got.user_id) == (before + 3600, 9, "", "u-1")
    assert got.state_changed_at is not None and got.state_changed_at >= before - 1

    changed_at = got.state_changed_at
    assert await store.update_account("tok-a", AccountPatch(state=AccountState.COOLING, state_reason="again"))
    got = await _get(store, "tok-a")
    assert (got.state_reason, got.state_changed_at) == ("again", changed_at)

    assert await store.update_account("missing", AccountPatch(note="x")) is False
    assert await store.update_account("missing", AccountPatch(quotas=fast(1))) is False
    assert await store.update_account("tok-a", AccountPatch()) is True
    assert await store.update_account("missing", AccountPatch()) is False


async def test_quotas_round_trip_through_add_patch_and_list(store: Store) -> None:
    reset = 1_800_000_000.123456789
    windows = {
        "fast": ModeQuota(remaining=29, total=30, window_seconds=7200, reset_at=reset),
        "auto": ModeQuota(remaining=0, total=20, window_seconds=7200),
        "expert": ModeQuota(total=0),  # not available to this account
        "grok-420-computer-use-sa": ModeQuota(remaining=5),
        "heavy": ModeQuota(),  # entirely unknown: the same as no window
    }
    a, b = await _add(store, NewAccount(token="tok-a", quotas=windows), NewAccount(token="tok-b", quotas={}))
    expected = {m: q for m, q in windows.items() if m != "heavy"}
    assert (a.quotas, b.quotas) == (expected, {})
    assert (a.remaining, a.heavy_remaining, a.window_reset_at) == (29, None, reset)

    v = (await store.versions()).accounts
    patch = AccountPatch(quotas={"auto": ModeQuota(remaining=20, total=20), "heavy": ModeQuota(remaining=1)})
    assert await store.update_accounts(["tok-a", "tok-b", "missing"], patch) == 2
    assert (await store.versions()).accounts > v  # a patch, like any other
    a, b = await store.list_accounts()
    expected.update(auto=ModeQuota(remaining=20, total=20), heavy=ModeQuota(remaining=1))
    assert a.quotas == expected
    assert b.quotas == {"auto": ModeQuota(remaining=20, total=20), "heavy": ModeQuota(remaining=1)}
    assert await store.get_account("tok-a") == a and await store.get_account("tok-b") == b

    assert await store.reserve(a.id, "grok-420-computer-use-sa")
    assert (await _get(store, "tok-a")).quotas["grok-420-computer-use-sa"] == ModeQuota(remaining=4)


async def test_versions_bump(store: Store) -> None:
    v0 = await store.versions()
    assert (v0.accounts, v0.settings) == (0, 0)

    (a,) = await _add(store, NewAccount(token="tok-a", quotas=fast(5)))
    v1 = await store.versions()
    assert v1.accounts > v0.accounts and v1.settings == v0.settings

    # plain quota moves and counters do not invalidate snapshots
    assert await store.reserve(a.id, "fast")
    assert await store.reserve(a.id, "auto")
    await store.settle(a.id, Settlement(mode="fast", refund=1, ok=True, learned=learned(4, total=30)))
    await store.settle(a.id, Settlement(mode="auto", learned=learned(3), learned_cap=True))
    await store.settle(a.id, Settlement(failure="transient"))
    assert await store.versions() == v1

    assert await store.update_account("tok-a", AccountPatch(note="n"))
    v2 = await store.versions()
    assert v2.accounts > v1.accounts

    await store.settle(a.id, Settlement(state=AccountState.COOLING, cooldown_until=time.time() + 60))
    v3 = await store.versions()
    assert v3.accounts > v2.accounts

    await store.save_settings({"x": 1})
    v4 = await store.versions()
    assert v4.settings > v3.settings and v4.accounts == v3.accounts

    await store.remove_accounts(["tok-a"])
    v5 = await store.versions()
    assert v5.accounts > v4.accounts


# quota


async def test_reserve(store: Store) -> None:
    a, unknown = await _add(store, NewAccount(token="tok-a", quotas=fast(3, total=30)), NewAccount(token="tok-u"))
    assert await store.reserve(a.id, "fast")
    got = await _get(store, "tok-a")
    assert got.quotas == fast(2, total=30)  # one query taken, the rest of the window untouched
    assert got.last_used_at is None  # stamped by settle, not by reserve
    assert await store.reserve(a.id, "fast")
    assert await store.reserve(a.id, "fast")  # exactly the remainder
    assert (await _get(store, "tok-a")).remaining == 0
    assert not await store.reserve(a.id, "fast")  # none left: nothing taken
    assert (await _get(store, "tok-a")).remaining == 0

    # an unknown window may be reserved, again and again, and stays unknown
    for mode in ("fast", "fast", "expert", "grok-420-computer-use-sa"):
        assert await store.reserve(unknown.id, mode)
    got = await _get(store, "tok-u")
    assert (got.remaining, got.quotas, got.last_used_at) == (None, {}, None)
    assert (await _get(store, "tok-a")).quotas == fast(0, total=30)

    assert not await store.reserve(987654, "fast")
    assert not await store.reserve(987654, "fast")  # still nothing there


async def test_reserve_takes_from_its_own_mode(store: Store) -> None:
    windows = {"fast": ModeQuota(remaining=10), "heavy": ModeQuota(remaining=1), "auto": ModeQuota(remaining=0)}
    (a,) = await _add(store, NewAccount(token="tok-a", quotas=windows))
    assert await store.reserve(a.id, "heavy")
    got = await _get(store, "tok-a")
    assert (got.remaining, got.heavy_remaining) == (10, 0)
    assert not await store.reserve(a.id, "heavy")
    assert not await store.reserve(a.id, "auto")  # an empty window does not fall back to another
    assert await store.reserve(a.id, "fast")
    assert await store.reserve(a.id, "expert")  # a mode never seen: unknown, reservable
    got = await _get(store, "tok-a")
    assert got.quotas == {
        "fast": ModeQuota(remaining=9),
        "heavy": ModeQuota(remaining=0),
        "auto": ModeQuota(remaining=0),
    }


async def test_an_empty_window_whose_reset_passed_is_reservable_again(store: Store) -> None:
    past, future = time.time() - 5, time.time() + 3600
    windows = {
        "fast": ModeQuota(remaining=0, total=30, reset_at=past),
        "auto": ModeQuota(remaining=0, total=20, reset_at=future),
    }
    (a,) = await _add(store, NewAccount(token="tok-a", quotas=windows))
    assert not await store.reserve(a.id, "auto")  # empty until its reset
    assert await store.reserve(a.id, "fast")  # rolled over: the stale count is dropped, not overdrawn
    got = await _get(store, "tok-a")
    assert got.quotas["fast"].remaining is None and got.quotas["fast"].reset_at is None
    assert got.quotas["fast"].total == 30  # what the window holds is still known
    assert got.quotas["auto"] == ModeQuota(remaining=0, total=20, reset_at=future)
    assert await store.reserve(a.id, "fast")  # unknown now: reservable until learned again


@pytest.mark.parametrize(
    "state", [AccountState.COOLING, AccountState.INVALID, AccountState.BLOCKED, AccountState.DISABLED]
)
async def test_reserve_needs_an_active_account(store: Store, state: str) -> None:
    a, b = await _add(store, NewAccount(token="tok-a", quotas=fast(5)), NewAccount(token="tok-b"))
    assert await store.update_account("tok-a", AccountPatch(state=state))
    assert await store.update_account("tok-b", AccountPatch(state=state))
    assert not await store.reserve(a.id, "fast")
    assert not await store.reserve(b.id, "fast")  # even with an unknown window
    assert not await store.reserve(a.id, "heavy")  # or a mode it has no window for
    got = await _get(store, "tok-a")
    assert (got.quotas, got.last_used_at) == (fast(5), None)
    assert (await _get(store, "tok-b")).quotas == {}

    assert await store.update_account("tok-a", AccountPatch(state=AccountState.ACTIVE))
    assert await store.reserve(a.id, "fast") and await store.reserve(a.id, "heavy")


async def test_concurrent_reserve_is_exact(store: Store) -> None:
    accounts = await _add(store, *(NewAccount(token=f"tok-{i}", quotas=fast(10)) for i in range(3)))
    ids = [a.id for a in accounts for _ in range(40)]
    random.Random(7).shuffle(ids)
    results = await asyncio.gather(*(store.reserve(i, "fast") for i in ids))
    for account in accounts:
        taken = sum(ok for i, ok in zip(ids, results, strict=True) if i == account.id)
        assert taken == 10
    assert [a.remaining for a in await store.list_accounts()] == [0, 0, 0]


async def test_concurrent_reserve_never_overdraws(store: Store) -> None:
    (a,) = await _add(store, NewAccount(token="tok-a", quotas={"fast": learned(10), "heavy": learned(7)}))
    results = await asyncio.gather(
        *(store.reserve(a.id, "fast") for _ in range(20)),
        *(store.reserve(a.id, "heavy") for _ in range(20)),
        *(store.reserve(a.id, "auto") for _ in range(20)),  # unknown, created by the first of them
    )
    assert sum(results[:20]) == 10 and sum(results[20:40]) == 7 and all(results[40:])
    got = await _get(store, "tok-a")
    assert (got.remaining, got.heavy_remaining, got.quotas.get("auto")) == (0, 0, None)


@pytest.mark.parametrize(
    "kind", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql), pytest.param("redis", marks=pytest.mark.redis)]
)
async def test_two_instances_never_overdraw_one_window(store_factory: StoreFactory, kind: str) -> None:
    # Two gateway instances on one database: reservations race on the same (account, mode) window while
    # settlements of the same account (other windows, and the state row) run beside them.
    first = await store_factory(kind)
    second = await store_factory(kind, fresh=False)
    (a,) = await _add(first, NewAccount(token="tok-a", quotas={"fast": learned(25), "heavy": learned(3)}))
    stores = (first, second)
    reserves = [stores[i % 2].reserve(a.id, "fast") for i in range(120)]
    firsts = [stores[i % 2].reserve(a.id, "expert") for i in range(10)]  # the window's first use, from both
    settles = [
        stores[i % 2].settle(a.id, Settlement(mode="heavy", refund=1, ok=True, failure=None if i % 3 else "x"))
        for i in range(20)
    ]
    results = await asyncio.gather(asyncio.gather(*reserves, *firsts), asyncio.gather(*settles))
    taken: list[bool] = results[0]
    assert sum(taken[:120]) == 25  # never more than the window held
    assert all(taken[120:])  # an unknown window is reservable, however the race goes
    for store in stores:
        got = await _get(store, "tok-a")
        assert (got.remaining, got.heavy_remaining, got.requests_ok) == (0, 23, 20)
        assert "expert" not in got.quotas and got.last_used_at is not None
    assert not await second.reserve(a.id, "fast")


async def test_concurrent_imports_of_one_token(store: Store) -> None:
    results = await asyncio.gather(
        *(store.add_accounts([NewAccount(token="shared"), NewAccount(token=f"own-{i}")]) for i in range(8))
    )
    assert sum(r.added for r in results) == 9  # "shared" is created once, then updated
    assert sum(r.updated for r in results) == 7
    tokens = [a.token for a in await store.list_accounts()]
    assert sorted(tokens) == sorted(["shared", *(f"own-{i}" for i in range(8))])


async def test_concurrent_settles_lose_no_update(store: Store) -> None:
    (a,) = await _add(store, NewAccount(token="tok-a", quotas=fast(0)))
    settle = Settlement(mode="fast", refund=1, failure="x", counts_towards_invalid=True, invalid_after=100)
    results = await asyncio.gather(
        *(store.settle(a.id, settle) for _ in range(25)), *(store.reserve(a.id, "fast") for _ in range(10))
    )
    taken = sum(1 for r in results[25:] if r)
    got = await _get(store, "tok-a")
    assert (got.requests_failed, got.failure_count, got.state) == (25, 25, "active")
    assert got.remaining == 25 - taken


# settle


async def test_settle_refund(store: Store) -> None:
    a, u = await _add(
        store, NewAccount(token="tok-a", quotas={"fast": learned(5), "heavy": learned(4)}), NewAccount(token="tok-u")
    )
    assert await store.reserve(a.id, "fast")
    assert await store.reserve(a.id, "fast")
    await store.settle(a.id, Settlement(mode="fast", refund=2))
    got = await _get(store, "tok-a")
    assert (got.remaining, got.heavy_remaining) == (5, 4)

    for _ in range(3):
        assert await store.reserve(a.id, "heavy")
    await store.settle(a.id, Settlement(mode="heavy", refund=1))
    got = await _get(store, "tok-a")
    assert (got.remaining, got.heavy_remaining) == (5, 2)

    await store.settle(a.id, Settlement(mode="fast", refund=-2, ok=True))  # a negative refund charges more
    await store.settle(a.id, Settlement(refund=3))  # no mode: no window to give it to
    assert (await _get(store, "tok-a")).quotas == {"fast": learned(3), "heavy": learned(2)}

    assert await store.reserve(u.id, "fast")
    await store.settle(u.id, Settlement(mode="fast", refund=3))
    await store.settle(u.id, Settlement(mode="heavy", refund=3))
    assert (await _get(store, "tok-u")).quotas == {}  # unknown stays unknown


async def test_settle_stamps_last_used_at(store: Store) -> None:
    (a,) = await _add(store, NewAccount(token="tok-a"))
    before = time.time()
    assert await store.reserve(a.id, "fast")
    assert (await _get(store, "tok-a")).last_used_at is None
    await store.settle(a.id, Settlement(mode="fast", ok=True))
    stamped = (await _get(store, "tok-a")).last_used_at
    assert stamped is not None and before - 1 <= stamped <= time.time() + 1
    await asyncio.sleep(0.01)
    await store.settle(a.id, Settlement())  # even a settlement with nothing else in it
    again = (await _get(store, "tok-a")).last_used_at
    assert again is not None and again > stamped


async def test_settle_ok_and_failures(store: Store) -> None:
    (a,) = await _add(store, NewAccount(token="tok-a"))
    before = time.time()
    await store.settle(a.id, Settlement(failure="timeout"))  # does not count towards invalid
    got = await _get(store, "tok-a")
    assert (got.requests_failed, got.failure_count, got.last_failure, got.state) == (1, 0, "timeout", "active")
    assert got.last_failure_at is not None and got.last_failure_at >= before - 1

    await store.settle(a.id, Settlement(failure="401", counts_towards_invalid=True))
    await store.settle(a.id, Settlement(failure="401", counts_towards_invalid=True))
    got = await _get(store, "tok-a")
    assert (got.requests_failed, got.failure_count, got.state) == (3, 2, "active")

    await store.settle(a.id, Settlement(ok=True))
    got = await _get(store, "tok-a")
    assert (got.requests_ok, got.requests_failed, got.failure_count, got.last_failure) == (1, 3, 0, "401")


async def test_settle_invalid_after_n(store: Store) -> None:
    a, b = await _add(store, NewAccount(token="tok-a"), NewAccount(token="tok-b"))
    s = Settlement(failure="unauthorized", counts_towards_invalid=True, invalid_after=3)
    await store.settle(a.id, s)
    await store.settle(a.id, s)
    got = await _get(store, "tok-a")
    assert (got.state, got.failure_count) == ("active", 2)
    v = await store.versions()

    before = time.time()
    await store.settle(a.id, s)
    got = await _get(store, "tok-a")
    assert (got.state, got.state_reason, got.failure_count) == ("invalid", "unauthorized", 3)
    assert got.state_changed_at is not None and got.state_changed_at >= before - 1
    assert (await store.versions()).accounts > v.accounts
    assert not await store.reserve(a.id, "fast")
    assert (await _get(store, "tok-b")).state == "active"  # only the settled account moves

    await store.settle(b.id, Settlement(failure="bad", counts_towards_invalid=True, invalid_after=1))
    assert (await _get(store, "tok-b")).state == "invalid"


async def test_settle_does_not_override_disabled(store: Store) -> None:
    (a,) = await _add(store, NewAccount(token="tok-a", state=AccountState.DISABLED, state_reason="operator"))
    for _ in range(3):
        await store.settle(a.id, Settlement(failure="401", counts_towards_invalid=True, invalid_after=2))
    await store.settle(a.id, Settlement(state=AccountState.COOLING, state_reason="429", cooldown_until=1.0))
    got = await _get(store, "tok-a")
    assert (got.state, got.state_reason, got.cooldown_until) == ("disabled", "operator", None)
    assert (got.requests_failed, got.failure_count, got.last_failure) == (3, 3, "401")


async def test_settle_explicit_state(store: Store) -> None:
    (a,) = await _add(store, NewAccount(token="tok-a", quotas=fast(5)))
    until = time.time() + 120
    assert await store.reserve(a.id, "fast")
    await store.settle(
        a.id,
        Settlement(
            mode="fast",
            refund=1,
            failure="rate limited",
            state=AccountState.COOLING,
            state_reason="429",
            cooldown_until=until,
        ),
    )
    got = await _get(store, "tok-a")
    assert (got.state, got.state_reason, got.cooldown_until, got.remaining) == ("cooling", "429", until, 5)
    assert (got.requests_failed, got.last_failure, got.failure_count) == (1, "rate limited", 0)
    assert got.state_changed_at is not None
    assert not await store.reserve(a.id, "fast")

    await store.settle(a.id, Settlement(state=AccountState.ACTIVE))
    got = await _get(store, "tok-a")
    assert (got.state, got.state_reason, got.cooldown_until) == ("active", "", None)
    assert await store.reserve(a.id, "fast")

    await store.settle(a.id, Settlement(state=AccountState.BLOCKED, state_reason="banned"))
    got = await _get(store, "tok-a")
    assert (got.state, got.state_reason) == ("blocked", "banned")


async def test_settle_learned_window(store: Store) -> None:
    (a,) = await _add(store, NewAccount(token="tok-a", quotas={"fast": learned(5, total=30), "heavy": learned(2)}))
    assert await store.reserve(a.id, "fast")
    assert await store.reserve(a.id, "fast")
    reset = time.time() + 7200
    window = learned(40, total=140, window_seconds=7200, reset_at=reset)
    await store.settle(a.id, Settlement(mode="fast", refund=2, ok=True, learned=window))
    got = await _get(store, "tok-a")
    # learned values are absolute and win over the refund; other modes are untouched
    assert (got.quotas, got.requests_ok) == ({"fast": window, "heavy": learned(2)}, 1)

    await store.settle(a.id, Settlement(mode="heavy", learned=learned(None, total=20)))  # replaced whole
    got = await _get(store, "tok-a")
    assert got.quotas == {"fast": window, "heavy": learned(None, total=20)}

    await store.settle(a.id, Settlement(mode="auto", learned=learned(7, window_seconds=7200)))  # a new window
    await store.settle(a.id, Settlement(mode="fast", learned=learned()))  # learned entirely unknown
    got = await _get(store, "tok-a")
    assert got.quotas == {"heavy": learned(None, total=20), "auto": learned(7, window_seconds=7200)}

    await store.settle(a.id, Settlement(refund=1, learned=learned(99)))  # no mode: no window changes
    await store.settle(a.id, Settlement(mode="auto", refund=1))  # learned UNSET: only the refund
    got = await _get(store, "tok-a")
    assert got.quotas == {"heavy": learned(None, total=20), "auto": learned(8, window_seconds=7200)}


async def test_settle_learned_cap(store: Store) -> None:
    windows = {"fast": learned(10, total=30, window_seconds=7200, reset_at=5000.0), "heavy": learned(None, total=20)}
    (a,) = await _add(store, NewAccount(token="tok-a", quotas=windows))

    def cap(mode: str, window: ModeQuota, refund: int = 0) -> Settlement:
        return Settlement(mode=mode, refund=refund, learned=window, learned_cap=True)

    await store.settle(a.id, cap("fast", learned(25)))  # a higher count is not handed back
    assert (await _get(store, "tok-a")).quotas["fast"] == windows["fast"]
    await store.settle(a.id, cap("fast", learned(6, reset_at=6000.0)))  # a lower one is taken
    assert (await _get(store, "tok-a")).quotas["fast"] == learned(6, total=30, window_seconds=7200, reset_at=6000.0)
    await store.settle(a.id, cap("fast", learned(None, total=140)))  # unknowns change nothing, others are set
    assert (await _get(store, "tok-a")).quotas["fast"] == learned(6, total=140, window_seconds=7200, reset_at=6000.0)
    await store.settle(a.id, cap("fast", learned(7), refund=2))  # applied after the refund: 6 + 2 capped to 7
    assert (await _get(store, "tok-a")).remaining == 7
    await store.settle(a.id, cap("fast", learned(9), refund=1))  # 7 + 1 is below 9: the refund stands
    assert (await _get(store, "tok-a")).remaining == 8

    await store.settle(a.id, cap("heavy", learned(4)))  # fills an unknown count
    await store.settle(a.id, cap("expert", learned(3, total=50)))  # and a window never seen
    await store.settle(a.id, cap("auto", learned()))  # nothing learned: nothing written
    got = await _get(store, "tok-a")
    assert got.quotas["heavy"] == learned(4, total=20)
    assert got.quotas["expert"] == learned(3, total=50) and "auto" not in got.quotas


async def test_settle_unknown_account_is_a_no_op(store: Store) -> None:
    (a,) = await _add(store, NewAccount(token="tok-a", quotas=fast(1)))
    v = await store.versions()
    await store.settle(987654, Settlement(mode="fast", refund=1, ok=True, state=AccountState.BLOCKED))
    await store.settle(987654, Settlement(mode="fast", learned=learned(5)))
    assert await store.versions() == v
    got = await _get(store, "tok-a")
    assert (got.remaining, got.requests_ok, got.state, got.last_used_at) == (1, 0, "active", None)
    assert await store.get_account("missing") is None


# settings


async def test_settings_merge(store: Store) -> None:
    assert await store.load_settings() == {}
    v0 = (await store.versions()).settings
    await store.save_settings({"a": 1, "b": {"x": [1, 2]}, "c": "keep"})
    v1 = (await store.versions()).settings
    await store.save_settings({"b": "new", "d": None, "e": True, "f": 1.5})
    v2 = (await store.versions()).settings
    assert v0 < v1 < v2
    assert await store.load_settings() == {"a": 1, "b": "new", "c": "keep", "d": None, "e": True, "f": 1.5}


# admin sessions


def _session(id_hash: str, expires_in: float = 3600) -> AdminSession:
    t = time.time()
    return AdminSession(
        id_hash=id_hash, username="admin", csrf=f"csrf-{id_hash}", created_at=t, expires_at=t + expires_in
    )


async def test_sessions(store: Store) -> None:
    s1, s2, s3 = _session("a" * 64), _session("b" * 64), _session("c" * 64)
    for s in (s1, s2, s3):
        await store.put_session(s)
    assert await store.get_session(s1.id_hash) == s1
    assert await store.get_session("d" * 64) is None

    await store.delete_session(s2.id_hash)
    assert await store.get_session(s2.id_hash) is None
    assert await store.get_session(s3.id_hash) == s3

    assert await store.delete_sessions(except_id_hash=s1.id_hash) == 1
    assert await store.get_session(s3.id_hash) is None
    assert await store.get_session(s1.id_hash) == s1

    await store.put_session(s3)
    assert await store.delete_sessions() == 2
    assert await store.get_session(s1.id_hash) is None


async def test_expired_session_is_not_returned(store: Store) -> None:
    expired = _session("e" * 64, expires_in=-1)
    await store.put_session(expired)
    assert await store.get_session(expired.id_hash) is None
    short = _session("f" * 64, expires_in=1.0)
    await store.put_session(short)
    assert await store.get_session(short.id_hash) == short
    await asyncio.sleep(1.2)
    assert await store.get_session(short.id_hash) is None


# client keys


def _key(key_id: str, created_at: float, **kw: Any) -> ClientKey:
    return ClientKey(
        id=key_id, name=f"key {key_id}", key_hash=key_id * 8, prefix=f"sk-{key_id}", created_at=created_at, **kw
    )


async def test_client_keys(store: Store) -> None:
    k2 = _key("k2222222", 20.0, models=["grok-4", "grok-3"], rpm=60, expires_at=5000.0)
    k1 = _key("k1111111", 10.0)
    await store.put_client_key(k2)
    await store.put_client_key(k1)
    assert await store.list_client_keys() == [k1, k2]

    renamed = _key("k2222222", 20.0, models=[], rpm=0)
    renamed.name = "renamed"
    await store.put_client_key(renamed)
    assert await store.list_client_keys() == [k1, renamed]

    assert await store.revoke_client_key("k1111111") is True
    assert await store.revoke_client_key("k1111111") is True  # found, already revoked
    assert await store.revoke_client_key("missing") is False
    keys = await store.list_client_keys()
    assert [k.revoked for k in keys] == [True, False]

    await store.touch_client_keys({"k1111111": 3, "k2222222": 1, "missing": 4}, at=100.0)
    await store.touch_client_keys({"k1111111": 2}, at=200.0)
    await store.touch_client_keys({}, at=300.0)
    keys = await store.list_client_keys()
    assert [(k.id, k.requests, k.last_used_at) for k in keys] == [("k1111111", 5, 200.0), ("k2222222", 1, 100.0)]


# media


async def test_media(store: Store) -> None:
    assert await store.get_media("a.png") is None
    entry = MediaEntry(
        name="a.png", kind="image", upstream_path="/users/u/generated/a.png", account_token="tok-a", created_at=5.0
    )
    await store.put_media(entry)
    await store.put_media(MediaEntry(name="A.png", kind="image", upstream_path="/other", account_token="tok-b"))
    assert await store.get_media("a.png") == entry
    replaced = MediaEntry(name="a.png", kind="video", upstream_path="/v.mp4", account_token="tok-c", created_at=6.0)
    await store.put_media(replaced)
    assert await store.get_media("a.png") == replaced
    got = await store.get_media("A.png")
    assert got is not None and got.upstream_path == "/other"


# video jobs

_VIDEO_IDS = iter(range(1, 1_000_000))


def _video(key_id: str = "", idempotency_key: str = "", **fields: Any) -> VideoJob:
    """A queued job; ids sort by creation like the real ones (``video_`` + time-ordered hex)."""
    n = next(_VIDEO_IDS)
    values: dict[str, Any] = {
        "id": f"video_{time.time_ns() // 1000:014x}{n:06x}",
        "key_id": key_id,
        "idempotency_key": idempotency_key,
        "model": "grok-imagine-video",
        "prompt": "a sunrise over the sea",
        "seconds": 6,
        "size": "720x1280",
        "aspect_ratio": "9:16",
        "resolution": "720p",
        "created_at": 1_790_000_000.25,
    }
    values.update(fields)
    return VideoJob(**values)


async def _claim(store: Store, owner: str = "w1", lease: float = 60.0) -> VideoJob:
    now = time.time()
    job = await store.claim_video_job(owner, now + lease, now)
    assert job is not None
    return job


async def test_video_job_round_trip(store: Store) -> None:
    image = VideoImage(file_name="in.png", mime="image/png", b64="iVBORw0KGgo=" * 1000)
    job = _video("key-a", has_image=True)
    assert await store.create_video_job(job, image) == (job, True)
    assert await store.get_video_job(job.id) == job
    assert await store.get_video_image(job.id) == image
    plain = _video("key-a", prompt="ünïcödé ✓ " * 100)
    await store.create_video_job(plain)
    assert await store.get_video_job(plain.id) == plain
    assert await store.get_video_image(plain.id) is None
    assert await store.get_video_job("video_missing") is None


async def test_video_idempotency_key_is_per_client_key(store: Store) -> None:
    first = _video("key-a", idempotency_key="d" * 64)
    assert await store.create_video_job(first) == (first, True)
    assert await store.create_video_job(_video("key-a", idempotency_key="d" * 64)) == (first, False)
    other = _video("key-b", idempotency_key="d" * 64)
    assert await store.create_video_job(other) == (other, True)
    assert (await store.create_video_job(_video("key-a")))[1] is True  # no key: always a new job


async def test_the_same_idempotency_key_at_the_same_moment_makes_one_job(
    store: Store, store_factory: StoreFactory
) -> None:
    second = await store_factory(store.kind, fresh=False)
    jobs = [_video("key-a", idempotency_key="e" * 64) for _ in range(6)]
    results = await asyncio.gather(*(s.create_video_job(j) for s, j in zip([store, second] * 3, jobs, strict=True)))
    assert sum(created for _, created in results) == 1
    assert len({job.id for job, _ in results}) == 1
    listed, _ = await store.list_video_jobs("key-a")
    assert [j.id for j in listed] == [results[0][0].id]


async def test_video_jobs_list_by_client_key_in_pages(store: Store) -> None:
    mine = [_video("key-a") for _ in range(5)]
    for job in mine:
        await store.create_video_job(job)
    await store.create_video_job(_video("key-b"))
    ids = [j.id for j in mine]
    page, more = await store.list_video_jobs("key-a", limit=2)
    assert ([j.id for j in page], more) == (ids[::-1][:2], True)
    page, more = await store.list_video_jobs("key-a", after=page[-1].id, limit=2)
    assert ([j.id for j in page], more) == (ids[::-1][2:4], True)
    page, more = await store.list_video_jobs("key-a", after=page[-1].id, limit=2)
    assert ([j.id for j in page], more) == (ids[:1], False)
    page, more = await store.list_video_jobs("key-a", after=ids[1], limit=10, descending=False)
    assert ([j.id for j in page], more) == (ids[2:], False)
    assert await store.list_video_jobs("key-c") == ([], False)


async def test_claims_take_the_oldest_job_and_count_attempts(store: Store) -> None:
    assert await store.claim_video_job("w1", time.time() + 60, time.time()) is None
    old, new = _video(), _video()
    await store.create_video_job(old)
    await store.create_video_job(new)
    claimed = await _claim(store, "w1")
    assert (claimed.id, claimed.status, claimed.attempt, claimed.lease_owner) == (old.id, "in_progress", 1, "w1")
    assert claimed.lease_until is not None and claimed.lease_until > time.time() + 50
    assert (await _claim(store, "w2")).id == new.id
    assert await store.claim_video_job("w3", time.time() + 60, time.time()) is None  # both leases hold


async def test_two_claimers_never_get_the_same_job(store: Store, store_factory: StoreFactory) -> None:
    second = await store_factory(store.kind, fresh=False)
    jobs = [_video() for _ in range(8)]
    for job in jobs:
        await store.create_video_job(job)
    now = time.time()
    claims = await asyncio.gather(
        *(s.claim_video_job(f"w{i}", now + 60, now) for i, s in enumerate([store, second] * 6))
    )
    taken = [c.id for c in claims if c is not None]
    assert len(taken) == len(set(taken))  # nothing twice
    while (late := await store.claim_video_job("late", now + 60, now)) is not None:
        taken.append(late.id)  # a claimer that lost every race finds the rest on its next poll
    assert sorted(taken) == sorted(j.id for j in jobs)
    assert all(c.attempt == 1 for c in claims if c is not None)


async def test_an_expired_lease_is_claimed_again_and_fences_the_old_attempt(store: Store) -> None:
    job = _video(has_image=True)
    await store.create_video_job(job, VideoImage(file_name="a.png", mime="image/png", b64="AAAA"))
    first = await _claim(store, "w1", lease=0.2)
    assert await store.update_video_job(job.id, 1, VideoPatch(progress=30)) is True
    assert await store.claim_video_job("w2", time.time() + 60, time.time()) is None
    await asyncio.sleep(0.3)
    again = await _claim(store, "w2")
    assert (again.id, again.attempt, again.lease_owner, again.progress) == (first.id, 2, "w2", 30)
    assert await store.update_video_job(job.id, 1, VideoPatch(progress=90)) is False  # the old worker is fenced
    assert await store.update_video_job(job.id, 2, VideoPatch(progress=50, lease_until=time.time() + 60)) is True
    done = VideoPatch(status=VideoStatus.COMPLETED, progress=100, completed_at=123.5, media_name="v.mp4")
    assert await store.update_video_job(job.id, 2, done) is True
    finished = await store.get_video_job(job.id)
    assert finished is not None
    assert (finished.status, finished.progress, finished.media_name, finished.lease_until) == (
        "completed",
        100,
        "v.mp4",
        None,
    )
    assert await store.update_video_job(job.id, 2, VideoPatch(progress=1)) is False  # ended: no more writes
    assert await store.get_video_image(job.id) is None  # and its input image is not kept
    assert await store.claim_video_job("w3", time.time() + 60, time.time() + 3600) is None


async def test_a_charge_is_one_query_tied_to_the_attempt(store: Store) -> None:
    await store.add_accounts(
        [NewAccount(token="a", quotas={"imagine-video": ModeQuota(remaining=3)}), NewAccount(token="b")]
    )
    a, b = (await _get(store, "a")).id, (await _get(store, "b")).id
    job = _video()
    await store.create_video_job(job)
    assert await store.charge_video_job(job.id, 1, a, "imagine-video") == Charge.LOST  # not claimed yet
    await _claim(store)
    assert await store.charge_video_job(job.id, 2, a, "imagine-video") == Charge.LOST  # not this attempt
    assert await store.charge_video_job(job.id, 1, a, "imagine-video") == Charge.TAKEN
    assert await store.charge_video_job(job.id, 1, a, "imagine-video") == Charge.TAKEN  # a retry: no second query
    assert await store.charge_video_job(job.id, 1, b, "imagine-video") == Charge.LOST  # charged already
    charged = await store.get_video_job(job.id)
    assert charged is not None and (charged.account_id, charged.upstream_accepted) == (a, False)
    assert (await _get(store, "a")).quotas["imagine-video"].remaining == 2
    assert await store.update_video_job(job.id, 1, VideoPatch(upstream_accepted=True)) is True

    assert await store.release_video_charge(job.id, 1, b, "imagine-video", refund=True) is False
    assert await store.release_video_charge(job.id, 1, a, "imagine-video", refund=True) is True
    released = await store.get_video_job(job.id)
    assert released is not None and (released.account_id, released.upstream_accepted) == (None, False)
    assert (await _get(store, "a")).quotas["imagine-video"].remaining == 3
    assert await store.charge_video_job(job.id, 1, b, "imagine-video") == Charge.TAKEN  # unknown window: taken
    assert "imagine-video" not in (await _get(store, "b")).quotas  # and it stays unknown
    assert await store.release_video_charge(job.id, 1, b, "imagine-video", refund=False) is True


async def test_a_charge_without_quota_changes_nothing(store: Store) -> None:
    empty = {"imagine-video": ModeQuota(remaining=0, total=10)}
    await store.add_accounts([NewAccount(token="empty", quotas=empty), NewAccount(token="off", state="disabled")])
    job = _video()
    await store.create_video_job(job)
    await _claim(store)
    for token in ("empty", "off"):
        account = await _get(store, token)
        assert await store.charge_video_job(job.id, 1, account.id, "imagine-video") == Charge.NO_QUOTA
    after = await store.get_video_job(job.id)
    assert after is not None and after.account_id is None
    assert (await _get(store, "empty")).quotas["imagine-video"].remaining == 0


async def test_deleting_a_video_job_frees_its_idempotency_key(store: Store) -> None:
    job = _video("key-a", idempotency_key="f" * 64, has_image=True)
    await store.create_video_job(job, VideoImage(file_name="a.png", mime="image/png", b64="AAAA"))
    await _claim(store)
    assert await store.delete_video_job(job.id) is True
    assert await store.delete_video_job(job.id) is False
    assert await store.get_video_job(job.id) is None and await store.get_video_image(job.id) is None
    assert await store.update_video_job(job.id, 1, VideoPatch(progress=5)) is False
    assert await store.list_video_jobs("key-a") == ([], False)
    assert await store.claim_video_job("w2", time.time() + 60, time.time() + 3600) is None
    again = _video("key-a", idempotency_key="f" * 64)
    assert await store.create_video_job(again) == (again, True)


# usage


async def test_usage(store: Store) -> None:
    h0, h1, h2 = 3600 * 100, 3600 * 101, 3600 * 102
    await store.add_usage(
        [
            UsageRow(hour=h0, model="grok-3", outcome="ok", count=5),
            UsageRow(hour=h1, model="grok-3", outcome="ok", key_id="k1", count=2),
            UsageRow(hour=h1, model="grok-3", outcome="ok", key_id="k1", count=1),
            UsageRow(hour=h1, model="grok-3", outcome="error", key_id="k1", count=1),
        ]
    )
    await store.add_usage(
        [
            UsageRow(hour=h1, model="grok-3", outcome="ok", key_id="k1", count=4),
            UsageRow(hour=h2, model="grok-4", outcome="ok", count=1),
        ]
    )
    await store.add_usage([])

    def key(r: UsageRow) -> tuple[int, str, str, str]:
        return (r.hour, r.model, r.outcome, r.key_id)

    assert sorted(await store.usage_since(h1), key=key) == [
        UsageRow(hour=h1, model="grok-3", outcome="error", key_id="k1", count=1),
        UsageRow(hour=h1, model="grok-3", outcome="ok", key_id="k1", count=7),
        UsageRow(hour=h2, model="grok-4", outcome="ok", key_id="", count=1),
    ]
    assert len(await store.usage_since(h0)) == 4
    assert await store.usage_since(h2 + 3600) == []


# rate windows


async def test_a_rate_window_lets_limit_hits_through_then_says_how_long_to_wait(store: Store) -> None:
    assert [await store.hit_window("rpm:k1", 60, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    waits = [await store.hit_window("rpm:k1", 60, 3) for _ in range(2)]
    assert all(59 < w <= 60 for w in waits)  # until the window that opened at the first hit ends
    assert await store.hit_window("rpm:k2", 60, 3) == 0.0  # every name has its own window


async def test_concurrent_hits_on_one_window_are_exact(store: Store) -> None:
    waits = await asyncio.gather(*(store.hit_window("login:10.0.0.1", 300, 7) for _ in range(40)))
    assert sum(w == 0 for w in waits) == 7


async def test_a_rate_window_that_ended_opens_a_new_one(store: Store) -> None:
    assert await store.hit_window("short", 0.6, 1) == 0.0
    assert await store.hit_window("short", 0.6, 1) > 0
    await asyncio.sleep(0.7)
    assert await store.hit_window("short", 0.6, 1) == 0.0
    assert await store.hit_window("short", 0.6, 1) > 0


async def test_clearing_a_rate_window_starts_it_over(store: Store) -> None:
    for _ in range(3):
        await store.hit_window("login:c", 300, 2)
    await store.clear_window("login:c")
    await store.clear_window("never-hit")
    assert await store.hit_window("login:c", 300, 2) == 0.0


@pytest.mark.parametrize(
    "kind", ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql), pytest.param("redis", marks=pytest.mark.redis)]
)
async def test_two_instances_share_rate_windows(store_factory: StoreFactory, kind: str) -> None:
    """Workers and replicas count on one window."""
    one = await store_factory(kind)
    two = await store_factory(kind, fresh=False)
    waits = await asyncio.gather(*(s.hit_window("shared", 60, 10) for s in (one, two) * 20))
    assert sum(w == 0 for w in waits) == 10


async def test_the_schema_is_up_to_date_after_open(store: Store) -> None:
    state = await store.schema_state()
    assert state.up_to_date and state.expected


# scale


async def test_bulk_add(store: Store) -> None:
    tokens = [f"bulk-token-{i:05d}-" + "x" * 200 for i in range(2000)]
    assert await store.add_accounts([NewAccount(token=t, quotas=fast(80)) for t in tokens]) == AddResult(added=2000)
    accounts = await store.list_accounts()
    assert [a.token for a in accounts] == tokens
    assert len({a.id for a in accounts}) == 2000

    more = [*tokens, "extra-1", "extra-2"]
    result = await store.add_accounts([NewAccount(token=t, tier=Tier.SUPER) for t in more])
    assert result == AddResult(added=2, updated=2000)
    accounts = await store.list_accounts()
    assert len(accounts) == 2002
    assert all(a.tier == "super" for a in accounts)
    assert accounts[0].remaining == 80 and accounts[-1].remaining is None


async def test_update_accounts_patches_many_in_one_call(store: Store) -> None:
    await store.add_accounts([NewAccount(token=f"bulk-{i}") for i in range(1200)])
    before = (await store.versions()).accounts
    tokens = [f"bulk-{i}" for i in range(0, 1200, 2)] + ["bulk-missing", "bulk-0"]
    patch = AccountPatch(state=AccountState.DISABLED, state_reason="disabled by an operator")
    assert await store.update_accounts(tokens, patch) == 600
    accounts = {a.token: a for a in await store.list_accounts()}
    assert sum(a.state == AccountState.DISABLED for a in accounts.values()) == 600
    assert accounts["bulk-0"].state_reason == "disabled by an operator" and accounts["bulk-0"].state_changed_at
    assert accounts["bulk-1"].state == AccountState.ACTIVE
    assert (await store.versions()).accounts > before
    # Matching is by existence, not by change: patching again still counts them.
    assert await store.update_accounts(tokens[:10], patch) == 10
    assert await store.update_accounts([], patch) == 0
    assert await store.update_accounts(["bulk-1"], AccountPatch()) == 1  # an empty patch only counts
