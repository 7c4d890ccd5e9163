"""Emulated tool calls and structured output on /v1/chat/completions, end to end: the real openai SDK
against the gateway under hypercorn, in front of the fake grok.com (whose tool scenarios are picked by
markers in the prompt, see ``grok2api/testing/fake_tools.py``)."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import openai
import pytest
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionToolParam

from grok2api.testing.fake_grok import FakeGrok
from grok2api.testing.fake_tools import INVALID, PERSON, PROSE, TIME_CALL, TRIP_CALL, WEATHER_CALL

from harness import LiveGateway, sse_frames, upstream_chats

MODEL = "grok-3-fast"
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city"],
    "additionalProperties": False,
}
TIME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"timezone": {"type": "string"}},
    "required": ["timezone"],
}
TRIP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "destination": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "country": {"type": "string", "minLength": 2, "maxLength": 2}},
            "required": ["city", "country"],
        },
        "days": {"type": "integer", "minimum": 1},
        "travellers": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                "required": ["name"],
            },
        },
        "pace": {"enum": ["relaxed", "busy"]},
    },
    "required": ["destination", "days", "travellers"],
}
PERSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "born": {"type": "integer"},
        "languages": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name", "born"],
}


def tool(name: str, schema: dict[str, Any], description: str = "") -> ChatCompletionToolParam:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


TOOLS: list[ChatCompletionToolParam] = [
    tool("get_weather", WEATHER_SCHEMA, "The current weather in a city."),
    tool("get_time", TIME_SCHEMA),
    tool("plan_trip", TRIP_SCHEMA, "Plan a trip."),
]


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def arguments(raw: str) -> Any:
    return msgspec.json.decode(raw)


async def collect(stream: openai.AsyncStream[ChatCompletionChunk]) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in stream]


async def post_raw(gateway: LiveGateway, body: dict[str, Any]) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.url}/v1/chat/completions", data=msgspec.json.encode(body)) as resp,
    ):
        return resp.status, await resp.read()


@pytest.fixture
async def ready(gateway: LiveGateway) -> LiveGateway:
    await gateway.add_accounts("tok-tools")
    return gateway


# ---- the tool loop ------------------------------------------------------------------------------------


async def test_the_sdk_tool_loop_round_trips(ready: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok) -> None:
    messages = user("[[tool-call]] What is the weather in Paris?")
    first = await client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert arguments(call.function.arguments) == WEATHER_CALL["arguments"]

    messages.append(choice.message.model_dump(exclude_none=True))  # type: ignore[arg-type]
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18C and sunny [[tool-done]]"})
    second = await client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content and not second.choices[0].message.tool_calls

    sent = upstream_chats(fake)[-1].message
    assert "<tool_call>" in sent.split("User:")[0]  # the instructions lead the conversation
    assert f'"id":"{call.id}","name":"get_weather"' in sent
    assert f'<tool_result id="{call.id}" name="get_weather">18C and sunny' in sent


async def test_the_sdk_stream_helper_assembles_the_calls(ready: LiveGateway, client: openai.AsyncOpenAI) -> None:
    async with client.chat.completions.stream(
        model=MODEL, messages=user("[[tool-parallel]] weather and time in Paris"), tools=TOOLS
    ) as stream:
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.function.name, arguments(c.function.arguments)) for c in calls] == [
        (WEATHER_CALL["name"], WEATHER_CALL["arguments"]),
        (TIME_CALL["name"], TIME_CALL["arguments"]),
    ]
    assert len({c.id for c in calls}) == 2


async def test_stream_deltas_look_like_openai(ready: LiveGateway, client: openai.AsyncOpenAI) -> None:
    chunks = await collect(
        await client.chat.completions.create(
            model=MODEL, messages=user("[[tool-prose]] weather in Paris?"), tools=TOOLS, stream=True
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    content = "".join(d.content or "" for d in deltas)
    assert content == PROSE
    call_deltas = [tc for d in deltas for tc in d.tool_calls or []]
    first, *rest = call_deltas
    assert first.index == 0 and first.id and first.type == "function"
    assert first.function is not None and first.function.name == "get_weather"
    assert rest and all(tc.id is None and tc.function is not None and tc.function.name is None for tc in rest)
    assert (
        arguments("".join(tc.function.arguments or "" for tc in call_deltas if tc.function))
        == (WEATHER_CALL["arguments"])
    )
    # the prose came before the call, the call before the finish
    positions = [i for i, d in enumerate(deltas) if d.tool_calls]
    assert max(i for i, d in enumerate(deltas) if d.content) < positions[0]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


async def test_one_call_when_parallel_calls_are_off(ready: LiveGateway, client: openai.AsyncOpenAI) -> None:
    reply = await client.chat.completions.create(
        model=MODEL, messages=user("[[tool-parallel]] weather and time"), tools=TOOLS, parallel_tool_calls=False
    )
    assert [c.function.name for c in reply.choices[0].message.tool_calls or []] == ["get_weather"]  # type: ignore[union-attr]


async def test_nested_objects_enums_and_arrays_validate(ready: LiveGateway, client: openai.AsyncOpenAI) -> None:
    reply = await client.chat.completions.create(model=MODEL, messages=user("[[tool-nested]] a trip"), tools=TOOLS)
    (call,) = reply.choices[0].message.tool_calls or []
    assert arguments(call.function.arguments) == TRIP_CALL["arguments"]  # type: ignore[union-attr]


# ---- repair -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_an_invalid_call_is_repaired_once(
    ready: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, stream: bool, chat_transport: str
) -> None:
    ask = user("[[tool-repair]] plan a trip to Lisbon")
    if stream:
        async with client.chat.completions.stream(model=MODEL, messages=ask, tools=TOOLS) as events:
            calls: list[Any] = (await events.get_final_completion()).choices[0].message.tool_calls or []
    else:
        reply = await client.chat.completions.create(model=MODEL, messages=ask, tools=TOOLS)
        calls = reply.choices[0].message.tool_calls or []
    (call,) = calls
    assert arguments(call.function.arguments) == TRIP_CALL["arguments"]
    first, repair = upstream_chats(fake)
    assert first.transport == repair.transport == chat_transport
    assert INVALID not in first.message and INVALID in repair.message  # the bad answer is shown back
    assert repair.message.startswith(first.message)  # the same conversation, continued
    for problem in ("$.days: 'three' is not of type 'integer'", "'country' is a required property", "$.pace"):
        assert problem in repair.message


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_never_valid_with_auto_is_a_plain_answer(
    ready: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, stream: bool
) -> None:
    ask = user("[[tool-never]] plan a trip")
    if stream:
        chunks = await collect(
            await client.chat.completions.create(model=MODEL, messages=ask, tools=TOOLS, stream=True)
        )
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        assert not any(d.tool_calls for d in deltas)
        assert "".join(d.content or "" for d in deltas) == PROSE
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    else:
        reply = await client.chat.completions.create(model=MODEL, messages=ask, tools=TOOLS)
        assert reply.choices[0].finish_reason == "stop" and not reply.choices[0].message.tool_calls
        assert reply.choices[0].message.content == PROSE.strip()
    assert len(upstream_chats(fake)) == 2  # one repair turn by default


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("choice", ["required", "named"])
async def test_never_valid_with_a_forced_choice_is_a_clear_422(
    ready: LiveGateway, client: openai.AsyncOpenAI, stream: bool, choice: str
) -> None:
    forced: Any = "required" if choice == "required" else {"type": "function", "function": {"name": "plan_trip"}}
    with pytest.raises(openai.UnprocessableEntityError) as info:
        reply = await client.chat.completions.create(
            model=MODEL, messages=user("[[tool-never]] plan"), tools=TOOLS, tool_choice=forced, stream=stream
        )
        if stream:
            await collect(reply)  # type: ignore[arg-type]
    body: Any = info.value.body
    assert body["type"] == "invalid_request_error" and body["code"] == "invalid_model_output"
    assert "plan_trip" in body["message"] and "repair" in body["message"]


async def test_a_named_choice_rejects_another_tool(ready: LiveGateway, client: openai.AsyncOpenAI) -> None:
    forced: Any = {"type": "function", "function": {"name": "get_time"}}
    with pytest.raises(openai.UnprocessableEntityError) as info:
        await client.chat.completions.create(
            model=MODEL, messages=user("[[tool-call]] weather"), tools=TOOLS, tool_choice=forced
        )
    assert "must call get_time" in info.value.message


async def test_required_without_a_call_is_repaired(
    ready: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await ready.settings(output_repair_turns=0)
    with pytest.raises(openai.UnprocessableEntityError) as info:
        await client.chat.completions.create(
            model=MODEL, messages=user("just say hi"), tools=TOOLS, tool_choice="required"
        )
    assert "no tool was called" in info.value.message
    assert len(upstream_chats(fake)) == 1  # repairs are off


async def test_tool_choice_none_never_calls(ready: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok) -> None:
    reply = await client.chat.completions.create(
        model=MODEL, messages=user("[[tool-prose]] weather?"), tools=TOOLS, tool_choice="none"
    )
    assert reply.choices[0].finish_reason == "stop" and not reply.choices[0].message.tool_calls
    assert reply.choices[0].message.content == PROSE.strip()
    assert "<tool_call>" not in upstream_chats(fake)[0].message  # no instructions were given


# ---- the envelope never shows ------------------------------------------------------------------------

SCENARIOS = ["tool-call", "tool-prose", "tool-parallel", "tool-split", "tool-repair", "tool-never"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_no_envelope_text_reaches_the_client(ready: LiveGateway, scenario: str, stream: bool) -> None:
    body = {"model": MODEL, "messages": user(f"[[{scenario}]] go"), "tools": TOOLS, "stream": stream}
    status, raw = await post_raw(ready, body)
    assert status == 200
    for leak in (b"<tool_call", b"tool_call>", b"```", INVALID.encode()):
        assert leak not in raw, (scenario, leak)
    if stream:  # and every content delta is prose, never a piece of a tag
        for frame in sse_frames(raw):
            if frame != "[DONE]":
                for choice in msgspec.json.decode(frame)["choices"]:
                    assert "<" not in choice["delta"].get("content", ""), frame


async def test_a_call_split_into_tiny_frames_streams_only_its_prose(
    ready: LiveGateway, client: openai.AsyncOpenAI, chat_transport: str
) -> None:
    chunks = await collect(
        await client.chat.completions.create(model=MODEL, messages=user("[[tool-split]] go"), tools=TOOLS, stream=True)
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in deltas) == PROSE
    assert sum(1 for d in deltas if d.content) > 5  # the prose streamed as it came, not held to the end
    (start,) = [tc for d in deltas for tc in d.tool_calls or [] if tc.id]
    assert start.function is not None and start.function.name == "get_weather"


# ---- structured output --------------------------------------------------------------------------------


def person_format(schema: dict[str, Any] = PERSON_SCHEMA) -> Any:
    return {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("scenario", ["json-valid", "json-fenced", "json-repair"])
async def test_json_schema_answers_are_valid_json(
    ready: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, scenario: str, stream: bool
) -> None:
    ask = user(f"[[{scenario}]] who wrote the first program?")
    if stream:
        chunks = await collect(
            await client.chat.completions.create(
                model=MODEL, messages=ask, response_format=person_format(), stream=True
            )
        )
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        reply = await client.chat.completions.create(model=MODEL, messages=ask, response_format=person_format())
        content = reply.choices[0].message.content or ""
    assert msgspec.json.decode(content) == PERSON
    chats = upstream_chats(fake)
    assert len(chats) == (2 if scenario == "json-repair" else 1)
    assert '"born":{"type":"integer"}' in chats[0].message  # the schema was given to Grok
    if scenario == "json-repair":
        assert "$.born: 'FAKE-INVALID' is not of type 'integer'" in chats[1].message


async def test_json_object_needs_an_object(ready: LiveGateway, client: openai.AsyncOpenAI) -> None:
    reply = await client.chat.completions.create(
        model=MODEL, messages=user("[[json-valid]] hi"), response_format={"type": "json_object"}
    )
    assert msgspec.json.decode(reply.choices[0].message.content or "") == PERSON
    with pytest.raises(openai.UnprocessableEntityError) as info:
        await client.chat.completions.create(model=MODEL, messages=user("hi"), response_format={"type": "json_object"})
    assert "JSON" in info.value.message


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_json_never_valid_is_a_clear_422(ready: LiveGateway, client: openai.AsyncOpenAI, stream: bool) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as info:
        reply = await client.chat.completions.create(
            model=MODEL, messages=user("[[json-never]] hi"), response_format=person_format(), stream=stream
        )
        if stream:
            await collect(reply)  # type: ignore[arg-type]
    assert "valid JSON answer" in info.value.message and "repair" in info.value.message


# ---- bad requests --------------------------------------------------------------------------------------


async def test_bad_schemas_and_choices_are_400s(ready: LiveGateway, client: openai.AsyncOpenAI) -> None:
    broken = [tool("f", {"type": "object", "properties": {"x": {"type": "not-a-type"}}})]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tools": broken}, "tools"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": person_format({"type": 12})}, "response_format"),
    ]
    for extra, param in cases:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model=MODEL, messages=user("hi"), **extra)
        body: Any = info.value.body
        assert body["param"] == param, (extra, body)
