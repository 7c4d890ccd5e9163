"""Turn Grok events into OpenAI output: SSE chunks for streams, one ChatCompletion otherwise.

Both paths share one ``Translator`` so filtering, reasoning and media render identically.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from ..errors import GatewayError, RateLimited, StalledMidAnswer, UpstreamError
from ..gateway import Answer
from ..grok.events import (
    End,
    ErrorEvent,
    Event,
    ImageProgress,
    Images,
    Reasoning,
    SearchResults,
    Text,
    Video,
    VideoProgress,
)
from ..grok.markup import TagFilter
from ..settings import RuntimeSettings
from .limits import OutputLimit
from .schemas import (
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    ResponseMessage,
    Usage,
    encode,
)

log = logging.getLogger("grok2api.render")
DONE = b"data: [DONE]\n\n"


class MediaLinks(Protocol):
    async def image_markdown(self, paths: list[str], token: str, settings: RuntimeSettings) -> str: ...
    async def video_markdown(self, path: str, token: str, settings: RuntimeSettings) -> str: ...


class ContentModerated(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "content_policy_violation"


def estimate_tokens(text: str) -> int:
    """A cheap token estimate: ~4 bytes of UTF-8 per token, at least 1 for non-empty text."""
    return (len(text.encode("utf-8")) + 3) // 4 if text else 0


class Piece:
    """What one event adds to the answer: visible content and/or reasoning."""

    __slots__ = ("content", "reasoning")

    def __init__(self, content: str = "", reasoning: str = "") -> None:
        self.content = content
        self.reasoning = reasoning


class Translator:
    def __init__(
        self, settings: RuntimeSettings, media: MediaLinks, token: str, limit: OutputLimit | None = None
    ) -> None:
        self.limit = limit or OutputLimit()
        self.settings = settings
        self.media = media
        self.token = token
        tags = settings.filtered_tag_list()
        self.text_filter = TagFilter(tags)
        self.reason_filter = TagFilter(tags)
        self.think_tags = settings.think_format == "think_tags"
        self.show = settings.show_thinking
        self.answer_started = False
        self.think_open = False
        self.saw_text = False
        self.video_pending = False  # progress seen, no video yet
        self.content_parts: list[str] = []
        self.reasoning_parts: list[str] = []

    def _reason(self, text: str) -> Piece:
        if not self.show or self.answer_started or not text:
            return Piece()
        text = self.reason_filter.feed(text)
        if not text:
            return Piece()
        self.reasoning_parts.append(text)
        if self.think_tags:
            if not self.think_open:
                self.think_open = True
                text = "<think>\n" + text
            return Piece(content=text)
        return Piece(reasoning=text)

    def _progress(self, text: str) -> Piece:
        """Media progress is reasoning even once the answer began (Grok announces images in text
        first); a <think> block cannot reopen, so with think tags it only shows before the answer."""
        if not self.answer_started or not self.show:
            return self._reason(text)
        if self.think_tags:
            return Piece()
        self.reasoning_parts.append(text)
        return Piece(reasoning=text)

    def _close_reasoning(self) -> Piece:
        """The reasoning phase is over: release what the reasoning filter held back (and close <think>)."""
        held = self.reason_filter.flush() if self.show else ""
        if held:
            self.reasoning_parts.append(held)
        if not self.think_tags:
            return Piece(reasoning=held)
        if held and not self.think_open:
            held = "<think>\n" + held
            self.think_open = True
        if not self.think_open:
            return Piece()
        self.think_open = False
        return Piece(content=held + "\n</think>\n")

    def _content(self, text: str) -> Piece:
        closing = Piece()
        if not self.answer_started:
            self.answer_started = True
            closing = self._close_reasoning()
        text = self.limit.feed(text)
        if text:
            self.content_parts.append(text)
        return Piece(content=closing.content + text, reasoning=closing.reasoning)

    @property
    def finish_reason(self) -> str | None:
        """Set once ``stop`` or ``max_tokens`` ended the answer early ("stop" / "length")."""
        return self.limit.finish_reason

    async def translate(self, event: Event) -> Piece:
        if self.limit.finish_reason is not None:
            return Piece()  # the client's limit ended the answer; the rest is not sent
        if isinstance(event, Text):
            self.saw_text = True
            return self._content(self.text_filter.feed(event.text))
        if isinstance(event, Reasoning):
            return self._reason(event.text)
        if isinstance(event, SearchResults):
            lines = [
                f'\n- [{r.title}]({r.url} "{r.preview.replace(chr(10), " ").replace(chr(34), chr(39))}")'
                for r in event.results
            ]
            return self._reason("".join(lines) + "\n")
        if isinstance(event, ImageProgress):
            if event.moderated:
                return self._progress(f"Image {event.index + 1} was moderated by grok.com\n")
            return self._progress(f"Generating image {event.index + 1}: {event.progress}%\n")
        if isinstance(event, VideoProgress):
            self.video_pending = True
            return self._progress(f"Generating video: {event.progress}%\n")
        if isinstance(event, Images):
            markdown = await self.media.image_markdown(event.urls, self.token, self.settings)
            return self._content(self.text_filter.flush() + ("\n" if self.saw_text else "") + markdown)
        if isinstance(event, Video):
            self.video_pending = False
            if event.url is None:
                raise ContentModerated(
                    "grok.com moderated the video; nothing was generated. Try another prompt or image."
                )
            html = await self.media.video_markdown(event.url, self.token, self.settings)
            return self._content(html)
        if isinstance(event, End):
            if not self.saw_text and event.message:
                self.saw_text = True
                return self._content(self.text_filter.feed(event.message))
            return Piece()
        if isinstance(event, ErrorEvent):
            message = f"grok.com reported an error mid-answer: {event.message.rstrip('. ')}."
            if event.rate_limited:
                raise RateLimited(message + " The account hit its usage limit; retry the request.")
            raise UpstreamError(message)
        return Piece()

    def finish(self) -> Piece:
        if self.video_pending:
            self.video_pending = False
            raise UpstreamError("grok.com stopped before the video was ready; nothing was generated. Try again.")
        closing = Piece() if self.answer_started else self._close_reasoning()
        tail = self.limit.feed(self.text_filter.flush()) + self.limit.flush()
        if tail:
            self.content_parts.append(tail)
        return Piece(content=closing.content + tail, reasoning=closing.reasoning)

    @property
    def content(self) -> str:
        return "".join(self.content_parts)

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)


def _usage(prompt_text: str, tr: Translator) -> Usage:
    p = estimate_tokens(prompt_text)
    c = estimate_tokens(tr.content) + estimate_tokens(tr.reasoning)
    return Usage(prompt_tokens=p, completion_tokens=c, total_tokens=p + c)


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


class ChunkWriter:
    """Builds SSE frames that share one id, creation time and model."""

    def __init__(self, model: str) -> None:
        self.id = completion_id()
        self.created = int(time.time())
        self.model = model

    def frame(self, delta: Delta, finish: str | None = None, usage: Usage | None = None) -> bytes:
        chunk = ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[ChunkChoice(delta=delta, finish_reason=finish)],
        )
        if usage is not None:
            chunk.usage = usage
        return b"data: " + encode(chunk) + b"\n\n"

    def usage_frame(self, usage: Usage) -> bytes:
        chunk = ChatCompletionChunk(id=self.id, created=self.created, model=self.model, choices=[], usage=usage)
        return b"data: " + encode(chunk) + b"\n\n"

    def piece(self, piece: Piece) -> bytes | None:
        if piece.content and piece.reasoning:
            return self.frame(Delta(content=piece.content, reasoning_content=piece.reasoning))
        if piece.content:
            return self.frame(Delta(content=piece.content))
        if piece.reasoning:
            return self.frame(Delta(reasoning_content=piece.reasoning))
        return None


def error_frame(err: GatewayError) -> bytes:
    return b"data: " + err.to_json() + b"\n\n"


async def stream_answer(
    answer: Answer,
    model: str,
    prompt_text: str,
    media: MediaLinks,
    include_usage: bool,
    limit: OutputLimit | None = None,
    on_end: Callable[[bool], None] | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body: role delta, content/reasoning deltas, a finish chunk, optional usage, [DONE].
    ``on_end`` learns whether the stream ended well (a break after the first byte is a failure).
    Frames that are ready together leave in one write: the role delta with the first batch, and the
    closing frames with [DONE]."""
    writer = ChunkWriter(model)
    tr = Translator(answer.settings, media, answer.token, limit)
    ok = False
    try:
        opening = [writer.frame(Delta(role="assistant", content=""))]
        closing: list[bytes] = []
        try:
            async for batch in answer.batches():
                # One write per upstream read: under load a read carries many events.
                out, opening = opening, []
                failed: GatewayError | None = None
                for event in batch:
                    try:
                        frame = writer.piece(await tr.translate(event))
                    except GatewayError as err:
                        failed = err  # what came before the error is still sent
                        break
                    if frame is not None:
                        out.append(frame)
                if out:
                    yield b"".join(out)
                if failed is not None:
                    raise failed
                if tr.finish_reason is not None:
                    break  # stop sequence or max_tokens: closing the upstream call happens in finish()
            frame = writer.piece(tr.finish())
            if frame is not None:
                closing.append(frame)
            closing.append(writer.frame(Delta(), finish=tr.finish_reason or "stop"))
            ok = True
        except StalledMidAnswer:
            log.warning("upstream stalled mid-stream on account %s; ending the stream", answer.lease.account.id)
            try:
                frame = writer.piece(tr.finish())
            except GatewayError as err:  # e.g. a video that never arrived
                closing.append(error_frame(err))
            else:
                if frame is not None:
                    closing.append(frame)
                closing.append(writer.frame(Delta(), finish="stop"))
        except GatewayError as err:
            closing.append(error_frame(err))
        if include_usage:
            closing.append(writer.usage_frame(_usage(prompt_text, tr)))
        closing.append(DONE)
        yield b"".join(opening + closing)
    except (GeneratorExit, asyncio.CancelledError):
        ok = True  # the client left: not the gateway's failure
        raise
    finally:
        if on_end is not None:
            on_end(ok)
        await answer.finish()


async def timeout_stream(model: str, prompt_text: str = "", include_usage: bool = False) -> AsyncIterator[bytes]:
    """A stream whose upstream never answered: a clean, empty ending (with usage when asked for)."""
    writer = ChunkWriter(model)
    yield writer.frame(Delta(role="assistant", content=""))
    yield writer.frame(Delta(), finish="stop")
    if include_usage:
        prompt_tokens = estimate_tokens(prompt_text)
        yield writer.usage_frame(Usage(prompt_tokens=prompt_tokens, completion_tokens=0, total_tokens=prompt_tokens))
    yield DONE


async def collect_answer(
    answer: Answer, model: str, prompt_text: str, media: MediaLinks, limit: OutputLimit | None = None
) -> ChatCompletion:
    """The non-stream answer. Raises GatewayError (the caller maps it to a JSON error)."""
    tr = Translator(answer.settings, media, answer.token, limit)
    # think_tags puts reasoning into content; otherwise it goes to reasoning_content.
    content: list[str] = []
    reasoning: list[str] = []
    try:
        async for event in answer.events():
            piece = await tr.translate(event)
            content.append(piece.content)
            reasoning.append(piece.reasoning)
            if tr.finish_reason is not None:
                break
        piece = tr.finish()
        content.append(piece.content)
        reasoning.append(piece.reasoning)
    finally:
        await answer.finish()
    message = ResponseMessage(content="".join(content).strip())
    if "".join(reasoning):
        message.reasoning_content = "".join(reasoning)
    return ChatCompletion(
        id=completion_id(),
        created=int(time.time()),
        model=model,
        choices=[Choice(message=message, finish_reason=tr.finish_reason or "stop")],
        usage=_usage(prompt_text, tr),
    )
