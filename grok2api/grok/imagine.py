"""Images from grok.com's Imagine WebSocket (``{ws(upstream_url)}/ws/imagine/listen``): open it with the
account's cookie, send a reset and then the request, and read image frames until every generation asked
for is finished.

Frames: ``{"type":"image", image_id, url, blob?, percentage_complete, …}`` (below 100 a preview, at 100 the
final picture), ``{"type":"json", current_status:"completed", moderated, url?, blob?, …}`` (the verdict on
one image) and ``{"type":"error", …}``. ``stream_imagine`` yields them as ``ImageProgress`` batches: previews
with their picture, then per image one ``final`` event once its verdict arrived (moderated images carry no
picture), then ``End``. A refused handshake raises UpstreamHTTPError, connection trouble
UpstreamConnectionError, an ``error`` frame arrives as an ``ErrorEvent``.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from ..settings import RuntimeSettings
from .client import GrokClient
from .errors import UpstreamConnectionError
from .events import End, ErrorEvent, Event, ImageProgress, is_anti_bot, is_rate_limit, split_objects
from .headers import ws_headers
from .transport import WebSocketOpener, release, report_in_band_refusal, ws_url
from .unknown_shapes import UNKNOWN_SHAPES, UnknownShapes

IMAGINE_PATH = "/ws/imagine/listen"
# How many images one request may ask for; a request asks for the smallest that covers what it needs.
GENERATION_COUNTS = (4, 8, 12)
ASPECT_RATIOS = ("1:1", "16:9", "9:16", "3:2", "2:3", "auto")


def imagine_url(upstream_url: str) -> str:
    return ws_url(upstream_url.rstrip("/")) + IMAGINE_PATH


def generations_for(n: int) -> int:
    """The smallest ``num_generations`` grok.com takes that yields ``n`` images (at most the largest)."""
    return next((count for count in GENERATION_COUNTS if count >= n), GENERATION_COUNTS[-1])


@dataclass(frozen=True)
class ImagineRequest:
    """One Imagine generation: ``generations`` images of ``prompt``."""

    prompt: str
    aspect_ratio: str = "auto"
    pro: bool = False
    generations: int = GENERATION_COUNTS[0]

    def stream(
        self, client: GrokClient, token: str, user_id: str, settings: RuntimeSettings
    ) -> AsyncGenerator[list[Event], None]:
        return stream_imagine(client.sockets_for(token), token, user_id, self, settings)


def _message(content: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "timestamp": int(time.time() * 1000),
        "item": {"type": "message", "content": [content]},
    }


def reset_message() -> dict[str, Any]:
    return _message({"type": "reset"})


def request_message(request: ImagineRequest) -> dict[str, Any]:
    return _message(
        {
            "type": "input_text",
            "requestId": f"img_{uuid.uuid4().hex}",
            "text": request.prompt,
            "properties": {
                "section_count": 0,
                "is_kids_mode": False,
                "enable_nsfw": False,
                "skip_upsampler": False,
                "enable_side_by_side": True,
                "is_initial": False,
                "aspect_ratio": request.aspect_ratio,
                "enable_pro": request.pro,
                "num_generations": request.generations,
            },
        }
    )


def decode_blob(value: Any) -> bytes | None:
    """An inline image: base64, or a ``data:…;base64,`` URL. None when absent or unreadable (the frame's
    ``url`` is the fallback)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[:5].lower() == "data:":
        header, sep, text = text.partition(",")
        if not sep or ";base64" not in header.lower():
            return None
    text = "".join(text.split())
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data or None


def _text(obj: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _error(obj: dict[str, Any]) -> ErrorEvent:
    inner = obj.get("error")
    source = inner if isinstance(inner, dict) else obj
    message = _text(source, "message", "err_msg", "error") or (inner if isinstance(inner, str) else "")
    message = message or "grok.com's Imagine reported an error"
    code: Any = source.get("code", source.get("err_code"))
    number = code if isinstance(code, int) and not isinstance(code, bool) else None
    return ErrorEvent(message, number, is_rate_limit(code, message), is_anti_bot(code, message))


@dataclass
class _Slot:
    """One image of the answer, by grok.com's id for it."""

    index: int
    progress: int = -1
    url: str = ""
    blob: Any = None
    finished: bool = False  # its verdict came
    awaiting: bool = False  # approved, but its picture has not arrived yet


class ImagineParser:
    """Turns Imagine frames into events; ``done`` once ``expected`` images are finished or an error came."""

    def __init__(self, expected: int, unknown: UnknownShapes = UNKNOWN_SHAPES) -> None:
        self.expected = expected
        self.finished = 0
        self.done = False
        self.unknown = unknown
        self._slots: dict[str, _Slot] = {}

    def feed(self, frame: str) -> list[Event]:
        events: list[Event] = []
        for obj in split_objects(frame):
            if not isinstance(obj, dict):
                self.unknown.note("imagine:not-an-object")
            elif not self.done:
                events.extend(self._frame(obj))
        return events

    def _frame(self, obj: dict[str, Any]) -> list[Event]:
        kind = obj.get("type")
        if kind == "error":
            self.done = True
            return [_error(obj)]
        if kind not in ("image", "json"):
            self.unknown.note(f"imagine:{kind if isinstance(kind, str) else '<none>'}")
            return []
        url = _text(obj, "url")
        key = _text(obj, "image_id", "job_id", "id") or url
        if not key:
            return []
        slot = self._slots.setdefault(key, _Slot(len(self._slots)))
        if kind == "image":
            return self._image(slot, obj, url)
        return self._verdict(slot, obj, url)

    def _image(self, slot: _Slot, obj: dict[str, Any], url: str) -> list[Event]:
        progress = obj.get("percentage_complete")
        progress = int(progress) if isinstance(progress, int | float) and not isinstance(progress, bool) else 100
        if progress >= 100:
            # The final picture waits for its verdict: a moderated image must never be handed out.
            slot.url, slot.blob = url or slot.url, obj.get("blob") or slot.blob
            return self._release(slot) if slot.awaiting else []
        if progress <= slot.progress or slot.finished:
            return []
        slot.progress = progress
        return [ImageProgress(slot.index, progress, url=url, data=decode_blob(obj.get("blob")))]

    def _verdict(self, slot: _Slot, obj: dict[str, Any], url: str) -> list[Event]:
        moderated = obj.get("moderated") is True
        if slot.finished or (obj.get("current_status") != "completed" and not moderated):
            return []
        slot.finished = True
        if moderated:
            return self._count([ImageProgress(slot.index, 100, True, final=True)])
        slot.url, slot.blob = url or slot.url, obj.get("blob") or slot.blob
        if not (slot.url or slot.blob):
            slot.awaiting = True  # approved before its picture arrived: the picture frame completes it
            return []
        return self._release(slot)

    def _release(self, slot: _Slot) -> list[Event]:
        slot.awaiting = False
        return self._count([ImageProgress(slot.index, 100, url=slot.url, data=decode_blob(slot.blob), final=True)])

    def _count(self, events: list[Event]) -> list[Event]:
        self.finished += 1
        if self.finished >= self.expected:
            self.done = True
            events.append(End(""))
        return events


async def stream_imagine(
    transport: WebSocketOpener, token: str, user_id: str, request: ImagineRequest, settings: RuntimeSettings
) -> AsyncGenerator[list[Event], None]:
    """One Imagine generation for the account (see the module docstring). The socket is closed when the
    answer ends or the consumer stops iterating (``aclose``); timeouts are the caller's."""
    url = imagine_url(settings.upstream_url)
    ws = await transport.websocket(url, ws_headers(token, user_id, settings), "")
    parser = ImagineParser(request.generations)
    try:
        await ws.send_json(reset_message())
        await ws.send_json(request_message(request))
        while not parser.done:
            frame = await ws.receive_text()
            if frame is None:
                if parser.finished:
                    yield [End("")]  # fewer than asked for, but those it finished are good
                    return
                raise UpstreamConnectionError("grok.com closed the Imagine connection before any image was finished")
            batch = parser.feed(frame)
            for event in batch:
                if isinstance(event, ErrorEvent) and event.anti_bot:  # the egress's refusal, not the account's
                    what = "an anti-bot error event on the Imagine WebSocket"
                    await report_in_band_refusal(transport, "GET", url, what, event.message)
            if batch:
                yield batch
    finally:
        await release(ws)
