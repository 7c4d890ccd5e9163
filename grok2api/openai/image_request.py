"""What an Images API request asks for: the JSON of ``/v1/images/generations`` or the multipart form of
``/v1/images/edits``, checked and turned into one ``ImageOrder`` (the model, the grok.com request, how many
images and in which form). Every mistake is a 400 (or 404 for a model) naming the field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from ..edge import capped_stream, check_form, decode, read_body
from ..errors import InvalidRequest, ModelNotFound
from ..gateway import MediaJob, MediaRequest
from ..grok.catalog import IMAGE_EDIT, Catalog, ModelSpec
from ..grok.imagine import ASPECT_RATIOS, ImagineRequest, generations_for
from ..grok.imagine_edit import ImageEditRequest
from ..image_input import prepare_bytes
from ..services import Services
from ..settings import RuntimeSettings

DEFAULT_MODEL = "grok-imagine-image"
PRO_MODE = "imagine-image-pro"
MAX_N = 10
MAX_EDIT_IMAGES = 4
MAX_PARTIAL_IMAGES = 3
# Clients written for OpenAI send these; they mean the default image model here.
_OPENAI_IMAGE_MODELS = ("dall-e-", "gpt-image-", "chatgpt-image-")
# OpenAI's sizes and the aspect ratio grok.com draws for each (the DALL·E 2 squares included).
SIZES = {
    "1024x1024": "1:1",
    "512x512": "1:1",
    "256x256": "1:1",
    "1792x1024": "16:9",
    "1024x1792": "9:16",
    "1536x1024": "3:2",
    "1024x1536": "2:3",
    "auto": "auto",
}
ResponseFormat = Literal["url", "b64_json"]
Kind = Literal["generation", "edit"]


class GenerationRequest(Struct, kw_only=True):
    """The JSON body of a generation (other OpenAI fields are accepted and ignored)."""

    prompt: Annotated[str, Meta(min_length=1, max_length=32_000)]
    model: str | None = None
    n: Annotated[int, Meta(ge=1, le=MAX_N)] | None = None
    size: str | None = None
    aspect_ratio: str | None = None
    response_format: ResponseFormat | None = None
    stream: bool | None = None
    partial_images: Annotated[int, Meta(ge=0, le=MAX_PARTIAL_IMAGES)] | None = None


_GENERATION_DECODER = msgspec.json.Decoder(GenerationRequest)


@dataclass
class ImageOrder:
    """One Images API request, ready to run: ``job`` for the gateway, and what the answer should hold."""

    kind: Kind
    spec: ModelSpec  # the model the client named (its key's allowlist applies to it)
    job: MediaJob
    prompt: str
    n: int
    response_format: ResponseFormat
    stream: bool
    partial_images: int | None  # None: every preview of the images returned
    size: str  # the size to report when an image's own cannot be read


def image_model(catalog: Catalog, name: str | None) -> ModelSpec:
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
    if spec.kind == "image":
        return spec
    if spec.video:
        raise InvalidRequest(f"{spec.id} makes videos, not images; use it through /v1/chat/completions.", param="model")
    raise InvalidRequest(
        f"{spec.id} is a chat model; images come from {DEFAULT_MODEL} or {DEFAULT_MODEL}-pro "
        "(or ask a chat model to draw in /v1/chat/completions).",
        param="model",
    )


def aspect_ratio(size: str | None, ratio: str | None) -> str | None:
    """The aspect ratio grok.com should draw: ``aspect_ratio`` as given, else the one of OpenAI's ``size``;
    None when the request names neither."""
    if ratio is not None and ratio.strip():
        ratio = ratio.strip().lower()
        if ratio not in ASPECT_RATIOS:
            raise InvalidRequest(f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}.", param="aspect_ratio")
        return ratio
    if size is not None and size.strip():
        found = SIZES.get(size.strip().lower())
        if found is None:
            raise InvalidRequest(
                f"size must be one of {', '.join(SIZES)} (or send aspect_ratio: {', '.join(ASPECT_RATIOS)}).",
                param="size",
            )
        return found
    return None


async def generation_order(request: Request, svc: Services) -> ImageOrder:
    req = decode(_GENERATION_DECODER, await read_body(request, svc.boot.max_body_bytes))
    prompt = req.prompt.strip()
    if not prompt:
        raise InvalidRequest("The prompt is empty.", param="prompt")
    spec = image_model(svc.catalog, req.model)
    n = req.n or 1
    ratio = aspect_ratio(req.size, req.aspect_ratio) or "auto"
    imagine = ImagineRequest(prompt, ratio, spec.mode == PRO_MODE, generations_for(n))
    return ImageOrder(
        kind="generation",
        spec=spec,
        job=MediaJob(spec, imagine, svc.settings),
        prompt=prompt,
        n=n,
        response_format=req.response_format or "url",
        stream=bool(req.stream),
        partial_images=req.partial_images,
        size=(req.size or "auto").strip().lower(),
    )


async def edit_order(request: Request, svc: Services) -> ImageOrder:
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
        # ``mask`` is read past: grok.com has no masked editing, the prompt says what to change.
        n = _int_field(form, "n", 1)
        if not 1 <= n <= MAX_N:
            raise InvalidRequest(f"n must be between 1 and {MAX_N}.", param="n")
        partial = _int_field(form, "partial_images", -1)
        if not -1 <= partial <= MAX_PARTIAL_IMAGES:
            raise InvalidRequest(f"partial_images must be between 0 and {MAX_PARTIAL_IMAGES}.", param="partial_images")
        fmt = _text_field(form, "response_format") or "url"
        if fmt not in ("url", "b64_json"):
            raise InvalidRequest("response_format must be 'url' or 'b64_json'.", param="response_format")
        size = _text_field(form, "size")
        ratio = aspect_ratio(size, _text_field(form, "aspect_ratio"))
        stream = _text_field(form, "stream").lower() == "true"
        model = _text_field(form, "model") or None
    finally:
        await form.close()
    spec = image_model(svc.catalog, model)
    edit = ImageEditRequest(prompt, images, None if ratio == "auto" else ratio)
    return ImageOrder(
        kind="edit",
        spec=spec,
        job=_edit_job(edit, svc.settings),
        prompt=prompt,
        n=n,
        response_format="url" if fmt == "url" else "b64_json",
        stream=stream,
        partial_images=None if partial < 0 else partial,
        size=(size or "auto").lower(),
    )


def _edit_job(request: MediaRequest, settings: RuntimeSettings) -> MediaJob:
    # An edit spends a query of Imagine's edit window, whichever image model the client named.
    return MediaJob(IMAGE_EDIT, request, settings)


async def _read_form(request: Request, limit: int) -> FormData:
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise InvalidRequest("Image edits take multipart/form-data with an 'image' file and a 'prompt'.")
    parser = MultiPartParser(
        request.headers, capped_stream(request, limit), max_files=MAX_EDIT_IMAGES + 2, max_fields=50
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest(f"The multipart body could not be read: {exc.message}") from None
    try:
        return check_form(form)
    except InvalidRequest:
        await form.close()
        raise


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
