"""Quota learning: parsing grok.com's rate-limits answers, and QuotaService against the fake grok.com."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from typing import Any

import openai
import pytest

from grok2api.grok.catalog import MODELS
from grok2api.grok.client import QuotaInfo, parse_mode_limits
from grok2api.quota import best_tier
from grok2api.store.base import AccountPatch, AccountState, ModeQuota
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway

# ---- parse_mode_limits ---------------------------------------------------------------------------

# POST /rest/rate-limits {"modelName": "<mode>"}: one query window of that mode.
WINDOW = {
    "windowSizeSeconds": 7200,
    "remainingQueries": 12,
    "totalQueries": 20,
    "lowEffortRateLimits": None,
    "highEffortRateLimits": None,
}
# The same answer with the 2025 keys some accounts still get beside the queries: they are not the window.
WITH_LEGACY_KEYS = {
    **WINDOW,
    "remainingTokens": 57,
    "totalTokens": 80,
    "lowEffortRateLimits": {"cost": 1, "remainingQueries": 57},
    "highEffortRateLimits": {"cost": 4, "remainingQueries": 14},
}


def test_a_window_reads_remaining_and_total_queries() -> None:
    assert parse_mode_limits(WINDOW) == QuotaInfo(12, 20, 7200, None)


def test_legacy_token_keys_are_ignored() -> None:
    assert parse_mode_limits(WITH_LEGACY_KEYS) == QuotaInfo(12, 20, 7200, None)
    # Even when the queries say the mode is not available and tokens are left over.
    data = {**WITH_LEGACY_KEYS, "remainingQueries": 0, "totalQueries": 0}
    assert parse_mode_limits(data) == QuotaInfo(0, 0, 7200, None)


def test_float_counts_are_truncated_to_int() -> None:
    info = parse_mode_limits({"remainingQueries": 7.9, "totalQueries": 20.0, "windowSizeSeconds": 60.5})
    assert info == QuotaInfo(7, 20, 60, None)
    assert isinstance(info.remaining, int) and isinstance(info.window_seconds, int)


def test_top_level_wait_time() -> None:
    data = {**WINDOW, "remainingQueries": 0, "waitTimeSeconds": 1234}
    info = parse_mode_limits(data)
    assert info.remaining == 0 and info.wait_seconds == 1234.0
    assert isinstance(info.wait_seconds, float)


def test_top_level_wait_time_wins_over_per_effort() -> None:
    data = {
        **WITH_LEGACY_KEYS,
        "remainingQueries": 0,
        "waitTimeSeconds": 10,
        "lowEffortRateLimits": {"remainingQueries": 0, "waitTimeSeconds": 99},
    }
    assert parse_mode_limits(data).wait_seconds == 10.0


@pytest.mark.parametrize(
    ("low", "high", "wait"),
    [
        ({"remainingQueries": 0, "waitTimeSeconds": 300}, {"remainingQueries": 0, "waitTimeSeconds": 900}, 300.0),
        ({"remainingQueries": 5}, {"remainingQueries": 0, "waitTimeSeconds": 900.5}, 900.5),
        (None, {"remainingQueries": 0, "waitTimeSeconds": 42}, 42.0),
        ({"remainingQueries": 5}, {"remainingQueries": 1}, None),
        ({"waitTimeSeconds": "300"}, None, None),
    ],
)
def test_per_effort_wait_time(low: Any, high: Any, wait: float | None) -> None:
    data = {**WINDOW, "remainingQueries": 0, "lowEffortRateLimits": low, "highEffortRateLimits": high}
    assert parse_mode_limits(data).wait_seconds == wait


@pytest.mark.parametrize("data", [{}, None, [], "text", 3, {"unrelated": 1}, {"remainingTokens": 80}])
def test_missing_fields_are_none(data: Any) -> None:
    assert parse_mode_limits(data) == QuotaInfo(None, None, None, None)


def test_non_numeric_fields_are_none() -> None:
    data = {"remainingQueries": "12", "totalQueries": None, "windowSizeSeconds": False, "waitTimeSeconds": "5"}
    assert parse_mode_limits(data) == QuotaInfo(None, None, None, None)
    assert parse_mode_limits({"remainingQueries": True, "totalQueries": 20}) == QuotaInfo(None, 20, None, None)


# ---- tiers from window totals (grok.com, late 2026) ----------------------------------------------


@pytest.mark.parametrize(
    ("totals", "tier"),
    [
        ({"fast": 30, "auto": 20, "expert": 0, "heavy": 0}, "basic"),
        ({"fast": 30, "auto": 7}, "basic"),
        ({"fast": 140, "auto": 50, "expert": 50, "heavy": 0}, "super"),
        ({"auto": 50}, "super"),
        ({"fast": 400, "auto": 150, "expert": 150, "heavy": 20}, "heavy"),
        ({"heavy": 1}, "heavy"),
        ({"fast": 30, "expert": 150}, "heavy"),  # the highest any window shows
        ({"grok-420-computer-use-sa": 500}, None),  # a mode whose totals say nothing about tiers
        ({}, None),
    ],
)
def test_best_tier_from_totals(totals: dict[str, int], tier: str | None) -> None:
    windows = {mode: ModeQuota(remaining=total, total=total) for mode, total in totals.items()}
    assert best_tier(windows) == tier
    assert best_tier({**windows, "fast": ModeQuota(remaining=3)}) == best_tier(
        {m: w for m, w in windows.items() if m != "fast"}
    )  # an unknown total shows nothing


# ---- QuotaService against the fake -------------------------------------------------------------


@pytest.fixture
async def quiet(gateway: LiveGateway) -> LiveGateway:
    """The gateway with its background revive loop stopped, so only the test re-checks cooling accounts."""
    for task in gateway.services._tasks:
        if task.get_name() == "revive-accounts":
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    return gateway


async def _stored(gw: LiveGateway, token: str) -> Any:
    acc = await gw.services.store.get_account(token)
    assert acc is not None
    return acc


async def _cooling(gw: LiveGateway, token: str, until: float, reason: str = "quota used up") -> Any:
    patch = AccountPatch(state=AccountState.COOLING, state_reason=reason, cooldown_until=until)
    assert await gw.services.store.update_account(token, patch)
    return await _stored(gw, token)


async def test_refresh_learns_every_window_of_a_healthy_account(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-healthy", quota=50)
    await quiet.add_accounts("tok-healthy")
    acc = await _stored(quiet, "tok-healthy")
    assert acc.remaining is None and acc.quotas == {}
    result = await quiet.services.quota.refresh(acc)
    assert result.ok and result.remaining == 50 and result.heavy_remaining == 0
    assert result.state == AccountState.ACTIVE and result.tier == "basic"
    assert result.message == (
        "valid, basic tier; queries left: fast 50 of 50, auto 20 of 20, expert 0 of 0, heavy 0 of 0"
    )
    after = await _stored(quiet, "tok-healthy")
    assert after.state == AccountState.ACTIVE and after.tier == "basic"
    chat_windows = {m: w for m, w in after.quotas.items() if not m.startswith("imagine-")}
    assert {m: (w.remaining, w.total, w.window_seconds) for m, w in chat_windows.items()} == {
        "fast": (50, 50, 7200),
        "auto": (20, 20, 7200),
        "expert": (0, 0, 7200),
        "heavy": (0, 0, 7200),
    }
    assert set(after.quotas) - set(chat_windows) == {  # the Imagine windows come with the check
        "imagine-image",
        "imagine-image-pro",
        "imagine-image-edit",
        "imagine-video",
        "imagine-video-720p",
    }
    asked = [r.json for r in fake.requests if r.path == "/rest/rate-limits"]
    assert sorted(body["modelName"] for body in asked) == ["auto", "expert", "fast", "heavy"]


async def test_refresh_learns_heavy_quota_and_tier_of_a_heavy_account(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-heavy", tier="heavy", quota=100, heavy_quota=7)
    await quiet.add_accounts("tok-heavy", tier="super")  # the operator's guess was too low
    result = await quiet.services.quota.refresh(await _stored(quiet, "tok-heavy"))
    assert result.ok and (result.remaining, result.heavy_remaining, result.tier) == (100, 7, "heavy")
    after = await _stored(quiet, "tok-heavy")
    assert (after.remaining, after.heavy_remaining, after.tier) == (100, 7, "heavy")
    assert (after.quotas["auto"].total, after.quotas["expert"].total) == (150, 150)


@pytest.mark.parametrize(("upstream", "guess"), [("super", "basic"), ("basic", "super"), ("heavy", "basic")])
async def test_refresh_infers_the_tier_from_the_totals(
    quiet: LiveGateway, fake: FakeGrok, upstream: str, guess: str
) -> None:
    fake.add_account("tok-tier", tier=upstream)
    await quiet.add_accounts("tok-tier", tier=guess)
    result = await quiet.services.quota.refresh(await _stored(quiet, "tok-tier"))
    assert result.ok and result.tier == upstream
    assert (await _stored(quiet, "tok-tier")).tier == upstream
    await quiet.services.reload()  # the tier change bumped the accounts version
    local = quiet.services.pool.account((await _stored(quiet, "tok-tier")).id)
    assert local is not None and local.tier == upstream


async def test_refresh_marks_an_invalid_token_invalid(quiet: LiveGateway) -> None:
    await quiet.add_accounts("invalid-session")
    result = await quiet.services.quota.refresh(await _stored(quiet, "invalid-session"))
    assert not result.ok and result.state == AccountState.INVALID
    after = await _stored(quiet, "invalid-session")
    assert after.state == AccountState.INVALID
    assert "invalid credentials" in after.state_reason and after.last_failure


async def test_cooling_account_whose_window_reset_comes_back(quiet: LiveGateway, fake: FakeGrok) -> None:
    upstream = fake.add_account("tok-reset", quota=30)
    upstream.remaining = 0
    upstream.window_started = time.time() - upstream.window_seconds - 1  # grok.com's window has reset
    await quiet.add_accounts("tok-reset")
    acc = await _cooling(quiet, "tok-reset", time.time() - 1)
    result = await quiet.services.quota.refresh(acc)
    assert result.ok and result.state == AccountState.ACTIVE and result.remaining == 30
    after = await _stored(quiet, "tok-reset")
    assert after.state == AccountState.ACTIVE and after.cooldown_until is None
    assert after.remaining == 30 and after.state_reason == "live check passed"


async def test_cooling_account_with_an_empty_window_comes_back_without_it(quiet: LiveGateway, fake: FakeGrok) -> None:
    upstream = fake.add_account("super-spent", tier="super", quota=30)
    upstream.remaining = 0
    await quiet.add_accounts("super-spent", tier="super")
    acc = await _cooling(quiet, "super-spent", time.time() - 1)
    result = await quiet.services.quota.refresh(acc)
    # The session is fine and other modes have queries: the account serves again, its fast window does not.
    assert result.ok and result.state == AccountState.ACTIVE and result.remaining == 0
    after = await _stored(quiet, "super-spent")
    left = upstream.seconds_left()
    assert after.state == AccountState.ACTIVE and after.cooldown_until is None and after.remaining == 0
    assert after.window_reset_at is not None and abs(after.window_reset_at - (time.time() + left)) < 5
    assert after.quotas["auto"].remaining == 50
    await quiet.services.reload(force=True)
    pool = quiet.services.pool
    assert [a.token for a in pool.candidates(MODELS["grok-fast"], set())] == []
    assert [a.token for a in pool.candidates(MODELS["grok-auto"], set())] == ["super-spent"]


async def test_revive_due_brings_back_a_due_cooling_account(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-due", quota=20)
    await quiet.add_accounts("tok-due")
    await _cooling(quiet, "tok-due", time.time() - 1)
    await quiet.services.reload(force=True)
    assert await quiet.services.revive_due() == 1
    assert (await _stored(quiet, "tok-due")).state == AccountState.ACTIVE


async def test_limits_429_cools_the_account(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-429")
    await quiet.add_accounts("tok-429")
    fake.push_fault("limits-429", token="tok-429", retry_after=30)
    result = await quiet.services.quota.refresh(await _stored(quiet, "tok-429"))
    assert not result.ok and result.state == AccountState.COOLING and "429" in result.message
    after = await _stored(quiet, "tok-429")
    assert after.state == AccountState.COOLING
    assert after.cooldown_until is not None and abs(after.cooldown_until - (time.time() + 30)) < 5


async def test_limits_429_without_retry_after_uses_default_cooldown(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-429b")
    await quiet.add_accounts("tok-429b")
    await quiet.settings(default_cooldown_seconds=1000)
    fake.push_fault("limits-429", token="tok-429b")
    await quiet.services.quota.refresh(await _stored(quiet, "tok-429b"))
    after = await _stored(quiet, "tok-429b")
    assert after.state == AccountState.COOLING
    assert after.cooldown_until is not None and abs(after.cooldown_until - (time.time() + 1000)) < 5


async def test_server_error_on_a_cooling_account_looks_again_in_a_minute(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-5xx")
    await quiet.add_accounts("tok-5xx")
    acc = await _cooling(quiet, "tok-5xx", time.time() - 5, reason="quota used up; window resets in 10 s")
    fake.push_fault("limits-500", token="tok-5xx")
    result = await quiet.services.quota.refresh(acc)
    assert not result.ok and result.state == AccountState.COOLING
    after = await _stored(quiet, "tok-5xx")
    assert after.state == AccountState.COOLING
    assert after.state_reason == "quota used up; window resets in 10 s"
    assert after.cooldown_until is not None and abs(after.cooldown_until - (time.time() + 60)) < 5
    assert after.last_failure and after.requests_failed == 1
    # No longer due, so the revive loop leaves it alone until then.
    await quiet.services.reload(force=True)
    assert await quiet.services.revive_due() == 0


async def test_server_error_on_an_active_account_keeps_it_active(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-5xx-active")
    await quiet.add_accounts("tok-5xx-active")
    fake.push_fault("limits-503", token="tok-5xx-active")
    result = await quiet.services.quota.refresh(await _stored(quiet, "tok-5xx-active"))
    assert not result.ok and result.state == AccountState.ACTIVE
    after = await _stored(quiet, "tok-5xx-active")
    assert after.state == AccountState.ACTIVE and after.cooldown_until is None and after.failure_count == 0


async def test_check_never_raises_a_known_lower_count(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-cap", quota=80)
    await quiet.add_accounts("tok-cap")
    store = quiet.services.store
    assert await store.update_account("tok-cap", AccountPatch(quotas={"fast": ModeQuota(remaining=5)}))
    await quiet.services.reload(force=True)
    acc = await _stored(quiet, "tok-cap")
    info = await quiet.services.quota.check(acc, MODELS["grok-3-fast"])
    assert info.remaining == 80  # what grok.com said...
    assert (await _stored(quiet, "tok-cap")).remaining == 5  # ...does not hand back quota taken in flight
    local = quiet.services.pool.account(acc.id)
    assert local is not None and local.remaining == 5


async def test_check_lowers_a_higher_count_and_fills_an_unknown_one(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-high", quota=40)
    fake.add_account("tok-unknown", quota=33)
    await quiet.add_accounts("tok-high", "tok-unknown")
    store = quiet.services.store
    assert await store.update_account("tok-high", AccountPatch(quotas={"fast": ModeQuota(remaining=70)}))
    await quiet.services.reload(force=True)
    await quiet.services.quota.check(await _stored(quiet, "tok-high"), MODELS["grok-3-fast"])
    await quiet.services.quota.check(await _stored(quiet, "tok-unknown"), MODELS["grok-3-fast"])
    assert (await _stored(quiet, "tok-high")).remaining == 40
    assert (await _stored(quiet, "tok-unknown")).remaining == 33


async def test_check_empties_the_window_grok_reports_exhausted(quiet: LiveGateway, fake: FakeGrok) -> None:
    upstream = fake.add_account("tok-empty", quota=10)
    upstream.remaining = 0
    await quiet.add_accounts("tok-empty")
    await quiet.services.quota.check(await _stored(quiet, "tok-empty"), MODELS["grok-3-fast"])
    after = await _stored(quiet, "tok-empty")
    # Only that mode's window is empty until grok.com's reset; the account itself is not cooled.
    assert after.state == AccountState.ACTIVE and after.cooldown_until is None
    fast = after.quotas["fast"]
    assert (fast.remaining, fast.total) == (0, 10)
    assert fast.reset_at is not None and abs(fast.reset_at - (time.time() + upstream.seconds_left())) < 5
    assert set(after.quotas) == {"fast"}  # check reads the one mode it was asked about


async def test_reconciliation_after_a_chat_learns_every_window_and_the_tier(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-recon", tier="super")
    await quiet.add_accounts("tok-recon")  # added as basic: the pool does not know better yet
    sdk = openai.AsyncOpenAI(base_url=f"{quiet.url}/v1", api_key="unused", max_retries=0)
    try:
        await sdk.chat.completions.create(model="grok-fast", messages=[{"role": "user", "content": "hi"}])
        deadline = time.monotonic() + 3
        while (await _stored(quiet, "tok-recon")).tier != "super":
            assert time.monotonic() < deadline, "the tier was not learned"
            await asyncio.sleep(0.02)
        after = await _stored(quiet, "tok-recon")
        totals = {m: (w.remaining, w.total) for m, w in after.quotas.items()}
        assert totals == {"fast": (139, 140), "auto": (50, 50), "expert": (50, 50), "heavy": (0, 0)}
        # What it learned routes at once: a super account serves expert, not heavy.
        await quiet.services.reload(force=True)
        reply = await sdk.chat.completions.create(model="grok-expert", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        with pytest.raises(openai.APIStatusError) as info:
            await sdk.chat.completions.create(model="grok-heavy", messages=[{"role": "user", "content": "hi"}])
        assert info.value.status_code == 503
    finally:
        await sdk.close()
    assert [r.mode for r in fake.mgw_sessions("tok-recon")] == ["fast", "expert"]


async def test_reconcile_reads_unknown_windows_once_then_only_the_mode_used(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-lower", quota=30)
    await quiet.add_accounts("tok-lower", tier="super")
    acc = await _stored(quiet, "tok-lower")
    learned = await quiet.services.quota.reconcile(acc, MODELS["grok-fast"])
    # Every base window, each capped; the totals say basic, so the guess is corrected.
    assert sorted(s.mode for s in learned.settlements) == ["auto", "expert", "fast", "heavy"]
    assert all(s.learned_cap for s in learned.settlements) and learned.tier == "basic"
    for settlement in learned.settlements:
        await quiet.services.store.settle(acc.id, settlement)
    await quiet.services.store.update_account("tok-lower", AccountPatch(tier="basic"))
    # Once every window is known, only the mode used is read again, and the tier is settled.
    again = await quiet.services.quota.reconcile(await _stored(quiet, "tok-lower"), MODELS["grok-auto"])
    assert [s.mode for s in again.settlements] == ["auto"] and again.tier is None
    # An answer without totals changes neither the known total nor the tier.
    fake.push_fault("limits-missing", token="tok-lower")
    blind = await quiet.services.quota.reconcile(await _stored(quiet, "tok-lower"), MODELS["grok-fast"])
    (settlement,) = blind.settlements
    assert isinstance(settlement.learned, ModeQuota) and settlement.learned.total is None and blind.tier is None
    await quiet.services.store.settle(acc.id, settlement)
    after = await _stored(quiet, "tok-lower")
    assert (after.quotas["fast"].remaining, after.quotas["fast"].total, after.tier) == (30, 30, "basic")


async def test_a_live_check_reads_the_imagine_windows_too(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-img")
    await quiet.add_accounts("tok-img")
    result = await quiet.services.quota.refresh(await _stored(quiet, "tok-img"))
    assert result.ok
    windows = (await _stored(quiet, "tok-img")).quotas
    image = windows["imagine-image"]
    assert (image.remaining, image.total, image.window_seconds) == (40, None, 7200)
    assert image.reset_at is not None and abs(image.reset_at - (time.time() + 7200)) < 60
    assert windows["imagine-video"].remaining == 20
    # What a basic account lacks grok.com answers null for: a window of 0 that keeps the pool from trying.
    assert (windows["imagine-image-pro"].remaining, windows["imagine-image-pro"].total) == (0, 0)


async def test_an_imagine_request_reconciles_every_imagine_window_in_one_call(
    quiet: LiveGateway, fake: FakeGrok
) -> None:
    fake.add_account("tok-img", tier="super")
    await quiet.add_accounts("tok-img")
    spec = quiet.services.catalog.find("grok-imagine-image")
    assert spec is not None
    learned = await quiet.services.quota.reconcile(await _stored(quiet, "tok-img"), spec)
    got = {s.mode: s.learned for s in learned.settlements}
    assert set(got) == {
        "imagine-image",
        "imagine-image-pro",
        "imagine-image-edit",
        "imagine-video",
        "imagine-video-720p",
    }
    assert all(isinstance(w, ModeQuota) and w.remaining is not None and w.remaining > 0 for w in got.values())
    assert all(s.learned_cap for s in learned.settlements)  # never raise what requests in flight took
    assert len([r for r in fake.requests if r.path == "/rest/media/imagine/quota_info"]) == 1
