"""The neutral conversation: what every client API's request becomes before it is sent to grok.com.

Chat completions, responses and messages each convert their request into one ``Conversation``;
the upstream side (prompt flattening, tool emulation, the gateway) knows only this form.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Role = Literal["system", "user", "assistant", "tool"]


class Text(msgspec.Struct, frozen=True, gc=False):
    """A piece of a turn's text."""

    text: str


class Image(msgspec.Struct, frozen=True, gc=False):
    """An image of a turn: an http(s) URL or a data URI (bare base64 too), uploaded to grok.com."""

    url: str


Part = Text | Image

_ARGS_ENCODER = msgspec.json.Encoder()


class ToolCall(msgspec.Struct, kw_only=True):
    """A call the assistant made. ``arguments`` is the decoded object, or the raw string a client sent
    back (kept as it was, even when it is not valid JSON)."""

    id: str
    name: str
    arguments: dict[str, Any] | str = msgspec.field(default_factory=dict)

    def arguments_json(self) -> str:
        """The arguments as JSON text."""
        if isinstance(self.arguments, str):
            return self.arguments
        return _ARGS_ENCODER.encode(self.arguments).decode()


class Turn(msgspec.Struct, kw_only=True):
    """One turn. ``system`` turns are instructions given mid-conversation (OpenAI's system/developer
    messages keep their place); ``assistant`` turns may carry ``tool_calls``; a ``tool`` turn is the result
    of the call ``tool_call_id`` (``name`` is the tool's name when the client said it)."""

    role: Role
    content: list[Part] = []
    tool_calls: list[ToolCall] = []
    tool_call_id: str = ""
    name: str = ""

    @property
    def text(self) -> str:
        """The text parts, one per line."""
        return "\n".join(p.text for p in self.content if isinstance(p, Text) and p.text)

    @property
    def images(self) -> list[str]:
        return [p.url for p in self.content if isinstance(p, Image)]


def text_turn(role: Role, text: str) -> Turn:
    return Turn(role=role, content=[Text(text)] if text else [])


class ToolSpec(msgspec.Struct, kw_only=True):
    """A function the client offers: its name, what it does and its arguments' JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = {}
    strict: bool = False


class ToolChoice(msgspec.Struct, frozen=True, kw_only=True):
    """``none``: never call; ``auto``: Grok decides; ``required``: at least one call; ``named``: call ``name``."""

    mode: Literal["none", "auto", "required", "named"] = "auto"
    name: str = ""


class ResponseFormat(msgspec.Struct, frozen=True, kw_only=True):
    """The shape of the answer: free text, any JSON object, or JSON valid against ``schema``."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str = ""
    schema: dict[str, Any] | None = None
    strict: bool = False


class Conversation(msgspec.Struct, kw_only=True):
    """A whole request in neutral form. ``system`` is the top-level instruction text (rendered before every
    turn); ``max_output_tokens`` and ``stop`` limit the visible answer; ``reasoning_effort`` is the client's
    wish (``low``/``medium``/``high``…), kept for the faces that report it."""

    turns: list[Turn]
    system: str = ""
    tools: list[ToolSpec] = []
    tool_choice: ToolChoice = msgspec.field(default_factory=ToolChoice)
    parallel_tool_calls: bool = True
    response_format: ResponseFormat = msgspec.field(default_factory=ResponseFormat)
    reasoning_effort: str | None = None
    max_output_tokens: int | None = None
    stop: list[str] = []

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)
