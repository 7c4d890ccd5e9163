"""``after_response``: a request's deferred work runs once its response is sent, and always runs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from grok2api.after_response import LOW_PRIORITY_DELAY, RequestJobs, defer, drain


async def _request(answer: Callable[[], Awaitable[None]]) -> None:
    """One request as the edge runs it: its list open while it is answered, its jobs run once it is."""
    jobs = RequestJobs()
    try:
        await answer()
    finally:
        pending = jobs.close()
        if pending is not None:
            await pending


def test_outside_a_request_nothing_is_deferred() -> None:
    async def job() -> None:
        raise AssertionError("never queued")

    assert defer(job) is False


async def test_jobs_run_after_the_last_byte_last_deferred_first() -> None:
    order: list[str] = []

    def job(name: str) -> Any:
        async def run() -> None:
            order.append(name)

        return run

    async def answer() -> None:
        assert defer(job("close upstream")) and defer(job("settle"))
        order.append("the response")

    await _request(answer)
    assert order == ["the response", "settle", "close upstream"]


async def test_a_request_arriving_as_the_response_ends_goes_before_its_jobs() -> None:
    # The jobs are bookkeeping: the client's next request, arriving a moment after the last byte, is served first.
    order: list[str] = []

    async def settle() -> None:
        order.append("settle")

    async def answer() -> None:
        assert defer(settle)
        order.append("the response")

    async def next_request() -> None:
        await asyncio.sleep(LOW_PRIORITY_DELAY / 2)  # the client's next request, a moment later
        order.append("the next request")

    await asyncio.gather(_request(answer), next_request())
    assert order == ["the response", "the next request", "settle"]


async def test_a_failing_job_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise RuntimeError("store hiccup")

    async def fine() -> None:
        ran.append("fine")

    async def answer() -> None:
        defer(fine)
        defer(broken)

    await _request(answer)
    assert ran == ["fine"]
    assert "work after a response failed" in caplog.text


async def test_jobs_of_a_cancelled_request_still_finish() -> None:
    release = asyncio.Event()
    done: list[str] = []

    async def slow_settle() -> None:
        await release.wait()  # a store round trip in flight when the request is cancelled
        done.append("settled")

    async def answer() -> None:
        defer(slow_settle)

    request = asyncio.ensure_future(_request(answer))
    await asyncio.sleep(0.01)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    release.set()
    async with asyncio.timeout(5):
        while not done:
            await asyncio.sleep(0.01)
    assert done == ["settled"]


async def test_a_request_that_defers_nothing_has_nothing_to_wait_for() -> None:
    jobs = RequestJobs()
    assert jobs.close() is None
    assert await drain(timeout=0.01) is True


async def test_a_task_spawned_by_the_request_that_defers_late_runs_its_job_itself() -> None:
    ran: list[str] = []
    late = asyncio.Event()

    async def job() -> None:
        ran.append("job")

    async def background() -> None:
        await late.wait()  # the response is long gone by now
        if not defer(job):
            await job()

    spawned: list[asyncio.Task[None]] = []

    async def answer() -> None:
        spawned.append(asyncio.ensure_future(background()))  # inherits the request's context

    await _request(answer)
    late.set()
    await spawned[0]
    assert ran == ["job"]


async def test_drain_waits_for_the_work_still_running() -> None:
    release = asyncio.Event()
    done: list[str] = []

    async def slow() -> None:
        await release.wait()
        done.append("done")

    async def answer() -> None:
        defer(slow)

    request = asyncio.ensure_future(_request(answer))
    await asyncio.sleep(0.01)
    assert await drain(timeout=0.05) is False  # still running: drain gives up at its timeout
    asyncio.get_running_loop().call_later(0.05, release.set)
    assert await drain(timeout=5) is True and done == ["done"]
    await request
