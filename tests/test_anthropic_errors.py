"""Errors on the Messages API are in Anthropic's shape, ``{"type": "error", "error": {"type", "message"}}``, with
the gateway's statuses: what the anthropic SDK raises for each, and how a stream that breaks off ends."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import msgspec
import pytest

from grok2api.anthropic.errors import error_type
from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway, upstream_chats

MODEL = "grok-3-fast"
STALL = 2.0  # seconds the fake stalls; the timeouts below cut it well before


def body(text: str | list[Any] = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 256, "messages": [{"role": "user", "content": text}], **extra}


async def post(
    gateway: LiveGateway, payload: bytes | dict[str, Any], path: str = "/v1/messages", **headers: str
) -> tuple[int, dict[str, str], bytes]:
    data = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    async with aiohttp.ClientSession() as http, http.post(f"{gateway.url}{path}", data=data, headers=headers) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()


def anthropic_error(raw: bytes) -> dict[str, str]:
    """The ``error`` object of an Anthropic error body (and nothing but its two fields)."""
    parsed = msgspec.json.decode(raw)
    assert set(parsed) == {"type", "error"} and parsed["type"] == "error"
    assert set(parsed["error"]) == {"type", "message"} and parsed["error"]["message"]
    return dict(parsed["error"])


def last_event(raw: bytes) -> tuple[str, dict[str, Any]]:
    name, data = raw.decode().rstrip("\n").split("\n\n")[-1].split("\n")
    return name.removeprefix("event: "), msgspec.json.decode(data.removeprefix("data: "))


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (405, "invalid_request_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
    ],
)
def test_each_status_has_anthropics_type(status: int, kind: str) -> None:
    assert error_type(status) == kind


# ---- before anything is sent ----------------------------------------------------------------------------


async def test_bad_requests(gateway: LiveGateway) -> None:
    cases: list[tuple[bytes | dict[str, Any], str]] = [
        (b"{not json", "not valid JSON"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),  # required, as Anthropic
        (body(max_tokens=0), "max_tokens"),
        (body(thinking={"type": "enabled"}), "budget_tokens"),
        (body(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "server tool"),
        (body(tools=[{"name": "f"}]), "input_schema"),
        (body(tool_choice={"type": "tool", "name": "f"}), "tool_choice 'tool' needs tools"),
        (body(tools=[{"name": "f", "input_schema": {"type": "nope"}}]), "not a valid JSON schema"),
        (
            body([{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]),
            "Files API",
        ),
        (
            body([{"type": "image", "source": {"type": "base64", "media_type": "text/plain", "data": "eA=="}}]),
            "not an image",
        ),
        (body([{"type": "document", "source": {"type": "text", "data": "x"}}]), "document"),
        (
            {
                "model": MODEL,
                "max_tokens": 9,
                "messages": [{"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "x"}]}],
            },
            "tool_result blocks cannot be part of assistant messages",
        ),
    ]
    for payload, needle in cases:
        status, headers, raw = await post(gateway, payload)
        assert (status, headers["content-type"]) == (400, "application/json"), (needle, raw)
        err = anthropic_error(raw)
        assert err["type"] == "invalid_request_error" and needle in err["message"], (needle, err)


async def test_unknown_model_is_not_found(gateway: LiveGateway, claude: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        await claude.messages.create(model="claude-nope", max_tokens=9, messages=[{"role": "user", "content": "hi"}])
    assert info.value.type == "not_found_error" and "claude-nope" in str(info.value.api_message)


async def test_body_too_large(gateway: LiveGateway) -> None:
    limit = gateway.services.boot.max_body_bytes
    status, _, raw = await post(gateway, b"{}", **{"Content-Length": str(limit + 1)})
    assert status == 413 and anthropic_error(raw)["type"] == "request_too_large"


async def test_routing_errors(gateway: LiveGateway) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/v1/messages") as resp:
            assert resp.status == 405 and anthropic_error(await resp.read())["type"] == "invalid_request_error"
        async with http.post(f"{gateway.url}/v1/messages/nope") as resp:
            assert resp.status == 404 and anthropic_error(await resp.read())["type"] == "not_found_error"
        async with http.post(f"{gateway.url}/v1/messagesx") as resp:  # not under the prefix: OpenAI's envelope
            assert resp.status == 404 and set(msgspec.json.decode(await resp.read())["error"]) >= {"code", "param"}


async def test_keys_by_bearer_or_x_api_key(gateway: LiveGateway, claude: anthropic.AsyncAnthropic) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(api_key="sk-test")
    status, _, raw = await post(gateway, body())
    assert status == 401 and anthropic_error(raw)["type"] == "authentication_error"
    assert "x-api-key" in anthropic_error(raw)["message"]
    with pytest.raises(anthropic.AuthenticationError):
        await claude.messages.create(model=MODEL, max_tokens=9, messages=[{"role": "user", "content": "hi"}])
    status, _, raw = await post(gateway, body(), **{"x-api-key": "wrong"})
    assert status == 401 and anthropic_error(raw)["type"] == "authentication_error"

    assert (await post(gateway, body(), **{"x-api-key": "sk-test"}))[0] == 200
    assert (await post(gateway, body(), Authorization="Bearer sk-test"))[0] == 200
    # The SDK sends its api_key as a bearer token; auth_token does too.
    for sdk in (
        anthropic.AsyncAnthropic(base_url=gateway.url, api_key="sk-test", max_retries=0),
        anthropic.AsyncAnthropic(base_url=gateway.url, auth_token="sk-test", max_retries=0),
    ):
        async with sdk:
            reply = await sdk.messages.create(model=MODEL, max_tokens=9, messages=[{"role": "user", "content": "hi"}])
            assert reply.stop_reason is not None


async def test_openai_endpoints_keep_their_envelope(gateway: LiveGateway) -> None:
    status, _, raw = await post(gateway, {"model": "nope", "messages": []}, "/v1/chat/completions")
    assert status == 400 and set(msgspec.json.decode(raw)) == {"error"}


# ---- the pool and grok.com ------------------------------------------------------------------------------


async def test_no_account_is_overloaded(gateway: LiveGateway, claude: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.ServiceUnavailableError) as info:
        await claude.messages.create(model=MODEL, max_tokens=9, messages=[{"role": "user", "content": "hi"}])
    assert info.value.type == "overloaded_error" and "account" in str(info.value.api_message)
    status, _, raw = await post(gateway, body(stream=True))
    assert status == 503 and anthropic_error(raw)["type"] == "overloaded_error"


async def test_an_exhausted_pool_is_a_rate_limit_with_retry_after(gateway: LiveGateway, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(max_attempts=1)
    fake.push_fault("429")
    status, _, raw = await post(gateway, body())
    assert status == 429 and anthropic_error(raw)["type"] == "rate_limit_error"
    status, headers, raw = await post(gateway, body(stream=True))  # the only account now cools
    assert status == 429 and anthropic_error(raw)["type"] == "rate_limit_error"
    assert int(headers["retry-after"]) > 0


async def test_upstream_failure_is_an_api_error(
    gateway: LiveGateway, claude: anthropic.AsyncAnthropic, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(max_attempts=1)
    fake.push_fault("500")
    with pytest.raises(anthropic.InternalServerError) as info:
        await claude.messages.create(model=MODEL, max_tokens=9, messages=[{"role": "user", "content": "hi"}])
    assert (info.value.status_code, info.value.type) == (502, "api_error")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_a_silent_grok_is_a_timeout(gateway: LiveGateway, fake: FakeGrok, stream: bool) -> None:
    """Nothing was streamed yet, so even a stream gets the 504 rather than an empty message."""
    await gateway.add_accounts("tok1")
    await gateway.settings(stream_first_response_timeout=0.5)
    status, _, raw = await post(gateway, body(f"hi [[fault:stall-first:{STALL}]]", stream=stream))
    assert status == 504 and anthropic_error(raw)["type"] == "timeout_error"
    assert len(upstream_chats(fake)) == 1


# ---- after the answer began -----------------------------------------------------------------------------


async def test_a_broken_stream_ends_with_an_error_event(
    gateway: LiveGateway, claude: anthropic.AsyncAnthropic, chat_transport: str
) -> None:
    await gateway.add_accounts("tok1", "tok2")
    status, _, raw = await post(gateway, body("hi [[fault:reset]]", stream=True))
    assert status == 200 and b"event: message_stop" not in raw
    name, data = last_event(raw)
    assert name == "error" and data["error"]["type"] == "api_error" and "mid-answer" in data["error"]["message"]
    assert b'"text":"Hello!' in raw  # what came before the break was sent

    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError, match="mid-answer"):
        async with claude.messages.stream(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi [[fault:reset]]"}]
        ) as stream:
            async for text in stream.text_stream:
                seen.append(text)
    assert "".join(seen).startswith("Hello!")

    status, _, raw = await post(gateway, body("hi [[fault:reset]]"))
    assert status == 502 and "mid-answer" in anthropic_error(raw)["message"]


async def test_a_stall_mid_answer_is_never_a_finished_message(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(stream_chunk_timeout=0.5)
    status, _, raw = await post(gateway, body(f"hi [[fault:stall-mid:{STALL}]]", stream=True))
    assert status == 200 and b"event: message_stop" not in raw and b"message_delta" not in raw
    name, data = last_event(raw)
    assert name == "error" and data["error"]["type"] == "timeout_error" and "stalled" in data["error"]["message"]
    status, _, raw = await post(gateway, body(f"hi [[fault:stall-mid:{STALL}]]"))
    assert status == 504 and anthropic_error(raw)["type"] == "timeout_error"


async def test_a_usage_limit_mid_answer_is_a_rate_limit_event(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    status, _, raw = await post(gateway, body("hi [[fault:inband-8]]", stream=True))
    assert status == 200
    name, data = last_event(raw)
    assert name == "error" and data["error"]["type"] == "rate_limit_error"


async def test_each_message_is_counted_once(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1", "tok2")
    assert (await post(gateway, body()))[0] == 200
    assert (await post(gateway, body(stream=True)))[0] == 200
    assert (await post(gateway, body("hi [[fault:reset]]", stream=True)))[0] == 200  # broke off mid-answer
    assert (await post(gateway, body("hi [[fault:reset]]")))[0] == 502
    requests: Any = gateway.services.metrics.requests
    assert {outcome: requests[(MODEL, outcome)] for outcome in ("ok", "error")} == {"ok": 2, "error": 2}
