"""The neutral answer: the events every client API renders in its own wire format.

A run yields text and reasoning deltas (search results, media progress and generated media arrive
already written as reasoning or text, as the chat API has always shown them), tool calls as a start
(id and name), argument fragments and a done event, and exactly one ``Finish`` last.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ..errors import GatewayError

FinishReason = Literal["stop", "length", "tool_calls", "error"]


class TextDelta(msgspec.Struct, gc=False):
    text: str


class ReasoningDelta(msgspec.Struct, gc=False):
    text: str


class ToolCallStart(msgspec.Struct, gc=False):
    """A tool call begins: ``index`` counts the answer's calls from 0."""

    index: int
    id: str
    name: str


class ToolCallDelta(msgspec.Struct, gc=False):
    """A fragment of call ``index``'s arguments (JSON text; the fragments concatenate)."""

    index: int
    arguments: str


class ToolCallDone(msgspec.Struct, gc=False):
    """Call ``index`` is complete; ``arguments`` is its whole (validated) JSON text."""

    index: int
    id: str
    name: str
    arguments: str


class TokenUsage(msgspec.Struct, gc=False):
    """Estimated tokens: grok.com's web API reports none (about 4 bytes of UTF-8 per token)."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Finish(msgspec.Struct):
    """The end of the answer, always the last event.

    ``reason`` ``error``: the answer failed (``error`` says why; a stream shows it as an error event).
    Any other reason with ``error`` set: grok.com broke off (stalled) after part of the answer was sent;
    a stream ends normally with what it has, a non-stream answer fails with ``error``.
    """

    reason: FinishReason
    usage: TokenUsage
    error: GatewayError | None = None


AnswerEvent = TextDelta | ReasoningDelta | ToolCallStart | ToolCallDelta | ToolCallDone | Finish


def estimate_tokens(text: str) -> int:
    """A cheap token estimate: ~4 bytes of UTF-8 per token, at least 1 for non-empty text."""
    return (len(text.encode("utf-8")) + 3) // 4 if text else 0
