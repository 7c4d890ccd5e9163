"""The doctor's last report per egress and the canary's last runs, kept in the store so every worker and replica
shows the same thing.

They live in the store's settings mapping, under names no setting can have (``_doctor:<egress>``, ``_canary``),
as the admin password hash does: every backend has it, no migration is needed, and ``settings.build`` ignores
them. A write bumps the settings version, so each process re-reads the mapping once; the doctor and the canary
write seldom (an operator's click, once per canary interval), which keeps that cheap."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import msgspec

from ..store.base import Store
from .report import Report

log = logging.getLogger("grok2api.diagnose")

DOCTOR_PREFIX = "_doctor:"
CANARY_KEY = "_canary"
KEEP_CANARY_RUNS = 20
_NAME_LIMIT = 64 - len(DOCTOR_PREFIX)  # the store's setting names are at most 64 characters


class CanaryRun(msgspec.Struct, kw_only=True):
    """One canary chat turn: when, with which account (masked) and egress, its verdict, and the shapes grok.com
    sent during it that the parser did not know (name → count)."""

    at: float
    ok: bool
    code: str
    verdict: str
    fix: str = ""
    egress: str = ""
    account: str = ""
    unknown: dict[str, int] = msgspec.field(default_factory=dict)


def report_key(egress: str) -> str:
    if len(egress) <= _NAME_LIMIT:
        return DOCTOR_PREFIX + egress
    return DOCTOR_PREFIX + hashlib.sha256(egress.encode()).hexdigest()[:32]


def reports_of(stored: Mapping[str, Any]) -> dict[str, Report]:
    """The reports in a stored settings mapping, by egress (a record that no longer decodes is skipped)."""
    found: dict[str, Report] = {}
    for key, value in stored.items():
        if not key.startswith(DOCTOR_PREFIX):
            continue
        try:
            report = msgspec.convert(value, Report)
        except msgspec.ValidationError as exc:
            log.info("ignoring the stored doctor report %s: %s", key, exc)
            continue
        found[report.egress] = report
    return found


def canary_runs(stored: Mapping[str, Any]) -> list[CanaryRun]:
    """The canary's kept runs, oldest first."""
    try:
        return msgspec.convert(stored.get(CANARY_KEY) or [], list[CanaryRun])
    except msgspec.ValidationError as exc:
        log.info("ignoring the stored canary runs: %s", exc)
        return []


async def save_report(store: Store, report: Report) -> None:
    await store.save_settings({report_key(report.egress): msgspec.to_builtins(report)})


async def load_reports(store: Store) -> dict[str, Report]:
    return reports_of(await store.load_settings())


async def add_canary_run(store: Store, run: CanaryRun) -> list[CanaryRun]:
    """Keep ``run`` with the ones before it (the newest ``KEEP_CANARY_RUNS``); returns them, oldest first."""
    runs = [*canary_runs(await store.load_settings()), run][-KEEP_CANARY_RUNS:]
    await store.save_settings({CANARY_KEY: msgspec.to_builtins(runs)})
    return runs
