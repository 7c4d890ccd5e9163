"""``after_response``: a request's deferred work runs once its response is sent, and always runs."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest

from grok2api.after_response import AfterResponse, defer, drain

SCOPE: dict[str, Any] = {"type": "http", "method": "GET", "path": "/"}


async def _receive() -> MutableMapping[str, Any]:
    await asyncio.Event().wait()
    return {"type": "http.disconnect"}


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

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert defer(job("close upstream")) and defer(job("settle"))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok", "more_body": False})

    async def send(message: MutableMapping[str, Any]) -> None:
        order.append(message["type"])

    await AfterResponse(app)(SCOPE, _receive, send)
    assert order == ["http.response.start", "http.response.body", "settle", "close upstream"]


async def test_a_failing_job_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise RuntimeError("store hiccup")

    async def fine() -> None:
        ran.append("fine")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        defer(fine)
        defer(broken)

    await AfterResponse(app)(SCOPE, _receive, _ignore)
    assert ran == ["fine"]
    assert "work after a response failed" in caplog.text


async def test_jobs_of_a_cancelled_request_still_finish() -> None:
    release = asyncio.Event()
    done: list[str] = []

    async def slow_settle() -> None:
        await release.wait()  # a store round trip in flight when the request is cancelled
        done.append("settled")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        defer(slow_settle)

    request = asyncio.ensure_future(AfterResponse(app)(SCOPE, _receive, _ignore))
    await asyncio.sleep(0.01)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    release.set()
    async with asyncio.timeout(5):
        while not done:
            await asyncio.sleep(0.01)
    assert done == ["settled"]


async def test_other_scopes_pass_straight_through() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        assert defer(_nothing) is False  # no response to wait for

    await AfterResponse(app)({"type": "lifespan"}, _receive, _ignore)
    assert seen == ["lifespan"]


async def _ignore(message: MutableMapping[str, Any]) -> None:
    pass


async def _nothing() -> None:
    pass


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

    async def app(scope: Any, receive: Any, send: Any) -> None:
        spawned.append(asyncio.ensure_future(background()))  # inherits the request's context

    await AfterResponse(app)(SCOPE, _receive, _ignore)
    late.set()
    await spawned[0]
    assert ran == ["job"]


async def test_drain_waits_for_the_work_still_running() -> None:
    release = asyncio.Event()
    done: list[str] = []

    async def slow() -> None:
        await release.wait()
        done.append("done")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        defer(slow)

    request = asyncio.ensure_future(AfterResponse(app)(SCOPE, _receive, _ignore))
    await asyncio.sleep(0.01)
    assert await drain(timeout=0.05) is False  # still running: drain gives up at its timeout
    asyncio.get_running_loop().call_later(0.05, release.set)
    assert await drain(timeout=5) is True and done == ["done"]
    await request
