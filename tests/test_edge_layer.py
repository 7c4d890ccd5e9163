"""The one layer in front of the app, at the ASGI level: the request id, the traffic count and the drain, the body
deadline's 408, CORS on /v1, the 500 page, after-response work, and the access line."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grok2api import edge_layer
from grok2api.after_response import defer
from grok2api.edge_layer import EdgeLayer
from grok2api.logs import REQUEST_ID, RequestIdFilter, log_access
from grok2api.traffic import Traffic
from grok2api.write_batching import serving_writer

from harness import assert_request_timeout_body


async def reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body, then answers 200 with its length (a client that left gets nothing, as in Starlette)."""
    request = Request(scope, receive)
    try:
        body = await request.body()
    except Exception:  # ClientDisconnect
        await PlainTextResponse("gone", status_code=499)(scope, receive, send)
        return
    await PlainTextResponse(str(len(body)), headers={"x-seen-id": REQUEST_ID.get()})(scope, receive, send)


async def error_page(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(f"failed: {exc}", status_code=500)


def _layer(app: ASGIApp, traffic: Traffic | None = None, body_timeout: float = 1, access_log: bool = True) -> EdgeLayer:
    return EdgeLayer(
        app, traffic=traffic or Traffic(), body_timeout=body_timeout, on_error=error_page, access_log=access_log
    )


def _scope(path: str, headers: dict[str, str], method: str = "POST") -> Scope:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": path,
        "headers": raw,
        "query_string": b"",
        "client": ("10.1.2.3", 4567),
    }


class Answer:
    def __init__(self, sent: list[Message]) -> None:
        starts = [m for m in sent if m["type"] == "http.response.start"]
        assert len(starts) == 1, sent
        self.status: int = starts[0]["status"]
        self.raw: list[tuple[bytes, bytes]] = starts[0]["headers"]
        self.headers = {k.decode(): v.decode() for k, v in self.raw}
        self.body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


async def _call(
    layer: EdgeLayer,
    path: str = "/v1/chat/completions",
    pieces: list[bytes | None] | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> Answer:
    """Drive one request: each piece of the body arrives in turn; None means the client then sends nothing more."""
    sent: list[Message] = []
    queue: list[bytes | None] = [b"{}"] if pieces is None else list(pieces)

    async def receive() -> Message:
        if not queue:
            await asyncio.Event().wait()  # the client stays until the answer is in
        piece = queue.pop(0)
        if piece is None:
            await asyncio.Event().wait()
        return {"type": "http.request", "body": piece, "more_body": bool(queue)}

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(layer(_scope(path, headers or {}, method), receive, send), 5)
    return Answer(sent)


# ---- request ids ----------------------------------------------------------------------------------


async def test_a_sane_client_id_is_kept_and_seen_by_the_app_and_another_is_replaced() -> None:
    answer = await _call(_layer(reading_app), headers={"X-Request-ID": "client.id_1-x"})
    assert answer.headers["x-request-id"] == answer.headers["x-seen-id"] == "client.id_1-x"
    answer = await _call(_layer(reading_app), headers={"X-Request-ID": "not valid!"})
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])
    assert REQUEST_ID.get() == ""  # nothing left behind outside the request


async def test_an_app_that_fails_gets_the_error_page_with_its_id_and_the_error_goes_on() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = _scope("/v1/models", {"X-Request-ID": "oops-1", "Origin": "https://ui.example"}, "GET")
    with pytest.raises(RuntimeError, match="boom"):
        await _layer(broken)(scope, _never, send)
    answer = Answer(sent)
    assert (answer.status, answer.body, answer.headers["x-request-id"]) == (500, b"failed: boom", "oops-1")
    assert "access-control-allow-origin" not in answer.headers and "vary" not in answer.headers


async def test_an_app_that_fails_mid_answer_gets_no_second_answer() -> None:
    async def breaks_late(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("late")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with pytest.raises(RuntimeError, match="late"):
        await _layer(breaks_late)(_scope("/v1/models", {}, "GET"), _never, send)
    assert [m["type"] for m in sent] == ["http.response.start"]


async def _never() -> Message:
    await asyncio.Event().wait()
    raise AssertionError


async def test_other_scopes_pass_straight_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        assert defer(_nothing) is False  # no response to wait for
        assert REQUEST_ID.get() == ""

    await _layer(app)({"type": "lifespan"}, _never, _ignore)
    assert seen == ["lifespan"]


async def _nothing() -> None:
    pass


async def _ignore(message: Message) -> None:
    pass


# ---- CORS ---------------------------------------------------------------------------------------


def _answering(headers: list[tuple[bytes, bytes]]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


@pytest.mark.parametrize("origin", [None, "https://ui.example"])
@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-type", b"application/json")],
        [(b"vary", b"Accept-Encoding"), (b"content-length", b"2")],
        [(b"vary", b"A"), (b"x-other", b"1"), (b"vary", b"B")],
        [(b"access-control-allow-origin", b"https://set.example"), (b"access-control-expose-headers", b"X")],
    ],
)
async def test_v1_answers_get_the_headers_starlettes_cors_middleware_gives_them(
    headers: list[tuple[bytes, bytes]], origin: str | None
) -> None:
    given = {"Origin": origin} if origin else {}
    answer = await _call(_layer(_answering(headers)), "/v1/models", headers=given, method="GET")
    starlette = CORSMiddleware(
        _answering(headers),
        allow_origins=["*"],
        allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
        allow_headers=["*"],
        expose_headers=["Retry-After", "X-Request-ID"],
        max_age=600,
    )
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await starlette(_scope("/v1/models", given, "GET"), _never, send)
    assert answer.raw[:-1] == Answer(sent).raw  # then the request id, last
    assert answer.raw[-1][0] == b"x-request-id"


async def test_cors_is_for_v1_only_and_a_preflight_is_answered_by_the_policy() -> None:
    answer = await _call(_layer(_answering([])), "/api/login", headers={"Origin": "https://ui.example"})
    assert not [k for k in answer.headers if k.startswith("access-control") or k == "vary"]
    preflight = {"Origin": "https://ui.example", "Access-Control-Request-Method": "POST"}
    answer = await _call(_layer(_answering([])), headers=preflight, method="OPTIONS")
    assert (answer.status, answer.body) == (200, b"OK")
    assert answer.headers["access-control-allow-methods"] == "GET, POST, DELETE, OPTIONS"
    assert (
        answer.headers["vary"].startswith("Origin, Access-Control-Request-Method") and "x-request-id" in answer.headers
    )
    plain = await _call(_layer(_answering([])), headers={"Origin": "https://ui.example"}, method="OPTIONS")
    assert plain.body == b"ok"  # an OPTIONS that is no preflight goes to the app


# ---- traffic --------------------------------------------------------------------------------------


async def test_a_body_that_keeps_arriving_is_read_whole() -> None:
    answer = await _call(_layer(reading_app, body_timeout=0.2), pieces=[b"ab", b"cd", b"ef"])
    assert (answer.status, answer.body) == (200, b"6")


@pytest.mark.parametrize(
    ("path", "shape"),
    [("/v1/chat/completions", "openai"), ("/api/tokens/add", "admin-api"), ("/manage/accounts/add", "page")],
)
async def test_a_stalled_body_is_answered_408_in_the_apis_shape(path: str, shape: str) -> None:
    traffic = Traffic()
    answer = await _call(
        _layer(reading_app, traffic, body_timeout=0.1), path, [b"{", None], {"Origin": "https://ui.example"}
    )
    assert answer.status == 408 and answer.headers["connection"] == "close"  # and the app's own answer was dropped
    assert "x-request-id" in answer.headers and "access-control-allow-origin" not in answer.headers
    assert_request_timeout_body(shape, answer.headers["content-type"], answer.body)
    assert traffic.in_flight == 0


async def test_an_answer_quieter_than_the_body_timeout_is_never_cut() -> None:
    async def slow_answer(scope: Scope, receive: Receive, send: Send) -> None:
        await Request(scope, receive).body()
        await asyncio.sleep(0.3)  # thrice the body timeout, the body long in
        await PlainTextResponse("done")(scope, receive, send)

    answer = await _call(_layer(slow_answer, body_timeout=0.1))
    assert (answer.status, answer.body) == (200, b"done")


async def test_the_drain_waits_for_requests_in_flight_and_refuses_new_ones() -> None:
    traffic = Traffic()
    release = asyncio.Event()

    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        await release.wait()
        await PlainTextResponse("done")(scope, receive, send)

    running = asyncio.ensure_future(_call(_layer(slow_app, traffic), "/v1/models"))
    await asyncio.sleep(0.05)
    assert traffic.in_flight == 1
    traffic.begin_drain()
    refused = await _call(_layer(slow_app, traffic), "/v1/models", headers={"Origin": "https://ui.example"})
    assert (refused.status, refused.headers["retry-after"]) == (503, "1") and "x-request-id" in refused.headers
    assert "access-control-allow-origin" not in refused.headers
    probe = await _call(_layer(reading_app, traffic), "/healthz", method="GET")
    assert probe.status == 200  # probes are always answered, and not counted
    assert traffic.in_flight == 1
    release.set()
    assert await traffic.wait_idle(1)
    assert (await running).status == 200


async def test_a_request_refused_by_the_drain_is_read_whole_before_its_answer() -> None:
    # A connection closed while its request is still arriving is reset: the client would lose the 503.
    traffic = Traffic()
    traffic.begin_drain()
    events: list[str] = []
    pieces = [b'{"model":', b' "grok-3"', b"}"]

    async def receive() -> Message:
        piece = pieces.pop(0)
        events.append(f"read {piece.decode()}")
        return {"type": "http.request", "body": piece, "more_body": bool(pieces)}

    async def send(message: Message) -> None:
        events.append(message["type"])

    await _layer(reading_app, traffic)(_scope("/v1/chat/completions", {}), receive, send)
    assert events[:4] == ['read {"model":', 'read  "grok-3"', "read }", "http.response.start"]
    assert traffic.in_flight == 0


async def test_a_stalled_body_does_not_hold_a_drain_refusal_past_its_deadline() -> None:
    traffic = Traffic()
    traffic.begin_drain()
    refused = await _call(_layer(reading_app, traffic, body_timeout=0.1), pieces=[b"{", None])
    assert refused.status == 503


async def test_work_deferred_by_the_app_runs_after_the_last_byte_and_within_the_count() -> None:
    traffic = Traffic()
    order: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        async def settle() -> None:
            order.append(f"settle, {traffic.in_flight} in flight")

        assert defer(settle)
        await PlainTextResponse("ok")(scope, receive, send)
        order.append("answered")

    await _call(_layer(app, traffic))
    assert order == ["answered", "settle, 1 in flight"] and traffic.in_flight == 0


# ---- the access line ------------------------------------------------------------------------------


@pytest.fixture
def access(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="hypercorn.access")
    caplog.handler.addFilter(RequestIdFilter())
    return caplog


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.getMessage(), getattr(r, "request_id", "")) for r in caplog.records if r.name == "hypercorn.access"]


async def test_one_access_line_per_request_with_its_id(access: pytest.LogCaptureFixture) -> None:
    headers = {"X-Request-ID": "line-1", "User-Agent": "probe/1"}
    await _call(_layer(reading_app), "/v1/chat/completions", [b"abc"], headers)
    ((line, request_id),) = _lines(access)
    assert request_id == "line-1"
    assert re.fullmatch(r'10\.1\.2\.3:4567 "POST /v1/chat/completions 1\.1" 200 1 \d+\.\d{6}s "probe/1"', line)


async def test_the_line_of_a_stalled_body_is_its_408_and_of_a_client_that_left_unknown(
    access: pytest.LogCaptureFixture,
) -> None:
    await _call(_layer(reading_app, body_timeout=0.05), pieces=[b"{", None])
    ((line, _),) = _lines(access)
    assert '" 408 ' in line and ' "-"' in line

    access.clear()

    async def gone(scope: Scope, receive: Receive, send: Send) -> None:
        await Request(scope, receive).body()
        assert (await receive())["type"] == "http.disconnect"

    async def leaves() -> Message:
        leaves.calls += 1  # type: ignore[attr-defined]
        if leaves.calls == 1:  # type: ignore[attr-defined]
            return {"type": "http.request", "body": b"{}", "more_body": False}
        return {"type": "http.disconnect"}

    leaves.calls = 0  # type: ignore[attr-defined]
    await _layer(gone)(_scope("/v1/models", {}), leaves, _ignore)
    ((line, _),) = _lines(access)
    assert '"POST /v1/models 1.1" - - ' in line


async def test_no_access_line_when_it_is_switched_off(access: pytest.LogCaptureFixture) -> None:
    await _call(_layer(reading_app, access_log=False))
    assert _lines(access) == []


async def test_the_answers_last_bytes_leave_before_its_access_line(
    access: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    order: list[str] = []

    class Connection:
        """The server's batching writer, as far as the layer reaches it."""

        def flush(self) -> None:
            order.append("flush")

    def logged(*args: object) -> None:
        order.append("line")
        log_access(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(edge_layer, "log_access", logged)
    with serving_writer(Connection()):  # type: ignore[arg-type]
        await _call(_layer(reading_app), "/v1/chat/completions", [b"abc"], {})
    assert order == ["flush", "line"]
    assert len(_lines(access)) == 1
