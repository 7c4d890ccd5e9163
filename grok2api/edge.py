"""The HTTP edge every client endpoint shares: CORS for /v1, the app's services, capped body reading, JSON and
error responses, decoding with a 400 that names the field, client authentication, the outcome
metric, and the client-disconnect watch.

``GatewayError`` is rendered by one exception handler (``gateway_error``), so endpoints just raise. Errors are in the
OpenAI envelope unless the app maps the request's path prefix to a face's own shape (``app.state.error_shapes``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from starlette.datastructures import FormData, Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from .errors import (
    DEFAULT_RETRY_AFTER,
    AuthError,
    BodyTooLarge,
    GatewayError,
    InvalidRequest,
    ServiceUnavailable,
    whole_seconds,
)
from .logs import REQUEST_ID_HEADER
from .sse import ClientLeft, EventStream, until_disconnect
from .store.base import ClientKey, StoreUnavailable

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

    The policy is Starlette's ``CORSMiddleware``: its preflight answers are used as they are, and ``add_headers``
    gives the answers of the app the headers it gives them, without a send wrapper of its own (the edge layer
    calls it from its one)."""

    def __init__(self) -> None:
        self.policy = CORSMiddleware(
            _no_app,
            allow_origins=["*"],
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["Retry-After", REQUEST_ID_HEADER],
            max_age=600,
        )
        # Any origin, no credentials: an answer gets the simple headers when the request has an Origin, and
        # ``Vary: Origin`` always (the only case of the policy's ``send`` this class reproduces).
        assert self.policy.allow_all_origins and not self.policy.allow_credentials
        self._simple = [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.policy.simple_headers.items()
        ]
        self._names = frozenset(name for name, _ in self._simple) | {b"vary"}

    @staticmethod
    def applies(path: str) -> bool:
        return path.startswith("/v1/")

    def preflight(self, scope: Scope) -> Response | None:
        """The answer to a CORS preflight request (an OPTIONS with an Origin, which the caller has checked), or
        None when ``scope`` is an ordinary OPTIONS request."""
        headers = Headers(scope=scope)
        return self.policy.preflight_response(headers) if "access-control-request-method" in headers else None

    def add_headers(self, headers: list[tuple[bytes, bytes]], has_origin: bool) -> None:
        """Give an answer's raw ``headers`` (a list the caller owns) the CORS headers, as the policy's ``send``
        does: a header already there is replaced in place, and ``Vary`` is joined into one."""
        for name, _ in headers:
            if name in self._names:
                break
        else:  # none of them yet, the usual case
            if has_origin:
                headers.extend(self._simple)
            headers.append(_VARY_ORIGIN)
            return
        if has_origin:
            for name, value in self._simple:
                _put(headers, name, value)
        vary = [value for name, value in headers if name == b"vary"]
        _put(headers, b"vary", b", ".join([*vary, b"Origin"]))


_VARY_ORIGIN = (b"vary", b"Origin")


def _put(headers: list[tuple[bytes, bytes]], name: bytes, value: bytes) -> None:
    """Set one header as Starlette's ``MutableHeaders`` does: the first of its kind takes the value, the others go."""
    found = [index for index, (key, _) in enumerate(headers) if key == name]
    for index in reversed(found[1:]):
        del headers[index]
    if found:
        headers[found[0]] = (name, value)
    else:
        headers.append((name, value))


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("the CORS policy only answers preflights here")


# -- responses -----------------------------------------------------------------------------------


def json_response(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_ENCODER.encode(obj), status_code=status, media_type="application/json", headers=headers)


ErrorShape = Callable[[GatewayError], bytes]


def error_shape(request: Request) -> ErrorShape | None:
    """The error body of the client API ``request`` went to, when it is not the OpenAI envelope: the app's
    ``state.error_shapes`` maps a path prefix (``/v1/messages``) to the face's renderer."""
    shapes: dict[str, ErrorShape] = getattr(request.app.state, "error_shapes", {})
    path = request.url.path
    return next((shape for prefix, shape in shapes.items() if path == prefix or path.startswith(prefix + "/")), None)


def error_response(err: GatewayError, request: Request | None = None) -> Response:
    """``err`` in the OpenAI envelope, or in the shape of the face ``request`` was for."""
    shape = error_shape(request) if request is not None else None
    body = shape(err) if shape is not None else err.to_json()
    return Response(body, status_code=err.status, media_type="application/json", headers=err.headers)


def sse_response(body: AsyncIterable[bytes]) -> StreamingResponse:
    return EventStream(body, headers=SSE_HEADERS)


# -- request bodies ------------------------------------------------------------------------------


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"The request body is larger than {limit // (1024 * 1024)} MB.")


def check_declared_length(request: Request, limit: int) -> None:
    """Refuse at once a body whose Content-Length is over ``limit`` (or unreadable)."""
    declared = (raw_header(request.scope, b"content-length") or "").strip()
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
    """The whole body, never buffered past ``limit`` (``capped_stream``'s checks, without its generator)."""
    check_declared_length(request, limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def raw_header(scope: Scope, name: bytes) -> str | None:
    """The first ``name`` header (lower case) of a request, read from its raw list: cheaper than Starlette's
    ``Headers``, which copies the list and, for a header that is missing, raises and catches a KeyError."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def param_of(message: str) -> str | None:
    """The offending field from a msgspec message, e.g. ``temperature`` or ``messages[0].role``."""
    path = message.rsplit("`$", 1)[1].rstrip("`").strip().lstrip(".") if "`$" in message else ""
    missing = re.search(r"missing required field `([^`]+)`", message)
    if missing is not None:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or None


def decode(decoder: msgspec.json.Decoder[T], raw: bytes) -> T:
    """Decode a JSON body, or raise a 400 that names the offending field.

    msgspec refuses what Python's ``json`` lets through, such as a lone surrogate escape (``"\\ud800"``): a string no
    UTF-8 encoder, database or response can hold, so it must never get past the edge."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        text = str(exc)
        raise InvalidRequest(text.replace("`", ""), param=param_of(text)) from None
    except msgspec.DecodeError:
        raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
    except RecursionError:
        raise InvalidRequest(NESTED_TOO_DEEPLY, code="invalid_json") from None


ANY_JSON: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


def decode_json(raw: bytes) -> Any:
    """Any JSON value (dicts, lists, str, numbers, bool, None), with ``decode``'s 400s."""
    return decode(ANY_JSON, raw)


_SURROGATE = re.compile("[\ud800-\udfff]")


def is_text(value: str) -> bool:
    """False for a string holding a surrogate code point, which only an odd codec can produce (a form posted as
    ``charset=utf-7`` or ``unicode_escape`` is decoded with it) and which no encoder or database takes."""
    return value.isascii() or _SURROGATE.search(value) is None


def check_form(form: FormData) -> FormData:
    """``form``, or a 400 when a field name, value or file name is not valid Unicode (see ``is_text``)."""
    for name, value in form.multi_items():
        text = value if isinstance(value, str) else value.filename or ""
        if not (is_text(name) and is_text(text)):
            raise InvalidRequest("The form holds text that is not valid Unicode.", code="invalid_encoding")
    return form


async def read_form(request: Request) -> FormData:
    """The request's form, checked by ``check_form`` (Starlette keeps it for later ``request.form()`` calls).
    InvalidRequest for a form that cannot be read; BodyTooLarge (413) for a field or part past Starlette's size
    limit, refused as soon as it passes it."""
    try:
        form = await request.form()
    except HTTPException as exc:  # Starlette turns its parser's complaint into a 400 with the parser's words
        if "exceeded maximum size" in exc.detail:
            raise BodyTooLarge("A form field is larger than the gateway accepts.") from None
        raise InvalidRequest(f"The form could not be read: {exc.detail}") from None
    return check_form(form)


# -- client authentication and outcome ------------------------------------------------------------


class Outcome:
    """What one client request is about, for the metric recorded once when it ends."""

    __slots__ = ("model", "key_id", "recorded")

    def __init__(self) -> None:
        self.model = "unknown"
        self.key_id = ""
        self.recorded = False


_OUTCOME = "grok2api.outcome"  # kept in the request's scope: ``request.state`` raises and catches for a miss


def outcome(request: Request) -> Outcome:
    found = tracked(request)
    if found is None:
        found = request.scope[_OUTCOME] = Outcome()
    return found


def tracked(request: Request) -> Outcome | None:
    """The request's outcome when it is a client API request (one that named its key or model)."""
    found = request.scope.get(_OUTCOME)
    return found if isinstance(found, Outcome) else None


def authenticate(request: Request) -> ClientKey | None:
    """The caller's client key (None for the shared ``api_key`` or an open gateway); AuthError otherwise."""
    svc = services(request)
    header = _credential(request.scope["headers"])
    key = svc.keys.authenticate(header, svc.settings.api_key)
    if key is not None:
        outcome(request).key_id = key.id
    return key


def _credential(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The Authorization header, else an ``X-API-Key`` (how Anthropic's clients send their key) as a bearer one;
    the first of each, read in one pass over the raw headers."""
    api_key = None
    for name, value in headers:
        if name == b"authorization":
            return value.decode("latin-1")
        if name == b"x-api-key" and api_key is None:
            api_key = value
    return None if api_key is None else "Bearer " + api_key.decode("latin-1")


async def authorize(request: Request, key: ClientKey | None, model: str) -> None:
    """May this key use ``model`` now (model list, requests per minute)? Also names the request's model."""
    outcome(request).model = model
    await services(request).keys.check(key, model)


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
    if tracked(request) is not None and (exc.status >= 500 or exc.status == 429):
        record(request, False)
    if exc.status == 429 and "Retry-After" not in exc.headers:
        exc.headers["Retry-After"] = str(whole_seconds(_pool_wait(request) or DEFAULT_RETRY_AFTER))
    if not isinstance(exc, AuthError):
        log.info("%s %s failed: %s %s", request.method, request.url.path, exc.status, exc.message)
    return error_response(exc, request)


def _pool_wait(request: Request) -> float | None:
    """When the pool expects room again for the request's model (a usage limit grok.com reported mid-answer
    has just emptied that account's window)."""
    spec = services(request).catalog.find(outcome(request).model)
    return services(request).pool.retry_after(spec) if spec is not None else None


STORE_DOWN = "The gateway cannot reach its store right now; retry shortly."


async def store_unavailable(request: Request, exc: Exception) -> Response:
    """503 with Retry-After while the store is unreachable. Not logged per request: the outage was, once."""
    assert isinstance(exc, StoreUnavailable)
    if tracked(request) is not None:
        record(request, False)
    err = ServiceUnavailable(STORE_DOWN, code="store_unavailable", headers={"Retry-After": str(exc.retry_after)})
    return error_response(err)


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
