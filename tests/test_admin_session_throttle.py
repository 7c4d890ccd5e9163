"""The login throttle counts attempts per client in the store, so every worker and replica shares the count."""

from __future__ import annotations

import asyncio

from grok2api.admin.session_throttle import LoginThrottle
from grok2api.store.base import Store

from harness import StoreFactory


async def test_attempts_past_the_limit_wait_until_the_window_ends(store: Store) -> None:
    throttle = LoginThrottle(store, max_failures=3, window=60)
    assert [await throttle.attempt("ip") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = await throttle.attempt("ip")
    assert 59 < wait <= 60
    assert await throttle.attempt("another-ip") == 0.0  # each client has its own count


async def test_a_success_clears_the_count_and_a_window_that_ended_starts_over(store: Store) -> None:
    throttle = LoginThrottle(store, max_failures=2, window=0.6)
    await throttle.attempt("ip")
    await throttle.success("ip")
    assert [await throttle.attempt("ip") for _ in range(2)] == [0.0, 0.0]
    assert await throttle.attempt("ip") > 0
    await asyncio.sleep(0.7)
    assert await throttle.attempt("ip") == 0.0


async def test_workers_share_one_count(store_factory: StoreFactory) -> None:
    """Two processes on one SQLite file, each with its own throttle: five attempts in all, not five each."""
    one, two = await store_factory("sqlite"), await store_factory("sqlite", fresh=False)
    throttles = [LoginThrottle(one), LoginThrottle(two)]
    waits = await asyncio.gather(*(throttles[i % 2].attempt("10.1.2.3") for i in range(12)))
    assert sum(w == 0 for w in waits) == 5
