"""Quota learning: reconcile an account with grok.com's rate-limits endpoint, bring cooling
accounts back when their window resets, and refresh on demand (CLI and admin)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

import msgspec

from .grok.catalog import MODELS, ModelSpec
from .grok.client import GrokClient, QuotaInfo
from .grok.errors import TRANSPORT_ERRORS
from .grok.failures import classify
from .pool import Lease, Pool, settlement_for
from .settings import RuntimeSettings
from .store.base import Account, AccountPatch, AccountState, Settlement, Tier

log = logging.getLogger("grok2api.quota")
PROBE_MODEL = MODELS["grok-3-fast"]
EXHAUSTED = "quota used up"
RECONCILE_EVERY = 600.0  # seconds between quota checks of one busy account


class QuotaResult(msgspec.Struct):
    ok: bool
    message: str
    remaining: int | None = None
    heavy_remaining: int | None = None
    state: str = ""


class QuotaService:
    def __init__(self, pool: Pool, client: GrokClient) -> None:
        self.pool = pool
        self.client = client
        self._reconciling: set[int] = set()
        self._last_reconciled: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _settings(self) -> RuntimeSettings:
        return self.pool.settings()

    async def check(self, account: Account, spec: ModelSpec) -> QuotaInfo:
        """Learn one counter (normal or heavy) and store it; wired as the pool's reconciler."""
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
        local = self.pool.account(account.id) or account
        if info.remaining is not None and info.remaining <= 0 and local.state == AccountState.ACTIVE:
            wait = info.wait_seconds or self._settings().default_cooldown_seconds
            s.state, s.cooldown_until = AccountState.COOLING, time.time() + wait
            s.state_reason = f"grok.com reports the quota used up; window resets in {int(wait)} s"
        elif info.remaining and local.state == AccountState.COOLING and local.state_reason.startswith(EXHAUSTED):
            # Our local count ran out but grok.com says there is quota left: trust grok.com.
            s.state, s.state_reason, s.cooldown_until = AccountState.ACTIVE, "quota confirmed by grok.com", None
        self.pool.apply_local(account.id, s)
        await self.pool.store.settle(account.id, s)
        return info

    def after_success(self, lease: Lease) -> None:
        """Ask grok.com for the true quota when ours is unknown or old; never on every request."""
        account, spec = lease.account, lease.spec
        if account.id in self._reconciling:
            return
        current = account.heavy_remaining if spec.heavy else account.remaining
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
        try:
            await self.check(account, spec)
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
            await self.pool.store.settle(account.id, s)
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
                await self.pool.store.update_account(account.token, AccountPatch(failure_count=0))
        await self.pool.store.settle(account.id, s)
        left = "unknown" if info.remaining is None else str(info.remaining)
        return QuotaResult(True, f"valid; {left} units left", info.remaining, heavy, s.state or account.state)

    async def revive_due(self) -> int:
        """Re-check cooling accounts whose cooldown has passed; returns how many were checked."""
        now = time.time()
        due = [
            a
            for a in self.pool.accounts()
            if a.state == AccountState.COOLING and a.cooldown_until is not None and a.cooldown_until <= now
        ]
        for account in due[:20]:
            try:
                result = await self.refresh(account)
                log.info("cooling account %s re-checked: %s", account.id, result.message)
            except Exception as exc:  # a revive failure must not stop the loop
                log.warning("re-check of account %s failed: %s", account.id, exc)
        return len(due)
