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
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec

from .errors import DEFAULT_RETRY_AFTER, NoAccount, RateLimited, whole_seconds
from .grok.catalog import TIER_RANK, ModelSpec
from .grok.failures import Failure, FailureKind
from .settings import RuntimeSettings
from .store.base import Account, AccountPatch, AccountState, ModeQuota, Settlement, Store, StoreUnavailable
from .store.journal import Journal

if TYPE_CHECKING:
    from .quota import Learned

log = logging.getLogger("grok2api.pool")

SNAPSHOT_MAX_AGE = 15.0
RECONCILE_EVERY = 600.0  # seconds between quota checks of one busy account
SCAN_TARGET = 32  # eligible accounts looked at per pick (see Pool.candidates)
PROBES = 4  # random picks that look for an idle account before a tier is scanned (see Pool.best)


def serves(acc: Account, spec: ModelSpec) -> bool:
    """May this account use ``spec``'s mode? Its learned window decides (a total of 0 means no); until
    it is learned, the account's tier against the mode's minimum tier."""
    window = acc.quotas.get(spec.mode)
    if window is not None and window.total is not None:
        return window.total > 0
    return TIER_RANK.get(acc.tier, 0) >= TIER_RANK.get(spec.min_tier, 0)


def has_room(window: ModeQuota | None, now: float) -> bool:
    """Room for one more query: unknown, some left, or the window has rolled over since."""
    if window is None or window.remaining is None or window.remaining >= 1:
        return True
    return window.reset_at is not None and window.reset_at <= now


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
    """One account reserved for one upstream attempt. Settle exactly once.

    A lease from ``Pool.hold`` is handed out before its query is taken: ``begin`` starts taking it in the
    store (``admitted``), so the upstream set-up runs meanwhile; nothing may reach grok.com's chat before
    ``reserved()`` says True. A lease whose query was not taken, or never asked for, settles to nothing."""

    def __init__(self, pool: Pool, account: Account, spec: ModelSpec) -> None:
        self.pool = pool
        self.account = account
        self.spec = spec
        self.mode = spec.mode
        self.settled = False
        self.admitted: asyncio.Future[bool] | None = None  # None: taken before the lease was made
        self.pending: Callable[[], Coroutine[Any, Any, bool]] | None = None  # the take ``begin`` starts

    def begin(self) -> None:
        """Start taking the lease's query (at once; again does nothing). A held lease starts it once the upstream
        set-up is on its way, so the store's round trip overlaps grok.com's answer instead of preceding it."""
        take, self.pending = self.pending, None
        if take is not None:
            self.admitted = asyncio.ensure_future(take())

    @property
    def token(self) -> str:
        return self.account.token

    async def reserved(self, *, outage_raises: bool = False) -> bool:
        """Whether the lease's query was taken (waiting for the store if it is still being taken). A store
        error counts as not taken; with ``outage_raises`` an unreachable store raises StoreUnavailable instead
        (a request about to be sent must fail as an outage, not as an account that had no room)."""
        self.begin()
        admitted = self.admitted
        if admitted is None:
            return True
        try:
            if admitted.done():  # nothing to wait for (SQLite takes the query at once)
                return admitted.result()
            # Shielded: a request cancelled now must not lose a query the store has already taken.
            return await asyncio.shield(admitted)
        except StoreUnavailable:
            if outage_raises:
                raise
            return False
        except Exception:
            return False

    async def succeed(self) -> None:
        """The upstream served the request (its one query of the mode stays taken)."""
        if not self.settled:
            self.settled = True
            if await self.reserved():
                await self.pool.settle_success(self.account.id, self.spec)

    async def fail(self, failure: Failure, *, definitive: bool = False) -> None:
        """``definitive``: grok.com's own word on the account (its session check), which settles it
        like an operator's live check does (see ``settlement_for``)."""
        if not self.settled:
            self.settled = True
            asked = self.pending is None  # False: the attempt failed before its query was asked for
            self.pending = None
            if asked and not await self.reserved():
                return  # nothing was taken and its in-flight slot is already free
            refund = 0 if failure.charged or not asked else 1  # a query grok.com did not count goes back
            settlement = settlement_for(
                failure, self.pool.settings(), mode=self.mode, refund=refund, live_check=definitive
            )
            await self.pool.settle(self.account.id, settlement)


def settlement_for(
    failure: Failure, settings: RuntimeSettings, *, mode: str = "", refund: int = 0, live_check: bool = False
) -> Settlement:
    """What a failure does to its account, in one place. A usage limit empties the window of the mode
    the request used until it resets (the account keeps serving other modes). ``live_check`` is an
    operator's explicit test (admin, CLI, reviver) or grok.com's session check, neither tied to a mode:
    rejected credentials then count at once instead of after several failures, and a 429 cools the
    whole account."""
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
        if live_check or not mode:
            s.state, s.state_reason, s.cooldown_until = AccountState.COOLING, failure.reason, time.time() + wait
        else:
            s.failure = f"{failure.reason}; {mode} resumes in {_human_wait(wait)}"
            s.learned, s.learned_cap = ModeQuota(remaining=0, reset_at=time.time() + wait), True
    return s


Reconciler = Callable[[Account, ModelSpec], Awaitable["Learned"]]
Reserve = Callable[[int, str], Awaitable[bool]]  # (account id, mode) -> one query taken


class Pool:
    def __init__(
        self,
        store: Store,
        settings: Callable[[], RuntimeSettings],
        reconcile: Reconciler | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.journal = journal if journal is not None else Journal()  # settlements waiting for the store
        self.reconcile = reconcile  # asks grok.com for an account's true quota
        self._reconciling: set[int] = set()
        self._last_reconciled: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._snapshot: dict[int, Account] = {}
        self._tiers: dict[str, list[int]] = {}
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
            by_tier: dict[str, list[int]] = {}
            for a in accounts:
                by_tier.setdefault(a.tier, []).append(a.id)
            # Lowest tier first: a request takes the least capable account that serves it.
            self._tiers = dict(sorted(by_tier.items(), key=lambda kv: TIER_RANK.get(kv[0], 0)))
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
        """End one reservation: free its in-flight slot, mirror the settlement locally, store it. Never raises:
        the answer it closes has reached the client, so a store that cannot take it now gets it from the journal
        later."""
        self.release_slot(account_id)
        self.apply_local(account_id, s)
        try:
            await self.store.settle(account_id, s)
        except StoreUnavailable:
            self.journal.add(account_id, s)
        except Exception:
            log.exception("settling account %d failed", account_id)

    async def settle_success(self, account_id: int, spec: ModelSpec) -> None:
        await self.settle(account_id, Settlement(mode=spec.mode, ok=True))
        local = self._snapshot.get(account_id)
        if local is not None:
            self._maybe_reconcile(local, spec)

    def remember_user_id(self, account: Account, user_id: str) -> None:
        """Keep the grok.com user id learned for an account (in the background; it is asked once)."""
        local = self._snapshot.get(account.id)
        if local is not None:
            local.user_id = user_id
        self._spawn(self._store_user_id(account.token, user_id))

    async def _store_user_id(self, token: str, user_id: str) -> None:
        try:
            await self.store.update_account(token, AccountPatch(user_id=user_id))
        except Exception as exc:  # asked again next time; nothing else depends on it
            log.warning("could not store an account's user id: %s", exc)

    def release_slot(self, account_id: int) -> None:
        """An account's in-flight slot given back (its lease took nothing, or has settled)."""
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

    def candidates(self, spec: ModelSpec, exclude: set[int]) -> list[Account]:
        """Accounts to try, best first: the lowest tier that serves the mode, then least busy, ties at
        random.

        With thousands of accounts a full sort per request would cost milliseconds, so the scan starts
        at a random place in each tier and stops once it has SCAN_TARGET eligible accounts: the work
        is bounded, bursts still spread over the whole pool, and an idle account is nearly always
        among those seen."""
        ranked = [(rank, busy, random.random(), acc) for rank, seen in self._scan(spec, exclude) for busy, acc in seen]
        ranked.sort(key=lambda r: r[:3])
        return [r[3] for r in ranked]

    def best(self, spec: ModelSpec, exclude: set[int]) -> Account | None:
        """The account ``candidates`` would put first (None when there is none), without ranking the others:
        in the lowest tier that has an eligible account, an idle one at random, else the least busy of those a
        scan sees, ties at random. A few random picks come first: while the pool is not saturated one of them
        finds an idle account at once (each as likely as any other), and no tier is scanned."""
        usable = self._usable(spec, exclude)
        for ids in self._tiers.values():
            if not ids:
                continue
            for _ in range(PROBES):
                account_id = ids[int(random.random() * len(ids))]
                if usable(account_id) == 0:
                    return self._snapshot[account_id]
            seen = self._scan_tier(ids, usable, SCAN_TARGET)
            if seen:
                least = min(busy for busy, _ in seen)
                return random.choice([acc for busy, acc in seen if busy == least])
        return None

    def _scan(self, spec: ModelSpec, exclude: set[int]) -> list[tuple[int, list[tuple[int, Account]]]]:
        """(tier rank, [(in flight, account)]) for each tier with an eligible account, lowest first: up to
        SCAN_TARGET eligible accounts in all, each tier scanned from a random place (see ``candidates``)."""
        usable = self._usable(spec, exclude)
        found: list[tuple[int, list[tuple[int, Account]]]] = []
        left = SCAN_TARGET
        for rank, ids in enumerate(self._tiers.values()):
            seen = self._scan_tier(ids, usable, left)
            if seen:
                found.append((rank, seen))
                left -= len(seen)
                if not left:
                    break
        return found

    def _scan_tier(self, ids: list[int], usable: Callable[[int], int], limit: int) -> list[tuple[int, Account]]:
        """Up to ``limit`` eligible accounts of one tier with their in-flight counts, from a random place on."""
        if not ids:
            return []
        start = random.randrange(len(ids))
        seen: list[tuple[int, Account]] = []
        for account_id in ids[start:] + ids[:start] if start else ids:
            busy = usable(account_id)
            if busy >= 0:
                seen.append((busy, self._snapshot[account_id]))
                if len(seen) >= limit:
                    break
        return seen

    def _usable(self, spec: ModelSpec, exclude: set[int]) -> Callable[[int], int]:
        """A check of one account id for ``spec`` now: its requests in flight when it may take one more, else -1
        (not in the snapshot, excluded, not active, does not serve the mode, no room in its window, at the
        concurrency cap). ``serves`` and ``has_room`` in line: it runs for every account looked at."""
        cap = self.settings().account_max_concurrency
        now = time.time()
        mode = spec.mode
        min_rank = TIER_RANK.get(spec.min_tier, 0)
        snapshot, in_flight = self._snapshot, self._in_flight
        active = AccountState.ACTIVE

        def usable(account_id: int) -> int:
            acc = snapshot.get(account_id)
            if acc is None or acc.state != active or account_id in exclude:
                return -1
            window = acc.quotas.get(mode)
            if window is not None and window.total is not None:
                if window.total <= 0:
                    return -1
            elif TIER_RANK.get(acc.tier, 0) < min_rank:
                return -1
            if window is not None and window.remaining is not None and window.remaining < 1:
                if window.reset_at is None or window.reset_at > now:
                    return -1
            busy = in_flight.get(account_id, 0)
            return -1 if cap and busy >= cap else busy

        return usable

    async def acquire(self, spec: ModelSpec, exclude: set[int] | None = None, reserve: Reserve | None = None) -> Lease:
        """Lease the best account for ``spec``. ``reserve`` takes its query instead of the store's ``reserve``
        (a video job records the query it took on itself, in the same step)."""
        exclude = exclude or set()
        take = reserve or self.store.reserve
        await self._fresh_snapshot()
        for acc in self.candidates(spec, exclude)[:8]:
            self._in_flight[acc.id] = self._in_flight.get(acc.id, 0) + 1
            if await self._take(acc, spec, take):
                return Lease(self, acc, spec)
        raise self.exhausted_error(spec)

    async def hold(self, spec: ModelSpec, exclude: set[int]) -> Lease:
        """Lease the best account for ``spec`` at once; its query is taken in the background once the caller
        says so (``Lease.begin``, else at the latest when ``reserved`` is asked), so that the store's round trip
        overlaps the upstream set-up. A lease whose query turns out not to be taken has freed its slot; the
        caller tries again without that account."""
        await self._fresh_snapshot()
        acc = self.best(spec, exclude)
        if acc is None:
            raise self.exhausted_error(spec)
        self._in_flight[acc.id] = self._in_flight.get(acc.id, 0) + 1
        lease = Lease(self, acc, spec)
        lease.pending = partial(self._take, acc, spec, self.store.reserve)
        return lease

    async def _fresh_snapshot(self) -> None:
        if not self._snapshot or time.monotonic() - self._loaded_at > SNAPSHOT_MAX_AGE:
            await self.refresh(force=True)

    async def _take(self, acc: Account, spec: ModelSpec, take: Reserve) -> bool:
        """Take one query of ``spec``'s mode for ``acc``, whose in-flight slot the caller counted; the
        slot is freed unless the query was taken."""
        try:
            taken = await take(acc.id, spec.mode)  # one query of the mode per request
        except BaseException:
            self.release_slot(acc.id)
            raise
        if taken:
            window = acc.quotas.get(spec.mode)
            if window is not None and window.reset_at is not None and window.reset_at <= time.time():
                window.remaining = window.reset_at = None  # rolled over, as the store just recorded
            elif window is not None and window.remaining is not None:
                window.remaining -= 1
            return True
        self.release_slot(acc.id)
        # Another worker spent it, or its state changed: learn the truth for next time.
        fresh = await self.store.get_account(acc.token)
        if fresh is not None:
            self._snapshot[acc.id] = fresh
        return False

    def exhausted_error(self, spec: ModelSpec) -> Exception:
        accounts = list(self._snapshot.values())
        if not accounts:
            return NoAccount(
                "No Grok accounts are configured. Add SSO tokens with `grok2api accounts add TOKEN` or in the admin."
            )
        eligible = [a for a in accounts if serves(a, spec)]
        if not eligible:
            return NoAccount(
                f"{spec.id} uses grok.com's {spec.mode} mode, which needs a {spec.min_tier} account, and no account "
                f"in the pool has it. Add one (grok2api accounts add --tier {spec.min_tier} TOKEN)."
            )
        usable = [a for a in eligible if a.state in (AccountState.ACTIVE, AccountState.COOLING)]
        if usable:
            retry = whole_seconds(self.retry_after(spec) or DEFAULT_RETRY_AFTER)
            return RateLimited(
                f"Every account that can serve {spec.id} ({spec.mode} mode) is busy, cooling or out of quota; "
                f"retry in about {retry} s.",
                retry_after=retry,
            )
        return NoAccount("No usable Grok account: every account is invalid, blocked or disabled. Add fresh SSO tokens.")

    def retry_after(self, spec: ModelSpec) -> float | None:
        """Seconds until an account that serves ``spec`` should have room again: the earliest end of a cooling
        account or reset of an empty window (as learned from grok.com's rate limits or a 429), or None when the
        pool knows of none."""
        now = time.time()
        waits: list[float] = []
        for a in self._snapshot.values():
            if not serves(a, spec):
                continue
            if a.state == AccountState.COOLING and a.cooldown_until:
                waits.append(a.cooldown_until)
            window = a.quotas.get(spec.mode)
            if a.state == AccountState.ACTIVE and window is not None and window.reset_at and window.reset_at > now:
                waits.append(window.reset_at)
        future = [w - now for w in waits if w > now]
        return min(future) if future else None

    # -- quota learning ------------------------------------------------------------------------

    def _maybe_reconcile(self, account: Account, spec: ModelSpec) -> None:
        """Ask grok.com for the true quota when ours is unknown or old; never on every request."""
        if self.reconcile is None or account.id in self._reconciling:
            return
        current = _left(account, spec.mode)
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
            learned = await self.reconcile(self._snapshot.get(account.id) or account, spec)
            for settlement in learned.settlements:
                self.apply_local(account.id, settlement)
                await self.store.settle(account.id, settlement)
            if learned.tier is not None:
                log.info("account %s is %s by its quota windows", account.id, learned.tier)
                await self.store.update_account(account.token, AccountPatch(tier=learned.tier))
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
