"""The app's router: Starlette's, with a dictionary of its fixed paths looked at before its scan of every route.

Starlette matches a request by trying each route's regular expression in turn; ``/v1/chat/completions`` comes after
the probes, and the admin's mounts after everything. A route without path parameters matches one path only, so
``StaticFirstRouter`` keeps those routes by path. A request whose path is there, with a method one of them takes,
goes straight to the first such route. That route is the one the scan would pick: a path is kept only with the
routes the scan meets before any route that could also match it (a route with parameters whose pattern takes the
path, or a route of a kind it cannot judge, such as a custom mount). Everything else (another method, so a 405;
an unknown path, so a 404 or a redirect to the path with or without its trailing slash) takes Starlette's scan as
before. The dictionary is built from the routes as they are at the first request, and again when routes are added.
"""

from __future__ import annotations

from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Mount, Route, Router, WebSocketRoute
from starlette.types import Receive, Scope, Send


def static_table(routes: list[BaseRoute]) -> dict[str, tuple[Route, ...]]:
    """Each fixed path, with the routes that serve it, in their order, up to the first route that could match it
    as well (see the module docstring)."""
    table: dict[str, list[Route]] = {}
    blocked: set[str] = set()
    for index, route in enumerate(routes):
        if type(route) is not Route or route.param_convertors or route.path in blocked or route.path in table:
            continue
        path = route.path
        candidates: list[Route] = []
        for other in routes[index:]:
            if isinstance(other, Route) and type(other) is Route and other.path == path:
                candidates.append(other)
            elif not _never_matches(other, path):
                break
        if not all(_never_matches(other, path) for other in routes[:index]):
            blocked.add(path)
            continue
        table[path] = candidates
    return {path: tuple(found) for path, found in table.items()}


def _never_matches(route: BaseRoute, path: str) -> bool:
    """True when ``route`` surely does not match an HTTP request for ``path``."""
    if type(route) is WebSocketRoute:
        return True
    if type(route) in (Route, Mount):
        assert isinstance(route, Route | Mount)
        return route.path_regex.match(path) is None
    return False  # a kind of route whose matching this cannot judge


class StaticFirstRouter(Router):
    """See the module docstring."""

    _table: dict[str, tuple[Route, ...]] | None = None
    _table_size = -1

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if len(self.routes) != self._table_size:
                self._table, self._table_size = static_table(self.routes), len(self.routes)
            assert self._table is not None
            candidates = self._table.get(get_route_path(scope))
            if candidates is not None:
                method = scope["method"]
                for route in candidates:
                    if not route.methods or method in route.methods:
                        # What Starlette's scan sets for a full match (a fixed path has no parameters).
                        scope.setdefault("router", self)
                        scope["route"] = route
                        scope["endpoint"] = route.endpoint
                        scope["path_params"] = dict(scope.get("path_params", {}))
                        await route.handle(scope, receive, send)
                        return
        await super().app(scope, receive, send)
