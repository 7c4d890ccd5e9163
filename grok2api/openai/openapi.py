"""``GET /openapi.json``: an OpenAPI 3.1 document of the ``/v1`` API, its schemas generated from the same msgspec
structs the endpoints decode requests with and encode answers from, so the document cannot drift from the code.

Multipart forms (image edits, videos from a file) have no struct: their fields are listed here. Built once, on
the first request, and served without authentication (it holds no secret).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .. import __version__
from ..errors import ErrorEnvelope
from .image_request import MAX_EDIT_IMAGES, MAX_N, MAX_PARTIAL_IMAGES, GenerationRequest
from .image_stream import ImageStreamEvent
from .images import ImagesResponse
from .schemas import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ModelCard, ModelList
from .video_request import CreateVideoRequest
from .videos import MAX_LIST, VARIANTS, VideoDeleted, VideoList, VideoObject

Schema = dict[str, Any]
REF = "#/components/schemas/{name}"
_STRUCTS = (
    ChatCompletionRequest,
    ChatCompletion,
    ChatCompletionChunk,
    ModelList,
    ModelCard,
    GenerationRequest,
    ImagesResponse,
    ImageStreamEvent,
    CreateVideoRequest,
    VideoObject,
    VideoList,
    VideoDeleted,
    ErrorEnvelope,
)
# What each status means, for every operation that may answer it (errors are always ErrorEnvelope).
_ERRORS = {
    400: "The request is malformed or a field is invalid (``param`` names it).",
    401: "The API key is missing or wrong (only when one is configured).",
    403: "The client key may not use this model.",
    404: "No such model, video or route.",
    413: "The body is larger than the gateway accepts.",
    422: "A required tool call or a ``response_format`` answer did not validate, even after the repair turn.",
    429: "Every eligible account is out of quota or cooling down, or the key's rate limit was hit.",
    502: "grok.com failed, or refused the gateway itself.",
    503: "No usable account.",
    504: "grok.com sent nothing in time.",
}
_UPSTREAM_CALL = (400, 401, 403, 404, 413, 429, 502, 503, 504)
_TEXT: Schema = {"type": "string"}
_FILE: Schema = {"type": "string", "format": "binary"}
SSE_NOTE = "Server-sent events: a ``data:`` line of JSON per event (chat streams end with ``data: [DONE]``)."


def _ref(struct: type[msgspec.Struct]) -> Schema:
    return {"$ref": REF.format(name=struct.__name__)}


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _answer(description: str, content: Schema | None = None) -> Schema:
    return {"description": description, **({"content": content} if content else {})}


def _responses(ok: Schema, errors: tuple[int, ...]) -> Schema:
    answers = {"200": ok}
    for status in errors:
        answers[str(status)] = _answer(_ERRORS[status], _json(_ref(ErrorEnvelope)))
    return answers


def _events(*payloads: type[msgspec.Struct]) -> Schema:
    """Server-sent events, as schemathesis and OpenAPI 3.1 read them: each event an object whose ``data`` is the
    JSON of one of ``payloads`` (or the closing ``[DONE]``)."""
    as_json = {"contentMediaType": "application/json", "contentSchema": {"anyOf": [_ref(p) for p in payloads]}}
    data = {"type": "string", "if": {"const": "[DONE]"}, "then": True, "else": as_json}
    event = {"type": "object", "properties": {"event": _TEXT, "data": data}, "required": ["data"]}
    return {"text/event-stream": {"schema": {**event, "description": SSE_NOTE}}}


def _streamed(struct: type[msgspec.Struct], event: type[msgspec.Struct], what: str) -> Schema:
    """200 as JSON, or as server-sent events of ``event`` (or an error) when the request asks for ``stream``."""
    content = {**_json(_ref(struct)), **_events(event, ErrorEnvelope)}
    return _answer(f"{what}; server-sent events when ``stream`` is true.", content)


def _form(properties: Schema, required: list[str]) -> Schema:
    return {"multipart/form-data": {"schema": {"type": "object", "properties": properties, "required": required}}}


def _edit_form() -> Schema:
    return _form(
        {
            "prompt": _TEXT,
            "image": {"oneOf": [_FILE, {"type": "array", "items": _FILE, "maxItems": MAX_EDIT_IMAGES}]},
            "model": _TEXT,
            "n": {"type": "string", "description": f"1 to {MAX_N}"},
            "size": _TEXT,
            "aspect_ratio": _TEXT,
            "response_format": {"type": "string", "enum": ["url", "b64_json"]},
            "stream": {"type": "string", "enum": ["true", "false"]},
            "partial_images": {"type": "string", "description": f"0 to {MAX_PARTIAL_IMAGES}"},
            "mask": {**_FILE, "description": "accepted and ignored: grok.com edits from the prompt"},
        },
        ["prompt", "image"],
    )


def _video_form() -> Schema:
    fields = ("model", "seconds", "size", "aspect_ratio", "resolution")
    return _form(
        {"prompt": _TEXT, **{name: _TEXT for name in fields}, "input_reference": _FILE},
        ["prompt"],
    )


def _path_param(name: str, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}, "description": description}


def _operation(summary: str, responses: Schema, **extra: Any) -> Schema:
    return {"summary": summary, "responses": responses, **extra}


def _paths() -> Schema:
    video_id = _path_param("video_id", "The id ``POST /v1/videos`` answered with.")
    return {
        "/v1/chat/completions": {
            "post": _operation(
                "Chat with a Grok mode (streaming or not)",
                _responses(_streamed(ChatCompletion, ChatCompletionChunk, "The answer"), (*_UPSTREAM_CALL, 422)),
                requestBody={"required": True, "content": _json(_ref(ChatCompletionRequest))},
            )
        },
        "/v1/models": {
            "get": _operation("List the models", _responses(_answer("The models", _json(_ref(ModelList))), (401,)))
        },
        "/v1/models/{model_id}": {
            "get": _operation(
                "One model, by id or alias",
                _responses(_answer("The model", _json(_ref(ModelCard))), (401, 404)),
                parameters=[_path_param("model_id", "A model id or an earlier alias.")],
            )
        },
        "/v1/images/generations": {
            "post": _operation(
                "Images from a prompt (grok.com's Imagine)",
                _responses(_streamed(ImagesResponse, ImageStreamEvent, "The images"), _UPSTREAM_CALL),
                requestBody={"required": True, "content": _json(_ref(GenerationRequest))},
            )
        },
        "/v1/images/edits": {
            "post": _operation(
                "Edit images from a prompt",
                _responses(_streamed(ImagesResponse, ImageStreamEvent, "The edited images"), _UPSTREAM_CALL),
                requestBody={"required": True, "content": _edit_form()},
            )
        },
        "/v1/videos": {
            "post": _operation(
                "Queue a video job",
                _responses(_answer("The job, queued", _json(_ref(VideoObject))), _UPSTREAM_CALL),
                requestBody={"required": True, "content": {**_json(_ref(CreateVideoRequest)), **_video_form()}},
            ),
            "get": _operation(
                "List the caller's video jobs",
                _responses(_answer("A page of jobs", _json(_ref(VideoList))), (400, 401)),
                parameters=[
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST}},
                    {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
                    {"name": "after", "in": "query", "schema": {"type": "string"}},
                ],
            ),
        },
        "/v1/videos/{video_id}": {
            "get": _operation(
                "One video job",
                _responses(_answer("The job", _json(_ref(VideoObject))), (401, 404)),
                parameters=[video_id],
            ),
            "delete": _operation(
                "Delete a video job",
                _responses(_answer("Deleted", _json(_ref(VideoDeleted))), (401, 404)),
                parameters=[video_id],
            ),
        },
        "/v1/videos/{video_id}/content": {
            "get": _operation(
                "The finished video (or its thumbnail)",
                _responses(
                    _answer("The file", {"video/mp4": {"schema": _FILE}, "image/*": {"schema": _FILE}}),
                    (400, 401, 404, 502),
                ),
                parameters=[
                    video_id,
                    {"name": "variant", "in": "query", "schema": {"type": "string", "enum": list(VARIANTS)}},
                ],
            )
        },
    }


# Model ids to show as examples (clients and schemathesis' example phase use them); GET /v1/models lists them all.
_MODEL_EXAMPLES = {
    "ChatCompletionRequest": ["grok-fast", "grok-auto"],
    "GenerationRequest": ["grok-imagine-image", "grok-imagine-image-pro"],
    "CreateVideoRequest": ["grok-imagine-video"],
}


@cache
def document() -> Schema:
    """The OpenAPI document (built once)."""
    _, components = msgspec.json.schema_components(_STRUCTS, ref_template=REF)
    for name, models in _MODEL_EXAMPLES.items():
        components[name]["properties"]["model"]["examples"] = models
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "grok2api",
            "version": __version__,
            "description": "The OpenAI-compatible API of grok2api. Send `Authorization: Bearer <key>` when the "
            "gateway has an API key or client keys.",
        },
        "paths": _paths(),
        "components": {"schemas": components, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        # The key is optional: an open gateway takes requests without one.
        "security": [{}, {"bearer": []}],
    }


@cache
def _encoded() -> bytes:
    return msgspec.json.encode(document())


async def openapi_json(request: Request) -> Response:
    return Response(_encoded(), media_type="application/json")
