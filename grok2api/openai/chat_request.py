"""A chat completions request as the neutral ``Conversation``.

System and developer messages keep their place as ``system`` turns; the deprecated ``function``
messages become tool results named after their function.
"""

from __future__ import annotations

from ..conversation import Conversation, Image, Part, Text, ToolCall, Turn
from .schemas import (
    AssistantMessage,
    ChatCompletionRequest,
    Content,
    DeveloperMessage,
    FunctionMessage,
    ImagePart,
    Message,
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


def to_conversation(req: ChatCompletionRequest) -> Conversation:
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    return Conversation(
        turns=[message_turn(m) for m in req.messages],
        max_output_tokens=max_output_tokens(req),
        stop=stop,
    )
