from __future__ import annotations

from grok2api.admin.dashboard_query import summarize
from grok2api.store.base import Account, ModeQuota, UsageRow

NOW = 1_800_000_000.0 + 1800  # half past an hour
HOUR = 1_800_000_000 // 3600 * 3600


def test_summary_counts_states_tiers_quota_and_requests() -> None:
    accounts = [
        Account(id=1, token="a", quotas={"fast": ModeQuota(remaining=10), "heavy": ModeQuota()}),
        Account(
            id=2, token="b", tier="super", quotas={"fast": ModeQuota(remaining=5), "heavy": ModeQuota(remaining=3)}
        ),
        Account(id=3, token="c", quotas={}),
        Account(id=4, token="d", quotas={"fast": ModeQuota(remaining=50)}, state="cooling"),
        Account(id=5, token="e", state="invalid", tier="super"),
    ]
    usage = [
        UsageRow(hour=HOUR, model="m", outcome="ok", count=4),
        UsageRow(hour=HOUR, model="m", outcome="error", count=1),
        UsageRow(hour=HOUR - 5 * 3600, model="m", outcome="ok", count=10),
        UsageRow(hour=HOUR - 30 * 3600, model="m", outcome="ok", count=1000),  # older than a day
    ]
    s = summarize(accounts, usage, NOW)
    assert s.total == 5
    assert s.by_state == {"active": 3, "cooling": 1, "invalid": 1, "blocked": 0, "disabled": 0}
    assert s.by_tier["basic"]["active"] == 2 and s.by_tier["super"] == {
        "active": 1,
        "cooling": 0,
        "invalid": 1,
        "blocked": 0,
        "disabled": 0,
    }
    assert (s.remaining, s.heavy_remaining, s.unknown_quota) == (15, 3, 1)  # active accounts only
    assert (s.hour_ok, s.hour_errors, s.day_ok, s.day_errors) == (4, 1, 14, 1)
    assert s.hour_start == HOUR and s.chart is not None and s.chart.bars[-1].ok == 4
