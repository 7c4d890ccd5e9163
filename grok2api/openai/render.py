"""Render the neutral answer events as OpenAI chat output: SSE chunks for streams, one ChatCompletion
otherwise. Both paths share one ``ChatPieces`` so reasoning renders identically.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from ..conversation.events import (
    AnswerEvent,
    Finish,
    ReasoningDelta,
    TextDelta,
    TokenUsage,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
)
from ..conversation.run import ConversationRun
from ..errors import GatewayError
from ..ids import uuid4_hex
from ..settings import RuntimeSettings
from .schemas import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    FunctionCall,
    FunctionDelta,
    ResponseMessage,
    ToolCall,
    ToolCallChunk,
    Usage,
    encode,
)

log = logging.getLogger("grok2api.render")
DONE = b"data: [DONE]\n\n"


class Piece:
    """What one event adds to the answer: visible content and/or reasoning."""

    __slots__ = ("content", "reasoning")

    def __init__(self, content: str = "", reasoning: str = "") -> None:
        self.content = content
        self.reasoning = reasoning


class ChatPieces:
    """Neutral deltas as chat content and ``reasoning_content``; with ``think_format`` ``think_tags``,
    reasoning goes into the content inside ``<think>…</think>`` instead (a block that cannot reopen once
    the answer text began, so later reasoning is dropped there)."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self.think_tags = settings.think_format == "think_tags"
        self.think_open = False
        self.answer_started = False

    def piece(self, event: AnswerEvent) -> Piece:
        if isinstance(event, TextDelta):
            self.answer_started = True
            if not self.think_open:  # every token of a plain answer: one object, no closing to add
                return Piece(content=event.text)
            return Piece(content=self.close().content + event.text)
        if isinstance(event, ReasoningDelta):
            if not self.think_tags:
                return Piece(reasoning=event.text)
            if self.answer_started:
                return Piece()
            if not self.think_open:
                self.think_open = True
                return Piece(content="<think>\n" + event.text)
            return Piece(content=event.text)
        return Piece()

    def close(self) -> Piece:
        if not self.think_open:
            return Piece()
        self.think_open = False
        return Piece(content="\n</think>\n")


def _usage(usage: TokenUsage) -> Usage:
    return Usage(
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, total_tokens=usage.total_tokens
    )


def completion_id() -> str:
    return f"chatcmpl-{uuid4_hex()}"


class ChunkWriter:
    """Builds SSE frames that share one id, creation time and model."""

    def __init__(self, model: str) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model

    def frame(self, delta: Delta, finish: str | None = None, usage: Usage | None = None) -> bytes:
        chunk = ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
        )
        if usage is not None:
            chunk.usage = usage
        return b"data: " + encode(chunk) + b"\n\n"

    def usage_frame(self, usage: Usage) -> bytes:
        chunk = ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=[], usage=usage)
        return b"data: " + encode(chunk) + b"\n\n"

    def piece(self, piece: Piece) -> bytes | None:
        if piece.content and piece.reasoning:
            return self.frame(Delta(content=piece.content, reasoning_content=piece.reasoning))
        if piece.content:
            return self.frame(Delta(content=piece.content))
        if piece.reasoning:
            return self.frame(Delta(reasoning_content=piece.reasoning))
        return None


def tool_call_frame(writer: ChunkWriter, event: AnswerEvent) -> bytes | None:
    """A tool call as OpenAI streams it: id, type and name in the call's first delta, then arguments."""
    if isinstance(event, ToolCallStart):
        function = FunctionDelta(name=event.name, arguments="")
        return writer.frame(
            Delta(tool_calls=[ToolCallChunk(index=event.index, id=event.id, type="function", function=function)])
        )
    if isinstance(event, ToolCallDelta):
        function = FunctionDelta(arguments=event.arguments)
        return writer.frame(Delta(tool_calls=[ToolCallChunk(index=event.index, function=function)]))
    return None


def error_frame(err: GatewayError) -> bytes:
    return b"data: " + err.to_json() + b"\n\n"


async def stream_answer(
    run: ConversationRun,
    model: str,
    include_usage: bool,
    on_end: Callable[[bool], None] | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body: role delta, content/reasoning deltas, a finish chunk, optional usage, [DONE].
    ``on_end`` learns whether the stream ended well (a break after the first byte is a failure).
    Frames that are ready together leave in one write: the role delta with the first batch, and the
    closing frames with [DONE]."""
    writer = ChunkWriter(model)
    pieces = ChatPieces(run.settings)
    ok = False
    batches = run.batches()
    try:
        # Frames ready together leave in one write: the role delta with the first batch, the closing frames
        # (the Finish comes in the last batch) with [DONE].
        out: list[bytes] = [writer.frame(Delta(role="assistant", content=""))]
        ended = False
        async for batch in batches:
            # One write per upstream read: under load a read carries many events.
            for event in batch:
                if isinstance(event, Finish):  # always the last event
                    out.extend(_ending(writer, pieces, event, include_usage))
                    out.append(DONE)
                    ok, ended = event.error is None, True
                    continue
                if isinstance(event, ToolCallStart | ToolCallDelta | ToolCallDone):
                    closing = writer.piece(pieces.close())  # a <think> block ends before a call
                    frame = tool_call_frame(writer, event)
                    out.extend(f for f in (closing, frame) if f is not None)
                    continue
                frame = writer.piece(pieces.piece(event))
                if frame is not None:
                    out.append(frame)
            if out:
                yield b"".join(out)
                out = []
        if not ended:
            yield b"".join([*out, DONE])
    except (GeneratorExit, asyncio.CancelledError):
        ok = True  # the client left: not the gateway's failure
        raise
    finally:
        if on_end is not None:
            on_end(ok)
        await batches.aclose()
        await run.close()


def _ending(writer: ChunkWriter, pieces: ChatPieces, finish: Finish, include_usage: bool) -> list[bytes]:
    out: list[bytes] = []
    if finish.reason == "error" and finish.error is not None:
        out.append(error_frame(finish.error))
    elif finish.error is not None:
        # The answer broke off (a stall, a lost connection): what the filters still hold goes out, then the
        # error, never a finish_reason (a client must not take a cut answer for a whole one).
        frame = writer.piece(pieces.close())
        if frame is not None:
            out.append(frame)
        out.append(error_frame(finish.error))
    else:
        frame = writer.piece(pieces.close())
        if frame is not None:
            out.append(frame)
        out.append(writer.frame(Delta(), finish=finish.reason))
    if include_usage:
        out.append(writer.usage_frame(_usage(finish.usage)))
    return out


async def timeout_stream(model: str, usage: TokenUsage, include_usage: bool = False) -> AsyncIterator[bytes]:
    """A stream whose upstream never answered: a clean, empty ending (with usage when asked for)."""
    writer = ChunkWriter(model)
    yield writer.frame(Delta(role="assistant", content=""))
    yield writer.frame(Delta(), finish="stop")
    if include_usage:
        yield writer.usage_frame(_usage(usage))
    yield DONE


async def collect_answer(run: ConversationRun, model: str) -> ChatCompletion:
    """The non-stream answer. Raises GatewayError (the caller maps it to a JSON error)."""
    pieces = ChatPieces(run.settings)
    content: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCall] = []

    def take(event: AnswerEvent) -> None:
        if isinstance(event, ToolCallDone):
            calls.append(ToolCall(id=event.id, function=FunctionCall(name=event.name, arguments=event.arguments)))
        else:
            piece = pieces.piece(event)
            content.append(piece.content)
            reasoning.append(piece.reasoning)

    finish = await run.collect(take)
    content.append(pieces.close().content)
    text = "".join(content).strip()
    message = ResponseMessage(content=text or (None if calls else ""))
    if calls:
        message.tool_calls = calls
    if "".join(reasoning):
        message.reasoning_content = "".join(reasoning)
    return ChatCompletion(
        id=completion_id(),
        created=int(time.time()),
        model=model,
        choices=[Choice(message=message, finish_reason=finish.reason)],
        usage=_usage(finish.usage),
    )
