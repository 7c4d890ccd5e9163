"""The Responses API's objects and stream events as msgspec structs, encoded once per event.

Field names and shapes follow OpenAI's response object: output items (``message``, ``reasoning``,
``function_call``), usage in input/output tokens, and one struct per stream event, each tagged by ``type``
and numbered by ``sequence_number``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

# ---- output items ----------------------------------------------------------------------------------


class OutputText(Struct, tag_field="type", tag="output_text", kw_only=True):
    text: str
    annotations: list[Any] = []
    logprobs: list[Any] = []


class OutputMessage(Struct, tag_field="type", tag="message", kw_only=True):
    id: str
    status: str
    role: str = "assistant"
    content: list[OutputText]


class SummaryText(Struct, tag_field="type", tag="summary_text", kw_only=True):
    text: str


class ReasoningItem(Struct, tag_field="type", tag="reasoning", kw_only=True):
    """Grok's reasoning, written as the item's summary."""

    id: str
    summary: list[SummaryText]
    status: str


class FunctionCall(Struct, tag_field="type", tag="function_call", kw_only=True):
    id: str
    call_id: str
    name: str
    arguments: str
    status: str


OutputItem = OutputMessage | ReasoningItem | FunctionCall

# ---- the response ------------------------------------------------------------------------------------


class InputTokensDetails(Struct, kw_only=True):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(Struct, kw_only=True):
    reasoning_tokens: int = 0


class Usage(Struct, kw_only=True):
    input_tokens: int
    input_tokens_details: InputTokensDetails = msgspec.field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = msgspec.field(default_factory=OutputTokensDetails)
    total_tokens: int


class ResponseError(Struct, kw_only=True):
    code: str
    message: str


class IncompleteDetails(Struct, kw_only=True):
    reason: str


class ReasoningEcho(Struct, kw_only=True):
    effort: str | None = None
    summary: str | None = None


class ResponseObject(Struct, kw_only=True):
    id: str
    object: str = "response"
    created_at: int
    status: str
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    model: str
    output: list[OutputItem] = []
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: ReasoningEcho = msgspec.field(default_factory=ReasoningEcho)
    store: bool = True
    temperature: float = 1.0
    text: dict[str, Any] = {}
    tool_choice: Any = "auto"
    tools: list[dict[str, Any]] = []
    top_p: float = 1.0
    truncation: str = "disabled"
    usage: Usage | None = None
    user: str | None = None
    metadata: dict[str, str] = {}


class ResponseDeleted(Struct, kw_only=True):
    id: str
    object: str = "response"
    deleted: bool = True


# ---- stream events -----------------------------------------------------------------------------------


class Created(Struct, tag_field="type", tag="response.created", kw_only=True):
    sequence_number: int
    response: ResponseObject


class InProgress(Struct, tag_field="type", tag="response.in_progress", kw_only=True):
    sequence_number: int
    response: ResponseObject


class Completed(Struct, tag_field="type", tag="response.completed", kw_only=True):
    sequence_number: int
    response: ResponseObject


class Incomplete(Struct, tag_field="type", tag="response.incomplete", kw_only=True):
    sequence_number: int
    response: ResponseObject


class Failed(Struct, tag_field="type", tag="response.failed", kw_only=True):
    sequence_number: int
    response: ResponseObject


class ItemAdded(Struct, tag_field="type", tag="response.output_item.added", kw_only=True):
    sequence_number: int
    output_index: int
    item: OutputItem


class ItemDone(Struct, tag_field="type", tag="response.output_item.done", kw_only=True):
    sequence_number: int
    output_index: int
    item: OutputItem


class PartAdded(Struct, tag_field="type", tag="response.content_part.added", kw_only=True):
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    part: OutputText


class PartDone(Struct, tag_field="type", tag="response.content_part.done", kw_only=True):
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    part: OutputText


class TextDelta(Struct, tag_field="type", tag="response.output_text.delta", kw_only=True, gc=False):
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[Any] = []


class TextDone(Struct, tag_field="type", tag="response.output_text.done", kw_only=True):
    sequence_number: int
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[Any] = []


class SummaryPartAdded(Struct, tag_field="type", tag="response.reasoning_summary_part.added", kw_only=True):
    sequence_number: int
    item_id: str
    output_index: int
    summary_index: int
    part: SummaryText


class SummaryPartDone(Struct, tag_field="type", tag="response.reasoning_summary_part.done", kw_only=True):
    sequence_number: int
    item_id: str
    output_index: int
    summary_index: int
    part: SummaryText


class SummaryTextDelta(Struct, tag_field="type", tag="response.reasoning_summary_text.delta", kw_only=True, gc=False):
    sequence_number: int
    item_id: str
    output_index: int
    summary_index: int
    delta: str


class SummaryTextDone(Struct, tag_field="type", tag="response.reasoning_summary_text.done", kw_only=True):
    sequence_number: int
    item_id: str
    output_index: int
    summary_index: int
    text: str


class ArgumentsDelta(Struct, tag_field="type", tag="response.function_call_arguments.delta", kw_only=True, gc=False):
    sequence_number: int
    item_id: str
    output_index: int
    delta: str


class ArgumentsDone(Struct, tag_field="type", tag="response.function_call_arguments.done", kw_only=True):
    sequence_number: int
    item_id: str
    output_index: int
    arguments: str


StreamEvent = (
    Created
    | InProgress
    | Completed
    | Incomplete
    | Failed
    | ItemAdded
    | ItemDone
    | PartAdded
    | PartDone
    | TextDelta
    | TextDone
    | SummaryPartAdded
    | SummaryPartDone
    | SummaryTextDelta
    | SummaryTextDone
    | ArgumentsDelta
    | ArgumentsDone
)

_ENCODER = msgspec.json.Encoder()


def encode(obj: Any) -> bytes:
    return _ENCODER.encode(obj)


def sse(event: StreamEvent) -> bytes:
    """One SSE frame, named after the event's type as OpenAI names them."""
    tag = type(event).__struct_config__.tag
    return b"event: " + str(tag).encode() + b"\ndata: " + _ENCODER.encode(event) + b"\n\n"
