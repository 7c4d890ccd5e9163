"""The images of an Imagine answer (a generation or an edit), as the Images API hands them out: previews
and finished images in order, moderated ones counted and dropped, at most ``n``; and each finished image
made into a ``Picture`` (cached, so ``/images/{name}`` serves it, with its bytes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from ..errors import ContentModerated, GatewayError, RateLimited, UpstreamError
from ..gateway import Answer
from ..grok.events import ErrorEvent, ImageProgress, Images
from ..image_input import image_dimensions, sniff_image
from ..media.service import FETCH_ERRORS, MediaService
from ..settings import RuntimeSettings

log = logging.getLogger("grok2api.images")


@dataclass
class Shot:
    """A preview (``final`` False) or a finished image, as an asset path and/or its bytes."""

    index: int
    url: str
    data: bytes | None
    final: bool


@dataclass
class Picture:
    name: str  # the public name under /images/
    data: bytes | None  # None when it could not be downloaded now (its link re-fetches on demand)


class ImageReader:
    """Reads one answer's events into shots. Previews are passed on only for the first ``n`` images, the
    ones a client is most likely to get."""

    def __init__(self, answer: Answer, n: int) -> None:
        self.answer = answer
        self.n = n
        self.found = 0
        self.moderated = 0

    async def shots(self) -> AsyncGenerator[Shot, None]:
        seen: set[str] = set()
        async for event in self.answer.events():
            if isinstance(event, ErrorEvent):
                message = f"grok.com reported an error while drawing: {event.message}"
                raise RateLimited(message) if event.rate_limited else UpstreamError(message)
            finals: list[Shot] = []
            if isinstance(event, ImageProgress):
                if not event.final:
                    if not event.moderated and event.index < self.n and (event.url or event.data):
                        yield Shot(event.index, event.url, event.data, final=False)
                    continue
                if event.moderated:
                    self.moderated += 1
                    continue
                finals.append(Shot(event.index, event.url, event.data, final=True))
            elif isinstance(event, Images):  # an edit's closing list repeats its images
                finals.extend(Shot(-1, url, None, final=True) for url in event.urls)
            for shot in finals:
                if not (shot.url or shot.data) or (shot.url and shot.url in seen):
                    continue
                seen.add(shot.url)
                self.found += 1
                yield shot
                if self.found >= self.n:
                    return

    def nothing_error(self) -> GatewayError:
        if self.moderated:
            return ContentModerated(
                "grok.com moderated every image it drew; nothing was generated. Try another prompt."
            )
        return UpstreamError("grok.com finished without an image. Try again or rephrase the prompt.")


async def picture(
    media: MediaService, shot: Shot, token: str, settings: RuntimeSettings, *, need_bytes: bool
) -> Picture:
    """Cache a finished image and return it. Bytes grok.com sent inline are kept as they are; otherwise
    the asset is downloaded with the owning account. A failed download is an UpstreamError when the
    bytes are needed, else a link that re-fetches when it is opened."""
    if shot.data is not None:
        try:
            return Picture(await media.keep(shot.url, shot.data, token, settings), shot.data)
        except FETCH_ERRORS as exc:
            if not shot.url:
                raise UpstreamError("grok.com sent an image that could not be read.") from exc
            log.warning("an inline image could not be kept (%s); downloading it instead", exc)
    name = await media.remember(shot.url, token)
    try:
        cached = await media.fetch(name, shot.url, token, settings)
        return Picture(name, await asyncio.to_thread(cached.path.read_bytes))
    except FETCH_ERRORS as exc:
        if need_bytes:
            raise UpstreamError(
                "The image was generated but could not be downloaded from grok.com; retry, or ask for "
                "response_format=url."
            ) from None
        log.warning("could not cache %s (the link re-fetches on demand): %s", name, exc)
        return Picture(name, None)


async def preview_bytes(media: MediaService, shot: Shot, token: str, settings: RuntimeSettings) -> bytes | None:
    """A preview's picture, or None when it cannot be had (previews are best effort)."""
    if shot.data is not None:
        return shot.data
    try:
        return await media.download(shot.url, token, settings)
    except FETCH_ERRORS as exc:
        log.info("a preview could not be downloaded: %s", exc)
        return None


def size_of(data: bytes | None, fallback: str) -> str:
    found = image_dimensions(data) if data else None
    return f"{found[0]}x{found[1]}" if found else fallback


def format_of(data: bytes | None) -> str:
    """OpenAI's ``output_format`` for the bytes: png, webp or jpeg."""
    mime = sniff_image(data) if data else None
    return {"image/png": "png", "image/webp": "webp"}.get(mime or "", "jpeg")
