"""The OpenAI chat schema as msgspec structs: requests are decoded once, responses encoded once.

Requests ignore unknown fields (clients send many we do not model); optional parameters use UNSET
so that absent and null stay distinguishable.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType


class ImageURL(Struct, kw_only=True):
    url: str
    detail: str | None | UnsetType = UNSET


class TextPart(Struct, tag_field="type", tag="text", kw_only=True):
    text: str


class ImagePart(Struct, tag_field="type", tag="image_url", kw_only=True):
    image_url: ImageURL | str


class RefusalPart(Struct, tag_field="type", tag="refusal", kw_only=True):
    """An earlier assistant refusal, sent back as part of the history."""

    refusal: str


ContentPart = TextPart | ImagePart | RefusalPart
Content = str | list[ContentPart] | None


class FunctionCall(Struct, kw_only=True):
    name: str = ""
    arguments: str = ""


class ToolCall(Struct, kw_only=True):
    id: str = ""
    type: str = "function"
    function: FunctionCall = msgspec.field(default_factory=FunctionCall)


class SystemMessage(Struct, tag_field="role", tag="system", kw_only=True):
    content: Content = None
    name: str | None | UnsetType = UNSET


class DeveloperMessage(Struct, tag_field="role", tag="developer", kw_only=True):
    content: Content = None
    name: str | None | UnsetType = UNSET


class UserMessage(Struct, tag_field="role", tag="user", kw_only=True):
    content: Content = None
    name: str | None | UnsetType = UNSET


class AssistantMessage(Struct, tag_field="role", tag="assistant", kw_only=True):
    content: Content = None
    name: str | None | UnsetType = UNSET
    tool_calls: list[ToolCall] | None | UnsetType = UNSET
    reasoning_content: str | None | UnsetType = UNSET


class ToolMessage(Struct, tag_field="role", tag="tool", kw_only=True):
    content: Content = None
    tool_call_id: str | None | UnsetType = UNSET


class FunctionMessage(Struct, tag_field="role", tag="function", kw_only=True):
    """The deprecated predecessor of ``tool`` messages, still sent by older clients."""

    content: Content = None
    name: str | None | UnsetType = UNSET


Message = SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage | FunctionMessage


class FunctionDef(Struct, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(Struct, kw_only=True):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(Struct, kw_only=True):
    name: str


class NamedToolChoice(Struct, kw_only=True):
    type: Literal["function"] = "function"
    function: NamedFunction


class TextFormat(Struct, tag_field="type", tag="text", kw_only=True):
    pass


class JSONObjectFormat(Struct, tag_field="type", tag="json_object", kw_only=True):
    pass


class JSONSchemaSpec(Struct, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class JSONSchemaFormat(Struct, tag_field="type", tag="json_schema", kw_only=True):
    json_schema: JSONSchemaSpec


ResponseFormatParam = TextFormat | JSONObjectFormat | JSONSchemaFormat


class StreamOptions(Struct, kw_only=True):
    include_usage: bool | None = False


class ChatCompletionRequest(Struct, kw_only=True):
    model: Annotated[str, Meta(min_length=1)]
    messages: Annotated[list[Message], Meta(min_length=1)]
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None | UnsetType = UNSET
    top_p: Annotated[float, Meta(ge=0, le=1)] | None | UnsetType = UNSET
    max_tokens: Annotated[int, Meta(ge=1)] | None | UnsetType = UNSET
    max_completion_tokens: Annotated[int, Meta(ge=1)] | None | UnsetType = UNSET
    n: Annotated[int, Meta(ge=1, le=1)] | None = 1
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormatParam | None = None
    reasoning_effort: str | None | UnsetType = UNSET
    user: str | None | UnsetType = UNSET


# ---- responses ------------------------------------------------------------------------------


class Usage(Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class FunctionDelta(Struct, kw_only=True, omit_defaults=True):
    name: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET


class ToolCallChunk(Struct, kw_only=True, omit_defaults=True):
    """One call's part of a stream delta: ``id``, ``type`` and the name only in its first delta."""

    index: int
    id: str | UnsetType = UNSET
    type: str | UnsetType = UNSET
    function: FunctionDelta


class Delta(Struct, kw_only=True, omit_defaults=True):
    role: str | UnsetType = UNSET
    content: str | UnsetType = UNSET
    reasoning_content: str | UnsetType = UNSET
    tool_calls: list[ToolCallChunk] | UnsetType = UNSET


class ChunkChoice(Struct, kw_only=True, gc=False):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(Struct, kw_only=True, gc=False):
    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    system_fingerprint: str | None = None
    usage: Usage | UnsetType = UNSET


class ResponseMessage(Struct, kw_only=True):
    role: str = "assistant"
    content: str | None = None
    reasoning_content: str | UnsetType = UNSET
    tool_calls: list[ToolCall] | UnsetType = UNSET
    refusal: None = None


class Choice(Struct, kw_only=True):
    index: int = 0
    message: ResponseMessage
    finish_reason: str | None = "stop"
    logprobs: None = None


class ChatCompletion(Struct, kw_only=True):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class ModelCard(Struct, kw_only=True):
    id: str
    object: str = "model"
    created: int
    owned_by: str = "x-ai"
    display_name: str = ""
    description: str = ""
    raw_model_path: str = ""
    mode: str = ""  # grok.com's mode id
    min_tier: str = "basic"  # the lowest account tier that serves it
    alias_of: str | None = None  # for an earlier id: the model it now stands for
    default_temperature: float = 1.0
    default_max_output_tokens: int = 8192
    supported_max_output_tokens: int = 131072
    default_top_p: float = 0.95


class ModelList(Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[ModelCard]


REQUEST_DECODER = msgspec.json.Decoder(ChatCompletionRequest)
ENCODER = msgspec.json.Encoder()


def encode(obj: Any) -> bytes:
    return ENCODER.encode(obj)
