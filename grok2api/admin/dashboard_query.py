"""The dashboard's numbers: accounts by state and tier, remaining quota, recent requests, the chart."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..services import Services
from ..store.base import Account, AccountState, Tier, UsageRow, hour_of
from . import dashboard_charts

log = logging.getLogger("grok2api.admin")
STATES = tuple(s.value for s in AccountState)
TIERS = tuple(t.value for t in Tier)


@dataclass
class Summary:
    total: int = 0
    by_tier: dict[str, dict[str, int]] = field(default_factory=dict)  # tier -> state -> count
    by_state: dict[str, int] = field(default_factory=dict)
    remaining: int = 0  # known units left on active accounts
    heavy_remaining: int = 0
    unknown_quota: int = 0  # active accounts never checked yet
    hour_ok: int = 0
    hour_errors: int = 0
    day_ok: int = 0
    day_errors: int = 0
    hour_start: int = 0
    chart: dashboard_charts.Chart | None = None


def summarize(accounts: Iterable[Account], usage: Iterable[UsageRow], now: float) -> Summary:
    s = Summary(by_tier={t: dict.fromkeys(STATES, 0) for t in TIERS}, by_state=dict.fromkeys(STATES, 0))
    for acc in accounts:
        s.total += 1
        tier = s.by_tier.setdefault(acc.tier, dict.fromkeys(STATES, 0))
        tier[acc.state] = tier.get(acc.state, 0) + 1
        s.by_state[acc.state] = s.by_state.get(acc.state, 0) + 1
        if acc.state != AccountState.ACTIVE:
            continue
        if acc.remaining is None:
            s.unknown_quota += 1
        else:
            s.remaining += max(acc.remaining, 0)
        s.heavy_remaining += max(acc.heavy_remaining or 0, 0)
    rows = list(usage)
    s.hour_start = hour_of(now)
    day_start = s.hour_start - (dashboard_charts.HOURS - 1) * 3600
    for row in rows:
        if row.hour < day_start:
            continue
        ok = row.outcome == "ok"
        if ok:
            s.day_ok += row.count
        else:
            s.day_errors += row.count
        if row.hour == s.hour_start:
            if ok:
                s.hour_ok += row.count
            else:
                s.hour_errors += row.count
    s.chart = dashboard_charts.build(rows, s.hour_start)
    return s


async def recent_usage(svc: Services, now: float) -> list[UsageRow]:
    """The last 24 hours of counters, this process's unflushed ones included."""
    try:
        await svc.metrics.flush(svc.store)
    except Exception as exc:  # the counters stay queued; the page shows what the store has
        log.warning("could not flush request counters: %s", exc)
    return await svc.store.usage_since(hour_of(now) - (dashboard_charts.HOURS - 1) * 3600)


async def load(svc: Services) -> Summary:
    now = time.time()
    return summarize(svc.pool.accounts(), await recent_usage(svc, now), now)
