"""Anthropic's Messages API as msgspec structs: requests decoded once, responses and stream events encoded once.

Requests ignore fields we do not model (``metadata``, ``cache_control``, ``top_k``…); content blocks and
tool choices are tagged unions on ``type``, so a block type the gateway cannot use is a 400 naming it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

# ---- requests ---------------------------------------------------------------------------------------


class TextBlock(Struct, tag_field="type", tag="text", kw_only=True):
    text: str


class Base64Source(Struct, tag_field="type", tag="base64", kw_only=True):
    media_type: str
    data: str


class URLSource(Struct, tag_field="type", tag="url", kw_only=True):
    url: str


class FileSource(Struct, tag_field="type", tag="file", kw_only=True):
    """An image from Anthropic's Files API, which the gateway does not have (refused with a 400)."""

    file_id: str


class ImageBlock(Struct, tag_field="type", tag="image", kw_only=True):
    source: Base64Source | URLSource | FileSource


class ToolUseBlock(Struct, tag_field="type", tag="tool_use", kw_only=True):
    id: str
    name: str
    input: dict[str, Any] = {}


class ToolResultBlock(Struct, tag_field="type", tag="tool_result", kw_only=True):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool | None = None


class ThinkingBlock(Struct, tag_field="type", tag="thinking", kw_only=True):
    """Earlier reasoning sent back with the history (dropped: grok.com starts each turn afresh)."""

    thinking: str = ""
    signature: str = ""


class RedactedThinkingBlock(Struct, tag_field="type", tag="redacted_thinking", kw_only=True):
    data: str = ""


ContentBlock = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock


class Message(Struct, kw_only=True):
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlock]


class Tool(Struct, kw_only=True):
    """A client tool. ``type`` is absent or ``custom``; Anthropic's server tools (web search, code execution…)
    carry their own type and no ``input_schema``, and are refused."""

    name: Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None


class ToolChoiceAuto(Struct, tag_field="type", tag="auto", kw_only=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(Struct, tag_field="type", tag="any", kw_only=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(Struct, tag_field="type", tag="tool", kw_only=True):
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(Struct, tag_field="type", tag="none", kw_only=True):
    pass


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class Thinking(Struct, kw_only=True):
    """``enabled`` (with ``budget_tokens``), ``adaptive`` or ``between_tools``: reasoning comes back as thinking
    blocks; ``disabled``, or ``display: omitted``: it is dropped."""

    type: Literal["enabled", "adaptive", "between_tools", "disabled"]
    budget_tokens: Annotated[int, Meta(ge=1)] | None = None
    display: Literal["summarized", "omitted"] | None = None


class MessagesRequest(Struct, kw_only=True):
    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[Message], Meta(min_length=1)]
    max_tokens: Annotated[int, Meta(ge=1)]
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = False
    temperature: Annotated[float, Meta(ge=0, le=1)] | None | UnsetType = UNSET
    top_p: Annotated[float, Meta(ge=0, le=1)] | None | UnsetType = UNSET
    top_k: Annotated[int, Meta(ge=0)] | None | UnsetType = UNSET
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None


class CountTokensRequest(Struct, kw_only=True):
    """``/v1/messages/count_tokens``: a messages request without ``max_tokens`` (nor ``stream``)."""

    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[Message], Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None


# ---- responses --------------------------------------------------------------------------------------


class Usage(Struct, kw_only=True):
    """Estimated tokens. In ``message_delta`` they are the totals so far (input too: repair turns add to it)."""

    input_tokens: int
    output_tokens: int


class TextOut(Struct, tag_field="type", tag="text", kw_only=True):
    text: str


class ThinkingOut(Struct, tag_field="type", tag="thinking", kw_only=True):
    thinking: str
    signature: str


class ToolUseOut(Struct, tag_field="type", tag="tool_use", kw_only=True):
    id: str
    name: str
    input: dict[str, Any]


ContentOut = TextOut | ThinkingOut | ToolUseOut


class MessageOut(Struct, kw_only=True):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ContentOut]
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage


class TokenCount(Struct, kw_only=True):
    input_tokens: int


# ---- stream events ----------------------------------------------------------------------------------


class MessageStart(Struct, tag_field="type", tag="message_start", kw_only=True, gc=False):
    message: MessageOut


class Ping(Struct, tag_field="type", tag="ping", kw_only=True, gc=False):
    pass


class BlockStart(Struct, tag_field="type", tag="content_block_start", kw_only=True, gc=False):
    index: int
    content_block: ContentOut


class TextDeltaOut(Struct, tag_field="type", tag="text_delta", kw_only=True, gc=False):
    text: str


class ThinkingDeltaOut(Struct, tag_field="type", tag="thinking_delta", kw_only=True, gc=False):
    thinking: str


class SignatureDelta(Struct, tag_field="type", tag="signature_delta", kw_only=True, gc=False):
    signature: str


class InputJSONDelta(Struct, tag_field="type", tag="input_json_delta", kw_only=True, gc=False):
    partial_json: str


class BlockDelta(Struct, tag_field="type", tag="content_block_delta", kw_only=True, gc=False):
    index: int
    delta: TextDeltaOut | ThinkingDeltaOut | SignatureDelta | InputJSONDelta


class BlockStop(Struct, tag_field="type", tag="content_block_stop", kw_only=True, gc=False):
    index: int


class StopDelta(Struct, kw_only=True, gc=False):
    stop_reason: str
    stop_sequence: str | None = None


class MessageDelta(Struct, tag_field="type", tag="message_delta", kw_only=True, gc=False):
    delta: StopDelta
    usage: Usage


class MessageStop(Struct, tag_field="type", tag="message_stop", kw_only=True, gc=False):
    pass


StreamEvent = MessageStart | Ping | BlockStart | BlockDelta | BlockStop | MessageDelta | MessageStop

REQUEST_DECODER = msgspec.json.Decoder(MessagesRequest)
COUNT_DECODER = msgspec.json.Decoder(CountTokensRequest)
ENCODER = msgspec.json.Encoder()


def sse(event: StreamEvent) -> bytes:
    """One SSE frame: the event's name, then its JSON (which names it again, as Anthropic's does)."""
    name = type(event).__struct_config__.tag
    return b"event: " + str(name).encode() + b"\ndata: " + ENCODER.encode(event) + b"\n\n"
