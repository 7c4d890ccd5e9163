"""Neutral answer events as Anthropic content blocks: which blocks open and close, and that the stream events
accumulate to the same content the non-stream message has."""

from __future__ import annotations

from typing import Any

import msgspec

from grok2api.anthropic.render import ContentBlocks
from grok2api.anthropic.schemas import ENCODER, StreamEvent
from grok2api.conversation.events import (
    AnswerEvent,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
)

CALL: list[AnswerEvent] = [
    ToolCallStart(0, "call_1", "f"),
    ToolCallDelta(0, '{"x":'),
    ToolCallDelta(0, "1}"),
    ToolCallDone(0, "call_1", "f", '{"x":1}'),
]


def feed(blocks: ContentBlocks, events: list[AnswerEvent]) -> list[dict[str, Any]]:
    out: list[StreamEvent] = []
    for event in events:
        out.extend(blocks.feed(event))
    out.extend(blocks.close())
    return [msgspec.json.decode(ENCODER.encode(e)) for e in out]


def accumulate(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a client builds from the stream events (as the SDK's accumulator does)."""
    content: list[dict[str, Any]] = []
    partial: dict[int, str] = {}
    for event in stream:
        if event["type"] == "content_block_start":
            assert event["index"] == len(content)
            content.append(dict(event["content_block"]))
        elif event["type"] == "content_block_delta":
            block, delta = content[event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            else:
                partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
    for index, text in partial.items():
        content[index]["input"] = msgspec.json.decode(text)
    return content


def test_thinking_text_and_a_call_become_three_blocks() -> None:
    blocks = ContentBlocks(thinking=True)
    events: list[AnswerEvent] = [ReasoningDelta("hm"), ReasoningDelta("m"), TextDelta("Let me "), TextDelta("see. ")]
    stream = feed(blocks, [*events, *CALL])
    final = msgspec.json.decode(ENCODER.encode(blocks.content))
    assert [b["type"] for b in final] == ["thinking", "text", "tool_use"]
    assert final[0]["thinking"] == "hmm" and final[0]["signature"]
    assert final[1] == {"type": "text", "text": "Let me see. "}
    assert final[2] == {"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": 1}}
    assert accumulate(stream) == final
    stops = [e["index"] for e in stream if e["type"] == "content_block_stop"]
    assert stops == [0, 1, 2]
    signature = [e for e in stream if e["type"] == "content_block_delta" and e["delta"]["type"] == "signature_delta"]
    assert [e["index"] for e in signature] == [0]


def test_reasoning_is_dropped_without_thinking() -> None:
    blocks = ContentBlocks(thinking=False)
    feed(blocks, [ReasoningDelta("hmm"), TextDelta("Hi")])
    assert msgspec.json.decode(ENCODER.encode(blocks.content)) == [{"type": "text", "text": "Hi"}]


def test_whitespace_alone_opens_no_text_block() -> None:
    blocks = ContentBlocks(thinking=True)
    stream = feed(blocks, [TextDelta("\n"), *CALL, TextDelta(" \n"), ReasoningDelta("later"), TextDelta("  ")])
    final = msgspec.json.decode(ENCODER.encode(blocks.content))
    assert [b["type"] for b in final] == ["tool_use", "thinking"]
    assert accumulate(stream) == final


def test_whitespace_before_text_is_kept_with_it() -> None:
    blocks = ContentBlocks(thinking=False)
    stream = feed(blocks, [TextDelta("\n\n"), TextDelta("Hello"), TextDelta(" "), TextDelta("world")])
    assert accumulate(stream) == [{"type": "text", "text": "\n\nHello world"}]


def test_each_thinking_block_gets_its_own_signature() -> None:
    blocks = ContentBlocks(thinking=True)
    feed(blocks, [ReasoningDelta("a"), TextDelta("b"), ReasoningDelta("c")])
    content = msgspec.json.decode(ENCODER.encode(blocks.content))
    assert [b["type"] for b in content] == ["thinking", "text", "thinking"]
    assert content[0]["signature"] and content[2]["signature"] and content[0]["signature"] != content[2]["signature"]
