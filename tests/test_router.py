"""The router's lookup by fixed path picks what Starlette's scan picks, for every method and path."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.types import Message, Receive, Scope, Send

from grok2api.router import StaticFirstRouter, static_table


def _endpoint(name: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(f"{name} {request.path_params}")

    return endpoint


class _Asgi:
    """An ASGI endpoint (a route without methods takes every method)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("asgi")(scope, receive, send)


class _OddMount(Mount):
    """A route kind whose matching the table cannot judge: takes /odd/... and /shadowed."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["path"] == "/shadowed":
            return Match.FULL, {"endpoint": self.app, "path_params": {}}
        return super().matches(scope)


def _routes() -> list[BaseRoute]:
    sub = Router([Route("/x", _endpoint("mounted x"))])
    return [
        Route("/health", _endpoint("health")),
        Route("/items/{item_id}", _endpoint("item")),
        Route("/items/special", _endpoint("special, shadowed by the pattern above")),
        Route("/chat", _endpoint("chat post"), methods=["POST"]),
        Route("/chat", _endpoint("chat get"), methods=["GET"]),
        Route("/any", _Asgi()),
        Route("/media/{name:path}", _endpoint("media")),
        Mount("/api", app=sub),
        _OddMount("/odd", app=sub),
        Route("/shadowed", _endpoint("shadowed by the odd mount")),
        Route("/late", _endpoint("after the odd mount")),
        Route("/chat", _endpoint("a third /chat, never reached"), methods=["PUT"]),
    ]


PATHS = [
    "/health",
    "/health/",
    "/items/special",
    "/items/7",
    "/chat",
    "/chat/",
    "/any",
    "/media/a/b.png",
    "/api/x",
    "/api",
    "/odd/x",
    "/shadowed",
    "/late",
    "/nowhere",
    "/",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]


async def _answer(router: Router, method: str, path: str) -> tuple[int, list[tuple[bytes, bytes]], bytes, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "scheme": "http",
        "server": ("testserver", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await router(scope, receive, send)
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    chosen = scope.get("route")
    return start["status"], start["headers"], body, chosen.path if isinstance(chosen, Route | Mount) else None


@pytest.mark.parametrize("path", PATHS)
async def test_every_method_and_path_gets_what_starlettes_scan_gives(path: str) -> None:
    routes = _routes()
    fast, scan = StaticFirstRouter(routes), Router(routes)
    for method in METHODS:
        assert await _answer(fast, method, path) == await _answer(scan, method, path), (method, path)


def test_a_path_another_route_could_take_first_is_left_to_the_scan() -> None:
    table = static_table(_routes())
    assert set(table) == {"/health", "/chat", "/any"}  # not /items/special, /shadowed nor /late
    assert [r.methods for r in table["/chat"]] == [{"POST"}, {"GET", "HEAD"}]  # the third comes after a mount


async def test_routes_added_later_are_looked_up_too() -> None:
    router = StaticFirstRouter([Route("/a", _endpoint("a"))])
    assert (await _answer(router, "GET", "/b"))[0] == 404
    router.routes.append(Route("/b", _endpoint("b")))
    assert (await _answer(router, "GET", "/b"))[2] == b"b {}"
