"""The neutral conversation model: the few behaviours its types carry."""

from __future__ import annotations

from grok2api.conversation import Conversation, Image, Text, ToolCall, ToolSpec, Turn, text_turn


def test_a_turn_reads_its_text_and_images_in_order() -> None:
    turn = Turn(role="user", content=[Text("look"), Image("https://example.com/a.png"), Text(""), Text("here")])
    assert turn.text == "look\nhere"
    assert turn.images == ["https://example.com/a.png"]
    assert text_turn("user", "") == Turn(role="user")


def test_tool_call_arguments_as_json_text() -> None:
    assert ToolCall(id="c1", name="f", arguments={"city": "Paris", "days": [1, 2]}).arguments_json() == (
        '{"city":"Paris","days":[1,2]}'
    )
    assert ToolCall(id="c1", name="f", arguments="{not json").arguments_json() == "{not json"
    assert ToolCall(id="c1", name="f").arguments_json() == "{}"


def test_a_conversation_finds_its_tools_by_name() -> None:
    weather = ToolSpec(name="weather", parameters={"type": "object"})
    conversation = Conversation(turns=[text_turn("user", "hi")], tools=[weather])
    assert conversation.tool("weather") is weather
    assert conversation.tool("time") is None
    assert conversation.tool_choice.mode == "auto" and conversation.response_format.type == "text"
