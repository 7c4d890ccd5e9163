"""POST /v1/chat/completions end to end: the official openai SDK against the real app and the fake grok.com."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionToolChoiceOptionParam

from grok2api.testing.fake_grok import SEARCH_RESULTS, FakeGrok

from harness import LiveGateway, sse_frames

MODEL = "grok-3-fast"
ANSWER = "Hello! You said: hi"
REASONING = "\n\nThinking about your request\n\nLet me think about this."
SOURCES = (
    '\n- [First result](https://example.com/fake-grok/first "A preview that spans two lines.")'
    '\n- [Second result](https://example.org/fake-grok/second "Another preview.")\n'
)
ERROR_KEYS = {"message", "type", "param", "code"}


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def extra(obj: Any, name: str) -> Any:
    """A field the SDK does not model (reasoning_content) from a message or delta."""
    return (obj.model_extra or {}).get(name)


async def create(client: openai.AsyncOpenAI, text: str, **kwargs: Any) -> ChatCompletion:
    resp = await client.chat.completions.create(model=kwargs.pop("model", MODEL), messages=user(text), **kwargs)
    assert isinstance(resp, ChatCompletion)
    return resp


async def chunks(client: openai.AsyncOpenAI, text: str, **kwargs: Any) -> list[ChatCompletionChunk]:
    stream = await client.chat.completions.create(
        model=kwargs.pop("model", MODEL), messages=user(text), stream=True, **kwargs
    )
    return [chunk async for chunk in stream]


def content_of(items: list[ChatCompletionChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in items if c.choices)


def reasoning_of(items: list[ChatCompletionChunk]) -> str:
    return "".join(extra(c.choices[0].delta, "reasoning_content") or "" for c in items if c.choices)


async def post_raw(gateway: LiveGateway, body: bytes | dict[str, Any], **headers: str) -> tuple[int, str, bytes]:
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.url}/v1/chat/completions", data=data, headers=headers) as resp,
    ):
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


def error_of(raw: bytes) -> dict[str, Any]:
    body = msgspec.json.decode(raw)
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


# ---- answers -----------------------------------------------------------------------------------


async def test_non_stream(gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1")
    resp = await create(client, "hi")
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.model == MODEL
    (choice,) = resp.choices
    assert (choice.index, choice.finish_reason, choice.message.role) == (0, "stop", "assistant")
    assert choice.message.content == ANSWER
    assert extra(choice.message, "reasoning_content") is None
    usage = resp.usage
    assert usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    (call,) = fake.chat_calls("tok1")
    assert (call.json["message"], call.json["modelName"], call.json["modelMode"]) == ("hi", "grok-3", "MODEL_MODE_FAST")


async def test_stream_with_the_sdk(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    items = await chunks(client, "hi")
    assert len(items) >= 4
    assert len({c.id for c in items}) == 1 and items[0].id.startswith("chatcmpl-")
    assert {c.model for c in items} == {MODEL}
    assert all(c.object == "chat.completion.chunk" for c in items)
    assert all(len(c.choices) == 1 and c.choices[0].index == 0 for c in items)
    first, last = items[0].choices[0], items[-1].choices[0]
    assert first.delta.role == "assistant" and not first.delta.content and first.finish_reason is None
    assert last.finish_reason == "stop" and last.delta.content is None
    assert all(c.choices[0].finish_reason is None for c in items[:-1])
    assert all(c.choices[0].delta.role is None for c in items[1:])
    assert content_of(items) == ANSWER
    assert len([c for c in items if c.choices[0].delta.content]) > 1  # really streamed, not one lump
    assert all(c.usage is None for c in items)


async def test_stream_raw_sse(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    status, ctype, raw = await post_raw(gateway, {"model": MODEL, "messages": user("hi"), "stream": True})
    assert status == 200
    assert ctype.startswith("text/event-stream")
    frames = sse_frames(raw)
    assert frames[-1] == "[DONE]"
    objs = [msgspec.json.decode(f) for f in frames[:-1]]
    assert len({o["id"] for o in objs}) == 1
    assert len({o["created"] for o in objs}) == 1
    assert objs[0]["choices"] == [
        {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None, "logprobs": None}
    ]
    assert objs[-1]["choices"][0]["delta"] == {} and objs[-1]["choices"][0]["finish_reason"] == "stop"
    middle = objs[1:-1]
    assert middle and all(set(o["choices"][0]["delta"]) == {"content"} for o in middle)
    assert "".join(o["choices"][0]["delta"]["content"] for o in middle) == ANSWER
    assert all("usage" not in o for o in objs)


async def test_stream_usage_only_when_asked(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    items = await chunks(client, "hi", stream_options={"include_usage": True})
    *body, usage_chunk = items
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert usage_chunk.usage.prompt_tokens > 0 and usage_chunk.usage.completion_tokens > 0
    assert usage_chunk.usage.total_tokens == usage_chunk.usage.prompt_tokens + usage_chunk.usage.completion_tokens
    assert usage_chunk.id == body[0].id
    assert body[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in body)
    assert content_of(body) == ANSWER

    plain = await chunks(client, "hi", stream_options={"include_usage": False})
    assert all(c.usage is None and c.choices for c in plain)


async def test_model_is_the_requested_id(gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1")
    resp = await create(client, "hi", model="grok-4-fast")
    assert resp.model == "grok-4-fast"
    streamed = await chunks(client, "hi", model="grok-4.1")
    assert {c.model for c in streamed} == {"grok-4.1"}
    assert [c.json["modelName"] for c in fake.chat_calls()] == [
        "grok-4-mini-thinking-tahoe",
        "grok-4-1-non-thinking-w-tool",
    ]


async def test_conversation_with_null_assistant_content(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok1")
    resp = await client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": None},
            {"role": "user", "content": "again"},
        ],
    )
    assert resp.choices[0].message.content
    (call,) = fake.chat_calls()
    assert call.json["message"] == "System: Be brief.\n\nUser: hello\n\nUser: again"


async def test_null_for_optional_fields_means_absent(gateway: LiveGateway, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1")
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": None}}
    messages = [
        {"role": "system", "name": None, "content": "Be brief."},
        {"role": "user", "name": None, "content": [{"type": "text", "text": "look"}, image]},
        {
            "role": "assistant",
            "name": None,
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": None, "content": "42"},
    ]
    for stream in (False, True):
        body = {
            "model": MODEL,
            "messages": messages,
            "user": None,
            "stream": stream,
            "n": None,
            "max_tokens": None,
            "temperature": None,
            "stream_options": {"include_usage": None},
        }
        status, _, raw = await post_raw(gateway, body)
        assert status == 200, raw


async def test_legacy_function_role_and_refusal_parts_are_history(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok1")
    messages: list[Any] = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "function_call": {"name": "weather", "arguments": "{}"}},
        {"role": "function", "name": "weather", "content": "sunny"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "I cannot say more."}]},
        {"role": "user", "content": "ok"},
    ]
    resp = await client.chat.completions.create(model=MODEL, messages=messages)
    assert resp.choices[0].message.content
    (call,) = fake.chat_calls()
    assert call.json["message"] == (
        "User: weather?\n\nTool: [result of weather] sunny\n\nAssistant: I cannot say more.\n\nUser: ok"
    )


async def test_deeply_nested_body_is_400_not_500(gateway: LiveGateway, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1")
    depth = 100_000
    raw = b'{"model": "grok-3-fast", "messages": [{"role": "user", "content": "hi"}], "metadata": '
    status, ctype, body = await post_raw(gateway, raw + b"[" * depth + b"]" * depth + b"}")
    assert (status, ctype) == (400, "application/json")
    err = error_of(body)
    assert (err["type"], err["code"]) == ("invalid_request_error", "invalid_json")
    assert "nested" in err["message"] and "Recursion" not in err["message"]
    assert fake.chat_calls() == []


# ---- reasoning, search, filtered tags ----------------------------------------------------------


async def test_reasoning_content_by_default(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    resp = await create(client, "hi [[think]]")
    message = resp.choices[0].message
    assert extra(message, "reasoning_content") == REASONING
    assert message.content == ANSWER

    items = await chunks(client, "hi [[think]]")
    assert reasoning_of(items) == REASONING
    assert content_of(items) == ANSWER
    # every reasoning delta comes before the first content delta
    order = ""
    for c in items:
        delta = c.choices[0].delta
        order += "r" if extra(delta, "reasoning_content") else ("c" if delta.content else "")
    assert order.startswith("r") and "rc" in order and "cr" not in order


async def test_think_tags_in_content(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(think_format="think_tags")
    expected = f"<think>\n{REASONING}\n</think>\n{ANSWER}"
    resp = await create(client, "hi [[think]]")
    assert resp.choices[0].message.content == expected
    assert extra(resp.choices[0].message, "reasoning_content") is None

    items = await chunks(client, "hi [[think]]")
    assert content_of(items) == expected
    assert reasoning_of(items) == ""


@pytest.mark.parametrize("think_format", ["reasoning_content", "think_tags"])
async def test_show_thinking_false_drops_reasoning(
    gateway: LiveGateway, client: openai.AsyncOpenAI, think_format: str
) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(show_thinking=False, think_format=think_format)
    resp = await create(client, "hi [[think]] [[search]]")
    assert resp.choices[0].message.content == ANSWER
    assert extra(resp.choices[0].message, "reasoning_content") is None
    items = await chunks(client, "hi [[think]] [[search]]")
    assert content_of(items) == ANSWER
    assert reasoning_of(items) == ""


async def test_web_search_as_a_markdown_source_list(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    assert [r["url"] for r in SEARCH_RESULTS] == [
        "https://example.com/fake-grok/first",
        "https://example.org/fake-grok/second",
    ]
    resp = await create(client, "hi [[search]]")
    assert extra(resp.choices[0].message, "reasoning_content") == SOURCES
    assert resp.choices[0].message.content == ANSWER
    items = await chunks(client, "hi [[search]]")
    assert reasoning_of(items) == SOURCES

    await gateway.settings(think_format="think_tags")
    resp = await create(client, "hi [[search]]")
    assert resp.choices[0].message.content == f"<think>\n{SOURCES}\n</think>\n{ANSWER}"


async def test_filtered_tags_in_both_modes(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    expected = ANSWER + " Code:"
    resp = await create(client, "hi [[artifact]] [[cite]]")
    assert resp.choices[0].message.content == expected
    streamed = content_of(await chunks(client, "hi [[artifact]] [[cite]]"))
    assert streamed.strip() == expected
    for text in (resp.choices[0].message.content or "", streamed):
        assert "xaiartifact" not in text.lower() and "print(1)" not in text and "grok:render" not in text


async def test_filtered_tags_setting_is_case_insensitive(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    await gateway.settings(filtered_tags="XAIARTIFACT")
    resp = await create(client, "hi [[artifact]]")
    assert resp.choices[0].message.content == ANSWER + " Code:"
    streamed = content_of(await chunks(client, "hi [[artifact]]"))
    assert "<xaiArtifact" not in streamed and streamed.startswith(ANSWER)

    await gateway.settings(filtered_tags="")  # nothing filtered: the artifact comes through untouched
    resp = await create(client, "hi [[artifact]]")
    assert resp.choices[0].message.content == (
        ANSWER + ' Code: <xaiArtifact contentType="text/python">print(1)</xaiArtifact>'
    )


# ---- errors ------------------------------------------------------------------------------------


async def test_unknown_model_is_404(gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1")
    with pytest.raises(openai.NotFoundError) as info:
        await create(client, "hi", model="gpt-4o")
    assert info.value.status_code == 404
    assert (info.value.code, info.value.param, info.value.type) == ("model_not_found", "model", "invalid_request_error")
    assert "gpt-4o" in info.value.message
    assert fake.chat_calls() == []


async def test_malformed_json_is_400(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    status, ctype, raw = await post_raw(
        gateway, b'{"model": "grok-3-fast", "messages": [', **{"Content-Type": "application/json"}
    )
    assert status == 400 and ctype == "application/json"
    err = error_of(raw)
    assert (err["type"], err["code"], err["param"]) == ("invalid_request_error", "invalid_json", None)


SCHEMA_VIOLATIONS: list[tuple[dict[str, Any], str]] = [
    ({"model": MODEL, "messages": user("x"), "temperature": 5}, "temperature"),
    ({"model": MODEL, "messages": user("x"), "top_p": -0.1}, "top_p"),
    ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": MODEL, "messages": [{"content": "x"}]}, "messages[0].role"),
    ({"model": MODEL, "messages": []}, "messages"),
    ({"model": MODEL, "messages": "hello"}, "messages"),
    ({"messages": user("x")}, "model"),
    ({"model": MODEL, "messages": user("x"), "stream": "yes"}, "stream"),
    ({"model": MODEL, "messages": user("x"), "n": 2}, "n"),
    ({"model": MODEL, "messages": user("x"), "max_tokens": 0}, "max_tokens"),
    ({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
    ({"model": MODEL, "messages": user("   ")}, "messages"),
]


async def test_schema_violations_name_the_param(gateway: LiveGateway, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1")
    for body, param in SCHEMA_VIOLATIONS:
        status, _, raw = await post_raw(gateway, body)
        assert status == 400, body
        err = error_of(raw)
        assert (err["type"], err["param"]) == ("invalid_request_error", param), body
        assert "Traceback" not in err["message"] and "msgspec" not in err["message"]
    assert fake.chat_calls() == []


async def test_n_2_with_the_sdk(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    with pytest.raises(openai.BadRequestError) as info:
        await create(client, "hi", n=2)
    assert info.value.param == "n"
    assert (await create(client, "hi", n=1)).choices[0].message.content == ANSWER


async def test_bodies_of_the_wrong_shape_are_400(gateway: LiveGateway) -> None:
    for body in (b"", b"null", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"model": 5}'):
        status, _, raw = await post_raw(gateway, body)
        assert status == 400, body
        assert error_of(raw)["type"] == "invalid_request_error", body


async def test_api_key(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    body = {"model": MODEL, "messages": user("hi")}
    # off: no header and any header are both fine
    assert (await post_raw(gateway, body))[0] == 200
    assert (await create(client, "hi")).choices[0].message.content == ANSWER

    await gateway.settings(api_key="sk-test")
    status, _, raw = await post_raw(gateway, body)
    assert status == 401 and error_of(raw)["code"] == "missing_api_key"
    status, _, raw = await post_raw(gateway, body, Authorization="Basic c2stdGVzdA==")
    assert status == 401 and error_of(raw)["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError) as info:
        await create(client, "hi")  # the fixture's client sends "not-needed"
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    assert "not-needed" not in info.value.message

    authed = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test", max_retries=0, timeout=30)
    try:
        assert (await create(authed, "hi")).choices[0].message.content == ANSWER
        assert content_of(await chunks(authed, "hi")) == ANSWER
    finally:
        await authed.close()


async def test_no_accounts_is_503(gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        await create(client, "hi")
    assert info.value.status_code == 503
    assert info.value.code == "no_available_account"
    assert "add" in info.value.message.lower() and "account" in info.value.message.lower()
    status, _, raw = await post_raw(gateway, {"model": MODEL, "messages": user("hi"), "stream": True})
    assert status == 503 and error_of(raw)["code"] == "no_available_account"
    assert fake.chat_calls() == []


async def test_upstream_failure_is_502(gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok) -> None:
    await gateway.add_accounts("tok1", "tok2")
    with pytest.raises(openai.APIStatusError) as info:
        await create(client, "hi [[fault:500]]")
    assert info.value.status_code == 502
    assert (info.value.type, info.value.code) == ("upstream_error", "upstream_error")
    assert "500" in info.value.message
    assert sorted(c.token or "" for c in fake.chat_calls()) == ["tok1", "tok2"]  # both accounts were tried
    status, _, raw = await post_raw(gateway, {"model": MODEL, "messages": user("hi [[fault:502]]"), "stream": True})
    assert status == 502 and error_of(raw)["type"] == "upstream_error"


async def test_connection_lost_mid_answer(gateway: LiveGateway, client: openai.AsyncOpenAI) -> None:
    await gateway.add_accounts("tok1")
    status, _, raw = await post_raw(gateway, {"model": MODEL, "messages": user("hi [[fault:reset]]")})
    assert status == 502
    err = error_of(raw)
    assert err["type"] == "upstream_error" and "mid-answer" in err["message"]

    await gateway.add_accounts("tok2")
    stream = await client.chat.completions.create(model=MODEL, messages=user("hi [[fault:reset]]"), stream=True)
    seen: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIError, match="mid-answer"):
        async for chunk in stream:
            seen.append(chunk)
    assert content_of(seen).startswith("Hello!")


async def test_rate_limit_reported_mid_answer_is_429(gateway: LiveGateway) -> None:
    await gateway.add_accounts("tok1")
    status, _, raw = await post_raw(gateway, {"model": MODEL, "messages": user("hi [[fault:inband-8]]")})
    assert status == 429
    err = error_of(raw)
    assert (err["type"], err["code"]) == ("rate_limit_error", "rate_limit_exceeded")


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/chat/completions", 405), ("POST", "/v1/nope", 404), ("PUT", "/v1/models", 405)],
)
async def test_routing_errors_use_the_envelope(gateway: LiveGateway, method: str, path: str, status: int) -> None:
    async with aiohttp.ClientSession() as http, http.request(method, f"{gateway.url}{path}") as resp:
        assert resp.status == status
        error_of(await resp.read())


# What each upstream fault becomes for the client. Faults before the first byte keep their status in both
# modes; faults after it are an error event + [DONE] in a stream (None: the answer completes normally).
FAULTS: dict[str, tuple[int, str | None]] = {
    "401": (502, "upstream_error"),
    "403-blocked": (502, "upstream_error"),
    "403-antibot": (502, "egress_blocked"),
    "403-cf": (502, "egress_blocked"),
    "429": (429, "rate_limit_exceeded"),
    "500": (502, "upstream_error"),
    "502": (502, "upstream_error"),
    "503": (502, "upstream_error"),
    "empty": (502, "upstream_error"),
    "inband-8": (429, "rate_limit_exceeded"),
    "inband-usage": (429, "rate_limit_exceeded"),
    "inband-13": (502, "upstream_error"),
    "model-error": (502, "upstream_error"),
    "stream-errors": (502, "upstream_error"),
    "reset": (502, "upstream_error"),
    "malformed": (200, None),
    "blank": (200, None),
    "multi-json": (200, None),
    "long-line": (200, None),
    "no-model-response": (200, None),
    "trickle:0.01": (200, None),
}
MID_ANSWER = {"inband-8", "inband-usage", "inband-13", "model-error", "stream-errors", "reset"}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_every_upstream_fault_maps_to_a_clean_answer(gateway: LiveGateway, stream: bool) -> None:
    await gateway.settings(max_attempts=1)
    for n, (fault, (status, code)) in enumerate(FAULTS.items()):
        await gateway.add_accounts(f"fault-{n}")  # a fresh account: earlier faults may have cooled or blocked one
        got, ctype, raw = await post_raw(
            gateway, {"model": MODEL, "messages": user(f"hi [[fault:{fault}]]"), "stream": stream}
        )
        if stream and (status == 200 or fault in MID_ANSWER):
            assert got == 200, fault
            frames = sse_frames(raw)
            assert frames[-1] == "[DONE]", fault
            last = msgspec.json.decode(frames[-2])
            if code is None:
                assert last["choices"][0]["finish_reason"] == "stop", fault
            else:
                assert last["error"]["code"] == code and set(last["error"]) == ERROR_KEYS, fault
        elif status == 200:
            assert got == 200, fault
            assert msgspec.json.decode(raw)["choices"][0]["message"]["content"].startswith("Hello!"), fault
        else:
            assert (got, ctype) == (status, "application/json"), fault
            assert error_of(raw)["code"] == code, fault


async def test_required_or_named_tool_choice_is_refused_clearly(
    gateway: LiveGateway, client: openai.AsyncOpenAI
) -> None:
    await gateway.add_accounts("tok-tools")
    tools: list[Any] = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    ask: list[Any] = [{"role": "user", "content": "hi"}]
    forced: list[ChatCompletionToolChoiceOptionParam] = ["required", {"type": "function", "function": {"name": "f"}}]
    for choice in forced:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="grok-3-fast", messages=ask, tools=tools, tool_choice=choice)
        assert info.value.body is not None and info.value.body["param"] == "tool_choice"  # type: ignore[index]
    reply = await client.chat.completions.create(model="grok-3-fast", messages=ask, tools=tools, tool_choice="auto")
    assert reply.choices[0].message.content and not reply.choices[0].message.tool_calls
