"""``stream: true`` on the Images API: OpenAI's image streaming events as SSE, the way the openai SDK reads
them. Previews become ``image_generation.partial_image`` (``image_edit.…`` for edits) with a running
``partial_image_index``; each finished image becomes one ``….completed`` event with its bytes and
``usage``. An error after the stream started is an ``error`` event holding the OpenAI error envelope."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Callable

import msgspec
from msgspec import UNSET, Struct, UnsetType

from ..conversation.events import estimate_tokens
from ..errors import GatewayError
from ..gateway import Answer
from ..media.service import MediaService
from ..settings import RuntimeSettings
from .image_request import ImageOrder
from .image_results import ImageReader, format_of, picture, preview_bytes, size_of

log = logging.getLogger("grok2api.images")
_ENCODER = msgspec.json.Encoder()


class InputTokensDetails(Struct, kw_only=True):
    image_tokens: int
    text_tokens: int


class ImageUsage(Struct, kw_only=True):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    total_tokens: int


class ImageStreamEvent(Struct, kw_only=True):
    type: str
    b64_json: str
    created_at: int
    size: str
    quality: str = "auto"
    background: str = "auto"
    output_format: str = "jpeg"
    partial_image_index: int | UnsetType = UNSET
    usage: ImageUsage | UnsetType = UNSET


def _frame(event: str, payload: bytes) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"


def _usage(order: ImageOrder) -> ImageUsage:
    text = estimate_tokens(order.prompt)
    return ImageUsage(
        input_tokens=text,
        input_tokens_details=InputTokensDetails(image_tokens=0, text_tokens=text),
        output_tokens=0,
        total_tokens=text,
    )


async def stream_images(
    answer: Answer,
    order: ImageOrder,
    media: MediaService,
    settings: RuntimeSettings,
    on_end: Callable[[bool], None] | None = None,
) -> AsyncIterator[bytes]:
    """The SSE body of one answer; ``on_end`` learns whether it ended well."""
    prefix = "image_generation" if order.kind == "generation" else "image_edit"
    reader = ImageReader(answer, order.n)
    created = int(time.time())
    partials = 0
    ok = False
    try:
        try:
            async for shot in reader.shots():
                index: int | UnsetType = UNSET
                usage: ImageUsage | UnsetType = UNSET
                if not shot.final:
                    if order.partial_images is not None and partials >= order.partial_images:
                        continue
                    data = await preview_bytes(media, shot, answer.token, settings)
                    if data is None:
                        continue
                    kind, index = f"{prefix}.partial_image", partials
                    partials += 1
                else:
                    pic = await picture(media, shot, answer.token, settings, need_bytes=True)
                    assert pic.data is not None  # need_bytes: the bytes, or an error
                    data, kind, usage = pic.data, f"{prefix}.completed", _usage(order)
                event = ImageStreamEvent(
                    type=kind,
                    b64_json=base64.b64encode(data).decode(),
                    created_at=created,
                    size=size_of(data, order.size),
                    output_format=format_of(data),
                    partial_image_index=index,
                    usage=usage,
                )
                yield _frame(kind, _ENCODER.encode(event))
            if not reader.found:
                raise reader.nothing_error()
            ok = True
        except GatewayError as err:
            log.info("image stream ended with an error: %s", err.message)
            yield _frame("error", err.to_json())
    except (GeneratorExit, asyncio.CancelledError):
        ok = True  # the client left: not the gateway's failure
        raise
    finally:
        if on_end is not None:
            on_end(ok)
        await answer.finish()
