"""The drift canary: every ``canary_interval_minutes`` (0 = off) one chat turn, the doctor's, in the cheapest
mode with one account, so an operator learns that grok.com changed or stopped letting the gateway in before
the clients do. Runs are kept in the store (any worker shows them); each process counts its own runs by verdict
for ``/metrics``. The dashboard shows a banner when the newest run failed, or when grok.com sends shapes the
parser does not know.

With several workers or replicas each one polls the shared record and runs the turn only when the newest run is
older than the interval, so it runs about once per interval (two processes may rarely both run one)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..grok.catalog import TIER_RANK
from ..grok.egress import Egress
from ..grok.unknown_shapes import METRIC as UNKNOWN_METRIC
from ..grok.unknown_shapes import UNKNOWN_SHAPES, UnknownShapes
from ..settings import RuntimeSettings
from ..store.base import Account, AccountState, Store
from .doctor import DoctorAccount, chat_check
from .probes import CHAT_MODE, Timeouts
from .records import CanaryRun, add_canary_run, canary_runs
from .report import Verdict, mask
from .targets import targets
from .verdicts import failing

log = logging.getLogger("grok2api.diagnose")
POLL_SECONDS = 30.0


class Canary:
    def __init__(
        self,
        store: Store,
        settings: Callable[[], RuntimeSettings],
        accounts: Callable[[], list[Account]],
        *,
        timeouts: Timeouts = Timeouts(),
        shapes: UnknownShapes = UNKNOWN_SHAPES,
        egress_of: Callable[[str], Egress] | None = None,
    ) -> None:
        self.egress_of = egress_of  # the egress an account goes out through (the turn takes that way)
        self.store = store
        self.settings = settings
        self.accounts = accounts
        self.timeouts = timeouts
        self.shapes = shapes
        self.runs = Counter[str]()  # this process's runs by verdict code
        self.last: CanaryRun | None = None  # the newest run of any process (read at every poll while on)

    @property
    def interval(self) -> float:
        return self.settings().canary_interval_minutes * 60.0

    async def refresh(self) -> None:
        runs = canary_runs(await self.store.load_settings())
        self.last = runs[-1] if runs else None

    def due(self, now: float) -> bool:
        return self.interval > 0 and (self.last is None or now - self.last.at >= self.interval)

    async def tick(self) -> CanaryRun | None:
        """Run the turn when it is due (re-reading the shared record first); None when it was not."""
        if self.interval <= 0:
            return None
        await self.refresh()
        return await self.run_once() if self.due(time.time()) else None

    async def run_once(self) -> CanaryRun:
        settings = self.settings()
        target = targets(settings)[0]
        before = Counter(self.shapes.counts)
        account = await self._reserve()
        if account is None:
            verdict = f"no active account has a {CHAT_MODE} query left to run the canary with"
            step = failing("chat_turn", Verdict.NO_ACCOUNT, verdict, target)
        else:
            if self.egress_of is not None:
                target = targets(settings, [self.egress_of(account.token)])[0]
            step = await chat_check(target, DoctorAccount(account.token, account.user_id), settings, self.timeouts)
        unknown = {n: c - before.get(n, 0) for n, c in self.shapes.counts.items() if c > before.get(n, 0)}
        run = CanaryRun(
            at=time.time(),
            ok=step.ok,
            code=step.code,
            verdict=step.verdict,
            fix=step.fix,
            egress=target.name,
            account=mask(account.token) if account else "",
            unknown=unknown,
        )
        self.runs[run.code] += 1
        if not run.ok:
            log.warning("the canary chat turn failed (%s): %s", run.code, run.verdict)
        await add_canary_run(self.store, run)
        self.last = run
        return run

    async def _reserve(self) -> Account | None:
        """One query of the canary's mode on the lowest-tier active account that has one (the store takes it
        atomically, so the gateway's counts stay true)."""
        active = [a for a in self.accounts() if a.state == AccountState.ACTIVE]
        for account in sorted(active, key=lambda a: (TIER_RANK.get(a.tier, 0), a.id)):
            if await self.store.reserve(account.id, CHAT_MODE):
                return account
        return None

    async def loop(self) -> None:
        await asyncio.sleep(random.uniform(0, POLL_SECONDS))  # workers started together poll apart
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a store hiccup must not end the canary
                log.warning("the canary could not run: %s", exc)
            await asyncio.sleep(POLL_SECONDS)


@dataclass(frozen=True)
class Notice:
    """One dashboard banner line: what happened, and what to do."""

    title: str
    detail: str
    fix: str


def notices(canary: Canary) -> list[Notice]:
    """The dashboard's banner: the newest canary run failed (while the canary is on), or grok.com sends shapes
    the parser does not know (seen by this process, or during the newest canary run)."""
    found: list[Notice] = []
    last = canary.last if canary.interval > 0 else None
    if last is not None and not last.ok:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last.at))
        found.append(Notice(f"The canary chat turn failed at {when}", last.verdict, last.fix))
    unknown = sorted(set(canary.shapes.counts) | set(last.unknown if last else {}))
    if unknown:
        shown = ", ".join(unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
        found.append(
            Notice(
                "grok.com sends shapes the parser does not know",
                f"{shown}: skipped, and counted in {UNKNOWN_METRIC}. Answers may miss what they carried.",
                "grok.com has changed its protocol again: update grok2api.",
            )
        )
    return found


def metric_lines(canary: Canary) -> list[str]:
    """The canary in the Prometheus text format."""
    lines = [
        "# HELP grok2api_canary_runs_total Canary chat turns by verdict (ok, or the failure's code; this process).",
        "# TYPE grok2api_canary_runs_total counter",
    ]
    lines += [f'grok2api_canary_runs_total{{verdict="{code}"}} {n}' for code, n in sorted(canary.runs.items())]
    if canary.last is not None:
        lines += [
            "# HELP grok2api_canary_last_ok Whether the newest canary run (of any process) worked.",
            "# TYPE grok2api_canary_last_ok gauge",
            f"grok2api_canary_last_ok {int(canary.last.ok)}",
            "# HELP grok2api_canary_last_run_timestamp_seconds When the newest canary run ended.",
            "# TYPE grok2api_canary_last_run_timestamp_seconds gauge",
            f"grok2api_canary_last_run_timestamp_seconds {canary.last.at:.0f}",
        ]
    return lines
