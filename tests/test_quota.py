"""Quota learning: parsing grok.com's rate-limits answers, and QuotaService against the fake grok.com."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from typing import Any

import pytest

from grok2api.grok.catalog import MODELS
from grok2api.grok.client import QuotaInfo, parse_rate_limits
from grok2api.store.base import AccountPatch, AccountState, ModeQuota
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway

# ---- parse_rate_limits ---------------------------------------------------------------------------

TOKEN_BUDGET = {
    "windowSizeSeconds": 72000,
    "remainingQueries": 0,
    "totalQueries": 0,
    "remainingTokens": 57,
    "totalTokens": 80,
    "lowEffortRateLimits": {"cost": 1, "remainingQueries": 57},
    "highEffortRateLimits": {"cost": 4, "remainingQueries": 14},
}
FLAT = {
    "windowSizeSeconds": 7200,
    "remainingQueries": 12,
    "totalQueries": 20,
    "lowEffortRateLimits": None,
    "highEffortRateLimits": None,
}


def test_token_budget_shape_reads_remaining_tokens() -> None:
    assert parse_rate_limits(TOKEN_BUDGET, heavy=False) == QuotaInfo(57, 80, 72000, None)


def test_flat_shape_reads_remaining_queries() -> None:
    assert parse_rate_limits(FLAT, heavy=False) == QuotaInfo(12, 20, 7200, None)


def test_heavy_reads_queries_even_when_tokens_are_present() -> None:
    data = {**TOKEN_BUDGET, "remainingQueries": 3, "totalQueries": 20}
    assert parse_rate_limits(data, heavy=True) == QuotaInfo(3, 20, 72000, None)
    assert parse_rate_limits(FLAT, heavy=True) == QuotaInfo(12, 20, 7200, None)


def test_token_budget_without_tokens_falls_back_to_queries() -> None:
    for tokens in (None, "57", True):
        data = {**TOKEN_BUDGET, "remainingTokens": tokens, "remainingQueries": 9, "totalQueries": 10}
        info = parse_rate_limits(data, heavy=False)
        assert (info.remaining, info.total) == (9, 10), tokens


def test_float_counts_are_truncated_to_int() -> None:
    info = parse_rate_limits({"remainingQueries": 7.9, "totalQueries": 20.0, "windowSizeSeconds": 60.5}, heavy=False)
    assert info == QuotaInfo(7, 20, 60, None)
    assert isinstance(info.remaining, int) and isinstance(info.window_seconds, int)


def test_top_level_wait_time() -> None:
    data = {**FLAT, "remainingQueries": 0, "waitTimeSeconds": 1234}
    info = parse_rate_limits(data, heavy=False)
    assert info.remaining == 0 and info.wait_seconds == 1234.0
    assert isinstance(info.wait_seconds, float)


def test_top_level_wait_time_wins_over_per_effort() -> None:
    data = {
        **TOKEN_BUDGET,
        "remainingTokens": 0,
        "waitTimeSeconds": 10,
        "lowEffortRateLimits": {"remainingQueries": 0, "waitTimeSeconds": 99},
    }
    assert parse_rate_limits(data, heavy=False).wait_seconds == 10.0


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
    data = {**TOKEN_BUDGET, "lowEffortRateLimits": low, "highEffortRateLimits": high}
    assert parse_rate_limits(data, heavy=False).wait_seconds == wait


@pytest.mark.parametrize("data", [{}, None, [], "text", 3, {"unrelated": 1}])
def test_missing_fields_are_none(data: Any) -> None:
    assert parse_rate_limits(data, heavy=False) == QuotaInfo(None, None, None, None)
    assert parse_rate_limits(data, heavy=True) == QuotaInfo(None, None, None, None)


def test_non_numeric_fields_are_none() -> None:
    data = {"remainingQueries": "12", "totalQueries": None, "windowSizeSeconds": False, "waitTimeSeconds": "5"}
    assert parse_rate_limits(data, heavy=False) == QuotaInfo(None, None, None, None)


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


async def test_refresh_learns_remaining_of_a_healthy_account(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-healthy", quota=50)
    await quiet.add_accounts("tok-healthy")
    acc = await _stored(quiet, "tok-healthy")
    assert acc.remaining is None
    result = await quiet.services.quota.refresh(acc)
    assert result.ok and result.remaining == 50 and result.heavy_remaining is None
    assert result.state == AccountState.ACTIVE and "50" in result.message
    after = await _stored(quiet, "tok-healthy")
    assert after.remaining == 50 and after.state == AccountState.ACTIVE


async def test_refresh_learns_heavy_quota_of_a_super_account(quiet: LiveGateway, fake: FakeGrok) -> None:
    fake.add_account("tok-super", tier="super", quota=100, heavy_quota=7)
    await quiet.add_accounts("tok-super", tier="super")
    result = await quiet.services.quota.refresh(await _stored(quiet, "tok-super"))
    assert result.ok and (result.remaining, result.heavy_remaining) == (100, 7)
    after = await _stored(quiet, "tok-super")
    assert (after.remaining, after.heavy_remaining) == (100, 7)


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


async def test_cooling_account_still_exhausted_stays_cooling(quiet: LiveGateway, fake: FakeGrok) -> None:
    upstream = fake.add_account("tok-spent", quota=30)
    upstream.remaining = 0
    await quiet.add_accounts("tok-spent")
    acc = await _cooling(quiet, "tok-spent", time.time() - 1)
    result = await quiet.services.quota.refresh(acc)
    assert result.ok and result.state == AccountState.COOLING
    after = await _stored(quiet, "tok-spent")
    left = upstream.seconds_left()
    assert after.state == AccountState.COOLING and after.remaining == 0
    assert after.cooldown_until is not None and abs(after.cooldown_until - (time.time() + left)) < 5
    assert after.window_reset_at is not None and abs(after.window_reset_at - after.cooldown_until) < 5


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


async def test_check_cools_an_active_account_grok_reports_exhausted(quiet: LiveGateway, fake: FakeGrok) -> None:
    upstream = fake.add_account("tok-empty", quota=10)
    upstream.remaining = 0
    await quiet.add_accounts("tok-empty")
    await quiet.services.quota.check(await _stored(quiet, "tok-empty"), MODELS["grok-3-fast"])
    after = await _stored(quiet, "tok-empty")
    assert after.state == AccountState.COOLING and after.remaining == 0
    assert after.cooldown_until is not None and after.cooldown_until > time.time() + 60


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
    assert set(got) == {"imagine-image", "imagine-image-pro", "imagine-edit", "imagine-video", "imagine-video-720p"}
    assert all(isinstance(w, ModeQuota) and w.remaining is not None and w.remaining > 0 for w in got.values())
    assert all(s.learned_cap for s in learned.settlements)  # never raise what requests in flight took
    assert len([r for r in fake.requests if r.path == "/rest/media/imagine/quota_info"]) == 1
