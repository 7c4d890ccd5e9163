"""``POST /v1/videos`` as clients send it (multipart, as OpenAI's SDK does, or JSON), turned into a video order:
the model, the prompt, OpenAI's ``seconds`` and ``size`` mapped onto grok.com's durations, aspect ratios and
resolutions, and the optional input image (``input_reference``: a file, or an image URL)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated

import msgspec
from msgspec import Meta, Struct
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from ..edge import capped_stream, check_form, decode, read_body
from ..errors import InvalidRequest, ModelNotFound
from ..grok.catalog import ModelSpec
from ..grok.video import ASPECT_RATIOS, DURATIONS, RESOLUTIONS, VideoOptions
from ..image_input import PreparedImage, prepare_bytes, prepare_images
from ..services import Services

DEFAULT_MODEL = "grok-imagine-video"
DEFAULT_SIZE = "720x1280"  # OpenAI's default
# Clients written for OpenAI name its video models; here they mean the default one.
_OPENAI_VIDEO_MODELS = ("sora-",)
_SIZE = re.compile(r"\s*(\d{2,5})\s*[xX×*]\s*(\d{2,5})\s*")
_SECONDS = re.compile(r"\s*(\d+(?:\.\d+)?)\s*s?\s*")
# What each (aspect ratio, resolution) is reported as: the frame grok.com makes.
_FRAMES = {
    ("16:9", "720p"): "1280x720",
    ("9:16", "720p"): "720x1280",
    ("1:1", "720p"): "720x720",
    ("3:2", "720p"): "1080x720",
    ("2:3", "720p"): "720x1080",
    ("16:9", "480p"): "854x480",
    ("9:16", "480p"): "480x854",
    ("1:1", "480p"): "480x480",
    ("3:2", "480p"): "720x480",
    ("2:3", "480p"): "480x720",
}


class CreateVideoRequest(Struct, kw_only=True):
    prompt: Annotated[str, Meta(min_length=1, max_length=32_000)]
    model: str | None = None
    seconds: str | int | float | None = None
    size: str | None = None
    aspect_ratio: str | None = None  # grok.com's own, instead of size
    resolution: str | None = None  # "480p" or "720p", instead of size
    input_reference: str | dict[str, str] | None = None  # an image URL, or {"image_url": ...}


_DECODER = msgspec.json.Decoder(CreateVideoRequest)


@dataclass
class VideoOrder:
    model: str  # as the client named it (the video object echoes it)
    spec: ModelSpec
    prompt: str
    options: VideoOptions
    size: str  # the frame reported back
    image: PreparedImage | None


def duration_of(value: str | int | float | None) -> int:
    """grok.com's duration for ``seconds``: OpenAI's 4, 8 and 12 and any length up to 15 round up to the next of
    grok.com's 6, 10 and 15."""
    if value is None or value == "":
        return DURATIONS[0]
    match = _SECONDS.fullmatch(value) if isinstance(value, str) else None
    number = float(match.group(1)) if match else value if not isinstance(value, str | bool) else None
    if number is None or not 0 < number <= DURATIONS[-1]:
        raise InvalidRequest(
            f"seconds must be a length up to {DURATIONS[-1]} ({', '.join(map(str, DURATIONS))}, or OpenAI's 4, 8 "
            "and 12, which round up to them).",
            param="seconds",
        )
    return next(d for d in DURATIONS if d >= math.ceil(number))


def frame_of(size: str | None, aspect_ratio: str | None = None, resolution: str | None = None) -> tuple[str, str, str]:
    """(aspect ratio, resolution, reported size): ``size`` as WIDTHxHEIGHT picks the nearest aspect ratio, and
    720p from 720 pixels on the short side; ``aspect_ratio``/``resolution`` name grok.com's values directly."""
    match = _SIZE.fullmatch(size or DEFAULT_SIZE)
    width, height = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not width or not height:
        raise InvalidRequest("size must be WIDTHxHEIGHT, e.g. 720x1280 or 1280x720.", param="size")
    ratio = aspect_ratio or min(ASPECT_RATIOS, key=lambda r: abs(math.log(width / height / _ratio(r))))
    if ratio not in ASPECT_RATIOS:
        raise InvalidRequest(f"aspect_ratio must be one of {', '.join(ASPECT_RATIOS)}.", param="aspect_ratio")
    res = resolution or ("720p" if min(width, height) >= 720 else "480p")
    if res not in RESOLUTIONS:
        raise InvalidRequest(f"resolution must be one of {', '.join(RESOLUTIONS)}.", param="resolution")
    return ratio, res, _FRAMES[(ratio, res)]


def _ratio(name: str) -> float:
    w, h = name.split(":")
    return int(w) / int(h)


def video_model(svc: Services, name: str | None) -> ModelSpec:
    if not name or name.startswith(_OPENAI_VIDEO_MODELS):
        name = DEFAULT_MODEL
    spec = svc.catalog.find(name)
    if spec is None:
        raise ModelNotFound(
            f"The model {name!r} does not exist; omit model to use {DEFAULT_MODEL}. GET /v1/models lists the models.",
            param="model",
        )
    if not spec.video:
        raise InvalidRequest(f"{spec.id} does not make videos; use {DEFAULT_MODEL}.", param="model")
    return spec


async def read_order(request: Request, svc: Services) -> VideoOrder:
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        req, upload = await _from_form(request, svc)
    else:
        req, upload = decode(_DECODER, await read_body(request, svc.boot.max_body_bytes)), None
    if not req.prompt.strip():
        raise InvalidRequest("The prompt is empty.", param="prompt")
    spec = video_model(svc, req.model)
    ratio, resolution, size = frame_of(req.size, req.aspect_ratio, req.resolution)
    options = VideoOptions(duration=duration_of(req.seconds), aspect_ratio=ratio, resolution=resolution)
    image = upload if upload is not None else await _reference(req.input_reference, svc)
    return VideoOrder(req.model or spec.id, spec, req.prompt.strip(), options, size, image)


async def _reference(value: str | dict[str, str] | None, svc: Services) -> PreparedImage | None:
    if value is None or value == "":
        return None
    url = value if isinstance(value, str) else value.get("image_url", "")
    if not url:
        raise InvalidRequest(
            "input_reference takes an image: a file, or {'image_url': URL}; file ids are not supported.",
            param="input_reference",
        )
    (image,) = await prepare_images([url], svc.settings, svc.http, "input_reference")
    return image


async def _from_form(request: Request, svc: Services) -> tuple[CreateVideoRequest, PreparedImage | None]:
    parser = MultiPartParser(request.headers, capped_stream(request, svc.boot.max_body_bytes), max_files=2)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidRequest(f"The multipart body could not be read: {exc.message}") from None
    try:
        check_form(form)
        upload = None
        reference = form.get("input_reference")
        if isinstance(reference, UploadFile):
            data = await reference.read()
            upload = prepare_bytes(data, svc.settings, label="input_reference", param="input_reference")
        fields: dict[str, str | dict[str, str]] = {
            name: value
            for name in ("prompt", "model", "seconds", "size", "aspect_ratio", "resolution")
            if (value := _text(form, name))
        }
        url = _text(form, "input_reference[image_url]") or (reference if isinstance(reference, str) else "")
        if url:
            fields["input_reference"] = url
        if _text(form, "input_reference[file_id]"):
            fields["input_reference"] = {}  # refused below, like a JSON file id
        try:
            req = msgspec.convert(fields, CreateVideoRequest)
        except msgspec.ValidationError as exc:
            raise InvalidRequest(str(exc).replace("`", "")) from None
    finally:
        await form.close()
    return req, upload


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""
