"""The shared HTTP edge: body caps, decoding errors that name the field, and one outcome per request."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.requests import Request

from grok2api.edge import decode, error_response, param_of, read_form
from grok2api.errors import BodyTooLarge, InvalidRequest, RateLimited
from grok2api.openai.schemas import REQUEST_DECODER

from harness import LiveGateway

MODEL = "grok-3-fast"


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ("Expected `number`, got `str` - at `$.temperature`", "temperature"),
        ("Object missing required field `role` - at `$.messages[0]`", "messages[0].role"),
        ("Object missing required field `model`", "model"),
        ("Expected `object`, got `str`", None),
    ],
)
def test_param_of_names_the_offending_field(message: str, param: str | None) -> None:
    assert param_of(message) == param


def test_decode_maps_each_msgspec_failure_to_a_400() -> None:
    with pytest.raises(InvalidRequest) as bad_type:
        decode(
            REQUEST_DECODER, b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}'
        )
    assert bad_type.value.param == "temperature" and "`" not in bad_type.value.message
    with pytest.raises(InvalidRequest) as not_json:
        decode(REQUEST_DECODER, b"{nope")
    assert not_json.value.code == "invalid_json"
    with pytest.raises(InvalidRequest) as deep:
        decode(msgspec.json.Decoder(), b"[" * 100_000 + b"]" * 100_000)
    assert deep.value.code == "invalid_json"


def test_a_face_shapes_the_errors_under_its_path_prefix() -> None:
    app = Starlette()
    app.state.error_shapes = {"/v1/messages": lambda err: b"shaped: " + err.message.encode()}

    def request(path: str) -> Request:
        return Request({"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b"", "app": app})

    err = RateLimited("slow down", headers={"Retry-After": "3"})
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        shaped = error_response(err, request(path))
        assert (shaped.body, shaped.status_code, shaped.headers["retry-after"]) == (b"shaped: slow down", 429, "3")
    for path in ("/v1/messagesx", "/v1/chat/completions"):
        assert error_response(err, request(path)).body == err.to_json()
    assert error_response(err).body == err.to_json()


def _form_request(body: bytes, content_type: str) -> Request:
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    scope = {"type": "http", "method": "POST", "path": "/login", "query_string": b"", "app": Starlette()}
    scope["headers"] = [(b"content-type", content_type.encode())]
    return Request(scope, receive)


async def test_read_form_refuses_an_oversized_field_with_a_413_and_a_malformed_one_with_a_400() -> None:
    urlencoded = "application/x-www-form-urlencoded"
    form = await read_form(_form_request(b"username=admin&password=hunter2", urlencoded))
    assert (form["username"], form["password"]) == ("admin", "hunter2")
    with pytest.raises(BodyTooLarge) as huge:
        await read_form(_form_request(b"username=admin&password=" + b"a" * (2 * 1024 * 1024), urlencoded))
    assert huge.value.status == 413
    with pytest.raises(InvalidRequest) as broken:
        await read_form(_form_request(b"--x\r\nno headers here", "multipart/form-data; boundary=x"))
    assert broken.value.status == 400 and "could not be read" in broken.value.message


async def _chat(gateway: LiveGateway, text: str, stream: bool, **headers: str) -> tuple[int, bytes]:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": stream}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{gateway.url}/v1/chat/completions", json=payload, headers=headers) as resp:
            return resp.status, await resp.read()


def _outcomes(gateway: LiveGateway) -> dict[str, int]:
    requests: Any = gateway.services.metrics.requests
    return {outcome: requests[(MODEL, outcome)] for outcome in ("ok", "error")}


async def test_a_stream_that_breaks_after_its_first_byte_counts_as_a_failure(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    status, raw = await _chat(gateway, "hi [[fault:inband-13]]", stream=True)
    assert status == 200 and b'"error"' in raw  # the break is reported inside the stream
    assert _outcomes(gateway) == {"ok": 0, "error": 1}
    status, raw = await _chat(gateway, "hi", stream=True)
    assert status == 200 and raw.endswith(b"data: [DONE]\n\n")
    assert _outcomes(gateway) == {"ok": 1, "error": 1}


async def test_each_request_is_counted_once(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    assert (await _chat(gateway, "hi", stream=False))[0] == 200
    assert (await _chat(gateway, "hi [[fault:502]]", stream=False))[0] == 502
    assert _outcomes(gateway) == {"ok": 1, "error": 1}


async def test_a_declared_body_over_the_cap_is_refused_before_reading(gateway: LiveGateway) -> None:
    limit = gateway.services.boot.max_body_bytes
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{gateway.url}/v1/chat/completions",
            data=b"{}",
            headers={"Content-Type": "application/json", "Content-Length": str(limit + 1)},
        ) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"]["code"] == "request_too_large"
