"""The words the gateway adds to a conversation so Grok can call tools and shape its answer: the system
text for tools and response formats, earlier calls and results written in the same envelope, and the
message of a repair turn."""

from __future__ import annotations

from typing import Any

import msgspec

from .envelope import CLOSE, OPEN
from .model import Conversation, ResponseFormat, ToolCall, ToolChoice, ToolSpec

_ENCODER = msgspec.json.Encoder()


def _json(value: Any) -> str:
    return _ENCODER.encode(value).decode()


def call_block(call: ToolCall) -> str:
    """An earlier call, written the way Grok is asked to write its own (plus the call's id)."""
    arguments: Any = call.arguments
    if isinstance(arguments, str):
        try:
            arguments = msgspec.json.decode(arguments) if arguments.strip() else {}
        except msgspec.DecodeError:
            pass  # shown as the string the client sent
    return OPEN + _json({"id": call.id, "name": call.name, "arguments": arguments}) + CLOSE


def result_block(call_id: str, name: str, text: str) -> str:
    """A tool's result, next to the id (and name) of the call it answers."""
    attributes = "".join(f' {key}="{value}"' for key, value in (("id", call_id), ("name", name)) if value)
    return f"<tool_result{attributes}>{text}</tool_result>"


def _tool_lines(tools: list[ToolSpec]) -> str:
    lines: list[str] = []
    for tool in tools:
        description = " ".join(tool.description.split())
        lines.append(f"- {tool.name}" + (f": {description}" if description else ""))
        lines.append(f"  arguments schema: {_json(tool.parameters or {'type': 'object'})}")
    return "\n".join(lines)


def _choice_line(choice: ToolChoice, parallel: bool) -> str:
    several = (
        "You may call several tools at once, one block per call." if parallel else "Call at most one tool per answer."
    )
    if choice.mode == "required":
        return f"In this answer you must call at least one tool. {several}"
    if choice.mode == "named":
        return f"In this answer you must call the tool {choice.name}."
    return f"Call a tool only when it helps; otherwise answer normally in plain text, without any block. {several}"


def tool_instructions(conversation: Conversation) -> str:
    return (
        "You can call tools: functions that the user's application runs and whose results come back to you. "
        "The tools, each with the JSON schema of its arguments:\n"
        f"{_tool_lines(conversation.tools)}\n\n"
        "To call a tool, write one block per call, exactly in this form:\n"
        f'{OPEN}{{"name": "TOOL_NAME", "arguments": {{…}}}}{CLOSE}\n'
        "The arguments must be one JSON object valid against that tool's schema: every required field, the right "
        "types, only the allowed enum values. Write nothing after your tool call blocks and stop there; the results "
        'come back in a later message as <tool_result id="…"> blocks. Never show or explain this format to the user.\n'
        + _choice_line(conversation.tool_choice, conversation.parallel_tool_calls)
    )


def format_instructions(fmt: ResponseFormat, with_tools: bool) -> str:
    when = "When you answer without calling a tool, answer" if with_tools else "Answer"
    text = f"{when} with one JSON value only: no prose before or after it and no code fence."
    if fmt.type == "json_object":
        return text.replace("one JSON value", "one JSON object")
    return f"{text} It must be valid against this JSON schema: {_json(fmt.schema or {})}"


def repair_message(problems: list[str], accepted: list[str], wanted: str) -> str:
    """The system turn that asks Grok once more, naming what was wrong with its last answer."""
    lines = ["Your last answer could not be used:", *(f"- {p}" for p in problems)]
    if accepted:
        lines.append(f"These calls were accepted, do not repeat them: {', '.join(accepted)}.")
    lines.append(f"Answer again with {wanted}, fixing these problems, and write nothing else.")
    return "\n".join(lines)
