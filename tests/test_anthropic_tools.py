"""Tool use on /v1/messages end to end: the anthropic SDK's tool loop against the gateway under hypercorn, in
front of the fake grok.com, whose tool scenarios are picked by markers in the prompt (``fake_tools.py``). Calls
are emulated and validated by the neutral side; this face maps them to ``tool_use`` blocks and back."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import msgspec
import pytest
from anthropic.types import Message, MessageParam, TextBlock, ToolParam, ToolUseBlock

from grok2api.testing.fake_grok import FakeGrok
from grok2api.testing.fake_tools import INVALID, PROSE, TIME_CALL, TRIP_CALL, WEATHER_CALL

from harness import LiveGateway, upstream_chats

MODEL = "grok-3-fast"
TOOLS: list[ToolParam] = [
    {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
    {
        "name": "get_time",
        "input_schema": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
    },
    {
        "name": "plan_trip",
        "description": "Plan a trip.",
        "input_schema": {
            "type": "object",
            "properties": {
                "destination": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "country": {"type": "string", "minLength": 2}},
                    "required": ["city", "country"],
                },
                "days": {"type": "integer", "minimum": 1},
                "travellers": {"type": "array", "minItems": 1, "items": {"type": "object"}},
                "pace": {"enum": ["relaxed", "busy"]},
            },
            "required": ["destination", "days", "travellers"],
        },
    },
]


def user(text: str) -> list[MessageParam]:
    return [{"role": "user", "content": text}]


def calls(message: Message) -> list[ToolUseBlock]:
    return [b for b in message.content if isinstance(b, ToolUseBlock)]


def texts(message: Message) -> str:
    return "".join(b.text for b in message.content if isinstance(b, TextBlock))


async def post(gateway: LiveGateway, body: dict[str, Any]) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.url}/v1/messages", data=msgspec.json.encode(body)) as resp,
    ):
        return resp.status, await resp.read()


def stream_events(raw: bytes) -> list[dict[str, Any]]:
    return [msgspec.json.decode(frame.split("\n")[1][len("data: ") :]) for frame in raw.decode().strip().split("\n\n")]


@pytest.fixture
async def ready(gateway: LiveGateway) -> LiveGateway:
    await gateway.add_accounts("tok-tools")
    return gateway


# ---- the tool loop --------------------------------------------------------------------------------------


async def test_the_sdk_tool_loop_round_trips(
    ready: LiveGateway, claude: anthropic.AsyncAnthropic, fake: FakeGrok, chat_transport: str
) -> None:
    messages = user("[[tool-call]] What is the weather in Paris?")
    first = await claude.messages.create(model=MODEL, max_tokens=1024, messages=messages, tools=TOOLS)
    assert first.stop_reason == "tool_use"
    (call,) = calls(first)
    assert (call.name, call.input) == (WEATHER_CALL["name"], WEATHER_CALL["arguments"]) and call.id
    assert [b.type for b in first.content] == ["tool_use"]  # no empty text block around it

    messages.append({"role": "assistant", "content": first.content})
    result: Any = {"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny [[tool-done]]"}
    messages.append({"role": "user", "content": [result]})
    second = await claude.messages.create(model=MODEL, max_tokens=1024, messages=messages, tools=TOOLS)
    assert second.stop_reason == "end_turn" and texts(second) and not calls(second)

    sent = upstream_chats(fake)[-1].message
    assert "<tool_call>" in sent.split("User:")[0]  # the instructions lead the conversation
    assert f'"id":"{call.id}","name":"get_weather"' in sent
    assert f'<tool_result id="{call.id}" name="get_weather">18C and sunny' in sent


async def test_results_with_errors_images_and_text_after_them(
    ready: LiveGateway, claude: anthropic.AsyncAnthropic, fake: FakeGrok
) -> None:
    messages: list[MessageParam] = [
        {"role": "user", "content": "weather and time?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {"timezone": "CET"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": [{"type": "text", "text": "noon"}]},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "no station", "is_error": True},
                {"type": "text", "text": "Thanks [[tool-done]]"},
            ],
        },
    ]
    reply = await claude.messages.create(model=MODEL, max_tokens=64, messages=messages, tools=TOOLS)
    assert reply.stop_reason == "end_turn"
    sent = upstream_chats(fake)[-1].message
    history = sent[sent.index("User: weather and time?") :]
    assert history == (
        "User: weather and time?\n\n"
        "Assistant: Checking.\n"
        '<tool_call>{"id":"toolu_1","name":"get_weather","arguments":{"city":"Paris"}}</tool_call>\n'
        '<tool_call>{"id":"toolu_2","name":"get_time","arguments":{"timezone":"CET"}}</tool_call>\n\n'
        'Tool: <tool_result id="toolu_2" name="get_time">noon</tool_result>\n\n'
        'Tool: <tool_result id="toolu_1" name="get_weather">The tool failed:\nno station</tool_result>\n\n'
        "User: Thanks [[tool-done]]"
    )


async def test_the_stream_helper_assembles_parallel_calls(
    ready: LiveGateway, claude: anthropic.AsyncAnthropic, chat_transport: str
) -> None:
    async with claude.messages.stream(
        model=MODEL, max_tokens=1024, messages=user("[[tool-parallel]] weather and time in Paris"), tools=TOOLS
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(c.name, c.input) for c in calls(final)] == [
        (WEATHER_CALL["name"], WEATHER_CALL["arguments"]),
        (TIME_CALL["name"], TIME_CALL["arguments"]),
    ]
    assert len({c.id for c in calls(final)}) == 2


async def test_prose_then_a_call_streams_as_blocks(ready: LiveGateway) -> None:
    body = {"model": MODEL, "max_tokens": 256, "messages": user("[[tool-prose]] weather?"), "tools": TOOLS}
    status, raw = await post(ready, {**body, "stream": True})
    assert status == 200
    seen = stream_events(raw)
    starts = [e for e in seen if e["type"] == "content_block_start"]
    assert [(e["index"], e["content_block"]["type"]) for e in starts] == [(0, "text"), (1, "tool_use")]
    tool_start = starts[1]["content_block"]
    assert tool_start["name"] == "get_weather" and tool_start["input"] == {} and tool_start["id"]
    deltas = [e for e in seen if e["type"] == "content_block_delta"]
    text = "".join(e["delta"]["text"] for e in deltas if e["index"] == 0)
    partial = "".join(e["delta"]["partial_json"] for e in deltas if e["index"] == 1)
    assert text == PROSE and msgspec.json.decode(partial) == WEATHER_CALL["arguments"]
    assert {e["delta"]["type"] for e in deltas if e["index"] == 1} == {"input_json_delta"}
    assert len([e for e in deltas if e["index"] == 1]) > 1  # the arguments arrive in fragments
    stops = [e["index"] for e in seen if e["type"] == "content_block_stop"]
    assert stops == [0, 1]
    assert seen[-2]["delta"]["stop_reason"] == "tool_use" and seen[-1]["type"] == "message_stop"

    status, raw = await post(ready, body)  # the same message without a stream
    message = msgspec.json.decode(raw)
    assert [b["type"] for b in message["content"]] == ["text", "tool_use"]
    assert message["content"][0]["text"] == PROSE and message["content"][1]["input"] == WEATHER_CALL["arguments"]


async def test_one_call_when_parallel_use_is_off(ready: LiveGateway, claude: anthropic.AsyncAnthropic) -> None:
    choice: Any = {"type": "auto", "disable_parallel_tool_use": True}
    reply = await claude.messages.create(
        model=MODEL,
        max_tokens=256,
        messages=user("[[tool-parallel]] weather and time"),
        tools=TOOLS,
        tool_choice=choice,
    )
    assert [c.name for c in calls(reply)] == ["get_weather"]


async def test_nested_inputs_validate(ready: LiveGateway, claude: anthropic.AsyncAnthropic) -> None:
    reply = await claude.messages.create(
        model=MODEL, max_tokens=256, messages=user("[[tool-nested]] a trip"), tools=TOOLS
    )
    (call,) = calls(reply)
    assert call.input == TRIP_CALL["arguments"]


# ---- tool_choice and repair -----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_an_invalid_call_is_repaired(
    ready: LiveGateway, claude: anthropic.AsyncAnthropic, fake: FakeGrok, stream: bool
) -> None:
    choice: Any = {"type": "tool", "name": "plan_trip"}
    ask = user("[[tool-repair]] plan a trip to Lisbon")
    reply: Message
    if stream:
        async with claude.messages.stream(
            model=MODEL, max_tokens=256, messages=ask, tools=TOOLS, tool_choice=choice
        ) as events:
            reply = await events.get_final_message()
    else:
        reply = await claude.messages.create(model=MODEL, max_tokens=256, messages=ask, tools=TOOLS, tool_choice=choice)
    (call,) = calls(reply)
    assert call.input == TRIP_CALL["arguments"] and reply.stop_reason == "tool_use"
    first, repair = upstream_chats(fake)
    assert INVALID not in first.message and INVALID in repair.message
    assert reply.usage.input_tokens > len(first.message.encode()) // 4  # both prompts are counted


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "plan_trip"}], ids=["any", "tool"])
async def test_a_forced_call_that_never_validates_is_a_422(
    ready: LiveGateway, claude: anthropic.AsyncAnthropic, stream: bool, choice: Any
) -> None:
    with pytest.raises(anthropic.UnprocessableEntityError) as info:
        if stream:
            async with claude.messages.stream(
                model=MODEL, max_tokens=256, messages=user("[[tool-never]] plan"), tools=TOOLS, tool_choice=choice
            ) as events:
                await events.get_final_message()
        else:
            await claude.messages.create(
                model=MODEL, max_tokens=256, messages=user("[[tool-never]] plan"), tools=TOOLS, tool_choice=choice
            )
    assert info.value.type == "invalid_request_error"
    assert "plan_trip" in str(info.value.api_message) and "repair" in str(info.value.api_message)


async def test_auto_that_never_validates_is_a_text_answer(
    ready: LiveGateway, claude: anthropic.AsyncAnthropic, fake: FakeGrok
) -> None:
    reply = await claude.messages.create(model=MODEL, max_tokens=256, messages=user("[[tool-never]] plan"), tools=TOOLS)
    assert reply.stop_reason == "end_turn" and not calls(reply) and texts(reply) == PROSE
    assert len(upstream_chats(fake)) == 2  # one repair turn


async def test_tool_choice_none_never_calls(
    ready: LiveGateway, claude: anthropic.AsyncAnthropic, fake: FakeGrok
) -> None:
    none: Any = {"type": "none"}
    reply = await claude.messages.create(
        model=MODEL, max_tokens=256, messages=user("[[tool-prose]] weather?"), tools=TOOLS, tool_choice=none
    )
    assert reply.stop_reason == "end_turn" and not calls(reply) and texts(reply) == PROSE
    assert "<tool_call>" not in upstream_chats(fake)[0].message  # no instructions were given


# ---- the envelope never shows ---------------------------------------------------------------------------

SCENARIOS = ["tool-call", "tool-prose", "tool-parallel", "tool-split", "tool-nested", "tool-repair", "tool-never"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("choice", ["auto", "any", "none"])
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_no_envelope_text_reaches_the_client(
    ready: LiveGateway, scenario: str, choice: str, stream: bool
) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 512,
        "messages": user(f"[[{scenario}]] go"),
        "tools": TOOLS,
        "tool_choice": {"type": choice},
        "stream": stream,
    }
    status, raw = await post(ready, body)
    leaks = [b"<tool_call", b"tool_call>", b"<tool_result", b"```"]
    if choice == "any" and scenario == "tool-never":
        assert status == 422  # a forced call that never came right (its error quotes the invalid values)
    else:
        assert status == 200, raw
        leaks.append(INVALID.encode())  # the invalid attempt itself is never shown
    for leak in leaks:
        assert leak not in raw, (scenario, choice, leak)
    if stream and status == 200:  # every text delta is prose, never a piece of a tag
        for event in stream_events(raw):
            if event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
                assert "<" not in event["delta"]["text"], event
