"""The store as the gateway uses it: every call bounded in time, and an unreachable store turned into
``StoreUnavailable`` (answered 503 by the edge) instead of a hang or a traceback per request.

``StoreHealth`` remembers whether the store answered lately. It logs one line when an outage starts and
one when it ends. While the store is down, calls fail at once, except one call per ``probe_interval``
that goes through to find out whether it is back (the background watcher polls every second, so
recovery is noticed within about a second with no request at all).

A call that runs out of time starts an outage only when no other call was answered while it waited: under a
heavy load one slow transaction (a write queued behind others, an event loop running late) fails alone, and
the requests whose calls are answered go on.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import exc as sa_exc

from .base import Store, StoreUnavailable
from .sql_engine import MYSQL_DEADLOCK

log = logging.getLogger("grok2api.store")
T = TypeVar("T")

RETRY_AFTER = 5  # seconds a client is told to wait during an outage
# Calls that may touch thousands of rows get longer than one answer is allowed (an import, a bulk action).
BULK_CALLS = frozenset(
    {"add_accounts", "remove_accounts", "update_accounts", "list_accounts", "usage_since", "delete_sessions"}
)
BULK_FACTOR = 15
UNGUARDED_CALLS = frozenset({"open", "close"})  # start-up (migrations) and shutdown: their errors are their own

_SQL_OUTAGES = (
    sa_exc.OperationalError,  # connection refused or lost, read timeout, server gone
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # no pooled connection came free
    sqlite3.OperationalError,  # the hot path's own connection: locked, disk I/O error
)


def outage_reason(exc: BaseException) -> str | None:
    """A short reason when ``exc`` means the store could not be reached or did not answer; None when it is
    anything else (a refused write or a bug), which the caller sees as it is."""
    if isinstance(exc, _SQL_OUTAGES):
        orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else None
        if orig is not None and getattr(orig, "args", (None,))[:1] == (MYSQL_DEADLOCK,):
            return None  # two transactions collided: the server is there, and answered
        return _short(orig if orig is not None else exc)  # the driver's words, never the statement or its values
    if isinstance(exc, OSError):
        return _short(exc)
    try:
        from redis import exceptions as redis_exc
    except ImportError:  # the redis extra is not installed: no Redis store either
        return None
    if isinstance(exc, (redis_exc.ConnectionError, redis_exc.TimeoutError)):
        return _short(exc)
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


class StoreHealth:
    """Whether the store answers; logs when an outage starts and when it ends."""

    def __init__(self, probe_interval: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.probe_interval = probe_interval
        self.clock = clock
        self.down_since: float | None = None
        self.reason = ""
        self._tried_at = 0.0
        self.answered = 0  # calls answered so far: a timed-out call compares it with the count when it began

    @property
    def up(self) -> bool:
        return self.down_since is None

    def allow(self) -> bool:
        """May a call go to the store now? Always while it is up; during an outage, one call per probe_interval."""
        if self.down_since is None:
            return True
        now = self.clock()
        if now - self._tried_at >= self.probe_interval:
            self._tried_at = now
            return True
        return False

    def failed(self, reason: str) -> None:
        self._tried_at = self.clock()
        if self.down_since is None:
            self.down_since = self._tried_at
            self.reason = reason
            log.error("the store is unreachable (%s): requests that need it get 503 until it answers again", reason)

    def succeeded(self) -> None:
        self.answered += 1
        if self.down_since is not None:
            lasted = self.clock() - self.down_since
            self.down_since = None
            log.warning("the store answers again, after %.1f s", lasted)

    def unavailable(self) -> StoreUnavailable:
        return StoreUnavailable(self.reason or "the store is unreachable", RETRY_AFTER)


class Started(Generic[T]):
    """``coro`` run at once until it first waits; exceptions it raises before that propagate from here. ``done``:
    it finished, with ``value`` (SQLite answers on the loop's own connection without waiting: such a call needs
    no timer, as nothing could interrupt it anyway). Otherwise await it, once, in the same task, for the rest."""

    __slots__ = ("_coro", "_signal", "done", "value")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro
        self.done = False
        self.value: T | None = None
        try:
            self._signal = coro.send(None)
        except StopIteration as stop:
            self.done = True
            self.value = stop.value

    def __await__(self) -> Generator[Any, Any, T]:
        if self.done:
            return cast(T, self.value)
        coro, signal = self._coro, self._signal
        # What ``await coro`` does from here on: pass each future it waits for to the task, and what the task
        # sends or throws back into the coroutine.
        while True:
            try:
                sent = yield signal
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    signal = coro.throw(exc)
                except StopIteration as stop:
                    return cast(T, stop.value)
            else:
                try:
                    signal = coro.send(sent)
                except StopIteration as stop:
                    return cast(T, stop.value)


class GuardedStore:
    """Wraps every coroutine method of a store (those of the ``Store`` protocol and any a backend adds) in the
    timeout and the outage rules above; other attributes (``kind``…) are the inner store's own."""

    def __init__(self, inner: Store, health: StoreHealth, timeout: float) -> None:
        self.inner = inner
        self.health = health
        self.timeout = timeout

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name in UNGUARDED_CALLS or not inspect.iscoroutinefunction(attr):
            return attr
        limit = self.timeout * (BULK_FACTOR if name in BULK_CALLS else 2)
        guarded = self._guard(attr, limit)
        setattr(self, name, guarded)  # built once per method
        return guarded

    def _guard(self, method: Callable[..., Coroutine[Any, Any, Any]], limit: float) -> Callable[..., Awaitable[Any]]:
        health = self.health

        @functools.wraps(method)
        async def call(*args: Any, **kwargs: Any) -> Any:
            if not health.allow():
                raise health.unavailable()
            answered = health.answered
            try:
                started: Started[Any] = Started(method(*args, **kwargs))
                if started.done:
                    result = started.value
                else:
                    async with asyncio.timeout(limit):
                        result = await started
            except TimeoutError:
                if health.answered == answered:
                    health.failed(f"no answer within {limit:g} s")
                    raise health.unavailable() from None
                # Other calls were answered meanwhile: the store is there, this one call was too slow.
                raise StoreUnavailable(f"no answer within {limit:g} s", RETRY_AFTER) from None
            except Exception as exc:
                reason = outage_reason(exc)
                if reason is None:
                    health.succeeded()  # it answered, with an error of its own
                    raise
                health.failed(reason)
                raise health.unavailable() from None
            health.succeeded()
            return result

        return call


def guard(store: Store, health: StoreHealth, timeout: float) -> Store:
    """``store`` with every call bounded by ``timeout`` (see GuardedStore)."""
    return cast(Store, GuardedStore(store, health, timeout))
