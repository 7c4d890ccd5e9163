"""The Responses API's share of the OpenAPI document: ``POST /v1/responses`` (JSON or its named stream events)
and ``GET``/``DELETE /v1/responses/{response_id}``, with schemas generated from the structs of
``responses_request`` and ``responses_objects`` (named ``responses.*``: several share a name with chat's).

The request keeps ``input`` items and ``tools`` as raw JSON and decodes each by its ``type``; the document
describes them with the structs they are decoded into.
"""

from __future__ import annotations

from typing import get_args

from msgspec import Struct

from ..errors import ErrorEnvelope
from ..openapi_schema import (
    UPSTREAM_CALL,
    Part,
    Schema,
    Schemas,
    answer,
    json_content,
    named_events,
    operation,
    path_param,
    responses,
    tag,
)
from .responses_objects import ResponseDeleted, ResponseObject, StreamEvent
from .responses_request import FunctionCallItem, FunctionCallOutputItem, FunctionTool, MessageItem, ResponsesRequest

PREFIX = "responses."
EVENTS: tuple[type[Struct], ...] = get_args(StreamEvent)
# The input items ``responses_request.input_turns`` reads, by type (a message may leave its type out).
_ITEMS: dict[str, type[Struct]] = {
    "function_call": FunctionCallItem,
    "function_call_output": FunctionCallOutputItem,
}
NOTES = {
    400: "The request is malformed, a field is invalid or not supported (``param`` names it).",
    404: "No such model, or no stored response with that id (``previous_response_not_found`` for "
    "``previous_response_id``).",
    422: "A required tool call or a ``text.format`` answer did not validate, even after the repair turn.",
}
SSE_NOTE = (
    "Server-sent events: an ``event:`` line naming each event and a ``data:`` line of its JSON; no ``[DONE]``. "
    "The stream ends with ``response.completed``, ``response.incomplete`` or ``response.failed``."
)
MODEL_EXAMPLES = ["grok-fast", "grok-auto"]
_WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
REQUEST_EXAMPLES = {
    "text": {"model": "grok-fast", "input": "Say hello."},
    "stream": {"model": "grok-fast", "instructions": "Be brief.", "input": "Say hello.", "stream": True},
    "tools": {
        "model": "grok-fast",
        "input": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [{"type": "function", "name": "get_weather", "parameters": _WEATHER}],
    },
}


def _typed(ref: Schema, kind: str, *, required: bool = True) -> Schema:
    """``ref``'s object with the ``type`` that selects it."""
    schema: Schema = {"allOf": [ref], "properties": {"type": {"const": kind}}}
    return {**schema, "required": ["type"]} if required else schema


def _describe_raw_fields(schemas: Schemas) -> None:
    """``input`` and ``tools`` are raw JSON in the struct: say what they hold."""
    ref = schemas.ref
    items = [
        _typed(ref(MessageItem), "message", required=False),
        *(_typed(ref(struct), kind) for kind, struct in _ITEMS.items()),
        {"type": "object", "properties": {"type": {"const": "reasoning"}}, "required": ["type"]},
    ]
    properties = schemas.component(ResponsesRequest)["properties"]
    properties["model"]["examples"] = MODEL_EXAMPLES
    properties["input"] = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"anyOf": items}}]}
    tools = {"type": "array", "items": _typed(ref(FunctionTool), "function")}
    properties["tools"] = {"anyOf": [tools, {"type": "null"}], "default": None}


def part() -> Part:
    schemas = Schemas(
        ResponsesRequest,
        ResponseObject,
        ResponseDeleted,
        MessageItem,
        FunctionCallItem,
        FunctionCallOutputItem,
        FunctionTool,
        *EVENTS,
        prefix=PREFIX,
    )
    _describe_raw_fields(schemas)
    errors = Schemas(ErrorEnvelope)  # the OpenAI envelope, shared with chat completions
    ref, error = schemas.ref, errors.ref(ErrorEnvelope)
    response = json_content(ref(ResponseObject))
    streamed = answer(
        "The response; server-sent events when ``stream`` is true.",
        {**response, **named_events({tag(e): ref(e) for e in EVENTS}, SSE_NOTE)},
    )
    response_id = path_param("response_id", "The id ``POST /v1/responses`` answered with.")
    paths = {
        "/v1/responses": {
            "post": operation(
                "Answer with a Grok mode, as OpenAI's Responses API (streaming or not)",
                responses(streamed, (*UPSTREAM_CALL, 422), error, NOTES),
                requestBody={"required": True, "content": json_content(ref(ResponsesRequest), REQUEST_EXAMPLES)},
            )
        },
        "/v1/responses/{response_id}": {
            "get": operation(
                "A stored response",
                responses(answer("The response", response), (400, 401, 404), error, NOTES),
                parameters=[
                    response_id,
                    {
                        "name": "stream",
                        "in": "query",
                        "schema": {"type": "boolean"},
                        "description": "Streaming a stored response again is not supported: true is a 400.",
                    },
                ],
            ),
            "delete": operation(
                "Delete a stored response",
                responses(answer("Deleted", json_content(ref(ResponseDeleted))), (401, 404), error, NOTES),
                parameters=[response_id],
            ),
        },
    }
    return Part(paths, {**schemas.components, **errors.components})
