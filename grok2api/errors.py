"""Errors in the OpenAI envelope: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import math

import msgspec


class ErrorBody(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorEnvelope(msgspec.Struct):
    error: ErrorBody


_ENCODER = msgspec.json.Encoder()


class GatewayError(Exception):
    """An error the client should see, with its HTTP status and OpenAI error type."""

    status = 500
    type = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> ErrorEnvelope:
        return ErrorEnvelope(ErrorBody(self.message, self.type, self.param, self.code))

    def to_json(self) -> bytes:
        return _ENCODER.encode(self.body())


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class AuthError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class BodyTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


DEFAULT_RETRY_AFTER = 60.0  # seconds, when nobody knows when there will be room again


def whole_seconds(seconds: float) -> int:
    """A wait as Retry-After says it: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds))


class RateLimited(GatewayError):
    """A 429 of any origin: grok.com's, every eligible account cooling or out of quota, or a client key's rpm.

    The body is OpenAI's own (type ``requests``, code ``rate_limit_exceeded``) and ``retry_after`` becomes the
    ``Retry-After`` header; a 429 raised without one gets the pool's estimate at the edge (``edge.gateway_error``).
    """

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(
        self, message: str, *, retry_after: float | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, headers=headers)
        if retry_after is not None:
            self.headers["Retry-After"] = str(whole_seconds(retry_after))


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"


class EgressBlocked(UpstreamError):
    """grok.com refused the gateway itself (Cloudflare or anti-bot), not an account."""

    code = "egress_blocked"


class NoAccount(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "no_available_account"


class ServiceUnavailable(GatewayError):
    """The gateway itself cannot serve right now (its store is unreachable); retry after ``Retry-After``."""

    status = 503
    type = "service_unavailable"
    code = "service_unavailable"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


class FirstResponseTimeout(UpstreamTimeout):
    """grok.com sent nothing before ``stream_first_response_timeout``: no byte reached the client yet."""

    def __init__(self) -> None:
        super().__init__("grok.com did not answer within the first-response timeout; try again.")


class StalledMidAnswer(UpstreamTimeout):
    """grok.com stopped sending in the middle of an answer (``stream_chunk_timeout``), or, with ``total_timeout``,
    the answer ran past ``stream_total_timeout``. Either way what the client got is incomplete."""

    def __init__(self, total_timeout: float | None = None) -> None:
        if total_timeout is None:
            message = "grok.com stalled mid-answer, so the answer is incomplete; retry the request."
        else:
            message = (
                f"grok.com's answer ran past stream_total_timeout ({total_timeout:g} s) and was cut off, so it is "
                "incomplete; retry the request."
            )
        super().__init__(message)


class ContentModerated(GatewayError):
    """grok.com moderated what it was asked to generate."""

    status = 400
    type = "invalid_request_error"
    code = "content_policy_violation"


class UnusableAnswer(GatewayError):
    """Grok's answer did not have the shape the request demanded (a required tool call, a JSON answer),
    even after a repair turn."""

    status = 422
    type = "invalid_request_error"
    code = "invalid_model_output"


class ConnectionLost(UpstreamError):
    """The connection to grok.com broke after the answer had started."""

    def __init__(self) -> None:
        super().__init__("The connection to grok.com broke mid-answer, so the answer is incomplete; retry the request.")
