"""Tool calls and structured answers on top of a web chat that has neither.

``Emulation`` is the state of one conversation's answer across its upstream calls: it adds the
instructions to the conversation, reads each answer's text (prose streams on, ``<tool_call>`` blocks are
parsed and their arguments validated against the tool's JSON schema, a JSON answer is validated against
the response format), decides whether a repair turn is needed, writes that turn, and says how the answer
ends. Without tools or a response format it passes the answer through untouched.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from ..errors import InvalidRequest, UnusableAnswer
from .envelope import Block, EnvelopeParser, Piece
from .events import (
    AnswerEvent,
    FinishReason,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStart,
)
from .instructions import format_instructions, repair_message, tool_instructions
from .limits import OutputLimit
from .model import Conversation, Text, Turn, text_turn
from .validation import SchemaCheck, decode_json, strip_fence

ARGUMENT_FRAGMENT = 32  # characters per streamed argument fragment
_ENCODER = msgspec.json.Encoder()


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


@dataclass(slots=True)
class AcceptedCall:
    index: int
    id: str
    name: str
    arguments: str  # JSON text


def parse_block(body: str) -> tuple[str, dict[str, Any], str | None]:
    """``(name, arguments, problem)`` of one block's text; ``problem`` is None when it reads as a call."""
    value, why = decode_json(strip_fence(body))
    if why is not None:
        return "", {}, f"a tool call block is {why}"
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        return "", {}, 'a tool call block must hold {"name": …, "arguments": {…}}'
    name: str = value["name"]
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # arguments written as a JSON string
        arguments, why = decode_json(arguments) if arguments.strip() else ({}, None)
        if why is not None:
            return name, {}, f"the arguments of {name} are {why}"
    if not isinstance(arguments, dict):
        return name, {}, f"the arguments of {name} must be a JSON object"
    return name, arguments, None


class Emulation:
    """Raises InvalidRequest at construction for what the request got wrong (an unknown named tool, a
    broken JSON schema)."""

    def __init__(self, conversation: Conversation, limit: OutputLimit) -> None:
        self.conversation = conversation
        self.limit = limit
        choice = conversation.tool_choice
        # With tools offered, blocks are always taken out of the text; with tool_choice none they are dropped.
        self.parse_blocks = bool(conversation.tools)
        self.tools_on = self.parse_blocks and choice.mode != "none"
        fmt = conversation.response_format
        self.json_mode = fmt.type != "text"
        self.active = self.parse_blocks or self.json_mode
        self.must_call = self.tools_on and choice.mode in ("required", "named")
        # Answers that must have a shape are read whole before anything is released.
        self.settles_first = self.json_mode or self.must_call
        if choice.mode in ("required", "named") and not conversation.tools:
            raise InvalidRequest(f"tool_choice {choice.mode!r} needs tools.", param="tool_choice")
        if choice.mode == "named" and conversation.tool(choice.name) is None:
            raise InvalidRequest(
                f"tool_choice names {choice.name!r}, which is not among the tools.", param="tool_choice"
            )
        self.checks = {
            t.name: SchemaCheck(t.parameters or {"type": "object"}, "tools", f"The parameters of tool {t.name!r}")
            for t in conversation.tools
        }
        self.format_check: SchemaCheck | None = None
        if fmt.type == "json_schema":
            self.format_check = SchemaCheck(fmt.schema or {}, "response_format", "The response format's schema")
        self.calls: list[AcceptedCall] = []
        self.sent_text = False
        self._earlier: set[tuple[str, str]] = set()  # calls accepted by earlier answers (name, arguments)
        self.json_text: str | None = None
        self.problems: list[str] = []  # of the latest answer
        self._begin(repairing=False)

    # ---- the conversation sent upstream -----------------------------------------------------------------

    def upstream_conversation(self) -> Conversation:
        """The client's conversation with the instructions added to its system text."""
        parts = [self.conversation.system.strip()]
        if self.tools_on:
            parts.append(tool_instructions(self.conversation))
        if self.json_mode:
            parts.append(format_instructions(self.conversation.response_format, self.tools_on))
        system = "\n\n".join(p for p in parts if p)
        return msgspec.structs.replace(self.conversation, system=system)

    def repair_conversation(self, previous: Conversation) -> Conversation:
        """``previous`` plus Grok's unusable answer and what was wrong with it."""
        wanted = "the corrected tool call block(s)" if self.must_call or self._tried_call else "a corrected answer"
        if self.json_mode and not self._tried_call:
            wanted = "the corrected JSON"
        accepted = [f"{c.name} ({c.id})" for c in self.calls]
        turns = [
            *previous.turns,
            Turn(role="assistant", content=[Text(self.raw_text)]),
            text_turn("system", repair_message(self.problems, accepted, wanted)),
        ]
        return msgspec.structs.replace(previous, turns=turns)

    # ---- reading one answer ------------------------------------------------------------------------------

    def _begin(self, repairing: bool) -> None:
        self.repairing = repairing
        self.parser = EnvelopeParser()
        self.raw: list[str] = []
        self.held: list[str] = []
        self.problems = []
        self._tried_call = False

    def begin_repair(self) -> None:
        self._earlier.update((c.name, c.arguments) for c in self.calls)
        self._begin(repairing=True)

    @property
    def raw_text(self) -> str:
        return "".join(self.raw)

    def feed(self, deltas: list[TextDelta | ReasoningDelta]) -> list[AnswerEvent]:
        """The events some answer deltas make (reasoning of a repair turn is not shown again)."""
        if not self.active:
            return list(deltas)
        out: list[AnswerEvent] = []
        for delta in deltas:
            if isinstance(delta, ReasoningDelta):
                if not self.repairing:
                    out.append(delta)
                continue
            self.raw.append(delta.text)
            if self.parse_blocks:
                for piece in self.parser.feed(delta.text):
                    out.extend(self._piece(piece))
        return out

    def end(self) -> list[AnswerEvent]:
        """The end of one answer: what was held back, and the answer's problems noted."""
        if not self.active:
            return []
        out: list[AnswerEvent] = []
        if self.parse_blocks:
            for piece in self.parser.flush():
                out.extend(self._piece(piece))
        if self.json_mode and not self._tried_call:
            self._check_json("".join(self.held) if self.parse_blocks else self.raw_text)
        if self.must_call and not self.calls and not self.problems:
            named = self.conversation.tool_choice
            target = f"the tool {named.name}" if named.mode == "named" else "a tool"
            self.problems.append(f"no tool was called, but this answer must call {target}")
        return out

    def _piece(self, piece: Piece) -> list[AnswerEvent]:
        if isinstance(piece, Block):
            if not self.tools_on:
                return []  # tool_choice none: a call is never made
            self._tried_call = True
            return self._call(piece)
        if self._tried_call or self.json_mode or self.repairing:
            self.held.append(piece.text)  # after a call, a JSON answer, or a repair's prose: not streamed
            return []
        return self._prose(piece.text)

    def _prose(self, text: str) -> list[AnswerEvent]:
        text = self.limit.feed(text)
        if text.strip():
            self.sent_text = True
        return [TextDelta(text)] if text else []

    def _call(self, block: Block) -> list[AnswerEvent]:
        if self.calls and not self.conversation.parallel_tool_calls:
            return []  # one call per answer: the first valid one stands
        name, arguments, problem = parse_block(block.body)
        if problem is None and not block.closed:
            problem = f"the call to {name} has no closing </tool_call>"  # cut off: its arguments may be too
        check = self.checks.get(name)
        if problem is None and check is None:
            problem = f"there is no tool named {name!r} (the tools are: {', '.join(self.checks)})"
        choice = self.conversation.tool_choice
        if problem is None and choice.mode == "named" and name != choice.name:
            problem = f"this answer must call {choice.name}, not {name}"
        if problem is None and check is not None:
            errors = check.errors(arguments)
            if errors:
                problem = f"the arguments of {name} do not match its schema: " + "; ".join(errors)
        if problem is not None:
            self.problems.append(problem)
            return []
        encoded = _ENCODER.encode(arguments).decode()
        if (name, encoded) in self._earlier:
            return []  # a repair turn repeating a call that was already accepted
        call = AcceptedCall(len(self.calls), new_call_id(), name, encoded)
        self.calls.append(call)
        events: list[AnswerEvent] = [ToolCallStart(call.index, call.id, call.name)]
        for start in range(0, len(call.arguments), ARGUMENT_FRAGMENT):
            events.append(ToolCallDelta(call.index, call.arguments[start : start + ARGUMENT_FRAGMENT]))
        events.append(ToolCallDone(call.index, call.id, call.name, call.arguments))
        return events

    def _check_json(self, text: str) -> None:
        body = strip_fence(text)
        value, why = decode_json(body)
        if why is not None:
            self.problems.append(f"the answer is {why}")
        elif self.format_check is not None:
            self.problems.extend(f"the answer does not match the schema: {e}" for e in self.format_check.errors(value))
        elif not isinstance(value, dict):
            self.problems.append("the answer must be a JSON object")
        if not self.problems:
            self.json_text = body

    # ---- how the answer ends -----------------------------------------------------------------------------

    @property
    def needs_repair(self) -> bool:
        return self.active and bool(self.problems)

    def closing(self) -> tuple[list[AnswerEvent], FinishReason | None, UnusableAnswer | None]:
        """After the last upstream answer: the events still to send, the finish reason (None: the usual
        one) and, when the answer must fail, why."""
        if not self.active:
            return [], None, None
        if self.calls:
            return [], "tool_calls", None
        if self.json_mode and self.json_text is not None:
            return [TextDelta(self.json_text)], "stop", None
        if self.json_mode or self.must_call:
            what = "a valid tool call" if self.must_call else "a valid JSON answer"
            reasons = "; ".join(self.problems) or "no usable answer"
            return [], "error", UnusableAnswer(f"Grok did not produce {what}, even after a repair turn: {reasons}.")
        # tool_choice auto: a plain-text answer, whatever was held back (or a word on the failed call)
        if self.sent_text:
            return [], None, None  # the answer's prose already went out
        text = "".join(self.held).strip()
        if not text and self.problems:
            text = f"(No tool was called: {self.problems[0]}.)"
        return self._prose(text), None, None
