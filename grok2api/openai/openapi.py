"""The OpenAI API's share of the OpenAPI document (``grok2api/openapi.py`` assembles it): chat completions,
models, images and videos, with schemas generated from the same msgspec structs the endpoints decode requests
with and encode answers from, so the document cannot drift from the code. The Responses API has its own part
(``responses_openapi``).

Multipart forms (image edits, videos from a file) have no struct: their fields are listed here.
"""

from __future__ import annotations

from msgspec import Struct

from ..errors import ErrorEnvelope
from ..openapi_schema import (
    FILE,
    TEXT,
    UPSTREAM_CALL,
    Part,
    Schema,
    Schemas,
    answer,
    data_events,
    json_content,
    operation,
    path_param,
    responses,
)
from .image_request import MAX_EDIT_IMAGES, MAX_N, MAX_PARTIAL_IMAGES, GenerationRequest
from .image_stream import ImageStreamEvent
from .images import ImagesResponse
from .schemas import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ModelCard, ModelList
from .video_request import CreateVideoRequest
from .videos import MAX_LIST, VARIANTS, VideoDeleted, VideoList, VideoObject

STRUCTS = (
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
NOTES = {
    404: "No such model, video or route.",
    422: "A required tool call or a ``response_format`` answer did not validate, even after the repair turn.",
}
SSE_NOTE = "Server-sent events: a ``data:`` line of JSON per event (chat streams end with ``data: [DONE]``)."
# Model ids to show as examples (clients and schemathesis' example phase use them); GET /v1/models lists them all.
_MODEL_EXAMPLES: dict[type[Struct], list[str]] = {
    ChatCompletionRequest: ["grok-fast", "grok-auto"],
    GenerationRequest: ["grok-imagine-image", "grok-imagine-image-pro"],
    CreateVideoRequest: ["grok-imagine-video"],
}


def _form(properties: Schema, required: list[str]) -> Schema:
    return {"multipart/form-data": {"schema": {"type": "object", "properties": properties, "required": required}}}


def _edit_form() -> Schema:
    return _form(
        {
            "prompt": TEXT,
            "image": {"oneOf": [FILE, {"type": "array", "items": FILE, "maxItems": MAX_EDIT_IMAGES}]},
            "model": TEXT,
            "n": {"type": "string", "description": f"1 to {MAX_N}"},
            "size": TEXT,
            "aspect_ratio": TEXT,
            "response_format": {"type": "string", "enum": ["url", "b64_json"]},
            "stream": {"type": "string", "enum": ["true", "false"]},
            "partial_images": {"type": "string", "description": f"0 to {MAX_PARTIAL_IMAGES}"},
            "mask": {**FILE, "description": "accepted and ignored: grok.com edits from the prompt"},
        },
        ["prompt", "image"],
    )


def _video_form() -> Schema:
    fields = ("model", "seconds", "size", "aspect_ratio", "resolution")
    return _form(
        {"prompt": TEXT, **{name: TEXT for name in fields}, "input_reference": FILE},
        ["prompt"],
    )


def _paths(schemas: Schemas) -> Schema:
    _ref = schemas.ref
    error = _ref(ErrorEnvelope)

    def _responses(ok: Schema, statuses: tuple[int, ...]) -> Schema:
        return responses(ok, statuses, error, NOTES)

    def _streamed(struct: type[Struct], event: type[Struct], what: str) -> Schema:
        """200 as JSON, or as server-sent events of ``event`` (or an error) when the request asks for ``stream``."""
        content = {**json_content(_ref(struct)), **data_events([_ref(event), error], SSE_NOTE)}
        return answer(f"{what}; server-sent events when ``stream`` is true.", content)

    video_id = path_param("video_id", "The id ``POST /v1/videos`` answered with.")
    return {
        "/v1/chat/completions": {
            "post": operation(
                "Chat with a Grok mode (streaming or not)",
                _responses(_streamed(ChatCompletion, ChatCompletionChunk, "The answer"), (*UPSTREAM_CALL, 422)),
                requestBody={"required": True, "content": json_content(_ref(ChatCompletionRequest))},
            )
        },
        "/v1/models": {
            "get": operation("List the models", _responses(answer("The models", json_content(_ref(ModelList))), (401,)))
        },
        "/v1/models/{model_id}": {
            "get": operation(
                "One model, by id or alias",
                _responses(answer("The model", json_content(_ref(ModelCard))), (401, 404)),
                parameters=[path_param("model_id", "A model id or an earlier alias.")],
            )
        },
        "/v1/images/generations": {
            "post": operation(
                "Images from a prompt (grok.com's Imagine)",
                _responses(_streamed(ImagesResponse, ImageStreamEvent, "The images"), UPSTREAM_CALL),
                requestBody={"required": True, "content": json_content(_ref(GenerationRequest))},
            )
        },
        "/v1/images/edits": {
            "post": operation(
                "Edit images from a prompt",
                _responses(_streamed(ImagesResponse, ImageStreamEvent, "The edited images"), UPSTREAM_CALL),
                requestBody={"required": True, "content": _edit_form()},
            )
        },
        "/v1/videos": {
            "post": operation(
                "Queue a video job",
                _responses(answer("The job, queued", json_content(_ref(VideoObject))), UPSTREAM_CALL),
                requestBody={"required": True, "content": {**json_content(_ref(CreateVideoRequest)), **_video_form()}},
            ),
            "get": operation(
                "List the caller's video jobs",
                _responses(answer("A page of jobs", json_content(_ref(VideoList))), (400, 401)),
                parameters=[
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST}},
                    {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
                    {"name": "after", "in": "query", "schema": {"type": "string"}},
                ],
            ),
        },
        "/v1/videos/{video_id}": {
            "get": operation(
                "One video job",
                _responses(answer("The job", json_content(_ref(VideoObject))), (401, 404)),
                parameters=[video_id],
            ),
            "delete": operation(
                "Delete a video job",
                _responses(answer("Deleted", json_content(_ref(VideoDeleted))), (401, 404)),
                parameters=[video_id],
            ),
        },
        "/v1/videos/{video_id}/content": {
            "get": operation(
                "The finished video (or its thumbnail)",
                _responses(
                    answer("The file", {"video/mp4": {"schema": FILE}, "image/*": {"schema": FILE}}),
                    (400, 401, 404, 502),
                ),
                parameters=[
                    video_id,
                    {"name": "variant", "in": "query", "schema": {"type": "string", "enum": list(VARIANTS)}},
                ],
            )
        },
    }


def part() -> Part:
    """Chat completions, models, images and videos."""
    schemas = Schemas(*STRUCTS)
    for struct, models in _MODEL_EXAMPLES.items():
        schemas.component(struct)["properties"]["model"]["examples"] = models
    return Part(_paths(schemas), schemas.components)
