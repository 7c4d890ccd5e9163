"""``create_app``: the Starlette application with one lifespan that builds every service."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from . import __version__
from .admin.routes import admin_mounts, admin_startup
from .after_response import AfterResponse
from .anthropic.errors import error_body as anthropic_error_body
from .anthropic.messages import count_tokens, create_message
from .config import BootConfig
from .diagnose.canary import metric_lines as canary_lines
from .edge import (
    ApiCors,
    ClientGone,
    ErrorShape,
    RequestIds,
    authenticate,
    client_gone,
    error_response,
    gateway_error,
    services,
    store_unavailable,
)
from .errors import GatewayError, NotFound
from .grok.unknown_shapes import metric_lines as unknown_shape_lines
from .logs import setup_logging
from .mcp import mcp_endpoint
from .media.route import serve_media
from .metrics import render_prometheus
from .openai.chat import chat_completions
from .openai.images import image_edits, image_generations
from .openai.models import get_model, list_models
from .openai.responses import create_response, delete_response, get_response
from .openai.videos import create_video, delete_video, get_video, list_videos, video_content
from .openapi import openapi_json
from .readiness import readyz
from .services import Services
from .store.base import StoreUnavailable
from .traffic import TrafficGuard

log = logging.getLogger("grok2api")


async def healthz(request: Request) -> Response:
    svc = services(request)
    return JSONResponse({"status": "ok", "service": "grok2api", "version": __version__, "storage": svc.store.kind})


async def prometheus(request: Request) -> Response:
    """Prometheus metrics; guarded by the API key like /v1 when one is set."""
    authenticate(request)
    svc = services(request)
    counts = Counter((a.state, a.tier) for a in svc.pool.accounts())
    text = render_prometheus(svc.metrics, [(s, t, n) for (s, t), n in counts.items()], svc.pool.total_in_flight())
    text += "\n".join(unknown_shape_lines()) + "\n"  # how an operator learns grok.com changed again
    text += "\n".join(canary_lines(svc.canary)) + "\n"
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")


async def root(request: Request) -> Response:
    return RedirectResponse("/manage", status_code=307)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(NotFound(f"No route for {request.method} {request.url.path}."), request)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        allowed = headers.get("Allow", "")
        message = f"{request.method} is not allowed on {request.url.path}; use {allowed}."
        err = GatewayError(message, status=405, code="method_not_allowed", headers=headers)
    else:
        err = GatewayError(str(exc.detail), status=exc.status_code, headers=headers)
    err.type = "invalid_request_error"
    return error_response(err, request)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(GatewayError("The gateway hit an internal error; it has been logged."), request)


def api_routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz),
        Route("/health", healthz),
        Route("/readyz", readyz),
        Route("/metrics", prometheus),
        Route("/", root),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/responses", create_response, methods=["POST"]),
        Route("/v1/responses/{response_id}", get_response, methods=["GET"]),
        Route("/v1/responses/{response_id}", delete_response, methods=["DELETE"]),
        Route("/v1/messages", create_message, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/v1/images/generations", image_generations, methods=["POST"]),
        Route("/v1/images/edits", image_edits, methods=["POST"]),
        Route("/v1/videos", create_video, methods=["POST"]),
        Route("/v1/videos", list_videos, methods=["GET"]),
        Route("/v1/videos/{video_id}", get_video, methods=["GET"]),
        Route("/v1/videos/{video_id}", delete_video, methods=["DELETE"]),
        Route("/v1/videos/{video_id}/content", video_content, methods=["GET"]),
        Route("/v1/models", list_models),
        Route("/v1/models/{model_id:path}", get_model),
        Route("/openapi.json", openapi_json),  # describes the /v1 routes above
        Route("/images/{name:path}", serve_media, methods=["GET", "HEAD"]),
        Route("/mcp", mcp_endpoint, methods=["GET", "POST", "DELETE"]),
    ]


def api_error_shapes() -> dict[str, ErrorShape]:
    """The faces whose errors are not in the OpenAI envelope, by path prefix (the edge renders them)."""
    return {"/v1/messages": anthropic_error_body}


class GatewayApp(Starlette):
    """The application, with the request-id layer outside everything else (Starlette's own error handling
    included), so that every answer, a 500 too, carries its X-Request-ID."""

    def build_middleware_stack(self) -> ASGIApp:
        return RequestIds(super().build_middleware_stack())


def create_app(boot: BootConfig | None = None, services: Services | None = None) -> Starlette:
    boot = boot or BootConfig.from_env()
    setup_logging(boot.log_format, boot.environ.get("GROK2API_LOG_FILE", ""))
    svc = services or Services(boot)
    routes = api_routes() + admin_mounts(svc)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await svc.start()
        await admin_startup(svc)  # creates and logs the first-start admin password, once
        try:
            yield
        finally:
            await svc.stop()

    app = GatewayApp(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(TrafficGuard, traffic=svc.traffic, body_timeout=boot.body_timeout),
            Middleware(AfterResponse),
            Middleware(ApiCors),
        ],
        exception_handlers={
            HTTPException: http_error,
            GatewayError: gateway_error,
            StoreUnavailable: store_unavailable,
            ClientDisconnect: client_gone,
            ClientGone: client_gone,
            Exception: server_error,
        },
    )
    app.state.services = svc
    app.state.error_shapes = api_error_shapes()
    return app
