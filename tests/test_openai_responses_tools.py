"""Function calls and structured output on /v1/responses, end to end: the real openai SDK against the gateway
under hypercorn, in front of the fake grok.com (whose tool and JSON scenarios are picked by markers in the
prompt, see ``grok2api/testing/fake_tools.py``). The calls are emulated and validated on the neutral side; these
tests check they come out as Responses API items and events, and that the envelope never shows."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import openai
import pytest
from openai.types.responses import (
    FunctionToolParam,
    Response,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseStreamEvent,
)
from pydantic import BaseModel

from grok2api.testing.fake_grok import FakeGrok
from grok2api.testing.fake_tools import INVALID, PERSON, PROSE, TIME_CALL, TRIP_CALL, WEATHER_CALL

from harness import LiveGateway, upstream_chats

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
        "travellers": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["name"]}},
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


def tool(name: str, schema: dict[str, Any], description: str | None = None) -> FunctionToolParam:
    return {"type": "function", "name": name, "description": description, "parameters": schema, "strict": False}


TOOLS: list[FunctionToolParam] = [
    tool("get_weather", WEATHER_SCHEMA, "The current weather in a city."),
    tool("get_time", TIME_SCHEMA),
    tool("plan_trip", TRIP_SCHEMA, "Plan a trip."),
]
PERSON_FORMAT: Any = {"format": {"type": "json_schema", "name": "person", "schema": PERSON_SCHEMA}}


class Person(BaseModel):
    name: str
    born: int
    languages: list[str] = []


@pytest.fixture
async def ready(gateway: LiveGateway) -> LiveGateway:
    await gateway.add_accounts("tok-tools")
    return gateway


async def create(client: openai.AsyncOpenAI, input: Any, **kwargs: Any) -> Response:
    resp = await client.responses.create(model=MODEL, input=input, **kwargs)
    assert isinstance(resp, Response)
    return resp


async def events(client: openai.AsyncOpenAI, input: Any, **kwargs: Any) -> list[ResponseStreamEvent]:
    stream = await client.responses.create(model=MODEL, input=input, stream=True, **kwargs)
    return [event async for event in stream]


def calls_of(resp: Response) -> list[ResponseFunctionToolCall]:
    return [o for o in resp.output if isinstance(o, ResponseFunctionToolCall)]


def arguments(call: ResponseFunctionToolCall) -> Any:
    return msgspec.json.decode(call.arguments)


async def post_raw(gateway: LiveGateway, body: dict[str, Any]) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.url}/v1/responses", data=msgspec.json.encode(body)) as resp,
    ):
        return resp.status, await resp.read()


# ---- function calls ----------------------------------------------------------------------------------


async def test_a_function_call_is_a_function_call_item(
    ready: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    resp = await create(client, "[[tool-call]] What is the weather in Paris?", tools=TOOLS)
    assert resp.status == "completed" and resp.output_text == ""
    (call,) = resp.output
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.type, call.name, call.status) == ("function_call", "get_weather", "completed")
    assert call.call_id.startswith("call_") and call.id is not None and call.id.startswith("fc_")
    assert arguments(call) == WEATHER_CALL["arguments"]
    assert [t.name for t in resp.tools if t.type == "function"] == ["get_weather", "get_time", "plan_trip"]
    assert "<tool_call>" in upstream_chats(fake)[-1].message  # Grok was told how to call


async def test_the_tool_loop_with_previous_response_id(
    ready: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, chat_transport: str
) -> None:
    first = await create(client, "[[tool-call]] What is the weather in Paris?", tools=TOOLS)
    (call,) = calls_of(first)
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny [[tool-done]]"}
    second = await create(client, [result], tools=TOOLS, previous_response_id=first.id)
    assert second.status == "completed" and second.output_text and not calls_of(second)
    sent = upstream_chats(fake)[-1].message
    assert "User: [[tool-call]] What is the weather in Paris?" in sent  # the first turn, replayed
    assert f'"id":"{call.call_id}","name":"get_weather"' in sent  # the call, in the envelope Grok writes
    assert f'<tool_result id="{call.call_id}" name="get_weather">18C and sunny' in sent


async def test_the_tool_loop_sending_the_output_back_as_input(
    ready: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    """The other way the SDK's examples loop: the earlier output items go back in ``input``, nothing is stored."""
    conversation: list[Any] = [{"role": "user", "content": "[[tool-prose]] weather in Paris?"}]
    first = await create(client, conversation, tools=TOOLS, store=False, reasoning={"summary": "auto"})
    (call,) = calls_of(first)
    assert first.output_text == PROSE
    conversation += [item.model_dump(exclude_none=True) for item in first.output]
    conversation.append({"type": "function_call_output", "call_id": call.call_id, "output": "18C [[tool-done]]"})
    second = await create(client, conversation, tools=TOOLS, store=False)
    assert second.output_text and not calls_of(second)
    sent = upstream_chats(fake)[-1].message
    assert f'Assistant: {PROSE}\n<tool_call>{{"id":"{call.call_id}"' in sent
    assert f'<tool_result id="{call.call_id}" name="get_weather">18C' in sent


async def test_prose_then_parallel_calls(ready: LiveGateway, client: openai.AsyncOpenAI) -> None:
    resp = await create(client, "[[tool-prose]] weather in Paris?", tools=TOOLS)
    message, call = resp.output
    assert isinstance(message, ResponseOutputMessage) and resp.output_text == PROSE
    assert isinstance(call, ResponseFunctionToolCall) and call.name == "get_weather"

    resp = await create(client, "[[tool-parallel]] weather and time", tools=TOOLS)
    assert [(c.name, arguments(c)) for c in calls_of(resp)] == [
        ("get_weather", WEATHER_CALL["arguments"]),
        ("get_time", TIME_CALL["arguments"]),
    ]
    assert len({c.call_id for c in calls_of(resp)}) == 2
    one = await create(client, "[[tool-parallel]] weather and time", tools=TOOLS, parallel_tool_calls=False)
    assert [c.name for c in calls_of(one)] == ["get_weather"] and one.parallel_tool_calls is False


async def test_streamed_calls_use_the_documented_events(
    ready: LiveGateway, client: openai.AsyncOpenAI, chat_transport: str
) -> None:
    items = await events(client, "[[tool-prose]] weather in Paris?", tools=TOOLS)
    kinds = [e.type for e in items]
    (call_added,) = [
        n for n, e in enumerate(items) if e.type == "response.output_item.added" and e.item.type == "function_call"
    ]
    assert kinds[call_added - 3 : call_added] == [  # the prose's message item ends before the call's begins
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert kinds[call_added + 1] == "response.function_call_arguments.delta"
    assert kinds[-4:] == [
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in items] == list(range(len(items)))
    added = items[call_added]
    assert added.type == "response.output_item.added" and added.output_index == 1
    assert isinstance(added.item, ResponseFunctionToolCall) and (added.item.arguments, added.item.status) == (
        "",
        "in_progress",
    )
    deltas = [e for e in items if e.type == "response.function_call_arguments.delta"]
    (done,) = [e for e in items if e.type == "response.function_call_arguments.done"]
    assert "".join(d.delta for d in deltas) == done.arguments
    assert msgspec.json.decode(done.arguments) == WEATHER_CALL["arguments"]
    assert {d.item_id for d in deltas} == {done.item_id} == {added.item.id}
    text = "".join(e.delta for e in items if e.type == "response.output_text.delta")
    assert text == PROSE
    completed = items[-1]
    assert completed.type == "response.completed"
    assert [o.type for o in completed.response.output] == ["message", "function_call"]


async def test_the_stream_helper_assembles_the_calls(ready: LiveGateway, client: openai.AsyncOpenAI) -> None:
    async with client.responses.stream(model=MODEL, input="[[tool-parallel]] weather and time", tools=TOOLS) as stream:
        snapshots = [e.snapshot async for e in stream if e.type == "response.function_call_arguments.delta"]
        final = await stream.get_final_response()
    assert [c.name for c in calls_of(final)] == ["get_weather", "get_time"]
    assert snapshots and msgspec.json.decode(snapshots[-1]) == TIME_CALL["arguments"]


async def test_nested_arguments_and_a_repaired_call(
    ready: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    (trip,) = calls_of(await create(client, "[[tool-nested]] a trip", tools=TOOLS))
    assert arguments(trip) == TRIP_CALL["arguments"]
    before = len(upstream_chats(fake))
    (repaired,) = calls_of(await create(client, "[[tool-repair]] plan a trip to Lisbon", tools=TOOLS))
    assert arguments(repaired) == TRIP_CALL["arguments"]
    assert len(upstream_chats(fake)) == before + 2  # one repair turn


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("forced", ["required", {"type": "function", "name": "plan_trip"}])
async def test_a_forced_call_that_never_validates_is_a_422(
    ready: LiveGateway, client: openai.AsyncOpenAI, forced: Any, stream: bool
) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await client.responses.create(
            model=MODEL, input="[[tool-never]] plan", tools=TOOLS, tool_choice=forced, stream=stream
        )
    assert caught.value.code == "invalid_model_output"


async def test_a_named_choice_is_echoed_and_obeyed(ready: LiveGateway, client: openai.AsyncOpenAI) -> None:
    resp = await create(
        client, "[[tool-nested]] a trip", tools=TOOLS, tool_choice={"type": "function", "name": "plan_trip"}
    )
    assert [c.name for c in calls_of(resp)] == ["plan_trip"]
    assert resp.tool_choice.model_dump(exclude_none=True) == {"type": "function", "name": "plan_trip"}  # type: ignore[union-attr]


async def test_tool_choice_none_never_calls(ready: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok) -> None:
    resp = await create(client, "[[tool-prose]] weather?", tools=TOOLS, tool_choice="none")
    assert calls_of(resp) == [] and resp.output_text == PROSE
    assert resp.tool_choice == "none"
    assert "<tool_call>" not in upstream_chats(fake)[-1].message  # no instructions were given


# ---- the envelope never shows --------------------------------------------------------------------------

SCENARIOS = ["tool-call", "tool-prose", "tool-parallel", "tool-split", "tool-repair", "tool-never"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("choice", ["auto", "none"])
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_no_envelope_text_reaches_the_client(
    ready: LiveGateway, scenario: str, choice: str, stream: bool
) -> None:
    body = {"model": MODEL, "input": f"[[{scenario}]] go", "tools": TOOLS, "tool_choice": choice, "stream": stream}
    status, raw = await post_raw(ready, body)
    assert status == 200
    leaks = [b"<tool_call", b"tool_call>", b"<tool_result", INVALID.encode()]
    if choice == "auto":  # a fence around a call goes with it (with none, the call alone is dropped)
        leaks.append(b"```")
    for leak in leaks:
        assert leak not in raw, (scenario, leak)
    if stream:  # every text delta is prose, never a piece of a tag
        for frame in raw.decode()[:-2].split("\n\n"):
            event = msgspec.json.decode(frame.split("\ndata: ", 1)[1])
            if event["type"] == "response.output_text.delta":
                assert "<" not in event["delta"], frame


# ---- structured output -------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["json-valid", "json-fenced", "json-repair"])
async def test_json_schema_answers_are_valid_json(
    ready: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, scenario: str
) -> None:
    resp = await create(client, f"[[{scenario}]] who wrote the first program?", text=PERSON_FORMAT)
    assert msgspec.json.decode(resp.output_text) == PERSON
    assert resp.text is not None and resp.text.format is not None and resp.text.format.type == "json_schema"
    assert len(upstream_chats(fake)) == (2 if scenario == "json-repair" else 1)
    items = await events(client, f"[[{scenario}]] who?", text=PERSON_FORMAT)
    done = items[-1]
    assert done.type == "response.completed" and msgspec.json.decode(done.response.output_text) == PERSON


async def test_the_sdk_parses_the_structured_answer(ready: LiveGateway, client: openai.AsyncOpenAI) -> None:
    parsed = await client.responses.parse(model=MODEL, input="[[json-valid]] who?", text_format=Person)
    assert parsed.output_parsed == Person.model_validate(PERSON)
    async with client.responses.stream(model=MODEL, input="[[json-valid]] who?", text_format=Person) as stream:
        final = await stream.get_final_response()
    assert final.output_parsed == Person.model_validate(PERSON)


async def test_json_object_format(ready: LiveGateway, client: openai.AsyncOpenAI) -> None:
    resp = await create(client, "[[json-valid]] hi", text={"format": {"type": "json_object"}})
    assert msgspec.json.decode(resp.output_text) == PERSON


@pytest.mark.parametrize("stream", [False, True])
async def test_json_never_valid_is_a_422(ready: LiveGateway, client: openai.AsyncOpenAI, stream: bool) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await client.responses.create(model=MODEL, input="[[json-never]] hi", text=PERSON_FORMAT, stream=stream)
    assert caught.value.code == "invalid_model_output"


async def test_broken_schemas_are_400s_naming_the_field(ready: LiveGateway, fake: FakeGrok) -> None:
    broken = {"type": "object", "properties": {"a": {"type": "nonsense"}}}
    for body, param in (
        ({"tools": [tool("get_weather", WEATHER_SCHEMA), tool("bad", broken)]}, "tools[1].parameters"),
        ({"text": {"format": {"type": "json_schema", "name": "x", "schema": broken}}}, "text.format.schema"),
    ):
        status, raw = await post_raw(ready, {"model": MODEL, "input": "hi", **body})
        assert status == 400, raw
        assert msgspec.json.decode(raw)["error"]["param"] == param
    assert upstream_chats(fake) == []
