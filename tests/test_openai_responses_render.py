"""The Responses renderer fed neutral events directly: every frame must validate strictly against the openai SDK's
event types and satisfy the SDK's own stream accumulator, and the final object must match the stream."""

from __future__ import annotations

from typing import Any

import msgspec
import pydantic
import pytest
from openai import omit
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent

from grok2api.conversation.events import (
    AnswerEvent,
    Finish,
    ReasoningDelta,
    TextDelta,
    TokenUsage,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
)
from grok2api.errors import RateLimited, StalledMidAnswer
from grok2api.openai.responses_objects import ResponseObject
from grok2api.openai.responses_render import ResponseBuilder

EVENTS: pydantic.TypeAdapter[ResponseStreamEvent] = pydantic.TypeAdapter(ResponseStreamEvent)
USAGE = TokenUsage(10, 20)


def shell() -> ResponseObject:
    return ResponseObject(id="resp_test", created_at=1_790_000_000, status="in_progress", model="grok-3-fast")


def render(events: list[AnswerEvent], finish: Finish) -> tuple[list[ResponseStreamEvent], ResponseObject]:
    """The stream's events, each validated strictly and fed to the SDK's accumulator, and the final object."""
    builder = ResponseBuilder(shell(), stream=True)
    frames = builder.start()
    for answer_event in events:
        frames += builder.feed(answer_event)
    frames += builder.finish(finish)
    parsed: list[ResponseStreamEvent] = []
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    for frame in frames:
        name, data = frame.decode().removesuffix("\n\n").split("\n")
        sdk_event = EVENTS.validate_python(msgspec.json.decode(data.removeprefix("data: ")))
        assert name == f"event: {sdk_event.type}"
        state.handle_event(sdk_event)
        parsed.append(sdk_event)
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    return parsed, builder.response


def final_of(events: list[AnswerEvent], finish: Finish) -> ResponseObject:
    builder = ResponseBuilder(shell(), stream=False)
    assert builder.start() == []
    for event in events:
        assert builder.feed(event) == []
    assert builder.finish(finish) == []
    return builder.response


def sdk(response: ResponseObject) -> Response:
    return Response.model_validate(msgspec.to_builtins(response))


CALL_EVENTS: list[AnswerEvent] = [
    ReasoningDelta("Thinking"),
    ReasoningDelta(" hard."),
    TextDelta("Let me "),
    TextDelta("check."),
    ToolCallStart(0, "call_a", "get_weather"),
    ToolCallDelta(0, '{"city":'),
    ToolCallStart(1, "call_b", "get_time"),
    ToolCallDelta(1, '{"timezone":"UTC"}'),
    ToolCallDelta(0, '"Paris"}'),
    ToolCallDone(1, "call_b", "get_time", '{"timezone":"UTC"}'),
    ToolCallDone(0, "call_a", "get_weather", '{"city":"Paris"}'),
]


def test_reasoning_text_and_interleaved_calls() -> None:
    events, final = render(CALL_EVENTS, Finish("tool_calls", USAGE))
    response = sdk(final)
    assert [o.type for o in response.output] == ["reasoning", "message", "function_call", "function_call"]
    reasoning, message, weather, clock = response.output
    assert reasoning.type == "reasoning" and [s.text for s in reasoning.summary] == ["Thinking hard."]
    assert response.output_text == "Let me check."
    assert weather.type == "function_call" and (weather.call_id, weather.arguments) == ("call_a", '{"city":"Paris"}')
    assert clock.type == "function_call" and (clock.call_id, clock.status) == ("call_b", "completed")
    assert events[-1].type == "response.completed"
    assert events[-1].response.model_dump() == response.model_dump()  # the stream's last word is the object
    plain = sdk(final_of(CALL_EVENTS, Finish("tool_calls", USAGE)))  # the same without a stream, ids aside
    aside: Any = {"completed_at": True, "output": {"__all__": {"id"}}}
    assert plain.model_dump(exclude=aside) == response.model_dump(exclude=aside)
    deltas = {e.output_index: "" for e in events if e.type == "response.function_call_arguments.delta"}
    for e in events:
        if e.type == "response.function_call_arguments.delta":
            deltas[e.output_index] += e.delta
    assert deltas == {2: '{"city":"Paris"}', 3: '{"timezone":"UTC"}'}
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (10, 20, 30)
    assert response.usage.output_tokens_details.reasoning_tokens == 4  # "Thinking hard." is 14 bytes


def test_a_call_done_without_its_start_still_makes_an_item() -> None:
    events, final = render([ToolCallDone(0, "call_z", "f", "{}")], Finish("tool_calls", USAGE))
    kinds = [e.type for e in events]
    assert kinds[2:5] == [
        "response.output_item.added",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    assert sdk(final).output[0].type == "function_call"


def test_a_break_after_part_of_the_answer_fails_the_response() -> None:
    events, final = render([TextDelta("Half an ans")], Finish("stop", USAGE, StalledMidAnswer()))
    assert events[-1].type == "response.failed" and "response.completed" not in {e.type for e in events}
    assert "response.output_item.done" not in {e.type for e in events}
    response = sdk(final)
    assert response.status == "failed" and response.error is not None
    assert (response.error.code, response.error.message) == ("server_error", StalledMidAnswer().message)
    (message,) = response.output
    assert message.type == "message" and message.status == "incomplete" and response.output_text == "Half an ans"

    partial: list[AnswerEvent] = [TextDelta("Calling."), ToolCallStart(0, "call_a", "f"), ToolCallDelta(0, '{"a"')]
    events, final = render(partial, Finish("tool_calls", USAGE, StalledMidAnswer()))
    assert events[-1].type == "response.failed"
    message, call = sdk(final).output
    assert message.type == "message" and message.status == "completed"  # it ended before the call began
    assert call.type == "function_call" and (call.status, call.arguments) == ("incomplete", '{"a"')


def test_an_error_before_anything_fails_with_its_code() -> None:
    events, final = render([], Finish("error", USAGE, RateLimited("The pool is exhausted.")))
    assert [e.type for e in events] == ["response.created", "response.in_progress", "response.failed"]
    assert sdk(final).error is not None and sdk(final).error.code == "rate_limit_exceeded"  # type: ignore[union-attr]


def test_a_length_cut_is_incomplete() -> None:
    events, final = render([TextDelta("tok0 tok1")], Finish("length", USAGE))
    assert events[-1].type == "response.incomplete"
    assert [e.type for e in events][-4:-1] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    response = sdk(final)
    assert response.status == "incomplete" and response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].type == "message" and response.output[0].status == "incomplete"


def test_reasoning_after_text_opens_a_new_item() -> None:
    seq: list[AnswerEvent] = [TextDelta("Drawing."), ReasoningDelta("Generating image 1: 50%\n"), TextDelta("Done.")]
    _, final = render(seq, Finish("stop", USAGE))
    assert [o.type for o in sdk(final).output] == ["message", "reasoning", "message"]
    assert sdk(final).output_text == "Drawing.Done."


@pytest.mark.parametrize("empty", [[], [TextDelta(""), ReasoningDelta("")]])
def test_an_empty_answer_has_no_items(empty: list[AnswerEvent]) -> None:
    events, final = render(empty, Finish("stop", USAGE))
    assert [e.type for e in events] == ["response.created", "response.in_progress", "response.completed"]
    assert sdk(final).output == [] and sdk(final).output_text == ""
