"""Grok's events as neutral answer deltas: filtered tags dropped, reasoning shown or hidden, search
results and media progress written as reasoning, generated media as links, ``stop``/``max_tokens``
applied to the visible text. Every client API gets the same words this way."""

from __future__ import annotations

from typing import Protocol

from ..errors import ContentModerated, RateLimited, UpstreamError
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
from .events import ReasoningDelta, TextDelta
from .limits import OutputLimit

Delta = TextDelta | ReasoningDelta


class MediaLinks(Protocol):
    async def image_markdown(self, paths: list[str], token: str, settings: RuntimeSettings) -> str: ...
    async def video_markdown(self, path: str, token: str, settings: RuntimeSettings) -> str: ...


def _deltas(text: str = "", reasoning: str = "") -> list[Delta]:
    out: list[Delta] = []
    if reasoning:
        out.append(ReasoningDelta(reasoning))
    if text:
        out.append(TextDelta(text))
    return out


class AnswerReader:
    """Reads one upstream answer. Reasoning shows only before the answer text begins (media progress
    excepted: Grok announces images in text first); ``content``/``reasoning`` keep what was produced."""

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
        self.show = settings.show_thinking
        self.answer_started = False
        self.saw_text = False
        self.video_pending = False  # progress seen, no video yet
        self.content_parts: list[str] = []
        self.reasoning_parts: list[str] = []

    def _reason(self, text: str) -> list[Delta]:
        if not self.show or self.answer_started or not text:
            return []
        text = self.reason_filter.feed(text)
        if text:
            self.reasoning_parts.append(text)
        return _deltas(reasoning=text)

    def _progress(self, text: str) -> list[Delta]:
        if not self.answer_started or not self.show:
            return self._reason(text)
        self.reasoning_parts.append(text)
        return _deltas(reasoning=text)

    def _close_reasoning(self) -> str:
        """The reasoning phase is over: what the reasoning filter held back."""
        held = self.reason_filter.flush() if self.show else ""
        if held:
            self.reasoning_parts.append(held)
        return held

    def _content(self, text: str) -> list[Delta]:
        held = ""
        if not self.answer_started:
            self.answer_started = True
            held = self._close_reasoning()
        text = self.limit.feed(text)
        if text:
            self.content_parts.append(text)
        return _deltas(text, held)

    @property
    def finish_reason(self) -> str | None:
        """Set once ``stop`` or ``max_tokens`` ended the answer early ("stop" / "length")."""
        return self.limit.finish_reason

    async def read(self, event: Event) -> list[Delta]:
        """The deltas one upstream event adds. Raises GatewayError for an error grok.com reported."""
        deltas = self.read_now(event)
        if deltas is not None:
            return deltas
        if isinstance(event, Images):
            markdown = await self.media.image_markdown(event.urls, self.token, self.settings)
            return self._content(self.text_filter.flush() + ("\n" if self.saw_text else "") + markdown)
        assert isinstance(event, Video)
        self.video_pending = False
        if event.url is None:
            raise ContentModerated("grok.com moderated the video; nothing was generated. Try another prompt or image.")
        return self._content(await self.media.video_markdown(event.url, self.token, self.settings))

    def read_now(self, event: Event) -> list[Delta] | None:
        """``read`` without waiting, for every event but generated media (which needs its links made: None,
        and ``read`` does it). Every text token passes here, so no coroutine is made for one."""
        if self.limit.finish_reason is not None:
            return []  # the client's limit ended the answer; the rest is not sent
        if isinstance(event, Text):
            self.saw_text = True
            return self._content(self.text_filter.feed(event.text))
        if isinstance(event, Reasoning):
            return self._reason(event.text)
        if isinstance(event, Images | Video):
            return None
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
        if isinstance(event, End):
            if not self.saw_text and event.message:
                self.saw_text = True
                return self._content(self.text_filter.feed(event.message))
            return []
        if isinstance(event, ErrorEvent):
            message = f"grok.com reported an error mid-answer: {event.message.rstrip('. ')}."
            if event.rate_limited:
                raise RateLimited(message + " The account hit its usage limit; retry the request.")
            raise UpstreamError(message)
        return []

    def finish(self) -> list[Delta]:
        """The end of the upstream answer: what filters and limits held back. Raises UpstreamError when a
        video was announced but never came."""
        if self.video_pending:
            self.video_pending = False
            raise UpstreamError("grok.com stopped before the video was ready; nothing was generated. Try again.")
        held = "" if self.answer_started else self._close_reasoning()
        tail = self.limit.feed(self.text_filter.flush()) + self.limit.flush()
        if tail:
            self.content_parts.append(tail)
        return _deltas(tail, held)

    @property
    def content(self) -> str:
        return "".join(self.content_parts)

    @property
    def reasoning(self) -> str:
        return "".join(self.reasoning_parts)
