"""Prompt flattening: a conversation (here made from OpenAI chat messages) into Grok's single ``message``
plus the images to upload."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from grok2api.conversation import Conversation, text_turn
from grok2api.conversation.prompt import MAX_IMAGES, Prompt, flatten
from grok2api.errors import InvalidRequest
from grok2api.openai.chat_request import to_conversation
from grok2api.openai.schemas import REQUEST_DECODER


def messages(*items: dict[str, Any]) -> Conversation:
    """Decode the messages exactly as the API does, from JSON, and convert them."""
    body = msgspec.json.encode({"model": "grok-3-fast", "messages": list(items)})
    return to_conversation(REQUEST_DECODER.decode(body))


def test_single_user_message_is_sent_verbatim() -> None:
    text = "  Translate this:\n\nUser: not a real turn  \n"
    assert flatten(messages({"role": "user", "content": text})) == Prompt(text, [])


def test_single_user_message_with_text_parts() -> None:
    parts = [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]
    msgs = messages({"role": "user", "content": parts})
    assert flatten(msgs) == Prompt("first\nsecond", [])


def test_conversation_keeps_roles_and_separates_turns() -> None:
    msgs = messages(
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "How are you?"},
    )
    assert flatten(msgs).message == (
        "System: Be brief.\n\nUser: Hi\n\nAssistant: Hello!\n\nSystem: Answer in French.\n\nUser: How are you?"
    )


def test_earlier_reasoning_is_stripped_from_assistant_turns() -> None:
    msgs = messages(
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "<think>\nadding numbers\n</think>\n4"},
        {"role": "assistant", "content": "<THINK>loud</Think>  also 4"},
        {"role": "user", "content": "<think>a user may write this</think> and 3+3?"},
    )
    assert flatten(msgs).message == (
        "User: 2+2?\n\nAssistant: 4\n\nAssistant: also 4\n\nUser: <think>a user may write this</think> and 3+3?"
    )


def test_tool_calls_and_results_are_written_out() -> None:
    msgs = messages(
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [{"function": {"name": "noop"}}]},
    )
    assert flatten(msgs).message == (
        "User: Weather in Paris?\n\n"
        'Assistant: <tool_call>{"id":"call_1","name":"get_weather","arguments":{"city":"Paris"}}</tool_call>\n'
        '<tool_call>{"id":"call_2","name":"get_time","arguments":{}}</tool_call>\n\n'
        'Tool: <tool_result id="call_1" name="get_weather">18C, sunny</tool_result>\n\n'
        "Assistant: Checking.\n"
        '<tool_call>{"id":"","name":"noop","arguments":{}}</tool_call>'
    )


def test_results_in_any_order_stay_next_to_their_call_ids() -> None:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{not json"}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"UTC"}'}},
    ]
    msgs = messages(
        {"role": "user", "content": "Both please"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
        {"role": "tool", "tool_call_id": "call_a", "content": "rain"},
    )
    assert flatten(msgs).message.split("\n\n")[1:] == [
        'Assistant: <tool_call>{"id":"call_a","name":"get_weather","arguments":"{not json"}</tool_call>\n'
        '<tool_call>{"id":"call_b","name":"get_time","arguments":{"tz":"UTC"}}</tool_call>',
        'Tool: <tool_result id="call_b" name="get_time">12:00</tool_result>',
        'Tool: <tool_result id="call_a" name="get_weather">rain</tool_result>',
    ]


def test_empty_turns_are_skipped() -> None:
    msgs = messages(
        {"role": "system", "content": "   "},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": None},
        {"role": "assistant", "content": "<think>only thoughts</think>"},
        {"role": "user", "content": "Again"},
    )
    assert flatten(msgs).message == "User: Hi\n\nUser: Again"


def test_images_are_collected_with_markers() -> None:
    msgs = messages(
        {"role": "system", "content": "Describe images."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "image_url", "image_url": "data:image/png;base64,AAAA"},
            ],
        },
    )
    prompt = flatten(msgs)
    assert prompt.image_urls == ["https://example.com/a.png", "data:image/png;base64,AAAA"]
    assert prompt.message == "System: Describe images.\n\nUser: Compare\n[image 1]\n[image 2]"


def test_a_single_image_needs_no_marker() -> None:
    msgs = messages(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
            ],
        }
    )
    assert flatten(msgs) == Prompt("What is this?", ["https://example.com/a.png"])


def test_too_many_images_is_a_clear_400() -> None:
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": f"https://example.com/{i}.png"}} for i in range(MAX_IMAGES + 1)
    ]
    with pytest.raises(InvalidRequest) as info:
        flatten(messages({"role": "user", "content": parts}))
    assert info.value.status == 400 and str(MAX_IMAGES) in info.value.message
    prompt = flatten(messages({"role": "user", "content": parts[:MAX_IMAGES]}))
    assert len(prompt.image_urls) == MAX_IMAGES
    assert prompt.image_urls[-1] == f"https://example.com/{MAX_IMAGES - 1}.png"


def test_top_level_system_text_comes_first() -> None:
    conversation = Conversation(system="Be brief.", turns=[text_turn("user", "Hi")])
    assert flatten(conversation) == Prompt("System: Be brief.\n\nUser: Hi", [])


def test_the_input_field_is_named_in_errors() -> None:
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": f"https://example.com/{i}.png"}} for i in range(MAX_IMAGES + 1)
    ]
    with pytest.raises(InvalidRequest) as info:
        flatten(messages({"role": "user", "content": parts}), param="input")
    assert info.value.param == "input"
