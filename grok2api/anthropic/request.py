"""A Messages API request as the neutral ``Conversation``.

A user message's ``tool_result`` blocks become ``tool`` turns (each next to its call's id) and the rest of
the message a user turn; an assistant message's ``tool_use`` blocks become its tool calls. Earlier thinking
blocks are dropped: grok.com starts every answer afresh.
"""

from __future__ import annotations

from ..conversation import Conversation, Image, Part, Text, ToolCall, ToolChoice, ToolSpec, Turn
from ..errors import InvalidRequest
from .schemas import (
    Base64Source,
    ContentBlock,
    CountTokensRequest,
    ImageBlock,
    Message,
    MessagesRequest,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    ToolChoiceAny,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
    URLSource,
)

Request = MessagesRequest | CountTokensRequest


def image_url(block: ImageBlock, param: str) -> str:
    """An http(s) URL or a data URI, which the gateway fetches or decodes and checks like any client image."""
    source = block.source
    if isinstance(source, URLSource):
        return source.url
    if isinstance(source, Base64Source):
        if not source.media_type.startswith("image/"):
            raise InvalidRequest(f"{source.media_type!r} is not an image media type.", param=f"{param}.media_type")
        return f"data:{source.media_type};base64,{source.data}"
    raise InvalidRequest("Images from the Files API are not supported: send base64 data or a URL.", param=param)


def _parts(blocks: list[TextBlock | ImageBlock], param: str) -> list[Part]:
    return [
        Text(b.text) if isinstance(b, TextBlock) else Image(image_url(b, f"{param}[{i}].source"))
        for i, b in enumerate(blocks)
    ]


def _tool_turn(block: ToolResultBlock, param: str) -> Turn:
    content = block.content
    parts: list[Part] = [Text(content)] if isinstance(content, str) else _parts(content or [], f"{param}.content")
    if block.is_error:
        parts.insert(0, Text("The tool failed:"))
    return Turn(role="tool", content=parts, tool_call_id=block.tool_use_id)


def _misplaced(block: ContentBlock, role: str, param: str) -> InvalidRequest:
    kind = type(block).__struct_config__.tag
    return InvalidRequest(f"{kind} blocks cannot be part of {role} messages.", param=param)


def _user_turns(blocks: list[ContentBlock], param: str) -> list[Turn]:
    turns: list[Turn] = []
    parts: list[Part] = []
    for i, block in enumerate(blocks):
        where = f"{param}[{i}]"
        if isinstance(block, TextBlock):
            parts.append(Text(block.text))
        elif isinstance(block, ImageBlock):
            parts.append(Image(image_url(block, f"{where}.source")))
        elif isinstance(block, ToolResultBlock):
            if parts:
                turns.append(Turn(role="user", content=parts))
                parts = []
            turns.append(_tool_turn(block, where))
        elif not isinstance(block, ThinkingBlock | RedactedThinkingBlock):
            raise _misplaced(block, "user", where)
    if parts:
        turns.append(Turn(role="user", content=parts))
    return turns


def _assistant_turn(blocks: list[ContentBlock], param: str) -> Turn:
    parts: list[Part] = []
    calls: list[ToolCall] = []
    for i, block in enumerate(blocks):
        if isinstance(block, TextBlock):
            parts.append(Text(block.text))
        elif isinstance(block, ToolUseBlock):
            calls.append(ToolCall(id=block.id, name=block.name, arguments=block.input))
        elif not isinstance(block, ThinkingBlock | RedactedThinkingBlock):
            raise _misplaced(block, "assistant", f"{param}[{i}]")
    return Turn(role="assistant", content=parts, tool_calls=calls)


def _system_turn(blocks: list[ContentBlock], param: str) -> Turn:
    for i, block in enumerate(blocks):
        if not isinstance(block, TextBlock):
            raise _misplaced(block, "system", f"{param}[{i}]")
    return Turn(role="system", content=[Text(b.text) for b in blocks if isinstance(b, TextBlock)])


def message_turns(msg: Message, index: int) -> list[Turn]:
    param = f"messages[{index}].content"
    blocks: list[ContentBlock] = [TextBlock(text=msg.content)] if isinstance(msg.content, str) else msg.content
    if msg.role == "user":
        return _user_turns(blocks, param)
    if msg.role == "assistant":
        return [_assistant_turn(blocks, param)]
    return [_system_turn(blocks, param)]


def system_text(system: str | list[TextBlock] | None) -> str:
    if system is None:
        return ""
    return system if isinstance(system, str) else "\n".join(b.text for b in system if b.text)


def tool_specs(req: Request) -> list[ToolSpec]:
    specs: list[ToolSpec] = []
    for i, tool in enumerate(req.tools or []):
        if tool.type not in (None, "custom"):
            raise InvalidRequest(
                f"The server tool {tool.type!r} is not supported; only client tools with an input_schema are.",
                param=f"tools[{i}].type",
            )
        if tool.input_schema is None:
            raise InvalidRequest(f"The tool {tool.name!r} has no input_schema.", param=f"tools[{i}].input_schema")
        specs.append(ToolSpec(name=tool.name, description=tool.description or "", parameters=tool.input_schema))
    return specs


def tool_choice(req: Request) -> tuple[ToolChoice, bool]:
    """The neutral choice (``any`` is ``required``, ``tool`` is ``named``) and whether parallel calls are allowed."""
    choice = req.tool_choice
    if choice is None:
        return ToolChoice(), True
    if isinstance(choice, ToolChoiceNone):
        return ToolChoice(mode="none"), True
    parallel = not choice.disable_parallel_tool_use
    if isinstance(choice, ToolChoiceAny | ToolChoiceTool) and not req.tools:
        kind = type(choice).__struct_config__.tag
        raise InvalidRequest(f"tool_choice {kind!r} needs tools.", param="tool_choice")
    if isinstance(choice, ToolChoiceTool):
        return ToolChoice(mode="named", name=choice.name), parallel
    if isinstance(choice, ToolChoiceAny):
        return ToolChoice(mode="required"), parallel
    return ToolChoice(mode="auto"), parallel


def shows_thinking(req: Request) -> bool:
    """Reasoning is sent as thinking blocks only when the request turned thinking on (and did not omit it)."""
    thinking = req.thinking
    if thinking is None or thinking.type == "disabled" or thinking.display == "omitted":
        return False
    if thinking.type == "enabled" and thinking.budget_tokens is None:
        raise InvalidRequest("thinking.budget_tokens is required when thinking is enabled.", param="thinking")
    return True


def to_conversation(req: Request) -> Conversation:
    shows_thinking(req)  # the thinking settings are checked before anything is sent
    choice, parallel = tool_choice(req)
    conversation = Conversation(
        turns=[turn for i, msg in enumerate(req.messages) for turn in message_turns(msg, i)],
        system=system_text(req.system),
        tools=tool_specs(req),
        tool_choice=choice,
        parallel_tool_calls=parallel,
    )
    if isinstance(req, MessagesRequest):
        conversation.max_output_tokens = req.max_tokens
        conversation.stop = list(req.stop_sequences or [])
    return conversation
