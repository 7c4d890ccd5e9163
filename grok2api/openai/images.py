"""``POST /v1/images/generations`` and ``POST /v1/images/edits``: the OpenAI Images API, served
through the chat flow. A generation is one chat turn asking Grok to draw; each turn returns up to
two images, so a larger ``n`` runs several turns (each charged like a chat image generation)."""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import time
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response

from ..edge import authenticate, authorize, capped_stream, decode, json_response, read_body, record, services
from ..errors import GatewayError, InvalidRequest, ModelNotFound, RateLimited, UpstreamError
from ..gateway import ChatJob
from ..grok.catalog import Catalog, ModelSpec
from ..grok.chat import ChatTurn
from ..grok.events import End, ErrorEvent, ImageProgress, Images, Text
from ..image_input import PreparedImage, prepare_bytes
from ..media.service import FETCH_ERRORS
from ..services import Services
from ..settings import RuntimeSettings
from .render import ContentModerated

log = logging.getLogger("grok2api.images")

DEFAULT_MODEL = "grok-fast"
IMAGES_PER_GENERATION = 2  # what one chat turn asks for (imageGenerationCount)
MAX_N = 10
MAX_ROUNDS = 3  # extra turns only while they keep producing images
MAX_EDIT_IMAGES = 4
# Clients written for OpenAI send these; they mean "the default image model" here.
_OPENAI_IMAGE_MODELS = ("dall-e-", "gpt-image-")
ResponseFormat = Literal["url", "b64_json"]


class GenerationRequest(Struct, kw_only=True):
    prompt: Annotated[str, Meta(min_length=1, max_length=32_000)]
    model: str | None = None
    n: Annotated[int, Meta(ge=1, le=MAX_N)] | None = None
    response_format: ResponseFormat | None = None
    stream: bool | None = None


class ImageData(Struct, kw_only=True, omit_defaults=True):
    url: str | UnsetType = UNSET
    b64_json: str | UnsetType = UNSET


class ImagesResponse(Struct, kw_only=True):
    created: int
    data: list[ImageData]


_GENERATION_DECODER = msgspec.json.Decoder(GenerationRequest)


@dataclass
class _Generation:
    token: str  # the account that owns the images (needed to download them)
    paths: list[str]
    moderated: bool
    text: str


@dataclass
class _Order:
    """What to make, however the request arrived."""

    spec: ModelSpec
    requested_model: str
    message: str
    images: list[PreparedImage]
    n: int
    response_format: ResponseFormat


def _image_model(catalog: Catalog, name: str | None) -> ModelSpec:
    if not name or name.startswith(_OPENAI_IMAGE_MODELS):
        spec = catalog.find(DEFAULT_MODEL)
        assert spec is not None
        return spec
    spec = catalog.find(name)
    if spec is None:
        raise ModelNotFound(
            f"The model {name!r} does not exist; omit model to use {DEFAULT_MODEL}. GET /v1/models lists the models.",
            param="model",
        )
    if spec.video:
        raise InvalidRequest(
            f"{spec.id} turns an image into a video; use it through /v1/chat/completions.", param="model"
        )
    return spec


async def _generate(svc: Services, job: ChatJob) -> _Generation:
    """One chat turn: the image paths Grok produced, and why there may be none."""
    answer = await svc.gateway.open(job)
    paths: list[str] = []
    moderated = False
    text: list[str] = []
    try:
        async for event in answer.events():
            if isinstance(event, Images):
                paths.extend(event.urls)
            elif isinstance(event, ImageProgress) and event.moderated:
                moderated = True
            elif isinstance(event, Text):
                text.append(event.text)
            elif isinstance(event, End) and not text:
                text.append(event.message)
            elif isinstance(event, ErrorEvent):
                message = f"grok.com reported an error while drawing: {event.message}"
                raise RateLimited(message) if event.rate_limited else UpstreamError(message)
    finally:
        await answer.finish()
    return _Generation(answer.token, paths, moderated, "".join(text))


async def _draw(svc: Services, order: _Order, settings: RuntimeSettings) -> list[tuple[str, str]]:
    """(asset path, owning token) for up to ``order.n`` images, running as many turns as needed."""
    job = ChatJob(ChatTurn(order.spec, order.message, order.images), order.requested_model, settings)
    found: list[tuple[str, str]] = []
    moderated = False
    text = ""
    first_error: GatewayError | None = None
    for _ in range(MAX_ROUNDS):
        turns = math.ceil((order.n - len(found)) / IMAGES_PER_GENERATION)
        results = await asyncio.gather(*(_generate(svc, job) for _ in range(turns)), return_exceptions=True)
        before = len(found)
        for result in results:
            if isinstance(result, GatewayError):
                first_error = first_error or result
            elif isinstance(result, BaseException):
                raise result
            else:
                found.extend((p, result.token) for p in result.paths)
                moderated = moderated or result.moderated
                text = text or result.text
        if len(found) >= order.n or len(found) == before:
            break
    if found:
        if len(found) < order.n:
            log.info("asked for %d images, grok.com made %d", order.n, len(found))
        return found[: order.n]
    if first_error is not None:
        raise first_error
    if moderated:
        raise ContentModerated("grok.com moderated the image; nothing was generated. Try another prompt.")
    raise UpstreamError(f"grok.com answered without an image: {text.strip()[:300]!r}. Try rephrasing the prompt.")


async def _item(svc: Services, path: str, token: str, order: _Order, base_url: str) -> ImageData:
    settings = svc.settings
    name = await svc.media.remember(path, token)
    if order.response_format == "url":
        try:
            await svc.media.fetch(name, path, token, settings)  # warm the cache: the client fetches next
        except FETCH_ERRORS as exc:
            log.warning("could not cache %s (the link re-fetches on demand): %s", name, exc)
        return ImageData(url=svc.media.public_url(name, settings, base_url))
    try:
        cached = await svc.media.fetch(name, path, token, settings)
        data = await asyncio.to_thread(cached.path.read_bytes)
    except FETCH_ERRORS:
        raise UpstreamError(
            "The image was generated but could not be downloaded from grok.com; retry, or ask for response_format=url."
        ) from None
    return ImageData(b64_json=base64.b64encode(data).decode())


async def _serve(request: Request, svc: Services, order: _Order) -> Response:
    settings = svc.settings
    found = await _draw(svc, order, settings)
    # OpenAI clients fetch the url themselves, so it must be absolute even without base_url.
    base_url = settings.base_url or str(request.base_url).rstrip("/")
    items = await asyncio.gather(*(_item(svc, p, t, order, base_url) for p, t in found))
    return json_response(ImagesResponse(created=int(time.time()), data=list(items)))


async def _handle(request: Request, build: str) -> Response:
    svc = services(request)
    key = authenticate(request)
    order = await (_generation_order(request, svc) if build == "generate" else _edit_order(request, svc))
    authorize(request, key, order.spec.id)
    response = await _serve(request, svc, order)
    record(request, True)
    return response


async def image_generations(request: Request) -> Response:
    return await _handle(request, "generate")


async def image_edits(request: Request) -> Response:
    return await _handle(request, "edit")


async def _generation_order(request: Request, svc: Services) -> _Order:
    req = decode(_GENERATION_DECODER, await read_body(request, svc.boot.max_body_bytes))
    if req.stream:
        raise InvalidRequest("Streaming image generation is not supported; omit stream.", param="stream")
    if not req.prompt.strip():
        raise InvalidRequest("The prompt is empty.", param="prompt")
    spec = _image_model(svc.catalog, req.model)
    return _Order(
        spec, req.model or spec.id, f"Draw an image: {req.prompt.strip()}", [], req.n or 1, req.response_format or "url"
    )


async def _edit_order(request: Request, svc: Services) -> _Order:
    form = await _read_form(request, svc.boot.max_body_bytes)
    try:
        prompt = _text_field(form, "prompt")
        if not prompt:
            raise InvalidRequest("The prompt is empty.", param="prompt")
        files = [f for key in ("image", "image[]") for f in form.getlist(key) if isinstance(f, UploadFile)]
        if not files:
            raise InvalidRequest("Send the image to edit as the multipart file field 'image'.", param="image")
        if len(files) > MAX_EDIT_IMAGES:
            raise InvalidRequest(f"At most {MAX_EDIT_IMAGES} images can be edited at once.", param="image")
        images = [
            prepare_bytes(await f.read(), svc.settings, label=f"image {i + 1}", param="image")
            for i, f in enumerate(files)
        ]
        n = _int_field(form, "n", 1)
        if not 1 <= n <= MAX_N:
            raise InvalidRequest(f"n must be between 1 and {MAX_N}.", param="n")
        fmt = _text_field(form, "response_format") or "url"
        if fmt not in ("url", "b64_json"):
            raise InvalidRequest("response_format must be 'url' or 'b64_json'.", param="response_format")
        if _text_field(form, "stream").lower() == "true":
            raise InvalidRequest("Streaming image edits are not supported; omit stream.", param="stream")
        model = _text_field(form, "model") or None
    finally:
        await form.close()
    spec = _image_model(svc.catalog, model)
    message = f"Edit the attached image and draw the result: {prompt}"
    return _Order(spec, model or spec.id, message, images, n, "url" if fmt == "url" else "b64_json")


async def _read_form(request: Request, limit: int) -> FormData:
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise InvalidRequest("Image edits take multipart/form-data with an 'image' file and a 'prompt'.")
    parser = MultiPartParser(
        request.headers, capped_stream(request, limit), max_files=MAX_EDIT_IMAGES + 2, max_fields=50
    )
    try:
        return await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest(f"The multipart body could not be read: {exc.message}") from None


def _text_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _int_field(form: FormData, name: str, default: int) -> int:
    text = _text_field(form, name)
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer.", param=name) from None
