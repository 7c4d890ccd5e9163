"""The doctor's and the canary's records live in the store's settings mapping, on every backend, beside the
settings without disturbing them."""

from __future__ import annotations

from grok2api.diagnose.records import (
    CANARY_KEY,
    KEEP_CANARY_RUNS,
    CanaryRun,
    add_canary_run,
    canary_runs,
    load_reports,
    report_key,
    save_report,
)
from grok2api.diagnose.report import Report, Step
from grok2api.settings import build
from grok2api.store.base import Store


def report(egress: str, verdict: str = "ok") -> Report:
    return Report(
        egress=egress,
        transport="aiohttp, direct",
        account="tok-ab…1234",
        at=1.0,
        steps=[Step(name="chat_turn", ok=True, verdict=verdict)],
    )


async def test_the_last_report_per_egress_round_trips(store: Store) -> None:
    before = (await store.versions()).settings
    await save_report(store, report("default", "first"))
    await save_report(store, report("default", "second"))
    await save_report(store, report("e" * 200))  # a long name still fits the store's 64-character names
    found = await load_reports(store)
    assert set(found) == {"default", "e" * 200}
    assert found["default"] == report("default", "second") and found["default"].ok
    assert (await store.versions()).settings > before  # every worker re-reads the mapping
    assert len(report_key("e" * 200)) <= 64
    # Runtime settings built from the same mapping do not see the records.
    assert build(await store.load_settings(), {}).upstream_url == "https://grok.com"


async def test_the_canary_keeps_its_newest_runs(store: Store) -> None:
    for n in range(KEEP_CANARY_RUNS + 3):
        await add_canary_run(store, CanaryRun(at=float(n), ok=n % 2 == 0, code="ok", verdict=f"run {n}"))
    runs = canary_runs(await store.load_settings())
    assert len(runs) == KEEP_CANARY_RUNS
    assert [r.at for r in runs] == [float(n) for n in range(3, KEEP_CANARY_RUNS + 3)]


async def test_records_that_no_longer_decode_are_skipped(store: Store) -> None:
    await store.save_settings({report_key("broken"): {"egress": 3}, CANARY_KEY: "nonsense"})
    await save_report(store, report("good"))
    assert set(await load_reports(store)) == {"good"}
    assert canary_runs(await store.load_settings()) == []
