"""Quota learning: read an account's per-mode query windows from grok.com's rate-limits endpoint,
infer its tier from their totals, bring cooling accounts back, and refresh on demand (CLI, admin).

This module talks to grok.com and says what to record; it never touches the pool, which asks it
(``reconcile``) and applies the answer itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec

from .grok.catalog import TIER_RANK, ModelSpec
from .grok.client import GrokClient, QuotaInfo
from .grok.errors import TRANSPORT_ERRORS
from .grok.failures import classify
from .pool import settlement_for
from .settings import RuntimeSettings
from .store.base import Account, AccountPatch, AccountState, ModeQuota, Settlement, Store, Tier

log = logging.getLogger("grok2api.quota")
BASE_MODES = ("fast", "auto", "expert", "heavy")
# grok.com's Imagine quota kinds (its quota_info endpoint) and the windows they are kept as, beside
# the chat modes: an image, video or edit request reserves one query of its window like a chat does.
IMAGINE_WINDOWS = {
    "image": "imagine-image",
    "imagePro": "imagine-image-pro",
    "imageEdit": "imagine-image-edit",
    "video": "imagine-video",
    "video720p": "imagine-video-720p",
}
IMAGINE_MODES = frozenset(IMAGINE_WINDOWS.values())
# The smallest window total that means super or heavy, per mode (grok.com's totals, late 2026: basic fast 30 /
# auto 7-20, super fast 140 / auto and expert 50, heavy fast 400 / auto and expert 150 / heavy 20).
_TIER_TOTALS: dict[str, tuple[int, int]] = {"fast": (140, 400), "auto": (50, 150), "expert": (50, 150)}


def tier_from(mode: str, total: int | None) -> str | None:
    """The tier a window's total shows, or None when it shows nothing (unknown total, unknown mode)."""
    if total is None:
        return None
    if mode == "heavy":
        return Tier.HEAVY if total > 0 else None
    bounds = _TIER_TOTALS.get(mode)
    if bounds is None:
        return None
    return Tier.HEAVY if total >= bounds[1] else Tier.SUPER if total >= bounds[0] else Tier.BASIC


def best_tier(windows: dict[str, ModeQuota]) -> str | None:
    """The highest tier any learned window shows."""
    found = [t for mode, w in windows.items() if (t := tier_from(mode, w.total)) is not None]
    return max(found, key=lambda t: TIER_RANK[t]) if found else None


class QuotaResult(msgspec.Struct):
    ok: bool
    message: str
    remaining: int | None = None  # the fast window's
    heavy_remaining: int | None = None
    state: str = ""
    tier: str = ""
    windows: dict[str, ModeQuota] = msgspec.field(default_factory=dict)  # every window read, by mode


def describe_windows(windows: dict[str, ModeQuota]) -> str:
    """``fast 30 of 30, auto 20 of 20, expert 0 of 0, heavy 0 of 0``: queries left per mode."""

    def count(value: int | None) -> str:
        return "?" if value is None else str(value)

    return ", ".join(f"{mode} {count(w.remaining)} of {count(w.total)}" for mode, w in windows.items())


class Learned(msgspec.Struct):
    """What asking grok.com about an account taught: one settlement per mode, maybe a better tier."""

    settlements: list[Settlement]
    tier: str | None = None


def window_of(info: QuotaInfo, known: ModeQuota | None) -> ModeQuota:
    """The window grok.com reported. Its reset time: now + the wait when grok.com gives one (an empty
    window), else one window length from when it was first seen (then it is read again)."""
    if info.wait_seconds:
        reset: float | None = time.time() + info.wait_seconds
    elif known is not None and known.reset_at is not None:
        reset = None  # keep the known one
    else:
        reset = time.time() + info.window_seconds if info.window_seconds else None
    return ModeQuota(remaining=info.remaining, total=info.total, window_seconds=info.window_seconds, reset_at=reset)


class QuotaService:
    def __init__(self, client: GrokClient, store: Store, settings: Callable[[], RuntimeSettings]) -> None:
        self.client = client
        self.store = store
        self._settings = settings

    async def learn(self, account: Account, mode: str) -> tuple[QuotaInfo, Settlement]:
        """Read the window of ``mode``. With ``learned_cap`` it only ever lowers a known count: the
        reservations in flight already took theirs."""
        info = await self.client.rate_limits(account.token, mode, self._settings())
        learned = window_of(info, account.quotas.get(mode))
        return info, Settlement(mode=mode, learned=learned, learned_cap=True)

    async def learn_imagine(self, account: Account) -> list[Settlement]:
        """Every Imagine window, from one call (capped like ``learn``)."""
        reported = await self.client.imagine_quota(account.token, self._settings())
        return [
            Settlement(mode=mode, learned=window_of(info, account.quotas.get(mode)), learned_cap=True)
            for kind, info in reported.items()
            if (mode := IMAGINE_WINDOWS.get(kind)) is not None
        ]

    async def reconcile(self, account: Account, spec: ModelSpec) -> Learned:
        """The pool's reconciler: the mode just used, plus each base mode whose window was never learned
        (the first time, that is how an account's tier and its other windows become known). An Imagine
        window is read with all the others of its kind in one call."""
        if spec.mode in IMAGINE_MODES:
            return Learned(await self.learn_imagine(account))
        modes = [spec.mode] + [m for m in BASE_MODES if m != spec.mode and _total(account, m) is None]
        learned = await asyncio.gather(*(self.learn(account, m) for m in modes), return_exceptions=True)
        settlements = [r[1] for r in learned if not isinstance(r, BaseException)]
        if not settlements:
            first = learned[0]
            assert isinstance(first, BaseException)
            raise first
        windows = {**account.quotas, **{s.mode: s.learned for s in settlements if isinstance(s.learned, ModeQuota)}}
        tier = best_tier(windows)
        return Learned(settlements, tier if tier is not None and tier != account.tier else None)

    async def check(self, account: Account, spec: ModelSpec) -> QuotaInfo:
        """Learn the window of ``spec``'s mode and store it."""
        info, s = await self.learn(account, spec.mode)
        await self.store.settle(account.id, s)
        return info

    async def refresh(self, account: Account) -> QuotaResult:
        """A live check of one account (the admin's "test" and "refresh quota"): every base mode's window
        is read and stored, the tier follows the totals, and a cooling, invalid or blocked account that
        passes comes back."""
        settings = self._settings()
        try:
            infos = await asyncio.gather(*(self.client.rate_limits(account.token, m, settings) for m in BASE_MODES))
        except TRANSPORT_ERRORS as exc:
            failure = classify(exc)
            s = settlement_for(failure, settings, live_check=True)
            s.failure = failure.reason
            if s.state is None and account.state == AccountState.COOLING:
                # grok.com could not answer: look again in a minute instead of on every pass.
                s.state, s.state_reason, s.cooldown_until = AccountState.COOLING, account.state_reason, time.time() + 60
            await self.store.settle(account.id, s)
            return QuotaResult(False, failure.reason, state=s.state or account.state)
        windows = {m: window_of(i, account.quotas.get(m)) for m, i in zip(BASE_MODES, infos, strict=True)}
        # A live check replaces what we had: it is grok.com's word now, nothing is in flight from here.
        settlements = [Settlement(mode=m, learned=w) for m, w in windows.items()]
        state = account.state
        if account.state in (AccountState.COOLING, AccountState.INVALID, AccountState.BLOCKED):
            first = settlements[0]
            first.state, first.state_reason, first.cooldown_until = AccountState.ACTIVE, "live check passed", None
            state = AccountState.ACTIVE
        settlements += await self._imagine_live(account)
        for s in settlements:
            await self.store.settle(account.id, s)
        patch = AccountPatch()
        tier = best_tier(windows) or account.tier
        if tier != account.tier:
            patch.tier = tier
        if account.failure_count and state == AccountState.ACTIVE:
            patch.failure_count = 0
        if patch != AccountPatch():
            await self.store.update_account(account.token, patch)
        fast, heavy = windows["fast"].remaining, windows["heavy"].remaining
        message = f"valid, {tier} tier; queries left: {describe_windows(windows)}"
        return QuotaResult(True, message, fast, heavy, state, tier, windows)

    async def _imagine_live(self, account: Account) -> list[Settlement]:
        """The Imagine windows for a live check (replacing ours), or none when grok.com will not say."""
        try:
            learned = await self.learn_imagine(account)
        except TRANSPORT_ERRORS as exc:  # the chat windows decide the check; Imagine's are extra
            log.info("Imagine quota of account %s not read: %s", account.id, exc)
            return []
        for s in learned:
            s.learned_cap = False
        return learned

    async def revive_due(self, accounts: list[Account]) -> int:
        """Re-check cooling accounts whose cooldown has passed; returns how many were checked."""
        now = time.time()
        due = [
            a
            for a in accounts
            if a.state == AccountState.COOLING and a.cooldown_until is not None and a.cooldown_until <= now
        ]
        for account in due[:20]:
            try:
                result = await self.refresh(account)
                log.info("cooling account %s re-checked: %s", account.id, result.message)
            except Exception as exc:  # a revive failure must not stop the loop
                log.warning("re-check of account %s failed: %s", account.id, exc)
        return len(due)


def _total(account: Account, mode: str) -> int | None:
    window = account.quotas.get(mode)
    return None if window is None else window.total
