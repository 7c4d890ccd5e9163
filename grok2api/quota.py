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
from .pool import settlement_for
from .settings import RuntimeSettings
from .store.base import Account, AccountPatch, AccountState, Settlement, Store, Tier

log = logging.getLogger("grok2api.quota")
PROBE_MODEL = MODELS["grok-3-fast"]
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
        """Read one counter (normal or heavy) from grok.com. ``account`` is the caller's current copy:
        an active account that grok.com reports empty starts cooling, and one cooling only because our
        local count ran out comes back when grok.com says there is quota left."""
        info = await self.client.rate_limits(account.token, spec, self._settings())
        s = Settlement(heavy=spec.heavy, learned_cap=True)
        if spec.heavy:
            s.heavy_remaining = info.remaining
        else:
            s.remaining = info.remaining
        if info.wait_seconds:
            s.window_reset_at = time.time() + info.wait_seconds
        elif info.window_seconds and account.window_reset_at is None:
            s.window_reset_at = time.time() + info.window_seconds
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
            heavy = None
            if account.tier == Tier.SUPER:
                heavy = (await self.client.rate_limits(account.token, MODELS["grok-4-heavy"], settings)).remaining
        except TRANSPORT_ERRORS as exc:
            failure = classify(exc)
            s = settlement_for(failure, settings, live_check=True)
            s.failure = failure.reason
            if s.state is None and account.state == AccountState.COOLING:
                # grok.com could not answer: look again in a minute instead of on every pass.
                s.state, s.state_reason, s.cooldown_until = AccountState.COOLING, account.state_reason, time.time() + 60
            await self.store.settle(account.id, s)
            return QuotaResult(False, failure.reason, state=s.state or account.state)
        s = Settlement(remaining=info.remaining)
        if heavy is not None:
            s.heavy_remaining = heavy
        if info.wait_seconds:
            s.window_reset_at = time.time() + info.wait_seconds
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
