"""A Messages API request as the neutral Conversation: blocks to turns, tools and choices, thinking, limits."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from grok2api.anthropic.request import shows_thinking, to_conversation
from grok2api.anthropic.schemas import COUNT_DECODER, REQUEST_DECODER, MessagesRequest
from grok2api.conversation import Conversation, Image, Text, ToolCall, ToolChoice, Turn
from grok2api.errors import InvalidRequest


def request(messages: list[Any], **extra: Any) -> MessagesRequest:
    return REQUEST_DECODER.decode(msgspec.json.encode({"model": "m", "max_tokens": 100, "messages": messages, **extra}))


def convert(messages: list[Any], **extra: Any) -> Conversation:
    return to_conversation(request(messages, **extra))


def test_a_user_message_with_results_becomes_tool_turns_then_a_user_turn() -> None:
    turns = convert(
        [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Calling."},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "before"},
                    {"type": "tool_result", "tool_use_id": "t1", "content": "42"},
                    {"type": "tool_result", "tool_use_id": "t2", "is_error": True},
                    {"type": "text", "text": "after"},
                ],
            },
        ]
    ).turns
    assert turns == [
        Turn(role="user", content=[Text("go")]),
        Turn(
            role="assistant", content=[Text("Calling.")], tool_calls=[ToolCall(id="t1", name="f", arguments={"x": 1})]
        ),
        Turn(role="user", content=[Text("before")]),
        Turn(role="tool", content=[Text("42")], tool_call_id="t1"),
        Turn(role="tool", content=[Text("The tool failed:")], tool_call_id="t2"),
        Turn(role="user", content=[Text("after")]),
    ]


def test_images_become_urls_or_data_uris() -> None:
    blocks = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
        {
            "type": "tool_result",
            "tool_use_id": "t1",
            "content": [
                {"type": "text", "text": "see"},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/b.jpg"}},
            ],
        },
    ]
    user, tool = convert([{"role": "user", "content": blocks}]).turns
    assert user.content == [Image("data:image/png;base64,iVBO"), Image("https://example.com/a.jpg")]
    assert tool.content == [Text("see"), Image("https://example.com/b.jpg")]


def test_system_text_blocks_and_system_messages() -> None:
    conversation = convert(
        [{"role": "system", "content": [{"type": "text", "text": "mid"}]}, {"role": "user", "content": "hi"}],
        system=[{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
    )
    assert conversation.system == "one\ntwo"
    assert conversation.turns[0] == Turn(role="system", content=[Text("mid")])
    assert convert([{"role": "user", "content": "hi"}], system="plain").system == "plain"


@pytest.mark.parametrize(
    ("choice", "neutral", "parallel"),
    [
        (None, ToolChoice(mode="auto"), True),
        ({"type": "auto"}, ToolChoice(mode="auto"), True),
        ({"type": "any", "disable_parallel_tool_use": True}, ToolChoice(mode="required"), False),
        ({"type": "tool", "name": "f"}, ToolChoice(mode="named", name="f"), True),
        ({"type": "none"}, ToolChoice(mode="none"), True),
    ],
)
def test_tool_choices(choice: Any, neutral: ToolChoice, parallel: bool) -> None:
    tools = [{"name": "f", "description": "does f", "input_schema": {"type": "object"}}]
    extra: dict[str, Any] = {"tools": tools} if choice is None else {"tools": tools, "tool_choice": choice}
    conversation = convert([{"role": "user", "content": "hi"}], **extra)
    assert (conversation.tool_choice, conversation.parallel_tool_calls) == (neutral, parallel)
    (spec,) = conversation.tools
    assert (spec.name, spec.description, spec.parameters) == ("f", "does f", {"type": "object"})


def test_limits_apply_to_messages_not_to_counting() -> None:
    conversation = convert([{"role": "user", "content": "hi"}], stop_sequences=["END"])
    assert (conversation.max_output_tokens, conversation.stop) == (100, ["END"])
    counted = to_conversation(COUNT_DECODER.decode(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'))
    assert (counted.max_output_tokens, counted.stop) == (None, [])


@pytest.mark.parametrize(
    ("thinking", "shown"),
    [
        (None, False),
        ({"type": "disabled"}, False),
        ({"type": "enabled", "budget_tokens": 1024}, True),
        ({"type": "adaptive"}, True),
        ({"type": "adaptive", "display": "omitted"}, False),
    ],
)
def test_thinking_is_shown_only_when_asked(thinking: Any, shown: bool) -> None:
    extra = {} if thinking is None else {"thinking": thinking}
    assert shows_thinking(request([{"role": "user", "content": "hi"}], **extra)) is shown


@pytest.mark.parametrize(
    ("messages", "extra", "param"),
    [
        ([{"role": "user", "content": "hi"}], {"thinking": {"type": "enabled"}}, "thinking"),
        ([{"role": "user", "content": "hi"}], {"tools": [{"name": "f"}]}, "tools[0].input_schema"),
        ([{"role": "user", "content": "hi"}], {"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0].type"),
        ([{"role": "user", "content": "hi"}], {"tool_choice": {"type": "any"}}, "tool_choice"),
        (
            [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}],
            {},
            "messages[0].content[0]",
        ),
        (
            [
                {"role": "user", "content": "x"},
                {"role": "system", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
            ],
            {},
            "messages[1].content[0]",
        ),
        (
            [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f1"}}]}],
            {},
            "messages[0].content[0].source",
        ),
    ],
)
def test_what_cannot_be_used_is_a_400_naming_the_field(messages: list[Any], extra: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        convert(messages, **extra)
    assert info.value.param == param
