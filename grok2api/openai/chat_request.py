"""A chat completions request as the neutral ``Conversation``.

System and developer messages keep their place as ``system`` turns; the deprecated ``function``
messages become tool results named after their function.
"""

from __future__ import annotations

from ..conversation import (
    Conversation,
    Image,
    Part,
    ResponseFormat,
    Text,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Turn,
)
from .schemas import (
    AssistantMessage,
    ChatCompletionRequest,
    Content,
    DeveloperMessage,
    FunctionMessage,
    ImagePart,
    JSONObjectFormat,
    JSONSchemaFormat,
    Message,
    NamedToolChoice,
    RefusalPart,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)


def content_parts(content: Content) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)]
    parts: list[Part] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append(Text(part.text))
        elif isinstance(part, ImagePart):
            parts.append(Image(part.image_url if isinstance(part.image_url, str) else part.image_url.url))
        elif isinstance(part, RefusalPart):
            parts.append(Text(part.refusal))
    return parts


def message_turn(msg: Message) -> Turn:
    parts = content_parts(msg.content)
    if isinstance(msg, SystemMessage | DeveloperMessage):
        return Turn(role="system", content=parts)
    if isinstance(msg, UserMessage):
        return Turn(role="user", content=parts)
    if isinstance(msg, AssistantMessage):
        calls = msg.tool_calls if isinstance(msg.tool_calls, list) else []
        tool_calls = [ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments) for c in calls]
        return Turn(role="assistant", content=parts, tool_calls=tool_calls)
    if isinstance(msg, ToolMessage):
        call_id = msg.tool_call_id if isinstance(msg.tool_call_id, str) else ""
        return Turn(role="tool", content=parts, tool_call_id=call_id)
    assert isinstance(msg, FunctionMessage)
    return Turn(role="tool", content=parts, name=msg.name if isinstance(msg.name, str) else "")


def max_output_tokens(req: ChatCompletionRequest) -> int | None:
    if isinstance(req.max_completion_tokens, int):
        return req.max_completion_tokens
    return req.max_tokens if isinstance(req.max_tokens, int) else None


def tool_choice(req: ChatCompletionRequest) -> ToolChoice:
    choice = req.tool_choice
    if isinstance(choice, NamedToolChoice):
        return ToolChoice(mode="named", name=choice.function.name)
    return ToolChoice(mode=choice or "auto")


def response_format(req: ChatCompletionRequest) -> ResponseFormat:
    fmt = req.response_format
    if isinstance(fmt, JSONObjectFormat):
        return ResponseFormat(type="json_object")
    if isinstance(fmt, JSONSchemaFormat):
        spec = fmt.json_schema
        return ResponseFormat(type="json_schema", name=spec.name, schema=spec.schema or {}, strict=bool(spec.strict))
    return ResponseFormat()


def to_conversation(req: ChatCompletionRequest) -> Conversation:
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    tools = [
        ToolSpec(
            name=t.function.name,
            description=t.function.description or "",
            parameters=t.function.parameters or {"type": "object", "properties": {}},
            strict=bool(t.function.strict),
        )
        for t in req.tools or []
    ]
    return Conversation(
        turns=[message_turn(m) for m in req.messages],
        tools=tools,
        tool_choice=tool_choice(req),
        parallel_tool_calls=req.parallel_tool_calls is not False,
        response_format=response_format(req),
        reasoning_effort=req.reasoning_effort if isinstance(req.reasoning_effort, str) else None,
        max_output_tokens=max_output_tokens(req),
        stop=stop,
    )
