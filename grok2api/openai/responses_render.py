"""Render the neutral answer events as a Responses API response: the documented stream events for streams, one
response object otherwise. Both paths run the same ``ResponseBuilder``, so the final object is the same.

Reasoning becomes a ``reasoning`` item whose summary is Grok's thinking, text a ``message`` item, each tool call
a ``function_call`` item. An answer that broke off (``Finish.error``) ends a stream with ``response.failed``,
never with a ``response.completed`` that looks finished; an answer cut by ``max_output_tokens`` is
``incomplete``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..conversation.events import (
    AnswerEvent,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
    estimate_tokens,
)
from ..conversation.run import ConversationRun
from ..errors import GatewayError, RateLimited, UpstreamError
from . import responses_objects as wire
from .responses_objects import (
    FunctionCall,
    OutputMessage,
    OutputText,
    ReasoningItem,
    ResponseObject,
    SummaryText,
    sse,
)
from .responses_request import ResponsesOrder


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _tool_choice_echo(order: ResponsesOrder) -> Any:
    choice = order.tool_choice
    if choice.mode == "named":
        return {"type": "function", "name": choice.name}
    return choice.mode


def _text_echo(order: ResponsesOrder) -> dict[str, Any]:
    fmt = order.response_format
    if fmt.type != "json_schema":
        return {"format": {"type": fmt.type}}
    return {"format": {"type": "json_schema", "name": fmt.name, "schema": fmt.schema, "strict": fmt.strict}}


def new_response(order: ResponsesOrder, response_id: str) -> ResponseObject:
    """The response as it starts: in progress, nothing in its output, the request's settings echoed."""
    req = order.req
    reasoning = req.reasoning
    return ResponseObject(
        id=response_id,
        created_at=int(time.time()),
        status="in_progress",
        instructions=req.instructions,
        max_output_tokens=req.max_output_tokens,
        model=req.model,
        parallel_tool_calls=req.parallel_tool_calls is not False,
        previous_response_id=req.previous_response_id,
        reasoning=wire.ReasoningEcho(
            effort=reasoning.effort if reasoning else None, summary=reasoning.summary if reasoning else None
        ),
        store=order.store,
        temperature=1.0 if req.temperature is None else req.temperature,
        text=_text_echo(order),
        tool_choice=_tool_choice_echo(order),
        tools=[
            {
                "type": "function",
                "name": t.name,
                "description": t.description or None,
                "parameters": t.parameters,
                "strict": t.strict,
            }
            for t in order.tools
        ],
        top_p=1.0 if req.top_p is None else req.top_p,
        user=req.user,
        metadata=req.metadata or {},
    )


def _error_code(err: GatewayError) -> str:
    return "rate_limit_exceeded" if isinstance(err, RateLimited) else "server_error"


class _Call:
    """A function call item being built, with the argument fragments so far."""

    __slots__ = ("index", "item", "fragments")

    def __init__(self, index: int, item: FunctionCall) -> None:
        self.index = index
        self.item = item
        self.fragments: list[str] = []


class ResponseBuilder:
    """Turns answer events into output items (and, when ``stream``, the SSE frames announcing them).

    ``feed`` and ``finish`` return the frames to send (none when not streaming); ``response`` is the response
    object, final once ``finish`` ran."""

    def __init__(self, response: ResponseObject, stream: bool) -> None:
        self.response = response
        self.stream = stream
        self.seq = 0
        self.frames: list[bytes] = []
        self.open: OutputMessage | ReasoningItem | None = None
        self.open_index = -1
        self.parts: list[str] = []  # the open item's text so far
        self.calls: dict[int, _Call] = {}  # by the neutral call index
        self.reasoning: list[str] = []

    def _send(self, event: wire.StreamEvent) -> None:
        self.frames.append(sse(event))

    def _next(self) -> int:
        n = self.seq
        self.seq += 1
        return n

    def _take(self) -> list[bytes]:
        frames, self.frames = self.frames, []
        return frames

    def start(self) -> list[bytes]:
        if self.stream:
            self._send(wire.Created(sequence_number=self._next(), response=self.response))
            self._send(wire.InProgress(sequence_number=self._next(), response=self.response))
        return self._take()

    def feed(self, event: AnswerEvent) -> list[bytes]:
        if isinstance(event, TextDelta):
            self._text(event.text)
        elif isinstance(event, ReasoningDelta):
            self._reasoning(event.text)
        elif isinstance(event, ToolCallStart):
            self._call_start(event.index, event.id, event.name)
        elif isinstance(event, ToolCallDelta):
            self._call_delta(event)
        elif isinstance(event, ToolCallDone):
            self._call_done(event)
        return self._take()

    # -- items ---------------------------------------------------------------------------------------

    def _add(self, item: wire.OutputItem) -> int:
        self.response.output.append(item)
        index = len(self.response.output) - 1
        if self.stream:
            self._send(wire.ItemAdded(sequence_number=self._next(), output_index=index, item=item))
        return index

    def _open(self, item: OutputMessage | ReasoningItem) -> None:
        self.open = item
        self.open_index = self._add(item)
        self.parts = []

    def _text(self, text: str) -> None:
        if not text:
            return
        item = self.open
        if not isinstance(item, OutputMessage):
            self._close()
            item = OutputMessage(id=new_id("msg"), status="in_progress", content=[])
            self._open(item)
            if self.stream:
                self._send(self._part_event(wire.PartAdded, item, OutputText(text="")))
        self.parts.append(text)
        if self.stream:
            self._send(
                wire.TextDelta(
                    sequence_number=self._next(),
                    item_id=item.id,
                    output_index=self.open_index,
                    content_index=0,
                    delta=text,
                )
            )

    def _reasoning(self, text: str) -> None:
        if not text:
            return
        item = self.open
        if not isinstance(item, ReasoningItem):
            self._close()
            item = ReasoningItem(id=new_id("rs"), summary=[], status="in_progress")
            self._open(item)
            if self.stream:
                self._send(self._summary_event(wire.SummaryPartAdded, item, SummaryText(text="")))
        self.parts.append(text)
        self.reasoning.append(text)
        if self.stream:
            self._send(
                wire.SummaryTextDelta(
                    sequence_number=self._next(),
                    item_id=item.id,
                    output_index=self.open_index,
                    summary_index=0,
                    delta=text,
                )
            )

    def _part_event(
        self, kind: type[wire.PartAdded] | type[wire.PartDone], item: OutputMessage, part: OutputText
    ) -> wire.StreamEvent:
        return kind(
            sequence_number=self._next(), item_id=item.id, output_index=self.open_index, content_index=0, part=part
        )

    def _summary_event(
        self, kind: type[wire.SummaryPartAdded] | type[wire.SummaryPartDone], item: ReasoningItem, part: SummaryText
    ) -> wire.StreamEvent:
        return kind(
            sequence_number=self._next(), item_id=item.id, output_index=self.open_index, summary_index=0, part=part
        )

    def _settle_open(self, status: str) -> None:
        """Write the open item's text into it and give it ``status`` (no events)."""
        text = "".join(self.parts)
        if isinstance(self.open, OutputMessage):
            self.open.content = [OutputText(text=text)]
        elif isinstance(self.open, ReasoningItem):
            self.open.summary = [SummaryText(text=text)]
        if self.open is not None:
            self.open.status = status

    def _close(self, status: str = "completed") -> None:
        """End the open message or reasoning item, with its done events."""
        item = self.open
        if item is None:
            return
        self._settle_open(status)
        if self.stream:
            text = "".join(self.parts)
            index = self.open_index
            if isinstance(item, OutputMessage):
                self._send(
                    wire.TextDone(
                        sequence_number=self._next(), item_id=item.id, output_index=index, content_index=0, text=text
                    )
                )
                self._send(self._part_event(wire.PartDone, item, item.content[0]))
            else:
                self._send(
                    wire.SummaryTextDone(
                        sequence_number=self._next(), item_id=item.id, output_index=index, summary_index=0, text=text
                    )
                )
                self._send(self._summary_event(wire.SummaryPartDone, item, item.summary[0]))
            self._send(wire.ItemDone(sequence_number=self._next(), output_index=index, item=item))
        self.open = None
        self.parts = []

    # -- function calls --------------------------------------------------------------------------------

    def _call_start(self, index: int, call_id: str, name: str) -> _Call:
        self._close()
        item = FunctionCall(id=new_id("fc"), call_id=call_id, name=name, arguments="", status="in_progress")
        call = _Call(self._add(item), item)
        self.calls[index] = call
        return call

    def _call_delta(self, event: ToolCallDelta) -> None:
        call = self.calls.get(event.index)
        if call is None or not event.arguments:
            return
        call.fragments.append(event.arguments)
        if self.stream:
            self._send(
                wire.ArgumentsDelta(
                    sequence_number=self._next(), item_id=call.item.id, output_index=call.index, delta=event.arguments
                )
            )

    def _call_done(self, event: ToolCallDone) -> None:
        call = self.calls.get(event.index) or self._call_start(event.index, event.id, event.name)
        self._end_call(call, event.arguments)

    def _end_call(self, call: _Call, arguments: str) -> None:
        item = call.item
        if item.status != "in_progress":
            return
        item.arguments = arguments
        item.status = "completed"
        if self.stream:
            self._send(
                wire.ArgumentsDone(
                    sequence_number=self._next(), item_id=item.id, output_index=call.index, arguments=arguments
                )
            )
            self._send(wire.ItemDone(sequence_number=self._next(), output_index=call.index, item=item))

    # -- the end -----------------------------------------------------------------------------------------

    def finish(self, finish: Finish) -> list[bytes]:
        """The last events: ``response.completed``, ``response.incomplete`` (max_output_tokens) or
        ``response.failed`` (the answer broke off: what was produced stays, marked incomplete)."""
        response = self.response
        usage = finish.usage
        response.usage = wire.Usage(
            input_tokens=usage.prompt_tokens,
            output_tokens=usage.completion_tokens,
            output_tokens_details=wire.OutputTokensDetails(reasoning_tokens=estimate_tokens("".join(self.reasoning))),
            total_tokens=usage.total_tokens,
        )
        error = finish.error
        if error is None and finish.reason == "error":
            error = UpstreamError("The answer failed.")
        if error is not None:
            self._settle_open("incomplete")
            self.open = None
            for call in self.calls.values():
                if call.item.status == "in_progress":
                    call.item.arguments = "".join(call.fragments)
                    call.item.status = "incomplete"
            response.status = "failed"
            response.error = wire.ResponseError(code=_error_code(error), message=error.message)
            if self.stream:
                self._send(wire.Failed(sequence_number=self._next(), response=response))
            return self._take()
        cut = finish.reason == "length"
        self._close("incomplete" if cut else "completed")
        for call in self.calls.values():
            self._end_call(call, "".join(call.fragments))
        if cut:
            response.status = "incomplete"
            response.incomplete_details = wire.IncompleteDetails(reason="max_output_tokens")
            if self.stream:
                self._send(wire.Incomplete(sequence_number=self._next(), response=response))
        else:
            response.status = "completed"
            response.completed_at = int(time.time())
            if self.stream:
                self._send(wire.Completed(sequence_number=self._next(), response=response))
        return self._take()


async def stream_response(
    run: ConversationRun,
    builder: ResponseBuilder,
    on_final: Callable[[ResponseObject], Awaitable[None]],
    on_end: Callable[[bool], None] | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body. ``on_final`` sees the finished response before its last event goes out (so a follow-up
    sent the moment the stream ends finds it stored); ``on_end`` learns whether the stream ended well."""
    ok = False
    batches = run.batches()
    try:
        yield b"".join(builder.start())
        async for batch in batches:
            # One write per upstream read: under load a read carries many events.
            out: list[bytes] = []
            for event in batch:
                if isinstance(event, Finish):
                    tail = builder.finish(event)
                    await on_final(builder.response)
                    out.extend(tail)
                    ok = builder.response.status != "failed"
                else:
                    out.extend(builder.feed(event))
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


async def collect_response(run: ConversationRun, builder: ResponseBuilder) -> ResponseObject:
    """The non-stream response. Raises GatewayError when the answer failed or broke off."""
    finish = await run.collect(builder.feed)
    if finish.reason == "error":
        raise UpstreamError("The answer failed.")
    builder.finish(finish)
    return builder.response
