"""A Responses API request (``POST /v1/responses``) as the neutral ``Conversation``.

``input`` is a string or a list of items: messages (the role-tagged form without ``type`` too), ``function_call``
and ``function_call_output`` items, and earlier ``reasoning`` items (dropped: earlier reasoning is never sent
again). ``instructions`` become the conversation's system text; ``tools``, ``tool_choice`` and ``text.format``
map onto the neutral tools and response format. What grok.com cannot do is refused with a 400 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from msgspec import Meta, Raw, Struct

from ..conversation import (
    Conversation,
    Image,
    Part,
    ResponseFormat,
    Role,
    Text,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Turn,
)
from ..conversation.validation import SchemaCheck
from ..edge import param_of
from ..errors import InvalidRequest

T = TypeVar("T")

ToolName = Annotated[str, Meta(pattern="^[A-Za-z0-9_-]{1,64}$")]

# ---- content parts ---------------------------------------------------------------------------------


class InputText(Struct, tag_field="type", tag="input_text", kw_only=True):
    text: str


class InputImage(Struct, tag_field="type", tag="input_image", kw_only=True):
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class InputFile(Struct, tag_field="type", tag="input_file", kw_only=True):
    filename: str | None = None


class OutputText(Struct, tag_field="type", tag="output_text", kw_only=True):
    """An earlier answer's text, sent back as history."""

    text: str


class Refusal(Struct, tag_field="type", tag="refusal", kw_only=True):
    refusal: str


ContentPart = InputText | InputImage | InputFile | OutputText | Refusal
Content = str | list[ContentPart]

# ---- input items -----------------------------------------------------------------------------------


class ItemHead(Struct):
    """What kind of item: a message may leave ``type`` out."""

    type: str = "message"


class MessageItem(Struct, kw_only=True):
    role: Literal["user", "assistant", "system", "developer"]
    content: Content


class FunctionCallItem(Struct, kw_only=True):
    call_id: Annotated[str, Meta(min_length=1)]
    name: str
    arguments: str = ""


class FunctionCallOutputItem(Struct, kw_only=True):
    call_id: Annotated[str, Meta(min_length=1)]
    output: Content


# ---- tools, tool choice, text format, reasoning ------------------------------------------------------


class ToolHead(Struct):
    type: str


class FunctionTool(Struct, kw_only=True):
    name: ToolName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolChoiceObject(Struct, kw_only=True):
    type: str
    name: str | None = None


class TextFormat(Struct, kw_only=True):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


class TextConfig(Struct, kw_only=True):
    format: TextFormat | None = None
    verbosity: str | None = None


class ReasoningConfig(Struct, kw_only=True):
    effort: str | None = None
    summary: str | None = None


class ResponsesRequest(Struct, kw_only=True):
    """The request. Unknown fields are ignored; sampling settings are checked and echoed (Grok's web API
    takes none)."""

    model: Annotated[str, Meta(min_length=1)]
    input: str | list[Raw]
    instructions: str | None = None
    tools: list[Raw] | None = None
    tool_choice: str | ToolChoiceObject | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None
    reasoning: ReasoningConfig | None = None
    text: TextConfig | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    stream: bool | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    background: bool | None = None
    conversation: Any = None
    prompt: Any = None


REQUEST_DECODER = msgspec.json.Decoder(ResponsesRequest)
_ITEM_HEAD = msgspec.json.Decoder(ItemHead)
_MESSAGE = msgspec.json.Decoder(MessageItem)
_FUNCTION_CALL = msgspec.json.Decoder(FunctionCallItem)
_FUNCTION_OUTPUT = msgspec.json.Decoder(FunctionCallOutputItem)
_TOOL_HEAD = msgspec.json.Decoder(ToolHead)
_FUNCTION_TOOL = msgspec.json.Decoder(FunctionTool)
_ROLES: dict[str, Role] = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def decode_at(decoder: msgspec.json.Decoder[T], raw: Raw, at: str) -> T:
    """Decode one element of a list the request holds, or a 400 naming the field under ``at`` (e.g. ``input[2]``)."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc).replace("`$", f"`$.{at}") if "`$" in str(exc) else f"{exc} - at `$.{at}`"
        raise InvalidRequest(text.replace("`", ""), param=param_of(text) or at) from None


# ---- the conversion ------------------------------------------------------------------------------------


def content_parts(content: Content, at: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    parts: list[Part] = []
    for n, part in enumerate(content):
        if isinstance(part, InputText | OutputText):
            parts.append(Text(part.text))
        elif isinstance(part, Refusal):
            parts.append(Text(part.refusal))
        elif isinstance(part, InputImage):
            parts.append(Image(_image_url(part, f"{at}[{n}]")))
        else:
            raise InvalidRequest(
                "input_file parts are not supported (there is no Files API here): send the file's text as input_text.",
                param=f"{at}[{n}].type",
            )
    return parts


def _image_url(part: InputImage, at: str) -> str:
    if part.image_url:
        return part.image_url
    if part.file_id:
        raise InvalidRequest(
            "file_id is not supported (there is no Files API here): give image_url as an http(s) URL or a data URI.",
            param=f"{at}.file_id",
        )
    raise InvalidRequest("An input_image needs an image_url (an http(s) URL or a data URI).", param=f"{at}.image_url")


def input_turns(items: str | list[Raw]) -> list[Turn]:
    """The request's ``input`` as turns. Function calls join the assistant turn right before them."""
    if isinstance(items, str):
        return [Turn(role="user", content=[Text(items)])]
    turns: list[Turn] = []
    for n, raw in enumerate(items):
        at = f"input[{n}]"
        kind = decode_at(_ITEM_HEAD, raw, at).type
        if kind == "message":
            msg = decode_at(_MESSAGE, raw, at)
            turns.append(Turn(role=_ROLES[msg.role], content=content_parts(msg.content, f"{at}.content")))
        elif kind == "function_call":
            call = decode_at(_FUNCTION_CALL, raw, at)
            made = ToolCall(id=call.call_id, name=call.name, arguments=call.arguments)
            if turns and turns[-1].role == "assistant":
                turns[-1].tool_calls.append(made)
            else:
                turns.append(Turn(role="assistant", tool_calls=[made]))
        elif kind == "function_call_output":
            result = decode_at(_FUNCTION_OUTPUT, raw, at)
            parts = content_parts(result.output, f"{at}.output")
            turns.append(Turn(role="tool", content=parts, tool_call_id=result.call_id))
        elif kind == "reasoning":
            continue  # earlier reasoning is not sent to Grok again
        elif kind == "item_reference":
            raise InvalidRequest(
                "item_reference input items are not supported: send the item itself, or continue with "
                "previous_response_id.",
                param=f"{at}.type",
            )
        else:
            raise InvalidRequest(
                f"Input items of type {kind!r} are not supported: use messages, function_call and "
                "function_call_output items.",
                param=f"{at}.type",
            )
    return turns


def tool_specs(tools: list[Raw] | None) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    for n, raw in enumerate(tools or []):
        at = f"tools[{n}]"
        kind = decode_at(_TOOL_HEAD, raw, at).type
        if kind != "function":
            raise InvalidRequest(
                f"Tools of type {kind!r} are not supported: only function tools (grok.com's web API runs no "
                "hosted tools; Grok searches the web by itself).",
                param=f"{at}.type",
            )
        tool = decode_at(_FUNCTION_TOOL, raw, at)
        if any(s.name == tool.name for s in specs):
            raise InvalidRequest(f"Two tools are named {tool.name!r}; tool names must be unique.", param=f"{at}.name")
        if tool.parameters:
            SchemaCheck(tool.parameters, f"{at}.parameters", f"The parameters of tool {tool.name!r}")
        specs.append(
            ToolSpec(
                name=tool.name,
                description=tool.description or "",
                parameters=tool.parameters or {},
                strict=bool(tool.strict),
            )
        )
    return specs


def tool_choice(choice: str | ToolChoiceObject | None, tools: list[ToolSpec]) -> ToolChoice:
    if choice is None or choice == "auto":
        return ToolChoice(mode="auto")
    if choice == "none":
        return ToolChoice(mode="none")
    if isinstance(choice, str) and choice != "required":
        raise InvalidRequest("tool_choice must be 'none', 'auto', 'required' or a function.", param="tool_choice")
    if isinstance(choice, ToolChoiceObject) and choice.type != "function":
        raise InvalidRequest(
            f"tool_choice of type {choice.type!r} is not supported: name a function tool, or use "
            "'none', 'auto' or 'required'.",
            param="tool_choice.type",
        )
    if not tools:
        raise InvalidRequest("tool_choice asks for a tool call, but no tools were given.", param="tool_choice")
    if choice == "required":
        return ToolChoice(mode="required")
    assert isinstance(choice, ToolChoiceObject)
    if not choice.name or not any(t.name == choice.name for t in tools):
        raise InvalidRequest(f"tool_choice names {choice.name!r}, which is not among tools.", param="tool_choice.name")
    return ToolChoice(mode="named", name=choice.name)


def response_format(text: TextConfig | None) -> ResponseFormat:
    fmt = text.format if text is not None else None
    if fmt is None or fmt.type == "text":
        return ResponseFormat()
    if fmt.type == "json_object":
        return ResponseFormat(type="json_object")
    if not fmt.name:
        raise InvalidRequest("A json_schema format needs a name.", param="text.format.name")
    if fmt.schema is None:
        raise InvalidRequest("A json_schema format needs a schema.", param="text.format.schema")
    SchemaCheck(fmt.schema, "text.format.schema", "The text format's schema")
    return ResponseFormat(type="json_schema", name=fmt.name, schema=fmt.schema, strict=bool(fmt.strict))


class ResponsesOrder:
    """A checked request: its new turns and everything else the conversation needs. ``conversation`` puts the
    turns of an earlier response (``previous_response_id``) in front."""

    def __init__(self, req: ResponsesRequest) -> None:
        for name in ("conversation", "prompt"):
            if getattr(req, name) is not None:
                raise InvalidRequest(
                    f"{name} is not supported: send the input itself (previous_response_id continues a response).",
                    param=name,
                )
        if req.background:
            raise InvalidRequest("Background responses are not supported; set background to false.", param="background")
        self.req = req
        self.turns = input_turns(req.input)
        self.tools = tool_specs(req.tools)
        self.tool_choice = tool_choice(req.tool_choice, self.tools)
        self.response_format = response_format(req.text)
        self.store = req.store is not False
        self.stream = bool(req.stream)

    def conversation(self, history: list[Turn]) -> Conversation:
        req = self.req
        return Conversation(
            turns=[*history, *self.turns],
            system=req.instructions or "",
            tools=self.tools,
            tool_choice=self.tool_choice,
            parallel_tool_calls=req.parallel_tool_calls is not False,
            response_format=self.response_format,
            reasoning_effort=req.reasoning.effort if req.reasoning is not None else None,
            max_output_tokens=req.max_output_tokens,
        )
