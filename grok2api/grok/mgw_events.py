"""The frame parser of grok.com's chat WebSocket (``/ws/mgw/``): frames in, the events of
``events.py`` out, so every renderer reads a WebSocket answer like an NDJSON one.

A frame may pack several JSON events. Every event is ``{"session_id", "event": {"type", …}}``. One
response uses one text family: ``response.chunk`` text (with ``use_chunk``) or
``response.output_text.delta``/``.done`` (without); whichever arrives first wins and the other is
dropped, so text never doubles. ``response.done`` ends the turn; what trails it is ignored.
Unknown event types, chunk kinds, output kinds and channels are skipped and counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .citations import InlineCitations, card_data, link
from .events import (
    End,
    ErrorEvent,
    Event,
    ImageProgress,
    Images,
    Reasoning,
    SearchResult,
    SearchResults,
    Text,
    is_anti_bot,
    is_rate_limit,
    split_objects,
)
from .unknown_shapes import UNKNOWN_SHAPES, UnknownShapes

ANSWER_CHANNEL = "CHANNEL_ASSISTANT_RESPONSE"
_REASONING_CHANNELS = ("THINKING", "NOTETAKER_HEADER", "NOTETAKER_SUMMARY", "ANALYSIS", "REASONING")
# Events that carry nothing for the client (lifecycle, history replay, keep-alive).
_QUIET_EVENTS = frozenset(
    {
        "conversation.commands.updated",
        "conversation.queue.updated",
        "conversation.item.added",
        "conversation.title.updated",
        "conversation.history.item",
        "conversation.history.done",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.completed",
        "response.persisted",
        "pong",
        "ping",
    }
)
# The tool card only announces a search (its results come as tool_result): nothing to show.
_QUIET_CHUNKS = frozenset({"metadata", "ui_layout", "phase_marker", "follow_up_suggestions", "tool_usage_card"})


def _number(value: Any) -> float | None:
    """A JSON number, tolerantly: ints, floats (``1791450479839.0``) and numeric strings."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value)
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def _int(value: Any) -> int | None:
    result = _number(value)
    return int(result) if result is not None else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


class _Images:
    """Generated images from card attachments: progress per image, final asset keys in order."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.progress: dict[int, int] = {}
        self.moderated: set[int] = set()
        self.finals: dict[str, None] = {}

    def chunk(self, chunk: dict[str, Any]) -> list[Event]:
        key = _str(chunk.get("imageUuid") or chunk.get("mediaId") or chunk.get("image_uuid"))
        index = _int(chunk.get("imageIndex"))
        if index is None:
            index = self.index.setdefault(key, len(self.index))
        progress = _int(chunk.get("progress"))
        url = _str(chunk.get("imageUrl") or chunk.get("image_url"))
        out: list[Event] = []
        if chunk.get("moderated") is True:
            if index not in self.moderated:
                self.moderated.add(index)
                out.append(ImageProgress(index, progress or 0, moderated=True))
            return out
        if progress is not None and progress > self.progress.get(index, -1):
            self.progress[index] = progress
            out.append(ImageProgress(index, progress))
        final = progress is None or progress >= 100
        if final and url and not url.startswith("data:") and "-part-" not in url:
            self.finals[url] = None  # the asset key; previews (data: URLs, -part-) are not results
        return out


class MgwParser:
    """Turns frames into events and tracks the end of the turn: ``done`` once the turn is over,
    ``status`` the status ``response.done`` reported, ``failure`` the error that ended it (if any).
    ``ready`` says the session is open (``session.created`` and ``conversation.attached`` seen)."""

    def __init__(self, unknown: UnknownShapes = UNKNOWN_SHAPES) -> None:
        self.unknown = unknown
        self.session_id = ""
        self.conversation_id = ""
        self.created = False
        self.attached = False
        self.model: str | None = None
        self.done = False
        self.status: str | None = None
        self.failure: ErrorEvent | None = None
        self._family: str | None = None  # "chunk" or "delta": the text family this response uses
        self._delta_answer = ""
        self._answer = InlineCitations()
        self._images = _Images()
        self._reasoning_step: tuple[str, str] | None = None
        self._seen_urls: set[str] = set()
        self._last_citation = ""

    @property
    def ready(self) -> bool:
        return self.created and self.attached

    def feed(self, frame: str) -> list[Event]:
        """The events of one frame, in order (several JSON events may share it)."""
        frame = frame.strip()
        if not frame:
            return []
        objects = split_objects(frame)
        if len(objects) == 1 and not self.done and isinstance(objects[0], dict):
            return self._event(objects[0])  # most frames: one event (its handler's list is a new one)
        out: list[Event] = []
        for obj in objects:
            if self.done:
                break  # what trails response.done (late thinking lines, follow-ups) is not the answer
            if not isinstance(obj, dict):
                self.unknown.note("frame:not-an-object")
                continue
            out.extend(self._event(obj))
        return out

    def _event(self, obj: dict[str, Any]) -> list[Event]:
        event = obj.get("event")
        if not event or not isinstance(event, dict):
            event = obj  # tolerate an event sent without its envelope
        kind = event.get("type")
        if not isinstance(kind, str):
            kind = ""
        if not self.session_id and isinstance(obj.get("session_id"), str):
            self.session_id = obj["session_id"]
        handler = _HANDLERS.get(kind)
        if handler is not None:
            return handler(self, event)
        if kind not in _QUIET_EVENTS:
            self.unknown.note(f"event:{kind or '<none>'}")
        return []

    # session lifecycle

    def _session_created(self, event: dict[str, Any]) -> list[Event]:
        self.created = True
        session_id = _str(_dict(event.get("session")).get("id"))
        if session_id and not self.session_id:
            self.session_id = session_id
        return []

    def _attached(self, event: dict[str, Any]) -> list[Event]:
        self.attached = True
        self.conversation_id = _str(_dict(event.get("conversation")).get("id"))
        if not self.session_id:
            self.session_id = self.conversation_id
        return []

    def _response_created(self, event: dict[str, Any]) -> list[Event]:
        model = _dict(_dict(event.get("response")).get("x_grok")).get("model")
        if isinstance(model, str) and model:
            self.model = model
        return []

    # text

    def _take_family(self, family: str) -> bool:
        if self._family is None:
            self._family = family
        return self._family == family

    def _answer_text(self, text: str) -> list[Event]:
        if text:
            self._last_citation = ""
        released = self._answer.add(text)
        return [Text(released)] if released else []

    def _reasoning(self, text: str, channel: str, step: str) -> list[Event]:
        # A new channel or step starts a new line, so separate thinking lines do not run together.
        if self._reasoning_step is not None and self._reasoning_step != (channel, step):
            text = "\n\n" + text
        self._reasoning_step = (channel, step)
        return [Reasoning(text)]

    def _chunk(self, event: dict[str, Any]) -> list[Event]:
        chunk = event.get("chunk")
        if not isinstance(chunk, dict):
            return []
        out: list[Event] = []
        for key, value in chunk.items():
            if key == "text":
                out += self._chunk_text(_dict(value), chunk)
            elif key == "tool_result":
                out += self._tool_result(_dict(value))
            elif key == "render_citation":
                out += self._render_citation(_dict(value))
            elif key not in _QUIET_CHUNKS:
                self.unknown.note(f"chunk:{key}")
        return out

    def _chunk_text(self, body: dict[str, Any], chunk: dict[str, Any]) -> list[Event]:
        text = body.get("text")
        if not text or not isinstance(text, str) or not self._take_family("chunk"):
            return []
        channel = body.get("channel")
        if channel == ANSWER_CHANNEL:  # every token of the answer, as grok.com spells it
            return self._answer_text(text)
        channel = _str(channel).strip().upper()
        if channel in ("", ANSWER_CHANNEL):
            return self._answer_text(text)
        if any(marker in channel for marker in _REASONING_CHANNELS):
            step = str(_dict(chunk.get("metadata")).get("step_id") or "")
            return self._reasoning(text, channel, step)
        self.unknown.note(f"channel:{channel}")
        return []

    def _delta(self, event: dict[str, Any]) -> list[Event]:
        text = _str(event.get("delta"))
        if not text or not self._take_family("delta"):
            return []
        if _dict(event.get("x_grok")).get("is_thinking"):
            return self._reasoning(text, "delta", "")
        self._delta_answer += text
        return self._answer_text(text)

    def _delta_done(self, event: dict[str, Any]) -> list[Event]:
        """The full text of a content part: authoritative when no chunk text came; only the part the
        deltas did not already send is added."""
        text = _str(event.get("text"))
        if not text or _dict(event.get("x_grok")).get("is_thinking") or not self._take_family("delta"):
            return []
        if not text.startswith(self._delta_answer):
            return []  # it disagrees with what was streamed; what was sent stands
        rest = text[len(self._delta_answer) :]
        self._delta_answer = text
        return self._answer_text(rest) if rest else []

    def _render_citation(self, cite: dict[str, Any]) -> list[Event]:
        url = link(_str(cite.get("url")))
        if not url or url == self._last_citation:
            return []  # adjacent repeats of one source show once
        self._last_citation = url
        released = self._answer.add_citation(url)
        return [Text(released)] if released else []

    # search

    def _tool_result(self, body: dict[str, Any]) -> list[Event]:
        results: list[SearchResult] = []
        for page in _dicts(_dict(body.get("web_search")).get("webpages")):
            url = _str(page.get("url"))
            results.append(SearchResult(_str(page.get("title")) or url, url, _str(page.get("snippet"))))
        for post in _dicts(_dict(body.get("x_post")).get("posts")):
            handle = _str(post.get("userhandle") or post.get("username"))
            post_id = str(post.get("post_id") or post.get("postId") or "")
            if handle and post_id:
                title = _str(post.get("name")) or f"@{handle}"
                results.append(SearchResult(title, f"https://x.com/{handle}/status/{post_id}", _str(post.get("text"))))
        return self._results(results)

    def _results(self, results: list[SearchResult]) -> list[Event]:
        fresh = [r for r in results if r.url and r.url not in self._seen_urls]
        self._seen_urls.update(r.url for r in fresh)
        return [SearchResults(fresh)] if fresh else []

    def _search_result(self, event: dict[str, Any]) -> list[Event]:
        result = _dict(event.get("result"))
        items = [result, *_dicts(result.get("web_results"))]
        found = [SearchResult(_str(r.get("title")) or _str(r.get("url")), _str(r.get("url"))) for r in items]
        return self._results(found)

    # cards, images and in-band errors

    def _grok_output(self, event: dict[str, Any]) -> list[Event]:
        output = _dict(event.get("output"))
        out: list[Event] = []
        for key, value in output.items():
            if key == "card_attachment":
                cards = value if isinstance(value, list) else [value]
                for card in cards:
                    out += self._card(_dict(card))
            elif key == "stream_error":
                return out + self._fail(self._error(_dict(value)))
            elif key == "tool_result":
                out += self._tool_result(_dict(value))
            elif key != "tool_usage_card":
                self.unknown.note(f"output:{key}")
        return out

    def _card(self, card: dict[str, Any]) -> list[Event]:
        data = card_data(card)
        chunk = data.get("image_chunk") or data.get("imageChunk")
        out: list[Event] = []
        if isinstance(chunk, dict):
            out += self._images.chunk(chunk)
        card_id = _str(data.get("id"))
        if card_id:
            released = self._answer.card(card_id, _str(data.get("url")))
            if released:
                out.append(Text(released))
        return out

    def _error(self, body: dict[str, Any]) -> ErrorEvent:
        raw_code = body.get("code")
        message = _str(body.get("message")) or _str(raw_code) or "grok.com reported an error"
        code = _int(raw_code) if not isinstance(raw_code, str) else None
        return ErrorEvent(message, code, is_rate_limit(code, message), is_anti_bot(raw_code, message))

    def _error_event(self, event: dict[str, Any]) -> list[Event]:
        body = event.get("error")
        return self._fail(self._error(body if isinstance(body, dict) else {"message": _str(body)}))

    def _fail(self, error: ErrorEvent) -> list[Event]:
        self.done = True
        self.failure = error
        return [error]

    # the end of the turn

    def _session_ended(self, event: dict[str, Any]) -> list[Event]:
        return self._fail(ErrorEvent("grok.com ended the chat session before the answer completed"))

    def _response_done(self, event: dict[str, Any]) -> list[Event]:
        status = _str(_dict(event.get("response")).get("status")) or "completed"
        self.status = status
        if status != "completed":
            return self._fail(ErrorEvent(f"grok.com ended the answer with status {status!r}"))
        out: list[Event] = []
        tail = self._answer.finish()
        if tail:
            out.append(Text(tail))
        message = "".join(self._answer.parts)
        images = list(self._images.finals)
        if not message.strip() and not images:
            # grok.com "completes" throttled accounts with nothing: a server failure, retried elsewhere.
            return out + self._fail(ErrorEvent("grok.com completed the answer without any text or image"))
        if images:
            out.append(Images(images))
        self.done = True
        out.append(End(message, self.model))
        return out


# Each event type's handler, built once for every parser (a parser per chat turn).
_HANDLERS: dict[str, Callable[[MgwParser, dict[str, Any]], list[Event]]] = {
    "session.created": MgwParser._session_created,
    "conversation.attached": MgwParser._attached,
    "response.created": MgwParser._response_created,
    "response.chunk": MgwParser._chunk,
    "response.output_text.delta": MgwParser._delta,
    "response.output_text.done": MgwParser._delta_done,
    "response.grok.output": MgwParser._grok_output,
    "response.search.result": MgwParser._search_result,
    "response.done": MgwParser._response_done,
    "error": MgwParser._error_event,
    "session.ended": MgwParser._session_ended,
}
