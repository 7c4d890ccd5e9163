"""The Messages API's share of the OpenAPI document: ``POST /v1/messages`` (JSON or its named stream events) and
``POST /v1/messages/count_tokens``, with schemas generated from ``schemas`` and errors from ``errors.ErrorResponse``,
the struct every error body and ``error`` event under ``/v1/messages`` is encoded from (named ``anthropic.*``:
several share a name with the OpenAI API's).
"""

from __future__ import annotations

from typing import get_args

from msgspec import Struct

from ..openapi_schema import (
    UPSTREAM_CALL,
    Part,
    Schemas,
    answer,
    json_content,
    named_events,
    operation,
    responses,
    tag,
)
from .errors import ERROR_EVENT, ErrorResponse
from .schemas import CountTokensRequest, MessageOut, MessagesRequest, StreamEvent, TokenCount

PREFIX = "anthropic."
EVENTS: tuple[type[Struct], ...] = get_args(StreamEvent)
NOTES = {
    400: "The request is malformed or a field is invalid (the message names it).",
    404: "No such model or route.",
    422: "A forced tool call (``any``, ``tool``) did not validate, even after the repair turn.",
}
SSE_NOTE = (
    "Server-sent events: an ``event:`` line naming each event and a ``data:`` line of its JSON (which names it "
    "again). The stream ends with ``message_stop``, or with an ``error`` event when the answer broke off."
)
MODEL_EXAMPLES = ["grok-auto", "grok-fast"]
_HELLO = [{"role": "user", "content": "Say hello."}]
REQUEST_EXAMPLES = {
    "text": {"model": "grok-fast", "max_tokens": 256, "messages": _HELLO},
    "stream": {
        "model": "grok-auto",
        "max_tokens": 1024,
        "thinking": {"type": "enabled", "budget_tokens": 512},
        "messages": _HELLO,
        "stream": True,
    },
}
COUNT_EXAMPLES = {"text": {"model": "grok-fast", "system": "Be brief.", "messages": _HELLO}}


def part() -> Part:
    schemas = Schemas(
        MessagesRequest, CountTokensRequest, MessageOut, TokenCount, ErrorResponse, *EVENTS, prefix=PREFIX
    )
    for request in (MessagesRequest, CountTokensRequest):
        schemas.component(request)["properties"]["model"]["examples"] = MODEL_EXAMPLES
    ref = schemas.ref
    error = ref(ErrorResponse)
    events = named_events({**{tag(e): ref(e) for e in EVENTS}, ERROR_EVENT: error}, SSE_NOTE)
    message = answer(
        "The message; server-sent events when ``stream`` is true.", {**json_content(ref(MessageOut)), **events}
    )
    paths = {
        "/v1/messages": {
            "post": operation(
                "Answer with a Grok mode, as Anthropic's Messages API (streaming or not)",
                responses(message, (*UPSTREAM_CALL, 422), error, NOTES),
                requestBody={"required": True, "content": json_content(ref(MessagesRequest), REQUEST_EXAMPLES)},
            )
        },
        "/v1/messages/count_tokens": {
            "post": operation(
                "The estimated input tokens of a messages request",
                responses(answer("The count", json_content(ref(TokenCount))), (400, 401, 404, 413), error, NOTES),
                requestBody={"required": True, "content": json_content(ref(CountTokensRequest), COUNT_EXAMPLES)},
            )
        },
    }
    return Part(paths, schemas.components)
