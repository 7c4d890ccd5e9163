"""The process's egresses: the configured proxies (``proxy_urls``, the older ``proxy_url``, or a direct
connection) joined with what the store shares about each (Cloudflare cookies, User-Agent, challenge mark), which
account goes out through which (rendezvous hashing, see ``grok.egress.pick``), and the transports bound to them.

It is also what those transports report to: a challenge marks the egress in the store for every worker and
replica, FlareSolverr (``flaresolverr_url``) is asked for fresh cookies at most once at a time per egress, and an
operator's pasted clearance is stored here. Cloudflare cookies grok.com sets on its answers apply to this worker's
next call at once and reach the store only when a value changed, once per burst (``COOKIE_SAVE_DELAY``).

For other parts of the gateway: ``all()`` lists the egresses, ``transport(key)`` is a transport bound to one,
``client(key)`` a ``GrokClient`` bound to one, and ``transport_for(token)`` the one an account uses."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from .grok.clearance import ClearanceError, solve
from .grok.client import GrokClient
from .grok.egress import Egress, egress_key, pick, proxy_label
from .grok.egress_transport import EgressTransport
from .grok.statsig import StatsigSigner
from .grok.transport import Transport
from .settings import DIRECT, RuntimeSettings
from .store.base import EgressState, Store

log = logging.getLogger("grok2api.egresses")
SOLVE_SPACING = 30.0  # seconds: a challenge soon after a solve reuses its answer instead of asking again
COOKIE_SAVE_DELAY = 1.0  # seconds: cookies grok.com rotated within this time of the first change are stored at once


def build_egresses(proxies: Sequence[str], states: Mapping[str, EgressState]) -> list[Egress]:
    """The configured egresses (``RuntimeSettings.proxy_url_list``) with what the store knows of each."""
    out: list[Egress] = []
    for proxy in proxies:
        key = egress_key(proxy)
        state = states.get(key) or EgressState(key=key)
        out.append(
            Egress(
                key=key,
                proxy="" if proxy == DIRECT else proxy,
                label=proxy_label(proxy),
                cookies=dict(state.cookies),
                user_agent=state.user_agent,
                clearance_source=state.clearance_source,
                clearance_at=state.clearance_at,
                challenged_at=state.challenged_at,
                evidence=state.evidence,
            )
        )
    return out


class UnknownEgress(KeyError):
    """No configured egress has that key."""


class Egresses:
    def __init__(
        self,
        store: Store,
        settings: Callable[[], RuntimeSettings],
        transport: Transport,
        *,
        cookie_save_delay: float = COOKIE_SAVE_DELAY,
    ) -> None:
        self.store = store
        self._settings = settings
        self.inner = transport
        self.signer = StatsigSigner(lambda: transport.session("")[0])
        self._states: dict[str, EgressState] = {}
        self._proxies: tuple[str, ...] = ()
        self._seen: RuntimeSettings | None = None
        self._current: dict[str, Egress] = {}
        self._known: dict[str, Egress] = {}  # also egresses removed from the settings, for calls still on them
        self._bound: dict[str, EgressTransport] = {}
        self._solving: dict[str, asyncio.Task[bool]] = {}
        self._solved: dict[str, tuple[float, bool]] = {}  # key -> (monotonic time, success) of the last solve
        self._cookie_save_delay = cookie_save_delay
        self._unsaved: dict[str, dict[str, str]] = {}  # key -> cookies grok.com set that the store has not yet
        self._waiting: dict[str, asyncio.Task[None]] = {}  # key -> its write, waiting for the burst to end
        self._writes: set[asyncio.Task[None]] = set()  # every such write until it is done

    # -- the egresses ----------------------------------------------------------------------------------------

    def settings(self) -> RuntimeSettings:
        return self._settings()

    def _view(self) -> dict[str, Egress]:
        settings = self._settings()
        if settings is not self._seen:  # settings are replaced whole when they change
            self._seen = settings
            proxies = tuple(settings.proxy_url_list())
            if proxies != self._proxies:
                self._proxies = proxies
                self._rebuild()
        return self._current

    def _rebuild(self) -> None:
        self._current = {e.key: e for e in build_egresses(self._proxies, self._states)}
        self._known.update(self._current)

    async def load(self) -> None:
        """Take in what other workers and replicas stored (run every few seconds)."""
        self._states = {s.key: s for s in await self.store.list_egresses()}
        for key, cookies in self._unsaved.items():  # not stored yet: the store's older values must not win
            state = self._states.setdefault(key, EgressState(key=key))
            state.cookies = {**state.cookies, **cookies}
        self._seen = self._settings()
        self._proxies = tuple(self._seen.proxy_url_list())
        self._rebuild()

    def all(self) -> list[Egress]:
        """The configured egresses, in the order of the settings."""
        return list(self._view().values())

    def get(self, key: str) -> Egress:
        found = self._view().get(key) or self._known.get(key)
        if found is None:
            raise UnknownEgress(key)
        return found

    def egress(self, key: str) -> Egress:
        return self.get(key)

    def for_token(self, token: str) -> Egress:
        """The egress the account with ``token`` goes out through now."""
        return pick(token, self.all(), self._settings().egress_retry_seconds)

    def transport(self, key: str) -> EgressTransport:
        """A transport bound to the egress ``key`` (UnknownEgress when none has it)."""
        self.get(key)
        bound = self._bound.get(key)
        if bound is None:
            bound = self._bound[key] = EgressTransport(self.inner, key, self)
        return bound

    def transport_for(self, token: str) -> Transport:
        return self.transport(self.for_token(token).key)

    def client(self, key: str) -> GrokClient:
        """A ``GrokClient`` whose every call goes through the egress ``key``, whatever the account."""
        return GrokClient(self.transport(key))

    # -- what the bound transports report --------------------------------------------------------------------

    def _state(self, key: str) -> EgressState:
        return self._states.get(key) or EgressState(key=key)

    async def refused(self, key: str, evidence: str) -> None:
        at = time.time()
        state = self._state(key)
        state.challenged_at, state.evidence, state.updated_at = at, evidence, at
        self._states[key] = state
        self._rebuild()
        try:
            await self.store.mark_egress(key, at, evidence)
        except Exception as exc:  # the mark is advice; the call's own answer still goes back
            log.warning("could not store the egress mark: %s", exc)

    async def recovered(self, key: str) -> None:
        state = self._state(key)
        if state.challenged_at is None:
            return
        state.challenged_at, state.evidence = None, ""
        self._states[key] = state
        self._rebuild()
        try:
            await self.store.mark_egress(key, None)
        except Exception as exc:
            log.warning("could not clear the egress mark: %s", exc)

    def cookies_set(self, key: str, cookies: dict[str, str]) -> None:
        """Cloudflare cookies grok.com set on an answer through the egress (a rotated ``__cf_bm``, a renewed
        ``cf_clearance``): those that changed go out with this worker's next call at once, and to the store once the
        burst is over, so every other worker and replica has them too."""
        state = self._state(key)
        changed = {name: value for name, value in cookies.items() if state.cookies.get(name) != value}
        if not changed:
            return  # the usual case: nothing to write
        state.cookies = {**state.cookies, **changed}
        self._states[key] = state
        self._rebuild()
        self._unsaved.setdefault(key, {}).update(changed)
        if key not in self._waiting:
            task = self._waiting[key] = asyncio.ensure_future(self._save_cookies_later(key))
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _save_cookies_later(self, key: str) -> None:
        await asyncio.sleep(self._cookie_save_delay)
        del self._waiting[key]  # a change from here on starts a write of its own
        await self._save_cookies(key)

    async def _save_cookies(self, key: str) -> None:
        cookies = self._unsaved.pop(key, None)
        if not cookies:
            return
        try:
            await self.store.merge_egress_cookies(key, cookies, time.time())
        except Exception as exc:  # advice too: the next change is written again
            log.warning("could not store the egress's cookies: %s", exc)

    async def flush(self) -> None:
        """Store the cookies still waiting for their burst to end (at shutdown)."""
        for task in self._waiting.values():
            task.cancel()
        self._waiting.clear()
        await asyncio.gather(*self._writes, return_exceptions=True)
        for key in list(self._unsaved):
            await self._save_cookies(key)

    async def refresh(self, key: str) -> bool:
        """Fresh cookies from FlareSolverr for the egress, one solve at a time; False without flaresolverr_url or
        when it failed. A challenge seen shortly after a solve takes that solve's outcome."""
        if not self._settings().flaresolverr_url:
            return False
        last = self._solved.get(key)
        if last is not None and time.monotonic() - last[0] < SOLVE_SPACING:
            return last[1]
        task = self._solving.get(key)
        if task is None:
            task = self._solving[key] = asyncio.ensure_future(self._solve(key))
            task.add_done_callback(lambda _: self._solving.pop(key, None))
        return await asyncio.shield(task)

    async def _solve(self, key: str) -> bool:
        settings = self._settings()
        egress = self.get(key)
        try:
            session, _ = self.inner.session("")
            found = await solve(session, settings.flaresolverr_url, f"{settings.upstream_url}/", egress.proxy)
        except ClearanceError as exc:
            log.warning("egress %s: no clearance from FlareSolverr: %s", egress.label, exc)
            self._solved[key] = (time.monotonic(), False)
            return False
        try:
            await self.set_clearance(key, found.cookies, found.user_agent, source="flaresolverr")
        except Exception as exc:  # the store is down: the call fails as it was, without a retry
            log.warning("egress %s: could not store FlareSolverr's clearance: %s", egress.label, exc)
            return False
        log.info("egress %s: fresh clearance from FlareSolverr", egress.label)
        self._solved[key] = (time.monotonic(), True)
        return True

    async def set_clearance(self, key: str, cookies: dict[str, str], user_agent: str, *, source: str) -> Egress:
        """Store the egress's Cloudflare cookies and the User-Agent they belong to (an empty ``cookies`` forgets
        them), which also clears its challenge mark; UnknownEgress for a key no egress has."""
        self.get(key)
        at = time.time()
        user_agent = user_agent if cookies else ""
        self._unsaved.pop(key, None)  # cookies seen before this clearance must not overwrite it later
        await self.store.save_egress_clearance(key, cookies, user_agent, source, at)
        self._states[key] = EgressState(
            key=key,
            cookies=dict(cookies),
            user_agent=user_agent,
            clearance_source=source if cookies else "",
            clearance_at=at if cookies else None,
            updated_at=at,
        )
        self._rebuild()
        return self.get(key)
