"""The drift canary: a chat turn on its schedule with one account's fast query, its runs kept in the store, its
counters in /metrics, and the dashboard's banner when it failed or grok.com sent shapes the parser does not know."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from grok2api.diagnose.canary import Canary, metric_lines, notices
from grok2api.diagnose.records import CanaryRun, add_canary_run, canary_runs
from grok2api.diagnose.report import Verdict
from grok2api.grok.unknown_shapes import UNKNOWN_SHAPES
from grok2api.settings import RuntimeSettings
from grok2api.store.base import Account, ModeQuota, NewAccount, Store
from grok2api.testing.fake_grok import FakeGrok

from harness import StoreFactory


@pytest.fixture(autouse=True)
def fresh_unknown_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process-wide counter starts empty in each test (other tests' unknown shapes are not this one's)."""
    monkeypatch.setattr(UNKNOWN_SHAPES, "counts", Counter())


class Pool:
    """What the canary reads: the settings and the accounts, as the running gateway would hand them over."""

    def __init__(self, store: Store, settings: RuntimeSettings) -> None:
        self.store = store
        self.settings = settings
        self.accounts: list[Account] = []

    async def add(self, token: str, *, tier: str = "basic", fast_left: int | None = 5) -> None:
        quotas = {"fast": ModeQuota(remaining=fast_left, total=30)} if fast_left is not None else None
        await self.store.add_accounts([NewAccount(token=token, tier=tier, quotas=quotas)])
        self.accounts = await self.store.list_accounts()

    def canary(self) -> Canary:
        return Canary(self.store, lambda: self.settings, lambda: self.accounts)


@pytest.fixture
async def pool(fake: FakeGrok, store_factory: StoreFactory) -> Pool:
    settings = RuntimeSettings(
        upstream_url=fake.base_url, assets_url=fake.assets_url, upstream_transport="aiohttp", canary_interval_minutes=5
    )
    return Pool(await store_factory("sqlite"), settings)


async def test_a_good_run_spends_one_fast_query_and_is_kept(pool: Pool, fake: FakeGrok) -> None:
    await pool.add("tok-canary-heavy-1", tier="heavy")
    await pool.add("tok-canary-basic-1")
    canary = pool.canary()
    run = await canary.run_once()
    assert run.ok and run.code == Verdict.OK and run.unknown == {}
    assert run.account.startswith("tok-ca") and "basic" not in run.account  # masked
    # The lowest tier serves, and the store's count moved with grok.com's.
    [session] = fake.mgw_sessions()
    assert session.token == "tok-canary-basic-1" and session.mode == "fast"
    basic = await pool.store.get_account("tok-canary-basic-1")
    assert basic is not None and basic.quotas["fast"].remaining == 4
    assert canary_runs(await pool.store.load_settings()) == [run]
    lines = metric_lines(canary)
    assert 'grok2api_canary_runs_total{verdict="ok"} 1' in lines and "grok2api_canary_last_ok 1" in lines
    assert notices(canary) == []


async def test_a_failed_run_counts_by_verdict_and_shows_a_banner(pool: Pool, fake: FakeGrok) -> None:
    await pool.add("tok-canary-basic-2")
    canary = pool.canary()
    fake.push_fault("mgw-403-cf")
    run = await canary.run_once()
    assert not run.ok and run.code == Verdict.CLOUDFLARE and "cf_clearance" in run.fix
    lines = metric_lines(canary)
    assert 'grok2api_canary_runs_total{verdict="cloudflare_challenge"} 1' in lines
    assert "grok2api_canary_last_ok 0" in lines
    [banner] = notices(canary)
    assert banner.title.startswith("The canary chat turn failed") and "Cloudflare" in banner.detail
    assert banner.fix == run.fix
    # Switched off, the canary says nothing about its last run.
    pool.settings = RuntimeSettings(upstream_url=fake.base_url, canary_interval_minutes=0)
    assert notices(canary) == []


async def test_no_account_with_a_query_left(pool: Pool, fake: FakeGrok) -> None:
    await pool.add("tok-canary-basic-3", fast_left=0)
    run = await pool.canary().run_once()
    assert run.code == Verdict.NO_ACCOUNT and not run.ok and "fast query left" in run.verdict
    assert fake.mgw_sessions() == []


async def test_shapes_the_parser_does_not_know_are_kept_and_shown(pool: Pool, fake: FakeGrok) -> None:
    await pool.add("tok-canary-basic-4")
    canary = pool.canary()
    fake.push_fault("mgw-unknown")
    run = await canary.run_once()
    assert run.ok and run.unknown and all(n > 0 for n in run.unknown.values())
    [banner] = notices(canary)
    assert banner.title == "grok.com sends shapes the parser does not know"
    assert all(name in banner.detail for name in sorted(run.unknown)[:8])


async def test_it_runs_only_when_on_and_due(pool: Pool, fake: FakeGrok) -> None:
    await pool.add("tok-canary-basic-5")
    canary = pool.canary()
    pool.settings = RuntimeSettings(upstream_url=fake.base_url, assets_url=fake.assets_url, canary_interval_minutes=0)
    assert await canary.tick() is None  # off
    pool.settings = RuntimeSettings(upstream_url=fake.base_url, assets_url=fake.assets_url, canary_interval_minutes=5)
    # Another worker ran it six minutes ago: due.
    await add_canary_run(pool.store, CanaryRun(at=time.time() - 360, ok=True, code="ok", verdict="elsewhere"))
    run = await canary.tick()
    assert run is not None and run.ok and len(fake.mgw_sessions()) == 1
    assert [r.verdict for r in canary_runs(await pool.store.load_settings())] == ["elsewhere", run.verdict]
    # A second worker polling now finds that fresh run: not due.
    other = pool.canary()
    assert await other.tick() is None and other.last == run
    assert len(fake.mgw_sessions()) == 1
