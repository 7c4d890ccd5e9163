"""Errors in Anthropic's shape, ``{"type": "error", "error": {"type", "message"}}``, as a JSON body and as a
stream's ``error`` event. The status stays the gateway's; the type follows from it the way Anthropic's do."""

from __future__ import annotations

from typing import Literal

import msgspec

from ..errors import GatewayError

ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
    "timeout_error",
]
# Anthropic's types by status; another 4xx is an invalid request, another 5xx an api_error (502: grok.com failed).
_TYPES: dict[int, ErrorType] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",  # no account can serve the request now
    504: "timeout_error",
    529: "overloaded_error",
}


class ErrorObject(msgspec.Struct):
    type: ErrorType
    message: str


class ErrorResponse(msgspec.Struct, kw_only=True):
    type: Literal["error"] = "error"
    error: ErrorObject


_ENCODER = msgspec.json.Encoder()
ERROR_EVENT = "error"  # the name of the stream event carrying an error
_EVENT_HEAD = f"event: {ERROR_EVENT}\ndata: ".encode()


def error_type(status: int) -> ErrorType:
    return _TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def error_body(err: GatewayError) -> bytes:
    """The JSON body of ``err`` (the edge renders errors on ``/v1/messages`` with it)."""
    return _ENCODER.encode(ErrorResponse(error=ErrorObject(error_type(err.status), err.message)))


def error_event(err: GatewayError) -> bytes:
    """``err`` as the SSE ``error`` event that ends a stream that failed after it began."""
    return _EVENT_HEAD + error_body(err) + b"\n\n"
