"""One mgw answer as a list of frames, built in order: the two text families, chunks, outputs and faults.

A client that set ``x_grok.use_chunk`` gets its text as ``response.chunk`` text chunks with a channel; one that
did not gets the Realtime delta family (``response.output_text.delta`` with ``x_grok.is_thinking``). One response
never mixes the two. Events here are bare (``{"type": …}``); the wire adds ``session_id`` and ``event_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .fake_chat_request import Markers, wants_draw
from .fake_errors import USAGE_LIMIT_MESSAGE
from .fake_faults import Fault
from .fake_http import JsonDict

RESPONSE = "CHANNEL_ASSISTANT_RESPONSE"
NOTETAKER_HEADER = "CHANNEL_ASSISTANT_NOTETAKER_HEADER"
NOTETAKER_SUMMARY = "CHANNEL_ASSISTANT_NOTETAKER_SUMMARY"
THINKING = "CHANNEL_ASSISTANT_THINKING"
ANALYSIS = "CHANNEL_ASSISTANT_ANALYSIS"
REASONING = "CHANNEL_ASSISTANT_REASONING"

# In-band errors: (code, message) of the ``error`` event that stands for a fault.
INBAND_ERRORS: dict[str, tuple[str, str]] = {
    "antibot": ("anti_bot", "Request rejected by anti-bot rules."),
    "403-antibot": ("anti_bot", "Request rejected by anti-bot rules."),
    "401": ("unauthenticated", "Failed to look up session ID. [WKE=unauthorized:invalid-credentials]"),
    "403-blocked": ("permission_denied", "User is blocked [WKE=unauthorized:blocked-user]"),
    "429": ("resource_exhausted", "Too many requests"),
    "inband-8": ("resource_exhausted", "Too many requests"),
    "usage": ("resource_exhausted", USAGE_LIMIT_MESSAGE),
    "500": ("internal", "Internal error"),
    "502": ("internal", "Internal error"),
    "503": ("unavailable", "Service unavailable"),
    "inband-13": ("internal", "Internal error"),
}
# Faults that answer the request with an error before any response starts; the rest strike mid-answer.
OPENING_ERRORS = frozenset({"antibot", "403-antibot", "401", "403-blocked", "429", "500", "502", "503"})


@dataclass
class Turn:
    """What the client asked for: the session's mode and flags, the user message and its markers."""

    mode: str
    x_grok: JsonDict
    chunks: list[JsonDict]
    file_ids: list[str]
    prompt: str
    markers: Markers
    client_event_id: str
    temporary: bool = field(init=False)

    def __post_init__(self) -> None:
        self.temporary = self.x_grok.get("is_temporary") is True

    @property
    def use_chunk(self) -> bool:
        return self.x_grok.get("use_chunk") is True

    @property
    def draw(self) -> bool:
        # Over the socket image generation is opt-in: words only draw with enable_image_generation set.
        return wants_draw(self.prompt, self.markers, self.x_grok.get("enable_image_generation") is True)

    @property
    def image_count(self) -> int:
        count = self.x_grok.get("image_generation_count", 2)
        return min(max(count, 1), 10) if isinstance(count, int) else 2


@dataclass(slots=True)
class Frame:
    kind: str  # events: one text frame of JSON events; raw: a text frame as is; sleep; abort (cut); end (close)
    events: list[JsonDict] = field(default_factory=list)
    raw: str = ""
    seconds: float = 0.0
    token: bool = False  # carries answer or thinking text: paced by token_delay / slow-tokens


def event(kind: str, **fields: Any) -> JsonDict:
    return {"type": kind, **fields}


def error_event(code: str, message: str) -> JsonDict:
    return event("error", error={"code": code, "message": message})


class TurnScript:
    """The frames of one answer. ``say`` adds answer text and keeps ``answer`` equal to what was said."""

    def __init__(self, turn: Turn, fault: Fault | None, response_id: str) -> None:
        self.turn = turn
        self.fault = fault
        self.response_id = response_id
        self.frames: list[Frame] = []
        self.answer: list[str] = []
        self.ended = False
        self.step = 0
        self.phase = 0
        self._said = 0
        self._mid_done = False

    @property
    def fault_name(self) -> str | None:
        return self.fault.name if self.fault is not None else None

    def add(self, frame: Frame) -> None:
        if not self.ended:
            self.frames.append(frame)

    def send(self, *events: JsonDict, token: bool = False) -> None:
        self.add(Frame("events", list(events), token=token))

    def ids(self) -> JsonDict:
        return {"response_id": self.response_id, "item_id": self.response_id}

    def chunk(self, body: JsonDict, *, trailing: bool = False) -> JsonDict:
        """A ``response.chunk``; trailing ones (after ``response.done``) carry empty ids, as grok.com's do."""
        ids = {"response_id": "", "item_id": ""} if trailing else self.ids()
        metadata = {"step_id": self.step, "phase_index": self.phase}
        return event("response.chunk", **ids, chunk={"metadata": metadata, **body})

    def output(self, body: JsonDict) -> JsonDict:
        return event("response.grok.output", **self.ids(), output=body)

    def text(self, text: str, channel: str) -> None:
        if self.turn.use_chunk:
            self.send(self.chunk({"text": {"text": text, "channel": channel}}), token=True)
            return
        delta = event(
            "response.output_text.delta",
            **self.ids(),
            output_index=0,
            content_index=0,
            delta=text,
            x_grok={"is_thinking": channel != RESPONSE},
        )
        self.send(delta, token=True)

    def phase_marker(self, kind: str) -> None:
        self.phase += 1
        if self.turn.use_chunk:
            self.send(self.chunk({"phase_marker": {"kind": kind, "phase_index": self.phase}}))

    def say(self, text: str) -> None:
        """Answer text; the in-stream faults strike after the second piece."""
        if self.ended:
            return
        self.text(text, RESPONSE)
        self.answer.append(text)
        self._said += 1
        if self._said == 2:
            self.mid_stream()

    def mid_stream(self) -> None:
        if self._mid_done:
            return
        self._mid_done = True
        if self.turn.markers.has("late-think"):
            self.text("Wait, one more thought.", NOTETAKER_HEADER)
        if self.fault is not None:
            _mid_fault(self, self.fault)


def _mid_fault(script: TurnScript, fault: Fault) -> None:
    name = fault.name
    if name in INBAND_ERRORS:
        script.send(error_event(*INBAND_ERRORS[name]))
    elif name == "stream-error":
        error = {"message": "Upstream stream interrupted", "kind": "KIND_INTERNAL", "severity": "SEVERITY_ERROR"}
        script.send(script.output({"stream_error": error}))
    elif name == "failed":
        response = {"id": script.response_id, "status": "failed", "status_details": {"reason": "internal_error"}}
        script.send(event("response.done", response=response))
    elif name == "session-ended":
        script.send(event("session.ended", reason="server_error"))
        script.add(Frame("end"))
    elif name == "close":
        script.add(Frame("abort"))
    elif name == "stall-mid":
        script.add(Frame("sleep", seconds=fault.seconds(1.0)))
    elif name == "malformed":
        script.add(Frame("raw", raw='{"event":{"type":"response.chunk","chunk":{"text":{"text":"bro'))
    elif name == "blank":
        script.add(Frame("raw", raw=""))
        script.add(Frame("raw", raw=" \n"))
    elif name == "long-line":
        script.say("x" * (1 << 20))
    if name in INBAND_ERRORS or name in ("stream-error", "failed", "session-ended", "close"):
        script.ended = True
