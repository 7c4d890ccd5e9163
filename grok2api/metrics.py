"""Request counters aggregated in memory and flushed to the store periodically (never per request)."""

from __future__ import annotations

import time
from collections import Counter

from .store.base import Store, UsageRow, hour_of


class Metrics:
    def __init__(self) -> None:
        self._usage: Counter[tuple[int, str, str, str]] = Counter()
        self._key_uses: Counter[str] = Counter()
        # Process-lifetime counters for /metrics (never reset by flushes).
        self.requests: Counter[tuple[str, str]] = Counter()  # (model, ok|error)
        self.upstream_failures: Counter[str] = Counter()  # failure kind

    def record(self, model: str, ok: bool, key_id: str = "") -> None:
        outcome = "ok" if ok else "error"
        self._usage[(hour_of(time.time()), model, outcome, key_id)] += 1
        self.requests[(model, outcome)] += 1
        if key_id:
            self._key_uses[key_id] += 1

    def upstream_failure(self, kind: str) -> None:
        self.upstream_failures[kind] += 1

    async def flush(self, store: Store) -> None:
        usage, self._usage = self._usage, Counter()
        keys, self._key_uses = self._key_uses, Counter()
        # Each write is kept for the next flush only if it failed itself, so nothing is counted twice.
        try:
            if usage:
                await store.add_usage(
                    [UsageRow(hour=h, model=m, outcome=o, key_id=k, count=n) for (h, m, o, k), n in usage.items()]
                )
        except Exception:
            self._usage.update(usage)
            self._key_uses.update(keys)
            raise
        try:
            if keys:
                await store.touch_client_keys(dict(keys), time.time())
        except Exception:
            self._key_uses.update(keys)
            raise


def render_prometheus(metrics: Metrics, accounts: list[tuple[str, str, int]], in_flight: int) -> str:
    """The Prometheus text format. ``accounts`` holds (state, tier, count)."""
    lines = [
        "# HELP grok2api_requests_total Client requests by model and outcome (this process).",
        "# TYPE grok2api_requests_total counter",
    ]
    lines += [
        f'grok2api_requests_total{{model="{m}",outcome="{o}"}} {n}' for (m, o), n in sorted(metrics.requests.items())
    ]
    lines += [
        "# HELP grok2api_upstream_failures_total Failed upstream attempts by kind (this process).",
        "# TYPE grok2api_upstream_failures_total counter",
    ]
    failures = sorted(metrics.upstream_failures.items())
    lines += [f'grok2api_upstream_failures_total{{kind="{k}"}} {n}' for k, n in failures]
    lines += ["# HELP grok2api_accounts Accounts in the pool by state and tier.", "# TYPE grok2api_accounts gauge"]
    lines += [f'grok2api_accounts{{state="{s}",tier="{t}"}} {n}' for s, t, n in sorted(accounts)]
    lines += [
        "# HELP grok2api_in_flight Upstream requests in flight (this process).",
        "# TYPE grok2api_in_flight gauge",
        f"grok2api_in_flight {in_flight}",
    ]
    return "\n".join(lines) + "\n"
