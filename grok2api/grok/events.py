"""Typed events parsed from Grok's streamed answer, and the tolerant line parser that makes them.

Framing tolerated: NDJSON, ``data:``-prefixed SSE lines, ``event:`` lines, ``[DONE]``, blank and
malformed lines (skipped), several JSON objects on one line, unknown fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from .citations import InlineCitations, card_data


class Text(msgspec.Struct, gc=False):
    text: str


class Reasoning(msgspec.Struct, gc=False):
    text: str


class SearchResult(msgspec.Struct, gc=False):
    title: str
    url: str
    preview: str = ""


class SearchResults(msgspec.Struct):
    results: list[SearchResult]


class ImageProgress(msgspec.Struct):
    """One image's progress. Imagine answers also carry the image: a preview below 100 %, the final one
    with ``final`` (as an asset ``url``, or its bytes in ``data`` when grok.com sent them inline)."""

    index: int
    progress: int
    moderated: bool = False
    url: str = ""
    data: bytes | None = None
    final: bool = False


class Images(msgspec.Struct):
    urls: list[str]  # asset paths relative to the assets host


class VideoProgress(msgspec.Struct):
    progress: int


class Video(msgspec.Struct):
    url: str | None
    moderated: bool = False
    thumbnail: str | None = None


class ErrorEvent(msgspec.Struct):
    """An error reported inside a 200 stream. ``rate_limited`` marks usage-limit errors (code 8);
    ``anti_bot`` marks grok.com's anti-bot rejection (the egress's problem, not the account's)."""

    message: str
    code: int | None = None
    rate_limited: bool = False
    anti_bot: bool = False


class End(msgspec.Struct):
    """The final model response: the full answer text and the upstream model name."""

    message: str
    model: str | None = None


Event = Text | Reasoning | SearchResults | ImageProgress | Images | VideoProgress | Video | ErrorEvent | End

_DECODER = msgspec.json.Decoder()
_RATE_MARKERS = ("usage limit", "usage quota", "rate limit", "too many requests")


def is_rate_limit(code: Any, message: str) -> bool:
    return code == 8 or any(m in message.lower() for m in _RATE_MARKERS)


def is_anti_bot(code: Any, message: str) -> bool:
    """grok.com's anti-bot rejection: code 7 over HTTP, ``anti_bot`` in WebSocket error events."""
    return code in (7, "anti_bot") or "anti-bot" in message.lower()


def _error(obj: Any) -> ErrorEvent:
    while isinstance(obj, dict) and isinstance(obj.get("error"), dict) and not obj.get("message"):
        obj = obj["error"]  # {"error": {"error": {...}}}
    code: Any = None
    if isinstance(obj, dict):
        message: Any = obj.get("message") or obj.get("error")
        code = obj.get("code")
    else:
        message = obj
    if isinstance(message, int | float) and not isinstance(message, bool):
        message = str(message)
    message = message if isinstance(message, str) and message else "upstream error"  # never a Python repr
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    return ErrorEvent(message, code, is_rate_limit(code, message), is_anti_bot(code, message))


def split_objects(line: str) -> list[Any]:
    """Decode one line; if it holds several concatenated objects, decode each by brace matching."""
    try:
        return [_DECODER.decode(line)]
    except msgspec.DecodeError:
        pass
    return _packed_objects(line) or _matched_objects(line)


def _packed_objects(line: str) -> list[Any] | None:
    """Objects sent back to back (``{…}{…}``, as grok.com packs events), cut where one ``}`` meets the next
    ``{`` and decoded whole; None unless that accounts for the entire line (a ``}{`` inside a string is
    skipped: the piece then fails to decode and the cut moves to the next one)."""
    out: list[Any] = []
    start = 0
    cut = line.find("}{")
    while cut >= 0:
        try:
            obj = _DECODER.decode(line[start : cut + 1])
        except msgspec.DecodeError:
            pass
        else:
            if not isinstance(obj, dict):
                return None
            out.append(obj)
            start = cut + 1
        cut = line.find("}{", cut + 1)
    if not out:
        return None
    try:
        obj = _DECODER.decode(line[start:])
    except msgspec.DecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    out.append(obj)
    return out


def _matched_objects(line: str) -> list[Any]:
    """Every well-formed object on the line, found by brace matching (what is malformed is skipped)."""
    out: list[Any] = []
    depth, start, in_str, escaped = 0, -1, False, False
    for i, ch in enumerate(line):
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0 and start >= 0:
                try:
                    out.append(_DECODER.decode(line[start : i + 1]))
                except msgspec.DecodeError:
                    pass
    return out


class StreamParser:
    """Turns raw lines into events. Keeps the little state Grok's protocol needs (image mode,
    last progress values, video URL already sent, citation cards). ``finish`` releases answer text
    held back for a citation card that never came, when the stream ends without a final response."""

    def __init__(self) -> None:
        self.image_mode = False
        self._video_done = False
        self._video_progress = -1
        self._image_seen: dict[int, int] = {}
        self._image_keys: dict[str, int] = {}
        self.model: str | None = None
        self._citations = InlineCitations()

    def finish(self) -> list[Event]:
        tail = self._citations.finish()
        return [Text(tail)] if tail else []

    def feed_line(self, raw: bytes | str) -> Iterator[Event]:
        line = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        line = line.strip()
        if not line:
            return
        if line.startswith("data:"):
            line = line[5:].strip()
        elif line.startswith(("event:", "id:", "retry:", ":")):
            return
        if not line or line == "[DONE]":
            return
        for obj in split_objects(line):
            if isinstance(obj, dict):
                yield from self._object(obj)

    def _object(self, obj: dict[str, Any]) -> Iterator[Event]:
        if "error" in obj and obj["error"]:
            yield _error(obj["error"])
            return
        result = obj.get("result")
        if not isinstance(result, dict):
            return
        resp = result.get("response")
        if isinstance(resp, dict):
            yield from self._response(resp)

    def _response(self, resp: dict[str, Any]) -> Iterator[Event]:
        if resp.get("error"):
            yield _error(resp["error"])
            return
        user = resp.get("userResponse")
        if isinstance(user, dict) and isinstance(user.get("model"), str):
            self.model = user["model"]
        video = resp.get("streamingVideoGenerationResponse")
        if isinstance(video, dict):
            yield from self._video(video)
            return
        if resp.get("imageAttachmentInfo") is not None or resp.get("doImgGen"):
            self.image_mode = True
        image = resp.get("streamingImageGenerationResponse") or resp.get("cachedImageGenerationResponse")
        if isinstance(image, dict):
            yield from self._image_progress(image)
        model_resp = resp.get("modelResponse")
        if isinstance(model_resp, dict):
            yield from self._final(model_resp)
            return
        search = resp.get("webSearchResults")
        if isinstance(search, dict) and isinstance(search.get("results"), list):
            results = [
                SearchResult(
                    str(r.get("title") or r.get("url") or ""), str(r.get("url") or ""), str(r.get("preview") or "")
                )
                for r in search["results"]
                if isinstance(r, dict) and r.get("url")
            ]
            if results:
                yield SearchResults(results)
            return
        if resp.get("toolUsageCardId") is not None or resp.get("messageTag") == "tool_usage_card":
            return  # the tool card markup itself carries nothing for the client
        card = resp.get("cardAttachment")
        if isinstance(card, dict):
            yield from self._card(card)
            return
        token = resp.get("token")
        if not isinstance(token, str) or not token:
            return  # list/dict tokens are internal structures, not text
        if resp.get("messageTag") == "header":
            token = f"\n\n{token}\n\n"
        if resp.get("isThinking"):
            yield Reasoning(token)
            return
        released = self._citations.add(token)  # <grok:render> citation tags become [[n]](url)
        if released:
            yield Text(released)

    def _card(self, card: dict[str, Any]) -> Iterator[Event]:
        data = card_data(card)
        card_id, url = data.get("id"), data.get("url")
        if isinstance(card_id, str) and card_id:
            released = self._citations.card(card_id, url if isinstance(url, str) else "")
            if released:
                yield Text(released)

    def _image_progress(self, image: dict[str, Any]) -> Iterator[Event]:
        index = image.get("imageIndex")
        if not isinstance(index, int):
            key = image.get("imageId")  # Imagine edit answers may name their images instead of numbering them
            if not isinstance(key, str) or not key:
                return
            index = self._image_keys.setdefault(key, len(self._image_keys))
        progress = image.get("progress")
        final = image.get("isFinal") is True
        if not isinstance(progress, int):
            if not final:
                return
            progress = 100
        if progress > self._image_seen.get(index, -1):
            self._image_seen[index] = progress
            url = image.get("imageUrl")
            yield ImageProgress(
                index,
                progress,
                bool(image.get("moderated")),
                url=url if isinstance(url, str) else "",
                final=final or progress >= 100,
            )

    def _video(self, video: dict[str, Any]) -> Iterator[Event]:
        progress = video.get("progress")
        if isinstance(progress, int) and progress > self._video_progress:
            self._video_progress = progress
            yield VideoProgress(progress)
        url = video.get("videoUrl")
        if self._video_done:
            return
        if isinstance(url, str) and url:
            self._video_done = True
            thumb = video.get("thumbnailImageUrl")
            yield Video(url, bool(video.get("moderated")), thumb if isinstance(thumb, str) else None)
        elif video.get("moderated"):
            self._video_done = True
            yield Video(None, True)

    def _final(self, model_resp: dict[str, Any]) -> Iterator[Event]:
        err = model_resp.get("error")
        if err:
            yield _error(err if isinstance(err, dict) else {"message": str(err)})
            return
        stream_errors = model_resp.get("streamErrors")
        if isinstance(stream_errors, list) and stream_errors:
            yield _error(stream_errors[0] if isinstance(stream_errors[0], dict) else {"message": str(stream_errors[0])})
            return
        yield from self.finish()
        urls = [u for u in model_resp.get("generatedImageUrls") or [] if isinstance(u, str) and u]
        if urls:
            yield Images(urls)
        if not self._video_done:
            for att in model_resp.get("fileAttachments") or []:
                if isinstance(att, str) and att.endswith((".mp4", ".webm", ".mov")):
                    self._video_done = True
                    yield Video(att)
                    break
        model = model_resp.get("model")
        message = model_resp.get("message")
        yield End(message if isinstance(message, str) else "", model if isinstance(model, str) else self.model)
