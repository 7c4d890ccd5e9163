"""Request counters aggregated in memory and flushed to the store periodically (never per request)."""

from __future__ import annotations

import time
from collections import Counter

from .store.base import Store, UsageRow, hour_of


class Metrics:
    def __init__(self) -> None:
        self._usage: Counter[tuple[int, str, str, str]] = Counter()
        self._key_uses: Counter[str] = Counter()

    def record(self, model: str, ok: bool, key_id: str = "") -> None:
        self._usage[(hour_of(time.time()), model, "ok" if ok else "error", key_id)] += 1
        if key_id:
            self._key_uses[key_id] += 1

    async def flush(self, store: Store) -> None:
        usage, self._usage = self._usage, Counter()
        keys, self._key_uses = self._key_uses, Counter()
        try:
            if usage:
                await store.add_usage(
                    [UsageRow(hour=h, model=m, outcome=o, key_id=k, count=n) for (h, m, o, k), n in usage.items()]
                )
            if keys:
                await store.touch_client_keys(dict(keys), time.time())
        except Exception:
            # Keep the counts for the next flush rather than lose them on a store hiccup.
            self._usage.update(usage)
            self._key_uses.update(keys)
            raise
