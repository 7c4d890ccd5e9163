"""``POST /v1/images/generations`` and ``POST /v1/images/edits``: the OpenAI Images API over grok.com's
Imagine. A generation is one Imagine WebSocket request (4, 8 or 12 images, the fewest that cover ``n``), an
edit one ``imagine-image-edit`` request; either costs one query of its Imagine window. The answer is JSON,
or with ``stream: true`` OpenAI's image streaming events (``image_stream``)."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable

from msgspec import UNSET, Struct, UnsetType
from starlette.requests import Request
from starlette.responses import Response

from ..edge import (
    ClientGone,
    authenticate,
    authorize,
    json_response,
    record,
    recorder,
    services,
    sse_response,
    while_connected,
)
from ..services import Services
from .image_request import ImageOrder, edit_order, generation_order
from .image_results import ImageReader, Shot, picture
from .image_stream import stream_images

log = logging.getLogger("grok2api.images")

OrderBuilder = Callable[[Request, Services], Awaitable[ImageOrder]]


class ImageData(Struct, kw_only=True, omit_defaults=True):
    url: str | UnsetType = UNSET
    b64_json: str | UnsetType = UNSET


class ImagesResponse(Struct, kw_only=True):
    created: int
    data: list[ImageData]


async def image_generations(request: Request) -> Response:
    return await _handle(request, generation_order)


async def image_edits(request: Request) -> Response:
    return await _handle(request, edit_order)


async def _handle(request: Request, build: OrderBuilder) -> Response:
    svc = services(request)
    key = authenticate(request)
    order = await build(request, svc)
    await authorize(request, key, order.spec.id)
    # OpenAI clients fetch the url themselves, so it must be absolute even without base_url.
    base_url = svc.settings.base_url or str(request.base_url).rstrip("/")
    try:
        if not order.stream:
            response = await while_connected(request, _complete(svc, order, base_url))
            record(request, True)
            return json_response(response)
        # Until the first event nothing is streaming yet, so failover and errors are still plain JSON.
        answer = await while_connected(request, svc.gateway.open_media(order.job))
    except ClientGone:
        log.info("client went away before its images were ready; upstream call cancelled")
        return Response(status_code=499)
    return sse_response(stream_images(answer, order, svc.media, svc.settings, recorder(request)))


async def _complete(svc: Services, order: ImageOrder, base_url: str) -> ImagesResponse:
    answer = await svc.gateway.open_media(order.job)
    reader = ImageReader(answer, order.n)
    try:
        finals: list[Shot] = [shot async for shot in reader.shots() if shot.final]
    finally:
        await answer.finish()
    if not finals:
        raise reader.nothing_error()
    if len(finals) < order.n:
        log.info("asked for %d images, grok.com made %d", order.n, len(finals))
    settings = svc.settings
    as_b64 = order.response_format == "b64_json"
    pictures = await asyncio.gather(
        *(picture(svc.media, shot, answer.token, settings, need_bytes=as_b64) for shot in finals)
    )
    data = [
        ImageData(b64_json=base64.b64encode(p.data or b"").decode())
        if as_b64
        else ImageData(url=svc.media.public_url(p.name, settings, base_url))
        for p in pictures
    ]
    return ImagesResponse(created=int(time.time()), data=data)
