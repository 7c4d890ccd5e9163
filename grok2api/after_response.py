"""Work that belongs to a request but not to its answer, run once the answer's last byte is written.

Settling the serving account (a store round trip) does not change what the client receives, so it need
not stand between grok.com's last event and the client's last byte. ``AfterResponse`` (an ASGI
middleware) opens a list per HTTP request; ``defer`` puts a job on it, and the jobs run when the app has
sent the whole response, the last deferred first (as an exit stack unwinds: what a request set up first
is let go of last), shielded from the request's cancellation. Outside a request (tests,
background jobs) ``defer`` declines and the caller runs the job itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("grok2api.after_response")
Job = Callable[[], Awaitable[None]]


class _Jobs(list[Job]):
    """One request's deferred jobs; closed once they start running, so a task spawned during the request
    (which inherits its context) that defers later runs its job itself instead of losing it."""

    closed = False


_JOBS: ContextVar[_Jobs | None] = ContextVar("grok2api_after_response", default=None)
_RUNNING: set[asyncio.Task[None]] = set()  # jobs whose request was cancelled still finish


class _Active:
    count = 0  # job lists running now, in this process


def defer(job: Job) -> bool:
    """Run ``job`` once the current HTTP response is sent; False (nothing queued) outside a request."""
    jobs = _JOBS.get()
    if jobs is None or jobs.closed:
        return False
    jobs.append(job)
    return True


async def _run(jobs: list[Job]) -> None:
    """Run a request's jobs (counted in ``_Active`` by the caller, from before this task starts)."""
    try:
        for job in reversed(jobs):
            try:
                await job()
            except Exception:  # one failed job must not keep the others from running
                log.exception("work after a response failed")
    finally:
        _Active.count -= 1


async def drain(timeout: float = 10.0) -> bool:
    """Wait until no deferred work is running, at most ``timeout`` seconds (before the store closes at
    shutdown; and for a test that reads what a request settled). False if some was still running."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while _Active.count and loop.time() < deadline:
        await asyncio.sleep(0.005)
    return _Active.count == 0


class AfterResponse:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        jobs = _Jobs()
        token = _JOBS.set(jobs)
        try:
            await self.app(scope, receive, send)
        finally:
            _JOBS.reset(token)
            jobs.closed = True
            if jobs:
                _Active.count += 1
                task = asyncio.ensure_future(_run(jobs))
                _RUNNING.add(task)
                task.add_done_callback(_RUNNING.discard)
                await asyncio.shield(task)
