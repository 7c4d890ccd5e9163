"""``create_app``: the Starlette application with one lifespan that builds every service."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, ExceptionHandler, Lifespan

from . import __version__
from .admin.routes import admin_mounts, admin_startup
from .anthropic.errors import error_body as anthropic_error_body
from .anthropic.messages import count_tokens, create_message
from .config import BootConfig
from .diagnose.canary import metric_lines as canary_lines
from .edge import (
    ClientGone,
    ErrorShape,
    authenticate,
    client_gone,
    error_response,
    gateway_error,
    services,
    store_unavailable,
)
from .edge_layer import EdgeLayer, ErrorPage
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
from .router import StaticFirstRouter
from .services import Services
from .store.base import StoreUnavailable
from .traffic import Traffic

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
    text += "\n".join(svc.client.spares.metric_lines()) + "\n"
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
    """The application: Starlette's exception handlers and router (``StaticFirstRouter``) behind the one edge layer
    (``edge_layer.EdgeLayer``), which stands in for Starlette's outermost error middleware: it answers a request the
    app failed with ``on_error``'s page, and sits outside everything else so that every answer, a 500 too, carries
    its X-Request-ID."""

    def __init__(
        self,
        *,
        routes: list[BaseRoute],
        lifespan: Lifespan[Starlette],
        exception_handlers: Mapping[Any, ExceptionHandler],
        on_error: ErrorPage,
        traffic: Traffic,
        body_timeout: float,
        access_log: bool,
    ) -> None:
        super().__init__(routes=routes, lifespan=lifespan, exception_handlers=exception_handlers)
        self.router = StaticFirstRouter(routes, lifespan=lifespan)
        self.on_error = on_error
        self.traffic = traffic
        self.body_timeout = body_timeout
        self.access_log = access_log

    def build_middleware_stack(self) -> ASGIApp:
        handlers = {key: value for key, value in self.exception_handlers.items() if key not in (500, Exception)}
        app: ASGIApp = ExceptionMiddleware(self.router, handlers=handlers, debug=self.debug)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return EdgeLayer(
            app,
            traffic=self.traffic,
            body_timeout=self.body_timeout,
            on_error=self.on_error,
            access_log=self.access_log,
        )


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
        exception_handlers={
            HTTPException: http_error,
            GatewayError: gateway_error,
            StoreUnavailable: store_unavailable,
            ClientDisconnect: client_gone,
            ClientGone: client_gone,
        },
        on_error=server_error,
        traffic=svc.traffic,
        body_timeout=boot.body_timeout,
        access_log=boot.access_log,
    )
    app.state.services = svc
    app.state.error_shapes = api_error_shapes()
    return app
