"""The account pool: which account serves a request, and what an upstream answer means for it.

Selection reads an in-memory snapshot (refreshed when the store's version counter moves, and
periodically); the store's atomic ``reserve`` is the authority, so several workers and replicas
can share one pool without double-spending quota.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgspec

from .errors import NoAccount, RateLimited
from .grok.catalog import ModelSpec
from .grok.failures import Failure, FailureKind
from .settings import RuntimeSettings
from .store.base import FAST_MODE, HEAVY_MODE, Account, AccountState, ModeQuota, Settlement, Store, Tier

log = logging.getLogger("grok2api.pool")

SNAPSHOT_MAX_AGE = 15.0
RECONCILE_EVERY = 600.0  # seconds between quota checks of one busy account
SCAN_TARGET = 32  # eligible accounts looked at per pick (see Pool.candidates)


def mode_of(spec: ModelSpec) -> str:
    """The quota window a model draws from: its own mode once models are modes; until then the 2025
    counters' successors (heavy models: ``heavy``, every other model: ``fast``)."""
    return HEAVY_MODE if spec.heavy else FAST_MODE


def _group(tier: str) -> str:
    """Selection groups: heavy-tier accounts serve whatever super accounts serve."""
    return Tier.SUPER if tier in (Tier.SUPER, Tier.HEAVY) else Tier.BASIC


def _left(acc: Account, mode: str) -> int | None:
    window = acc.quotas.get(mode)
    return None if window is None else window.remaining


def _apply_learned(acc: Account, mode: str, learned: ModeQuota, cap: bool) -> None:
    """The local mirror of the store's rule for a learned window (see Settlement.learned)."""
    if not cap:
        acc.quotas[mode] = ModeQuota(**msgspec.structs.asdict(learned))
        return
    window = acc.quotas.setdefault(mode, ModeQuota())
    if learned.remaining is not None and (window.remaining is None or window.remaining > learned.remaining):
        window.remaining = learned.remaining
    for field in ("total", "window_seconds", "reset_at"):
        if getattr(learned, field) is not None:
            setattr(window, field, getattr(learned, field))


def _human_wait(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


class Lease:
    """One account reserved for one upstream attempt. Settle exactly once."""

    def __init__(self, pool: Pool, account: Account, spec: ModelSpec, cost: int) -> None:
        self.pool = pool
        self.account = account
        self.spec = spec
        self.mode = mode_of(spec)
        self.cost = cost  # what the reservation took from the mode's window (given back when not charged)
        self.settled = False

    @property
    def token(self) -> str:
        return self.account.token

    async def succeed(self, extra_cost: int = 0) -> None:
        """The upstream served the request. ``extra_cost`` charges more (e.g. image generation)."""
        if not self.settled:
            self.settled = True
            await self.pool.settle_success(self.account.id, self.spec, extra_cost)

    async def fail(self, failure: Failure) -> None:
        if not self.settled:
            self.settled = True
            refund = 0 if failure.charged else self.cost
            settlement = settlement_for(failure, self.pool.settings(), mode=self.mode, refund=refund)
            await self.pool.settle(self.account.id, settlement)


def settlement_for(
    failure: Failure, settings: RuntimeSettings, *, mode: str = "", refund: int = 0, live_check: bool = False
) -> Settlement:
    """What a failure does to its account, in one place. ``live_check`` is an operator's explicit test
    (admin, CLI, reviver): rejected credentials then count at once instead of after several failures,
    and a 429 cools the account without claiming its counter is empty."""
    s = Settlement(mode=mode, refund=refund)
    if failure.kind in (FailureKind.EGRESS, FailureKind.CANCELLED):
        return s  # not the account's fault: only give the quota back
    s.failure = failure.reason
    if failure.kind == FailureKind.INVALID:
        if live_check:
            s.state, s.state_reason = AccountState.INVALID, failure.reason
        else:
            s.counts_towards_invalid = True
            s.invalid_after = settings.invalid_after_failures
    elif failure.kind == FailureKind.BLOCKED:
        s.state, s.state_reason = AccountState.BLOCKED, failure.reason
    elif failure.kind == FailureKind.RATE_LIMITED:
        wait = failure.retry_after or settings.default_cooldown_seconds
        s.state = AccountState.COOLING
        s.state_reason = failure.reason if live_check else f"{failure.reason}; cooling for {_human_wait(wait)}"
        s.cooldown_until = time.time() + wait
        if not live_check:  # the mode's window is empty until grok.com says otherwise
            s.learned, s.learned_cap = ModeQuota(remaining=0), True
    return s


Reconciler = Callable[[Account, ModelSpec], Awaitable[Settlement]]


class Pool:
    def __init__(
        self, store: Store, settings: Callable[[], RuntimeSettings], reconcile: Reconciler | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.reconcile = reconcile  # asks grok.com for an account's true quota
        self._reconciling: set[int] = set()
        self._last_reconciled: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._snapshot: dict[int, Account] = {}
        self._tiers: dict[str, list[int]] = {Tier.BASIC: [], Tier.SUPER: []}
        self._in_flight: dict[int, int] = {}
        self._accounts_version = -1
        self._loaded_at = 0.0
        self._refresh_lock = asyncio.Lock()

    # -- snapshot ------------------------------------------------------------------------------

    async def refresh(self, accounts_version: int | None = None, force: bool = False) -> None:
        """Reload the snapshot when the store's version moved, or when it is old."""
        stale = time.monotonic() - self._loaded_at > SNAPSHOT_MAX_AGE
        if not force and not stale and (accounts_version is None or accounts_version == self._accounts_version):
            return
        async with self._refresh_lock:
            accounts = await self.store.list_accounts()
            self._snapshot = {a.id: a for a in accounts}
            self._tiers = {
                Tier.BASIC: [a.id for a in accounts if _group(a.tier) == Tier.BASIC],
                Tier.SUPER: [a.id for a in accounts if _group(a.tier) == Tier.SUPER],
            }
            if accounts_version is not None:
                self._accounts_version = accounts_version
            self._loaded_at = time.monotonic()

    def accounts(self) -> list[Account]:
        return list(self._snapshot.values())

    def account(self, account_id: int) -> Account | None:
        return self._snapshot.get(account_id)

    def total_in_flight(self) -> int:
        return sum(self._in_flight.values())

    def in_flight(self, account_id: int) -> int:
        return self._in_flight.get(account_id, 0)

    async def settle(self, account_id: int, s: Settlement) -> None:
        """End one reservation: free its in-flight slot, mirror the settlement locally, store it."""
        self._release(account_id)
        self.apply_local(account_id, s)
        await self.store.settle(account_id, s)

    async def settle_success(self, account_id: int, spec: ModelSpec, extra_cost: int = 0) -> None:
        local = self._snapshot.get(account_id)
        mode = mode_of(spec)
        window = local.quotas.get(mode) if local else None
        remaining = window.remaining if window else None
        if remaining is not None:
            extra_cost = min(extra_cost, max(remaining, 0))  # never charge an account below zero
        settlement = Settlement(mode=mode, refund=-extra_cost, ok=True)
        if remaining is not None and remaining - extra_cost <= 0:
            # Spent locally: cool until the window should reset; the reviver re-checks then.
            fallback = time.time() + self.settings().default_cooldown_seconds
            settlement.state = AccountState.COOLING
            settlement.state_reason = "quota used up; waiting for the window to reset"
            settlement.cooldown_until = (window.reset_at if window else None) or fallback
        await self.settle(account_id, settlement)
        if local is not None:
            self._maybe_reconcile(local, spec)

    def _release(self, account_id: int) -> None:
        n = self._in_flight.get(account_id, 0) - 1
        if n > 0:
            self._in_flight[account_id] = n
        else:
            self._in_flight.pop(account_id, None)

    def apply_local(self, account_id: int, s: Settlement) -> None:
        acc = self._snapshot.get(account_id)
        if acc is None:
            return
        window = acc.quotas.get(s.mode) if s.mode else None
        if s.refund and window is not None and window.remaining is not None:
            window.remaining += s.refund
        if s.ok:
            acc.failure_count = 0
        if s.failure and s.counts_towards_invalid:
            acc.failure_count += 1
            if acc.failure_count >= s.invalid_after and acc.state != AccountState.DISABLED:
                acc.state, acc.state_reason = AccountState.INVALID, s.failure
        if s.failure:
            acc.last_failure, acc.last_failure_at = s.failure, time.time()
        if s.state and acc.state != AccountState.DISABLED:
            acc.state, acc.state_reason, acc.cooldown_until = s.state, s.state_reason, s.cooldown_until
        if s.mode and isinstance(s.learned, ModeQuota):
            _apply_learned(acc, s.mode, s.learned, s.learned_cap)

    # -- selection -----------------------------------------------------------------------------

    def candidates(self, spec: ModelSpec, cost: int, exclude: set[int]) -> list[Account]:
        """Accounts to try, best first: basic before super (super only for super-only models), then
        least busy, ties at random.

        With thousands of accounts a full sort per request would cost milliseconds, so the scan starts
        at a random place in each tier and stops once it has SCAN_TARGET eligible accounts: the work
        is bounded, bursts still spread over the whole pool, and an idle account is nearly always
        among those seen."""
        cap = self.settings().account_max_concurrency
        mode = mode_of(spec)
        ranked: list[tuple[int, int, float, Account]] = []
        tiers = [Tier.SUPER] if spec.super_only else [Tier.BASIC, Tier.SUPER]
        for rank, tier in enumerate(tiers):
            ids = self._tiers[tier]
            n = len(ids)
            start = random.randrange(n) if n else 0
            for k in range(n):
                acc = self._snapshot.get(ids[(start + k) % n])
                if acc is None or acc.id in exclude or acc.state != AccountState.ACTIVE or _group(acc.tier) != tier:
                    continue
                left = _left(acc, mode)
                if left is not None and left < cost:
                    continue
                busy = self._in_flight.get(acc.id, 0)
                if cap and busy >= cap:
                    continue
                ranked.append((rank, busy, random.random(), acc))
                if len(ranked) >= SCAN_TARGET:
                    break
            if len(ranked) >= SCAN_TARGET:
                break
        ranked.sort(key=lambda r: r[:3])
        return [r[3] for r in ranked]

    async def acquire(self, spec: ModelSpec, cost: int, exclude: set[int] | None = None) -> Lease:
        exclude = exclude or set()
        if not self._snapshot or time.monotonic() - self._loaded_at > SNAPSHOT_MAX_AGE:
            await self.refresh(force=True)
        mode = mode_of(spec)
        for acc in self.candidates(spec, cost, exclude)[:8]:
            self._in_flight[acc.id] = self._in_flight.get(acc.id, 0) + 1
            try:
                taken = await self.store.reserve(acc.id, mode)  # one query of the mode per request
            except BaseException:
                self._release(acc.id)
                raise
            if taken:
                window = acc.quotas.get(mode)
                if window is not None and window.remaining is not None:
                    window.remaining -= 1
                return Lease(self, acc, spec, 1)
            self._release(acc.id)
            # Another worker spent it, or its state changed: learn the truth for next time.
            fresh = await self.store.get_account(acc.token)
            if fresh is not None:
                self._snapshot[acc.id] = fresh
        raise self.exhausted_error(spec, exclude)

    def exhausted_error(self, spec: ModelSpec, exclude: set[int]) -> Exception:
        accounts = list(self._snapshot.values())
        eligible = [a for a in accounts if not spec.super_only or _group(a.tier) == Tier.SUPER]
        if not accounts:
            return NoAccount(
                "No Grok accounts are configured. Add SSO tokens with `grok2api accounts add TOKEN` or in the admin."
            )
        if not eligible:
            return NoAccount(f"{spec.id} needs a super account and the pool has none. Add a super account.")
        cooling = [a.cooldown_until for a in eligible if a.state == AccountState.COOLING and a.cooldown_until]
        usable = [a for a in eligible if a.state in (AccountState.ACTIVE, AccountState.COOLING)]
        if usable:
            retry = max(1, int(min(cooling) - time.time())) if cooling else 60
            return RateLimited(
                f"Every account that can serve {spec.id} is busy, cooling or out of quota; retry in about {retry} s.",
                headers={"Retry-After": str(retry)},
            )
        return NoAccount("No usable Grok account: every account is invalid, blocked or disabled. Add fresh SSO tokens.")

    # -- quota learning ------------------------------------------------------------------------

    def _maybe_reconcile(self, account: Account, spec: ModelSpec) -> None:
        """Ask grok.com for the true quota when ours is unknown or old; never on every request."""
        if self.reconcile is None or account.id in self._reconciling:
            return
        current = _left(account, mode_of(spec))
        last = self._last_reconciled.get(account.id)
        if current is not None and last is not None and time.monotonic() - last < RECONCILE_EVERY:
            return
        self._reconciling.add(account.id)
        self._spawn(self._reconcile(account, spec))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reconcile(self, account: Account, spec: ModelSpec) -> None:
        assert self.reconcile is not None
        try:
            settlement = await self.reconcile(self._snapshot.get(account.id) or account, spec)
            self.apply_local(account.id, settlement)
            await self.store.settle(account.id, settlement)
        except Exception as exc:  # reconciliation is best effort
            log.info("quota check for account %s failed: %s", account.id, exc)
        finally:
            self._last_reconciled[account.id] = time.monotonic()
            self._reconciling.discard(account.id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
