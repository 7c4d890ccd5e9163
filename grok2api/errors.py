"""Errors in the OpenAI envelope: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

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


class RateLimited(GatewayError):
    """Every eligible account is cooling or out of quota (or a client key's limit was hit)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


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
    """grok.com stopped sending in the middle of an answer (idle or total timeout)."""

    def __init__(self) -> None:
        super().__init__("grok.com stalled mid-answer, so the answer is incomplete; retry the request.")


class ConnectionLost(UpstreamError):
    """The connection to grok.com broke after the answer had started."""

    def __init__(self) -> None:
        super().__init__("The connection to grok.com broke mid-answer, so the answer is incomplete; retry the request.")
