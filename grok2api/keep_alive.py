"""The keep-alive watch of one hypercorn connection as a timer, not a task per request.

hypercorn watches an idle keep-alive connection with a task (``wait_for`` on the worker's termination,
bounded by ``keep_alive_timeout``) that it cancels when a request arrives and starts again once the answer
is sent: two task switches, a cancellation and a lock for every request on the connection. ``IdleTimer``
keeps the same contract with one timer handle that is armed and cancelled: the connection is closed when
it has been idle for ``keep_alive_timeout`` seconds, or at once when the worker shuts down.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

_CLOSING: set[asyncio.Task[None]] = set()  # closes under way (the loop keeps only weak references)


class Connection(Protocol):
    """What ``IdleTimer`` needs of hypercorn's ``TCPServer``."""

    config: Any
    context: Any

    async def _initiate_server_close(self) -> None: ...


class _Shutdown:
    """The connections of one worker that are idle now, closed together when the worker terminates."""

    def __init__(self, terminated: Any) -> None:
        self.idle: weakref.WeakSet[IdleTimer] = weakref.WeakSet()
        self.task = asyncio.ensure_future(self._watch(terminated))

    async def _watch(self, terminated: Any) -> None:
        await terminated.wait()
        for timer in list(self.idle):
            timer.fire()


_SHUTDOWNS: weakref.WeakKeyDictionary[Any, _Shutdown] = weakref.WeakKeyDictionary()


def _shutdown_of(context: Any) -> _Shutdown:
    found = _SHUTDOWNS.get(context)
    if found is None:
        found = _SHUTDOWNS[context] = _Shutdown(context.terminated)
    return found


class IdleTimer:
    """A stand-in for hypercorn's ``AsyncioSingleTask`` as a connection's ``idle_task``."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._handle: asyncio.TimerHandle | None = None
        self._shutdown: _Shutdown | None = None  # its worker's, found at the first restart

    async def restart(self, task_group: object, action: Callable[[], Awaitable[None]]) -> None:
        """The connection is idle from now (hypercorn's ``action`` is this same watch, done as a timer)."""
        self._cancel()
        context = self.connection.context
        if context.terminated.is_set():
            self.fire()
            return
        if self._shutdown is None:
            self._shutdown = _shutdown_of(context)
        loop = asyncio.get_running_loop()
        self._handle = loop.call_later(self.connection.config.keep_alive_timeout, self.fire)
        self._shutdown.idle.add(self)

    async def stop(self) -> None:
        """A request arrived (or the connection is closing): it is no longer idle."""
        self._cancel()

    def fire(self) -> None:
        """Idle too long, or the worker is going: close the connection."""
        self._cancel()
        task = asyncio.ensure_future(self.connection._initiate_server_close())
        _CLOSING.add(task)
        task.add_done_callback(_CLOSING.discard)

    def _cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            if self._shutdown is not None:
                self._shutdown.idle.discard(self)
