"""Work that belongs to a request but not to its answer, run once the answer's last byte is written.

Settling the serving account (a store round trip) does not change what the client receives, so it need
not stand between grok.com's last event and the client's last byte. The edge (``edge_layer``) opens a
``RequestJobs`` list per HTTP request; ``defer`` puts a job on it, and the jobs run when the app has
sent the whole response, the last deferred first (as an exit stack unwinds: what a request set up first
is let go of last), shielded from the request's cancellation. Outside a request (tests,
background jobs) ``defer`` declines and the caller runs the job itself.

The jobs wait ``LOW_PRIORITY_DELAY`` first. A client that sends its next request as soon as an answer ends (an
agent's loop, a chat UI, any c=1 caller on the same host) would otherwise find that request queued behind the
last one's bookkeeping (a closing frame written to grok.com, a store write): measured on a 2-vCPU machine,
about 0.45 ms more to the next first byte. Delayed, they run while that request waits for grok.com instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

log = logging.getLogger("grok2api.after_response")
Job = Callable[[], Awaitable[None]]
LOW_PRIORITY_DELAY = 0.002  # seconds the jobs give a next request to arrive first (loop timers are ~1 ms)


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
        await asyncio.sleep(LOW_PRIORITY_DELAY)
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


class RequestJobs:
    """One HTTP request's list: opened in the request's task before the app runs (``defer`` finds it there), and
    ``close``d once the response is sent."""

    __slots__ = ("jobs", "_token")

    def __init__(self) -> None:
        self.jobs = _Jobs()
        self._token = _JOBS.set(self.jobs)

    def close(self) -> Awaitable[None] | None:
        """Stop taking jobs; start those deferred, if any, and give what to await for them (shielded from the
        request's cancellation: a cancelled request still settles)."""
        _JOBS.reset(self._token)
        jobs = self.jobs
        jobs.closed = True
        if not jobs:
            return None
        _Active.count += 1
        task = asyncio.ensure_future(_run(jobs))
        _RUNNING.add(task)
        task.add_done_callback(_RUNNING.discard)
        return asyncio.shield(task)
