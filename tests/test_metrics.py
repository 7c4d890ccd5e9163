"""Request counters: aggregation in memory, flushing to a real store, and the Prometheus rendering."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from grok2api import metrics as metrics_module
from grok2api.metrics import Metrics, render_prometheus
from grok2api.store.base import ClientKey, Store, UsageRow, hour_of

from harness import StoreFactory

NOW = 1_700_000_000.0 - 1_700_000_000.0 % 3600 + 1800  # the middle of an hour
HOUR = hour_of(NOW)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    c = SimpleNamespace(now=NOW)
    monkeypatch.setattr(metrics_module, "time", SimpleNamespace(time=lambda: c.now))
    return c


class FlakyStore:
    """Passes calls through to a real store, failing the named methods ``failures`` times first."""

    def __init__(self, inner: Store, fail: set[str], failures: int = 1) -> None:
        self.inner = inner
        self.fail = fail
        self.failures = failures
        self.calls: list[str] = []

    def _maybe_fail(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail and self.failures > 0:
            self.failures -= 1
            raise ConnectionError(f"{name}: store unavailable")

    async def add_usage(self, rows: Sequence[UsageRow]) -> None:
        self._maybe_fail("add_usage")
        await self.inner.add_usage(rows)

    async def touch_client_keys(self, uses: dict[str, int], at: float) -> None:
        self._maybe_fail("touch_client_keys")
        await self.inner.touch_client_keys(uses, at)


def _key(key_id: str) -> ClientKey:
    return ClientKey(id=key_id, name=key_id, key_hash="h-" + key_id, prefix="sk-", created_at=NOW - 10)


def _usage(rows: list[UsageRow]) -> dict[tuple[int, str, str, str], int]:
    return {(r.hour, r.model, r.outcome, r.key_id): r.count for r in rows}


async def test_flush_writes_usage_rows_and_key_uses(store_factory: StoreFactory, clock: Any) -> None:
    store = await store_factory("sqlite")
    await store.put_client_key(_key("k1"))
    await store.put_client_key(_key("k2"))
    m = Metrics()
    for _ in range(3):
        m.record("grok-3-fast", True, "k1")
    m.record("grok-3-fast", False, "k1")
    m.record("grok-4", True)
    m.record("grok-4", True, "k2")
    clock.now += 3600  # the next hour gets its own bucket
    m.record("grok-4", True)
    await m.flush(store)

    assert _usage(await store.usage_since(HOUR)) == {
        (HOUR, "grok-3-fast", "ok", "k1"): 3,
        (HOUR, "grok-3-fast", "error", "k1"): 1,
        (HOUR, "grok-4", "ok", ""): 1,
        (HOUR, "grok-4", "ok", "k2"): 1,
        (HOUR + 3600, "grok-4", "ok", ""): 1,
    }
    keys = {k.id: k for k in await store.list_client_keys()}
    assert (keys["k1"].requests, keys["k2"].requests) == (4, 1)
    assert keys["k1"].last_used_at == pytest.approx(clock.now)

    # A second flush adds only what was recorded since.
    m.record("grok-4", True, "k2")
    await m.flush(store)
    await m.flush(store)  # nothing new: nothing written twice
    usage = _usage(await store.usage_since(HOUR))
    assert usage[(HOUR + 3600, "grok-4", "ok", "k2")] == 1 and usage[(HOUR, "grok-4", "ok", "k2")] == 1
    assert sum(usage.values()) == 8
    keys = {k.id: k for k in await store.list_client_keys()}
    assert (keys["k1"].requests, keys["k2"].requests) == (4, 2)


async def test_flush_with_nothing_recorded_touches_nothing(store_factory: StoreFactory) -> None:
    flaky = FlakyStore(await store_factory("sqlite"), fail={"add_usage", "touch_client_keys"}, failures=99)
    await Metrics().flush(flaky)  # type: ignore[arg-type]
    assert flaky.calls == []


async def test_failing_store_keeps_counts_for_the_next_flush(store_factory: StoreFactory, clock: Any) -> None:
    store = await store_factory("sqlite")
    await store.put_client_key(_key("k1"))
    flaky = FlakyStore(store, fail={"add_usage"})
    m = Metrics()
    m.record("grok-3-fast", True, "k1")
    m.record("grok-3-fast", True, "k1")
    with pytest.raises(ConnectionError):
        await m.flush(flaky)  # type: ignore[arg-type]
    assert await store.usage_since(HOUR) == []
    m.record("grok-3-fast", True, "k1")  # recorded while the store was down
    await m.flush(flaky)  # type: ignore[arg-type]
    assert _usage(await store.usage_since(HOUR)) == {(HOUR, "grok-3-fast", "ok", "k1"): 3}
    assert [k.requests for k in await store.list_client_keys()] == [3]


async def test_key_touch_failure_does_not_double_count_usage(store_factory: StoreFactory, clock: Any) -> None:
    store = await store_factory("sqlite")
    await store.put_client_key(_key("k1"))
    flaky = FlakyStore(store, fail={"touch_client_keys"})
    m = Metrics()
    m.record("grok-3-fast", True, "k1")
    with pytest.raises(ConnectionError):
        await m.flush(flaky)  # type: ignore[arg-type]
    await m.flush(flaky)  # type: ignore[arg-type]
    assert [k.requests for k in await store.list_client_keys()] == [1]
    assert _usage(await store.usage_since(HOUR)) == {(HOUR, "grok-3-fast", "ok", "k1"): 1}


def test_process_counters_survive_flushes_and_feed_prometheus() -> None:
    m = Metrics()
    m.record("grok-4", True)
    m.record("grok-3-fast", True, "k1")
    m.record("grok-3-fast", True)
    m.record("grok-3-fast", False)
    m.upstream_failure("server")
    m.upstream_failure("rate_limited")
    m.upstream_failure("server")
    text = render_prometheus(m, [("cooling", "basic", 2), ("active", "super", 1), ("active", "basic", 5)], 3)
    assert text.endswith("\n")
    lines = text.splitlines()
    samples = [line for line in lines if not line.startswith("#")]
    assert samples == [
        'grok2api_requests_total{model="grok-3-fast",outcome="error"} 1',
        'grok2api_requests_total{model="grok-3-fast",outcome="ok"} 2',
        'grok2api_requests_total{model="grok-4",outcome="ok"} 1',
        'grok2api_upstream_failures_total{kind="rate_limited"} 1',
        'grok2api_upstream_failures_total{kind="server"} 2',
        'grok2api_accounts{state="active",tier="basic"} 5',
        'grok2api_accounts{state="active",tier="super"} 1',
        'grok2api_accounts{state="cooling",tier="basic"} 2',
        "grok2api_in_flight 3",
    ]
    for name, kind in [
        ("grok2api_requests_total", "counter"),
        ("grok2api_upstream_failures_total", "counter"),
        ("grok2api_accounts", "gauge"),
        ("grok2api_in_flight", "gauge"),
    ]:
        assert f"# TYPE {name} {kind}" in lines
        assert any(line.startswith(f"# HELP {name} ") for line in lines)
        # HELP and TYPE come before the family's samples.
        first_sample = next(i for i, line in enumerate(lines) if line.startswith((name + "{", name + " ")))
        assert lines.index(f"# TYPE {name} {kind}") < first_sample


async def test_prometheus_counters_are_not_reset_by_flush(store_factory: StoreFactory) -> None:
    store = await store_factory("sqlite")
    m = Metrics()
    m.record("grok-4", True)
    await m.flush(store)
    m.record("grok-4", True)
    assert 'grok2api_requests_total{model="grok-4",outcome="ok"} 2' in render_prometheus(m, [], 0).splitlines()


def test_prometheus_with_nothing_recorded() -> None:
    text = render_prometheus(Metrics(), [], 0)
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert samples == ["grok2api_in_flight 0"]
    assert text.count("# TYPE ") == 4
