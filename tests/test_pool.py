"""The account pool: failure classification, failover, cooling and revival, tier routing, spread."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import openai
import pytest

from grok2api.store.base import AccountPatch, AccountState, ModeQuota
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway

# ---- behaviour against the fake ----------------------------------------------------------------


async def _account(gateway: LiveGateway, token: str) -> Any:
    acc = await gateway.services.store.get_account(token)
    assert acc is not None
    return acc


def _ask(content: str = "hello") -> list[Any]:
    return [{"role": "user", "content": content}]


async def test_invalid_account_is_marked_and_every_request_succeeds(
    gateway: LiveGateway, client: openai.AsyncOpenAI
) -> None:
    await gateway.add_accounts("invalid-one", "healthy-one")
    sent = 0
    # Ties are broken at random, so run until the bad account was tried invalid_after_failures (3) times.
    while sent < 80 and (await _account(gateway, "invalid-one")).state != AccountState.INVALID:
        reply = await client.chat.completions.create(model="grok-3-fast", messages=_ask())
        assert reply.choices[0].message.content
        sent += 1
    bad = await _account(gateway, "invalid-one")
    good = await _account(gateway, "healthy-one")
    assert bad.state == AccountState.INVALID
    assert "invalid credentials" in bad.state_reason
    assert bad.last_failure and bad.requests_failed == 3
    assert good.state == AccountState.ACTIVE and good.requests_ok == sent
    for _ in range(5):  # once invalid it is never tried again
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert (await _account(gateway, "invalid-one")).requests_failed == 3


async def test_rate_limited_account_cools_then_comes_back(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok-cool", "tok-spare")
    fake.push_fault("429", token="tok-cool", retry_after=1)
    # Whichever account is tried first, the request succeeds; run until tok-cool took its 429.
    for _ in range(20):
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
        if (await _account(gateway, "tok-cool")).state == AccountState.COOLING:
            break
    cooling = await _account(gateway, "tok-cool")
    assert cooling.state == AccountState.COOLING
    assert "429" in cooling.state_reason and cooling.remaining == 0
    assert cooling.cooldown_until is not None and cooling.cooldown_until <= time.time() + 2
    # While cooling it is never chosen.
    calls_before = len(fake.chat_calls("tok-cool"))
    for _ in range(5):
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert len(fake.chat_calls("tok-cool")) == calls_before
    await asyncio.sleep(max(0.0, cooling.cooldown_until - time.time()) + 0.1)
    await gateway.services.reload(force=True)
    assert await gateway.services.revive_due() >= 1
    back = await _account(gateway, "tok-cool")
    assert back.state == AccountState.ACTIVE
    assert back.remaining is not None and back.remaining > 0  # learned from rate-limits


async def test_cloudflare_403_penalises_no_account(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok-a", "tok-b")
    fake.push_fault("403-cf", count=5)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert info.value.status_code == 502
    body = info.value.response.json()["error"]
    assert body["code"] == "egress_blocked" and "cf_clearance" in body["message"]
    assert len(fake.chat_calls()) == 1  # not retried on other accounts: it would fail the same way
    for token in ("tok-a", "tok-b"):
        acc = await _account(gateway, token)
        assert acc.state == AccountState.ACTIVE and acc.failure_count == 0 and acc.requests_failed == 0


async def test_blocked_account_is_marked_and_request_fails_over(
    gateway: LiveGateway, client: openai.AsyncOpenAI
) -> None:
    await gateway.add_accounts("blocked-acc", "tok-ok")
    for _ in range(6):
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    blocked = await _account(gateway, "blocked-acc")
    if blocked.requests_failed:  # it was tried at least once
        assert blocked.state == AccountState.BLOCKED and "blocked" in blocked.state_reason


async def test_heavy_only_reaches_super_accounts(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("basic-1", "basic-2")
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="grok-4-heavy", messages=_ask())
    assert info.value.status_code == 503 and "super" in info.value.response.json()["error"]["message"]
    await gateway.add_accounts("super-1", tier="super")
    for _ in range(6):
        await client.chat.completions.create(model="grok-4-heavy", messages=_ask())
    heavy_calls = [c for c in fake.chat_calls() if (c.json or {}).get("modelMode") == "MODEL_MODE_HEAVY"]
    assert len(heavy_calls) == 6 and {c.token for c in heavy_calls} == {"super-1"}
    # Normal models prefer basic accounts.
    for _ in range(4):
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    fast = [c.token for c in fake.chat_calls() if (c.json or {}).get("modelMode") == "MODEL_MODE_FAST"]
    assert set(fast) <= {"basic-1", "basic-2"}


async def test_burst_spreads_over_the_pool(gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok) -> None:
    tokens = [f"spread-{i}" for i in range(5)]
    await gateway.add_accounts(*tokens)
    burst = [
        client.chat.completions.create(model="grok-3-fast", messages=_ask("[[tokens:5]] [[fault:slow-tokens:0.02]]"))
        for _ in range(50)
    ]
    replies = await asyncio.gather(*burst)
    assert all(r.choices[0].message.content for r in replies)
    counts = Counter(c.token for c in fake.chat_calls())
    assert set(counts) == set(tokens)
    assert max(counts.values()) <= 20  # least-busy first: no account takes the whole burst


async def test_disabled_account_is_never_chosen(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("on-1", "off-1")
    await gateway.services.store.update_account("off-1", AccountPatch(state=AccountState.DISABLED))
    await gateway.services.reload(force=True)
    for _ in range(5):
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert fake.chat_calls("off-1") == []


async def test_pool_exhausted_is_429_with_retry_after(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    fake.add_account("tiny-1", quota=1)
    await gateway.add_accounts("tiny-1")
    await gateway.services.store.update_account("tiny-1", AccountPatch(quotas={"fast": ModeQuota(remaining=1)}))
    await gateway.services.reload(force=True)
    await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert info.value.status_code == 429
    assert int(info.value.response.headers["retry-after"]) >= 1
    await asyncio.sleep(0.2)  # the background reconciliation with grok.com's rate limits
    acc = await _account(gateway, "tiny-1")
    assert acc.remaining == 0 and acc.state == AccountState.COOLING


async def test_server_errors_fail_over_within_max_attempts(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("srv-1", "srv-2", "srv-3", "srv-4")
    fake.push_fault("500", count=2)
    reply = await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert reply.choices[0].message.content
    assert len(fake.chat_calls()) == 3
    fake.push_fault("503", count=10)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert info.value.status_code == 502
    assert len(fake.chat_calls()) == 6  # max_attempts (3) more
    accounts = await gateway.services.store.list_accounts()
    assert all(a.state == AccountState.ACTIVE for a in accounts)  # 5xx is not the accounts' fault
    assert sum(a.requests_failed for a in accounts) == 5
    assert all(a.failure_count == 0 for a in accounts)


# ---- selection over a large pool (no I/O) --------------------------------------------------------


def _pool_with(accounts: list[Any]) -> Any:
    from grok2api.pool import Pool
    from grok2api.settings import RuntimeSettings

    settings = RuntimeSettings()
    pool = Pool(None, lambda: settings)  # type: ignore[arg-type]
    pool._snapshot = {a.id: a for a in accounts}
    pool._tiers = {
        "basic": [a.id for a in accounts if a.tier == "basic"],
        "super": [a.id for a in accounts if a.tier == "super"],
    }
    return pool


def test_selection_is_bounded_spread_and_tier_ordered() -> None:
    from grok2api.grok.catalog import MODELS
    from grok2api.pool import SCAN_TARGET
    from grok2api.store.base import Account

    accounts = [
        Account(id=i, token=f"t{i}", tier="super" if i % 4 == 0 else "basic", quotas={"fast": ModeQuota(remaining=5)})
        for i in range(4000)
    ]
    accounts[1].state = AccountState.COOLING
    accounts[2].quotas["fast"].remaining = 0
    pool = _pool_with(accounts)
    fast, heavy = MODELS["grok-3-fast"], MODELS["grok-4-heavy"]
    firsts: Counter[int] = Counter()
    for _ in range(400):
        picks = pool.candidates(fast, 1, set())
        assert len(picks) == SCAN_TARGET
        assert all(p.tier == "basic" and p.state == AccountState.ACTIVE and (p.remaining or 0) >= 1 for p in picks)
        firsts[picks[0].id] += 1
    assert len(firsts) > 300  # bursts land all over the pool, not on one "best" account
    # Least busy first among those seen.
    busy_id = pool.candidates(fast, 1, set())[0].id
    pool._in_flight[busy_id] = 5
    assert all(p.id != busy_id for p in pool.candidates(fast, 1, {busy_id}))
    # Heavy: super accounts only.
    assert {p.tier for p in pool.candidates(heavy, 1, set())} == {"super"}
    # When no basic account is usable, super accounts serve normal models too.
    for acc in accounts:
        if acc.tier == "basic":
            acc.state = AccountState.DISABLED
    assert {p.tier for p in pool.candidates(fast, 1, set())} == {"super"}
