"""The emulation engine on its own: instructions, calls read from text, validation, repair decisions."""

from __future__ import annotations

from typing import Any

import pytest

from grok2api.conversation import Conversation, ResponseFormat, ToolChoice, ToolSpec, text_turn
from grok2api.conversation.emulation import Emulation, parse_block
from grok2api.conversation.events import AnswerEvent, ReasoningDelta, TextDelta, ToolCallDone, ToolCallStart
from grok2api.conversation.limits import OutputLimit
from grok2api.conversation.prompt import flatten
from grok2api.errors import InvalidRequest

ECHO = ToolSpec(
    name="echo",
    parameters={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
)


def emulation(**options: Any) -> Emulation:
    conversation = Conversation(turns=[text_turn("user", "hi")], tools=options.pop("tools", [ECHO]), **options)
    return Emulation(conversation, OutputLimit())


def answer(emu: Emulation, *texts: str) -> list[AnswerEvent]:
    events = emu.feed([TextDelta(t) for t in texts])
    return events + emu.end()


def call(text: str) -> str:
    return '<tool_call>{"name": "echo", "arguments": {"text": "' + text + '"}}</tool_call>'


def test_blocks_are_read_leniently() -> None:
    assert parse_block('{"name": "f", "arguments": {"a": 1}}') == ("f", {"a": 1}, None)
    assert parse_block('{"name": "f", "arguments": "{\\"a\\": 1}"}') == ("f", {"a": 1}, None)
    assert parse_block('```json\n{"name": "f", "parameters": {}}\n```') == ("f", {}, None)
    assert parse_block('{"name": "f"}') == ("f", {}, None)
    assert parse_block('{"name": "f", "arguments": [1]}')[2] == "the arguments of f must be a JSON object"
    assert parse_block('{"arguments": {}}')[2] is not None
    assert (parse_block("{oops")[2] or "").startswith("a tool call block is not valid JSON")


def test_without_tools_or_format_the_answer_passes_through() -> None:
    emu = Emulation(Conversation(turns=[text_turn("user", "hi")]), OutputLimit())
    deltas: list[TextDelta | ReasoningDelta] = [ReasoningDelta("hm"), TextDelta("<tool_call>{}</tool_call>")]
    assert not emu.active and emu.feed(deltas) == deltas
    assert emu.end() == [] and emu.closing() == ([], None, None)
    assert emu.upstream_conversation() == emu.conversation


def test_instructions_follow_the_tool_choice() -> None:
    def system(**options: Any) -> str:
        return flatten(emulation(**options).upstream_conversation()).message.split("\n\nUser:")[0]

    auto = system()
    assert "- echo" in auto and '"required":["text"]' in auto and "only when it helps" in auto
    assert "several tools at once" in auto
    assert "at most one tool" in system(parallel_tool_calls=False)
    assert "must call at least one tool" in system(tool_choice=ToolChoice(mode="required"))
    assert "must call the tool echo" in system(tool_choice=ToolChoice(mode="named", name="echo"))
    assert system(tool_choice=ToolChoice(mode="none")) == "hi"  # no instructions: the lone turn as it is
    assert "Be brief." in system(system="Be brief.")


def test_valid_calls_become_events_and_end_with_tool_calls() -> None:
    emu = emulation()
    events = answer(emu, "One sec. ", call("a"), call("b"))
    assert events[0] == TextDelta("One sec. ")
    starts = [e for e in events if isinstance(e, ToolCallStart)]
    dones = [e for e in events if isinstance(e, ToolCallDone)]
    assert [s.index for s in starts] == [0, 1] and starts[0].id != starts[1].id
    assert [d.arguments for d in dones] == ['{"text":"a"}', '{"text":"b"}']
    assert not emu.needs_repair and emu.closing() == ([], "tool_calls", None)


def test_an_invalid_call_asks_for_a_repair_that_does_not_repeat_accepted_calls() -> None:
    emu = emulation()
    answer(emu, call("a"), '<tool_call>{"name": "echo", "arguments": {}}</tool_call>')
    assert emu.needs_repair and "'text' is a required property" in emu.problems[0]
    repair = emu.repair_conversation(emu.upstream_conversation())
    assert repair.turns[-2].role == "assistant" and repair.turns[-2].text == emu.raw_text
    assert repair.turns[-1].role == "system" and "do not repeat them: echo (call_" in repair.turns[-1].text
    emu.begin_repair()
    events = answer(emu, "Sorry! ", call("a"), call("c"))
    assert [e.arguments for e in events if isinstance(e, ToolCallDone)] == ['{"text":"c"}']
    assert not any(isinstance(e, TextDelta) for e in events)  # a repair's prose is not shown
    assert [c.index for c in emu.calls] == [0, 1]


def test_unknown_tools_and_the_wrong_named_tool_are_problems() -> None:
    emu = emulation()
    answer(emu, '<tool_call>{"name": "nope", "arguments": {}}</tool_call>')
    assert emu.problems == ["there is no tool named 'nope' (the tools are: echo)"]
    other = ToolSpec(name="other")
    emu = emulation(tools=[ECHO, other], tool_choice=ToolChoice(mode="named", name="other"))
    answer(emu, call("a"))
    assert emu.problems == ["this answer must call other, not echo"]


def test_tool_choice_none_drops_blocks_and_keeps_prose() -> None:
    emu = emulation(tool_choice=ToolChoice(mode="none"))
    assert answer(emu, "Plain ", call("a"), "answer.") == [TextDelta("Plain "), TextDelta("answer.")]
    assert not emu.needs_repair and emu.closing() == ([], None, None)


def test_a_failed_auto_call_with_nothing_said_explains_itself() -> None:
    emu = emulation()
    answer(emu, '<tool_call>{"name": "echo"}</tool_call>')
    events, reason, error = emu.closing()
    assert reason is None and error is None
    assert events == [
        TextDelta(
            "(No tool was called: the arguments of echo do not match its schema: $: 'text' is a required property.)"
        )
    ]


@pytest.mark.parametrize(
    ("fmt", "text", "problem"),
    [
        (ResponseFormat(type="json_object"), "[1, 2]", "the answer must be a JSON object"),
        (ResponseFormat(type="json_object"), "Sure: {}", "the answer is not valid JSON"),
        (ResponseFormat(type="json_schema", schema={"type": "array"}), "{}", "$: {} is not of type 'array'"),
    ],
)
def test_json_answers_are_validated(fmt: ResponseFormat, text: str, problem: str) -> None:
    emu = emulation(tools=[], response_format=fmt)
    assert answer(emu, text) == []  # nothing released before it is checked
    assert emu.needs_repair and problem in emu.problems[0]
    _, reason, error = emu.closing()
    assert reason == "error" and error is not None and error.status == 422


def test_a_json_answer_in_a_fence_comes_out_bare() -> None:
    emu = emulation(tools=[], response_format=ResponseFormat(type="json_schema", schema={"type": "array"}))
    answer(emu, "```json\n[1", ", 2]\n```")
    assert emu.closing() == ([TextDelta("[1, 2]")], "stop", None)


def test_requests_that_cannot_work_are_400s() -> None:
    with pytest.raises(InvalidRequest) as info:
        emulation(tool_choice=ToolChoice(mode="named", name="missing"))
    assert info.value.param == "tool_choice"
    with pytest.raises(InvalidRequest):
        emulation(tools=[], tool_choice=ToolChoice(mode="required"))
