"""Client traffic as a whole: requests in flight and the drain, the deadline of a request body, and the refusals'
shapes. How the edge layer puts them together is tested in ``test_edge_layer``."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.types import Message

from grok2api.traffic import BodyDeadline, Traffic, refusal, shutting_down, stalled_body

from harness import assert_request_timeout_body


def _client(pieces: list[bytes | None], gap: float = 0.0) -> Any:
    """A client's receive: each piece of the body in turn (``gap`` seconds apart); None means it then sends
    nothing more, and after the last piece it waits and finally leaves."""
    queue = list(pieces)

    async def receive() -> Message:
        if not queue:
            await asyncio.sleep(0.3)
            return {"type": "http.disconnect"}
        piece = queue.pop(0)
        if piece is None:
            await asyncio.Event().wait()
        await asyncio.sleep(gap)
        return {"type": "http.request", "body": piece, "more_body": bool(queue)}

    return receive


async def _read_body(receive: BodyDeadline) -> tuple[bytes, str]:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body, message["type"]
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body, "complete"


async def test_a_body_that_keeps_moving_is_read_whole_however_long_it_takes_in_all() -> None:
    receive = BodyDeadline(_client([b"a"] * 12, gap=0.05), timeout=0.5)  # 0.6 s in all, no gap near 0.5 s
    assert await _read_body(receive) == (b"a" * 12, "complete")
    assert not receive.expired


async def test_a_body_that_stops_arriving_reads_as_a_client_that_left() -> None:
    receive = BodyDeadline(_client([b"{", None]), timeout=0.1)
    assert await asyncio.wait_for(_read_body(receive), 5) == (b"{", "http.disconnect")
    assert receive.expired and not receive.client_left
    assert (await receive())["type"] == "http.disconnect"  # at once, from then on


async def test_once_the_body_is_in_waiting_is_never_timed() -> None:
    receive = BodyDeadline(_client([b"{}"]), timeout=0.05)
    assert await _read_body(receive) == (b"{}", "complete")
    assert (await receive())["type"] == "http.disconnect"  # the client's own, well after the body timeout
    assert receive.client_left and not receive.expired


async def test_untimed_for_the_probes() -> None:
    receive = BodyDeadline(_client([b"", None]), timeout=None)
    assert (await receive())["body"] == b""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await receive()
    assert not receive.expired


async def test_a_cancelled_request_stays_cancelled_while_its_body_is_timed() -> None:
    receive = BodyDeadline(_client([b"{", None]), timeout=5)
    reading = asyncio.ensure_future(_read_body(receive))
    await asyncio.sleep(0.05)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert not receive.expired
    receive.close()


async def test_the_timer_spares_a_request_whose_deadline_was_closed() -> None:
    """The app answered without reading its body: closing the deadline keeps the timer from cancelling
    whatever the request's task does next."""
    receive = BodyDeadline(_client([b"{", b"}"], gap=0.2), timeout=0.1)
    first = asyncio.ensure_future(receive())
    await asyncio.sleep(0)  # the wait has begun, and with it the timer
    receive.close()
    assert (await first)["body"] == b"{"
    await asyncio.sleep(0.2)  # past the deadline: nothing fires
    assert not receive.expired


async def test_the_server_notice_of_a_disconnect_is_watched_once_the_body_is_in() -> None:
    watching: list[Any] = []
    left: list[str] = []
    receive = BodyDeadline(_client([b"a", b"b"]), 5.0, watching.append)
    assert receive.watch(lambda: left.append("early")) is None  # the body is still arriving: nothing watched
    assert await _read_body(receive) == (b"ab", "complete")
    receive = BodyDeadline(_client([b"ab"]), 5.0, watching.append)
    await receive()
    stop = receive.watch(lambda: left.append("gone"))
    assert stop is not None and len(watching) == 1
    watching[0]()  # the server's notice
    assert left == ["gone"] and receive.client_left  # the access line hears of it too
    stop()
    assert watching[1] is None  # stopped watching
    assert BodyDeadline(_client([]), None).watch(lambda: None) is None  # a server that gives no notice


async def test_the_drain_waits_for_requests_in_flight() -> None:
    traffic = Traffic()
    traffic.enter()
    traffic.begin_drain()
    assert traffic.draining and not await traffic.wait_idle(0.05)  # still one in flight
    asyncio.get_running_loop().call_later(0.05, traffic.leave)
    assert await traffic.wait_idle(5) and traffic.in_flight == 0


@pytest.mark.parametrize(
    ("path", "shape"),
    [("/v1/chat/completions", "openai"), ("/api/tokens/add", "admin-api"), ("/manage/accounts/add", "page")],
)
def test_a_refusal_is_in_the_shape_of_the_api_and_closes_the_connection(path: str, shape: str) -> None:
    response = stalled_body(path, 0.5)
    assert response.status_code == 408 and response.headers["connection"] == "close"
    assert_request_timeout_body(shape, response.headers["content-type"], bytes(response.body))
    draining = shutting_down(path)
    assert (draining.status_code, draining.headers["retry-after"]) == (503, "1")
    assert refusal(path, 503, "x", "shutting_down").headers["connection"] == "close"
