"""A Responses API request as the neutral Conversation: input items, tools, tool choice and text format."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from grok2api.conversation import (
    Conversation,
    Image,
    ResponseFormat,
    Text,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Turn,
    text_turn,
)
from grok2api.errors import InvalidRequest
from grok2api.openai.responses_request import REQUEST_DECODER, ResponsesOrder, input_turns

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def order(**body: Any) -> ResponsesOrder:
    return ResponsesOrder(REQUEST_DECODER.decode(msgspec.json.encode({"model": "grok-3-fast", **body})))


def turns(items: Any) -> list[Turn]:
    return order(input=items).turns


def refused(**body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        order(**body)
    return caught.value


def test_a_string_is_one_user_turn() -> None:
    assert input_turns("hi") == [text_turn("user", "hi")]


def test_messages_with_or_without_type() -> None:
    got = turns(
        [
            {"role": "system", "content": "Rules."},
            {"role": "developer", "content": [{"type": "input_text", "text": "More rules."}]},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Look"},
                    {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "high"},
                ],
            },
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "A cat.", "annotations": []},
                    {"type": "refusal", "refusal": "No more."},
                ],
            },
        ]
    )
    assert got == [
        text_turn("system", "Rules."),
        text_turn("system", "More rules."),
        Turn(role="user", content=[Text("Look"), Image("https://example.com/a.png")]),
        Turn(role="assistant", content=[Text("A cat."), Text("No more.")]),
    ]


def test_function_calls_join_the_assistant_turn_before_them() -> None:
    got = turns(
        [
            {"role": "user", "content": "weather and time?"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hmm"}]},
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"city":"Paris"}'},
            {"role": "assistant", "content": "Checking."},
            {"type": "function_call", "call_id": "c2", "name": "time", "arguments": "{}", "status": "completed"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "noon"}]},
        ]
    )
    assert got == [
        text_turn("user", "weather and time?"),
        Turn(role="assistant", tool_calls=[ToolCall(id="c1", name="weather", arguments='{"city":"Paris"}')]),
        Turn(
            role="assistant", content=[Text("Checking.")], tool_calls=[ToolCall(id="c2", name="time", arguments="{}")]
        ),
        Turn(role="tool", content=[Text("sunny")], tool_call_id="c1"),
        Turn(role="tool", content=[Text("noon")], tool_call_id="c2"),
    ]


def test_the_conversation_puts_history_first_and_carries_the_options() -> None:
    req = order(
        input="again",
        instructions="Be brief.",
        tools=[{"type": "function", "name": "weather", "description": "Weather.", "parameters": WEATHER}],
        tool_choice={"type": "function", "name": "weather"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "answer", "schema": WEATHER, "strict": True}},
        reasoning={"effort": "low"},
        max_output_tokens=50,
    )
    history = [text_turn("user", "first"), text_turn("assistant", "answer")]
    assert req.conversation(history) == Conversation(
        turns=[*history, text_turn("user", "again")],
        system="Be brief.",
        tools=[ToolSpec(name="weather", description="Weather.", parameters=WEATHER)],
        tool_choice=ToolChoice(mode="named", name="weather"),
        parallel_tool_calls=False,
        response_format=ResponseFormat(type="json_schema", name="answer", schema=WEATHER, strict=True),
        reasoning_effort="low",
        max_output_tokens=50,
    )
    assert (req.store, req.stream) == (True, False)
    assert order(input="x", store=False, stream=True).store is False


def test_defaults() -> None:
    conversation = order(input="hi").conversation([])
    assert conversation == Conversation(turns=[text_turn("user", "hi")])
    tools = [{"type": "function", "name": "f"}]
    assert order(input="hi", tools=tools, tool_choice="required").tool_choice == ToolChoice(mode="required")
    assert order(input="hi", tools=tools, tool_choice="none").tool_choice == ToolChoice(mode="none")
    assert order(input="hi", text={"format": {"type": "json_object"}}).response_format == ResponseFormat(
        type="json_object"
    )
    assert order(input="hi", text={"verbosity": "low"}).response_format == ResponseFormat()


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input": [{"type": "computer_call", "id": "c"}]}, "input[0].type", "not supported"),
        ({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input[0].content[0].text", "missing"),
        ({"input": [{"role": "user", "content": 3}]}, "input[0].content", "Expected"),
        ({"input": [7]}, "input[0]", "Expected"),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_file"}]}]},
            "input[0].output[0].type",
            "input_file",
        ),
        ({"input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input[0].content[0].image_url", "needs"),
        ({"input": "hi", "tools": [{"name": "f"}]}, "tools[0].type", "missing"),
        ({"input": "hi", "tools": [{"type": "function"}]}, "tools[0].name", "missing"),
        (
            {"input": "hi", "tools": [{"type": "function", "name": "f", "parameters": {"type": 5}}]},
            "tools[0].parameters",
            "not a valid JSON schema",
        ),
        ({"input": "hi", "tool_choice": {"type": "function", "name": "f"}}, "tool_choice", "no tools"),
        ({"input": "hi", "prompt": {"id": "pmpt_1"}}, "prompt", "not supported"),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], param: str, words: str) -> None:
    err = refused(**body)
    assert err.param == param and words in err.message, err.message
    assert "`" not in err.message
