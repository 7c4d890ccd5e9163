"""The HTTP edge every client endpoint shares: CORS for /v1, the app's services, capped body reading, JSON and
error responses, decoding with a 400 that names the field, client authentication, the outcome
metric, and the client-disconnect watch.

``GatewayError`` is rendered by one exception handler (``gateway_error``), so endpoints just raise.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import AuthError, BodyTooLarge, GatewayError, InvalidRequest
from .sse import ClientLeft, EventStream, until_disconnect
from .store.base import ClientKey

if TYPE_CHECKING:
    from .services import Services

log = logging.getLogger("grok2api.edge")
T = TypeVar("T")
_ENCODER = msgspec.json.Encoder()
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
NESTED_TOO_DEEPLY = "The request body is nested too deeply to decode."
_MAX_DIGITS = 18  # a longer Content-Length is nonsense, and int() of a huge string is slow


def services(request: Request) -> Services:
    """The process's services, built by the lifespan."""
    svc: Services = request.app.state.services
    return svc


class ApiCors:
    """CORS for the OpenAI API (``/v1/...``) only, so that browser-based chat UIs can call the gateway directly.

    Any origin may call it, but without credentials: browsers send no cookies and read no cookie-based answer, so
    the bearer key a user typed into the UI stays the only credential (set ``api_key`` when the gateway is
    reachable from pages you do not trust). The admin pages and the admin JSON API stay same-origin.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["Retry-After"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


# -- responses -----------------------------------------------------------------------------------


def json_response(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_ENCODER.encode(obj), status_code=status, media_type="application/json", headers=headers)


def error_response(err: GatewayError) -> Response:
    return Response(err.to_json(), status_code=err.status, media_type="application/json", headers=err.headers)


def sse_response(body: AsyncIterable[bytes]) -> StreamingResponse:
    return EventStream(body, headers=SSE_HEADERS)


# -- request bodies ------------------------------------------------------------------------------


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"The request body is larger than {limit // (1024 * 1024)} MB.")


def check_declared_length(request: Request, limit: int) -> None:
    """Refuse at once a body whose Content-Length is over ``limit`` (or unreadable)."""
    declared = request.headers.get("content-length", "").strip()
    if not declared:
        return
    if not declared.isascii() or not declared.isdigit() or len(declared) > _MAX_DIGITS:
        raise InvalidRequest("The Content-Length header is not a number.", code="invalid_content_length")
    if int(declared) > limit:
        raise _too_large(limit)


async def capped_stream(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    """The body's chunks, raising BodyTooLarge as soon as more than ``limit`` bytes arrived."""
    check_declared_length(request, limit)
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        yield chunk


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, never buffered past ``limit``."""
    body = bytearray()
    async for chunk in capped_stream(request, limit):
        body += chunk
    return bytes(body)


def param_of(message: str) -> str | None:
    """The offending field from a msgspec message, e.g. ``temperature`` or ``messages[0].role``."""
    path = message.rsplit("`$", 1)[1].rstrip("`").strip().lstrip(".") if "`$" in message else ""
    missing = re.search(r"missing required field `([^`]+)`", message)
    if missing is not None:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or None


def decode(decoder: msgspec.json.Decoder[T], raw: bytes) -> T:
    """Decode a JSON body, or raise a 400 that names the offending field."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        raise InvalidRequest(text.replace("`", ""), param=param_of(text)) from None
    except msgspec.DecodeError:
        raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
    except RecursionError:
        raise InvalidRequest(NESTED_TOO_DEEPLY, code="invalid_json") from None


# -- client authentication and outcome ------------------------------------------------------------


class Outcome:
    """What one client request is about, for the metric recorded once when it ends."""

    __slots__ = ("model", "key_id", "recorded")

    def __init__(self) -> None:
        self.model = "unknown"
        self.key_id = ""
        self.recorded = False


def outcome(request: Request) -> Outcome:
    found = getattr(request.state, "outcome", None)
    if not isinstance(found, Outcome):
        found = Outcome()
        request.state.outcome = found
    return found


def authenticate(request: Request) -> ClientKey | None:
    """The caller's client key (None for the shared ``api_key`` or an open gateway); AuthError otherwise."""
    svc = services(request)
    key = svc.keys.authenticate(request.headers.get("authorization"), svc.settings.api_key)
    if key is not None:
        outcome(request).key_id = key.id
    return key


def authorize(request: Request, key: ClientKey | None, model: str) -> None:
    """May this key use ``model`` now (model list, requests per minute)? Also names the request's model."""
    outcome(request).model = model
    services(request).keys.check(key, model)


def record(request: Request, ok: bool) -> None:
    """Count the request's outcome once (later calls are ignored)."""
    state = outcome(request)
    if not state.recorded:
        state.recorded = True
        services(request).metrics.record(state.model, ok, state.key_id)


def recorder(request: Request) -> Callable[[bool], None]:
    """``record`` bound to this request, for a stream that ends after the handler returned."""
    return lambda ok: record(request, ok)


async def gateway_error(request: Request, exc: Exception) -> Response:
    """The one place a GatewayError becomes a response (and a failed request in the metrics)."""
    assert isinstance(exc, GatewayError)
    tracked = isinstance(getattr(request.state, "outcome", None), Outcome)  # a client API request
    if tracked and (exc.status >= 500 or exc.status == 429):
        record(request, False)
    if not isinstance(exc, AuthError):
        log.info("%s %s failed: %s %s", request.method, request.url.path, exc.status, exc.message)
    return error_response(exc)


# -- client disconnects ---------------------------------------------------------------------------


class ClientGone(Exception):
    """The client closed its connection before the answer was ready."""


async def while_connected(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; if the client disconnects first, cancel it (its cleanup closes the upstream call and
    settles the lease) and raise ClientGone. Once a stream has started, its response watches for itself."""
    try:
        return await until_disconnect(request.receive, work)
    except ClientLeft as exc:
        if exc.__cause__ is not None:
            log.info("the abandoned request ended with %r", exc.__cause__)
        raise ClientGone from None


async def client_gone(request: Request, exc: Exception) -> Response:
    """The client left (while sending its body, or before its answer was ready): nobody to answer."""
    log.info("client went away during %s %s", request.method, request.url.path)
    return Response(status_code=499)
