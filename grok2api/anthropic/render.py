"""Render the neutral answer events as an Anthropic message: SSE events for streams, one ``Message`` otherwise.

Both paths share one ``ContentBlocks``, which turns the events into content blocks (thinking, text,
tool_use) and the stream events that build them, so a stream accumulates to exactly the non-stream message.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from ..conversation.events import (
    AnswerEvent,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
)
from ..conversation.run import ConversationRun
from .errors import error_event
from .schemas import (
    BlockDelta,
    BlockStart,
    BlockStop,
    ContentOut,
    InputJSONDelta,
    MessageDelta,
    MessageOut,
    MessageStart,
    MessageStop,
    Ping,
    SignatureDelta,
    StopDelta,
    StreamEvent,
    TextDeltaOut,
    TextOut,
    ThinkingDeltaOut,
    ThinkingOut,
    ToolUseOut,
    Usage,
    sse,
)

_INPUT_DECODER = msgspec.json.Decoder(dict[str, Any])


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def signature() -> str:
    """A thinking block's signature: opaque, as the SDK expects one; the gateway never checks it."""
    return secrets.token_urlsafe(32)


class ContentBlocks:
    """The answer's content blocks, built event by event. ``feed`` returns the stream events each neutral event
    makes; ``content`` holds the finished blocks. Reasoning becomes thinking blocks only when ``thinking`` is on;
    whitespace alone never opens a text block (it waits for text to follow)."""

    def __init__(self, thinking: bool) -> None:
        self.thinking = thinking
        self.content: list[ContentOut] = []
        self.open = False  # the last block has not been stopped yet
        self.whitespace = ""

    def feed(self, event: AnswerEvent) -> list[StreamEvent]:
        if isinstance(event, TextDelta):
            return self._text(event.text)
        if isinstance(event, ReasoningDelta):
            return self._thinking(event.text) if self.thinking and event.text else []
        if isinstance(event, ToolCallStart):
            out = self.close()
            self.content.append(ToolUseOut(id=event.id, name=event.name, input={}))
            self.open = True
            return [
                *out,
                BlockStart(index=self.index, content_block=ToolUseOut(id=event.id, name=event.name, input={})),
            ]
        if isinstance(event, ToolCallDelta):
            return [BlockDelta(index=self.index, delta=InputJSONDelta(partial_json=event.arguments))]
        if isinstance(event, ToolCallDone):
            block = self.content[-1]
            assert isinstance(block, ToolUseOut)
            block.input = _INPUT_DECODER.decode(event.arguments)
            return self.close()
        return []

    @property
    def index(self) -> int:
        return len(self.content) - 1

    def _current(self) -> ContentOut | None:
        return self.content[-1] if self.open else None

    def _text(self, text: str) -> list[StreamEvent]:
        block = self._current()
        if not isinstance(block, TextOut):
            if not text.strip():
                self.whitespace += text
                return []
            text, self.whitespace = self.whitespace + text, ""
            out = self.close()
            block = TextOut(text="")
            self.content.append(block)
            self.open = True
            out.append(BlockStart(index=self.index, content_block=TextOut(text="")))
        else:
            out = []
        block.text += text
        out.append(BlockDelta(index=self.index, delta=TextDeltaOut(text=text)))
        return out

    def _thinking(self, text: str) -> list[StreamEvent]:
        block = self._current()
        out: list[StreamEvent] = []
        if not isinstance(block, ThinkingOut):
            out = self.close()
            block = ThinkingOut(thinking="", signature="")
            self.content.append(block)
            self.open = True
            out.append(BlockStart(index=self.index, content_block=ThinkingOut(thinking="", signature="")))
        block.thinking += text
        out.append(BlockDelta(index=self.index, delta=ThinkingDeltaOut(thinking=text)))
        return out

    def close(self) -> list[StreamEvent]:
        """Stop the open block (a thinking block gets its signature first)."""
        self.whitespace = ""
        block = self._current()
        if block is None:
            return []
        self.open = False
        out: list[StreamEvent] = []
        if isinstance(block, ThinkingOut):
            block.signature = signature()
            out.append(BlockDelta(index=self.index, delta=SignatureDelta(signature=block.signature)))
        out.append(BlockStop(index=self.index))
        return out


def stop_reason(run: ConversationRun, finish: Finish) -> StopDelta:
    """Anthropic's stop reason: ``tool_use``, ``max_tokens``, ``stop_sequence`` (naming it) or ``end_turn``."""
    if finish.reason == "tool_calls":
        return StopDelta(stop_reason="tool_use")
    if finish.reason == "length":
        return StopDelta(stop_reason="max_tokens")
    if run.limit.finish_reason == "stop" and run.limit.stop_sequence is not None:
        return StopDelta(stop_reason="stop_sequence", stop_sequence=run.limit.stop_sequence)
    return StopDelta(stop_reason="end_turn")


def _ending(run: ConversationRun, blocks: ContentBlocks, finish: Finish) -> bytes:
    if finish.error is not None:
        # The answer failed, or grok.com broke off mid-answer: never a message_stop that looks finished.
        return error_event(finish.error)
    usage = Usage(input_tokens=finish.usage.prompt_tokens, output_tokens=finish.usage.completion_tokens)
    events = [*blocks.close(), MessageDelta(delta=stop_reason(run, finish), usage=usage), MessageStop()]
    return b"".join(sse(e) for e in events)


async def stream_message(
    run: ConversationRun, model: str, thinking: bool, on_end: Callable[[bool], None] | None = None
) -> AsyncIterator[bytes]:
    """The SSE body: ``message_start`` and a ``ping``, the content blocks, then ``message_delta`` (stop reason and
    usage) and ``message_stop``, or an ``error`` event. ``on_end`` learns whether the stream ended well."""
    blocks = ContentBlocks(thinking)
    ok = False
    batches = run.batches()
    try:
        usage = Usage(input_tokens=run.usage().prompt_tokens, output_tokens=0)
        start = MessageOut(id=message_id(), model=model, content=[], usage=usage)
        yield sse(MessageStart(message=start)) + sse(Ping())
        async for batch in batches:
            # One write per upstream read: under load a read carries many events.
            out: list[bytes] = []
            for event in batch:
                if isinstance(event, Finish):
                    out.append(_ending(run, blocks, event))
                    ok = event.error is None
                    continue
                out.extend(sse(e) for e in blocks.feed(event))
            if out:
                yield b"".join(out)
    except (GeneratorExit, asyncio.CancelledError):
        ok = True  # the client left: not the gateway's failure
        raise
    finally:
        if on_end is not None:
            on_end(ok)
        await batches.aclose()
        await run.close()


async def collect_message(run: ConversationRun, model: str, thinking: bool) -> MessageOut:
    """The non-stream message. Raises GatewayError when the answer failed or broke off."""
    blocks = ContentBlocks(thinking)
    finish = await run.collect(blocks.feed)
    blocks.close()
    reason = stop_reason(run, finish)
    return MessageOut(
        id=message_id(),
        model=model,
        content=blocks.content,
        stop_reason=reason.stop_reason,
        stop_sequence=reason.stop_sequence,
        usage=Usage(input_tokens=finish.usage.prompt_tokens, output_tokens=finish.usage.completion_tokens),
    )
