"""Quota learning: reconcile an account with grok.com's rate-limits endpoint, bring cooling
accounts back when their window resets, and refresh on demand (CLI and admin)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import msgspec

from .grok.catalog import MODELS, ModelSpec
from .grok.client import GrokClient, QuotaInfo
from .grok.errors import TRANSPORT_ERRORS
from .grok.failures import classify
from .pool import mode_of, settlement_for
from .settings import RuntimeSettings
from .store.base import Account, AccountPatch, AccountState, ModeQuota, Settlement, Store, Tier

log = logging.getLogger("grok2api.quota")
PROBE_MODEL = MODELS["grok-3-fast"]
HEAVY_MODEL = MODELS["grok-4-heavy"]
EXHAUSTED = "quota used up"


class QuotaResult(msgspec.Struct):
    ok: bool
    message: str
    remaining: int | None = None
    heavy_remaining: int | None = None
    state: str = ""


class QuotaService:
    """Talks to grok.com about quota and says what to record; it never touches the pool, which asks
    it (``reconcile``) and applies the answer itself."""

    def __init__(self, client: GrokClient, store: Store, settings: Callable[[], RuntimeSettings]) -> None:
        self.client = client
        self.store = store
        self._settings = settings

    async def learn(self, account: Account, spec: ModelSpec) -> tuple[QuotaInfo, Settlement]:
        """Read the window of ``spec``'s mode from grok.com. ``account`` is the caller's current copy:
        an active account that grok.com reports empty starts cooling, and one cooling only because our
        local count ran out comes back when grok.com says there is quota left."""
        info = await self.client.rate_limits(account.token, spec, self._settings())
        mode = mode_of(spec)
        known = account.quotas.get(mode)
        reset = None
        if info.wait_seconds:
            reset = time.time() + info.wait_seconds
        elif info.window_seconds and (known is None or known.reset_at is None):
            reset = time.time() + info.window_seconds
        learned = ModeQuota(
            remaining=info.remaining, total=info.total, window_seconds=info.window_seconds, reset_at=reset
        )
        s = Settlement(mode=mode, learned=learned, learned_cap=True)
        if info.remaining is not None and info.remaining <= 0 and account.state == AccountState.ACTIVE:
            wait = info.wait_seconds or self._settings().default_cooldown_seconds
            s.state, s.cooldown_until = AccountState.COOLING, time.time() + wait
            s.state_reason = f"grok.com reports the quota used up; window resets in {int(wait)} s"
        elif info.remaining and account.state == AccountState.COOLING and account.state_reason.startswith(EXHAUSTED):
            # Our local count ran out but grok.com says there is quota left: trust grok.com.
            s.state, s.state_reason, s.cooldown_until = AccountState.ACTIVE, "quota confirmed by grok.com", None
        return info, s

    async def reconcile(self, account: Account, spec: ModelSpec) -> Settlement:
        """The pool's reconciler: what to record for ``account`` after asking grok.com."""
        return (await self.learn(account, spec))[1]

    async def check(self, account: Account, spec: ModelSpec) -> QuotaInfo:
        """Learn one counter and store it."""
        info, s = await self.learn(account, spec)
        await self.store.settle(account.id, s)
        return info

    async def refresh(self, account: Account) -> QuotaResult:
        """A live check of one account (the admin's "test" and "refresh quota"), with its state updated."""
        settings = self._settings()
        try:
            info = await self.client.rate_limits(account.token, PROBE_MODEL, settings)
            heavy_info = None
            if account.tier in (Tier.SUPER, Tier.HEAVY):
                heavy_info = await self.client.rate_limits(account.token, HEAVY_MODEL, settings)
        except TRANSPORT_ERRORS as exc:
            failure = classify(exc)
            s = settlement_for(failure, settings, live_check=True)
            s.failure = failure.reason
            if s.state is None and account.state == AccountState.COOLING:
                # grok.com could not answer: look again in a minute instead of on every pass.
                s.state, s.state_reason, s.cooldown_until = AccountState.COOLING, account.state_reason, time.time() + 60
            await self.store.settle(account.id, s)
            return QuotaResult(False, failure.reason, state=s.state or account.state)
        s = Settlement(mode=mode_of(PROBE_MODEL), learned=self._window(account, PROBE_MODEL, info))
        heavy = None
        if heavy_info is not None:
            heavy = heavy_info.remaining
            heavy_window = self._window(account, HEAVY_MODEL, heavy_info)
            await self.store.settle(account.id, Settlement(mode=mode_of(HEAVY_MODEL), learned=heavy_window))
        exhausted = info.remaining is not None and info.remaining <= 0
        if exhausted:
            wait = info.wait_seconds or settings.default_cooldown_seconds
            s.state, s.state_reason = AccountState.COOLING, f"quota used up; window resets in {int(wait)} s"
            s.cooldown_until = time.time() + wait
        elif account.state in (AccountState.COOLING, AccountState.INVALID, AccountState.BLOCKED):
            s.state, s.state_reason, s.cooldown_until = AccountState.ACTIVE, "live check passed", None
            if account.failure_count:
                await self.store.update_account(account.token, AccountPatch(failure_count=0))
        await self.store.settle(account.id, s)
        left = "unknown" if info.remaining is None else str(info.remaining)
        return QuotaResult(True, f"valid; {left} units left", info.remaining, heavy, s.state or account.state)

    @staticmethod
    def _window(account: Account, spec: ModelSpec, info: QuotaInfo) -> ModeQuota:
        """The window a live check learned; its reset time stays the known one when grok.com gives none."""
        known = account.quotas.get(mode_of(spec))
        reset = time.time() + info.wait_seconds if info.wait_seconds else (known.reset_at if known else None)
        return ModeQuota(remaining=info.remaining, total=info.total, window_seconds=info.window_seconds, reset_at=reset)

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
