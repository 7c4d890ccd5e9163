"""The admin as two Starlette apps of its own, each with its own error handling, that ``create_app``
mounts beside the OpenAI API (``admin_mounts``):

- the HTML admin: the htmx pages under /manage (cookie session + CSRF), /login, /logout and the
  vendored static files. A 404, 405 or 500 there is an admin page, not an OpenAI JSON error.
- the JSON admin API under /api (bearer session), in the old gateway's ``{success, message, code}``
  shapes, errors included.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

from ..services import Services
from ..store.base import StoreUnavailable
from . import (
    accounts_api,
    accounts_pages,
    cache_api,
    cache_pages,
    dashboard_api,
    dashboard_pages,
    diagnose_pages,
    egresses_api,
    egresses_pages,
    keys_api,
    keys_pages,
    session_api,
    session_pages,
    settings_api,
    settings_pages,
)
from .context import Admin
from .error_handlers import (
    LastResort,
    PageErrors,
    client_gone,
    json_http_error,
    json_server_error,
    json_store_unavailable,
)
from .guard import ApiHandler, PageHandler, SecureStatic, api, page
from .sessions import AdminAuth
from .views import Views

GET, POST = ["GET"], ["POST"]


def build_admin(svc: Services) -> Admin:
    """What the admin's handlers share; its views can name the HTML admin's routes."""
    admin = Admin(svc, AdminAuth(svc), Views(svc.boot.web_dir / "templates"))
    admin.views.router = Router(page_routes(admin))  # set afterwards: the handlers need the admin
    return admin


async def admin_startup(svc: Services) -> None:
    """Run once at start-up: creates (and logs) the first admin password when none is configured."""
    await AdminAuth(svc).ensure_credentials()


class SegmentMount(Mount):
    """Mounts ``app`` at the root, but only for paths whose first segment is one of ``segments``;
    every other path goes on to the next route.

    The HTML admin has no single prefix: /login and /logout sit at the top, and ``Mount("/manage")``
    would not take ``/manage`` itself (Starlette redirects it to ``/manage/``). So the app keeps
    its whole paths and this mount names the ones that are its."""

    def __init__(self, app: ASGIApp, segments: Iterable[str], name: str) -> None:
        super().__init__("", app=app, name=name)
        self.segments = frozenset(segments)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = str(scope.get("path", "")).removeprefix(scope.get("root_path", ""))  # as the routes see it
        first = path.lstrip("/").partition("/")[0]
        if scope["type"] != "http" or first not in self.segments:
            return Match.NONE, {}
        return super().matches(scope)


def page_routes(admin: Admin) -> list[BaseRoute]:
    """The HTML admin's routes, with whole paths (see ``SegmentMount``)."""

    def html(path: str, handler: PageHandler, methods: list[str] = GET, name: str | None = None) -> Route:
        return Route(path, page(admin, handler), methods=methods, name=name)

    acc = accounts_pages
    return [
        Route("/login", session_pages.login_page(admin), methods=GET, name="login"),
        Route("/login", session_pages.login_submit(admin), methods=POST),
        html("/logout", session_pages.logout, POST, name="logout"),
        html("/manage", dashboard_pages.dashboard_page, name="dashboard"),
        html("/manage/accounts", acc.accounts_page, name="accounts"),
        html("/manage/accounts/add", acc.add_accounts, POST),
        html("/manage/accounts/bulk", acc.bulk, POST),
        html("/manage/accounts/export.csv", acc.export_csv),
        html("/manage/accounts/export.json", acc.export_json),
        html("/manage/accounts/{account_id}/row", acc.row),
        html("/manage/accounts/{account_id}/edit", acc.edit_form),
        html("/manage/accounts/{account_id}/edit", acc.edit, POST),
        html("/manage/accounts/{account_id}/test", acc.test, POST),
        html("/manage/accounts/{account_id}/refresh", acc.refresh, POST),
        html("/manage/accounts/{account_id}/toggle", acc.toggle, POST),
        html("/manage/accounts/{account_id}/delete", acc.delete, POST),
        html("/manage/accounts/{account_id}/token", acc.token),
        html("/manage/settings", settings_pages.settings_page, name="settings"),
        html("/manage/settings/password", settings_pages.change_password, POST),
        html("/manage/settings/{group}", settings_pages.save_group, POST),
        html("/manage/egresses", egresses_pages.egresses_page, name="egresses"),
        html("/manage/egresses/{key}/clearance", egresses_pages.save, POST),
        html("/manage/keys", keys_pages.keys_page, name="keys"),
        html("/manage/keys", keys_pages.create_key, POST),
        html("/manage/keys/{key_id}/revoke", keys_pages.revoke_key, POST),
        html("/manage/cache", cache_pages.cache_page, name="cache"),
        html("/manage/cache/clear/{kind}", cache_pages.clear, POST),
        html("/manage/diagnose", diagnose_pages.diagnose_page, name="diagnose"),
        html("/manage/diagnose/run", diagnose_pages.run_doctor, POST, name="diagnose_run"),
        Mount("/static", SecureStatic(StaticFiles(directory=admin.svc.boot.web_dir / "static")), name="static"),
    ]


def pages_app(admin: Admin) -> Starlette:
    """The HTML admin: the routes its views name, with its own error pages."""
    assert admin.views.router is not None, "make the admin with build_admin"
    errors = PageErrors(admin)
    app = Starlette(
        routes=admin.views.router.routes,
        middleware=[Middleware(LastResort, answer=errors.server_error)],
        exception_handlers={
            HTTPException: errors.http_error,
            ClientDisconnect: client_gone,
            StoreUnavailable: errors.store_unavailable,
        },
    )
    app.router.redirect_slashes = False  # an unknown path is the admin's 404 page, not a redirect to guess at
    return app


def api_app(admin: Admin) -> Starlette:
    """The JSON admin API, mounted at /api, with JSON errors in its own envelope."""

    def json(path: str, handler: ApiHandler, methods: list[str] = GET) -> Route:
        return Route(path, api(admin, handler), methods=methods)

    routes: list[BaseRoute] = [
        Route("/login", session_api.login(admin), methods=POST),
        json("/logout", session_api.logout, POST),
        json("/tokens", accounts_api.list_tokens),
        json("/tokens/add", accounts_api.add_tokens, POST),
        json("/tokens/delete", accounts_api.delete_tokens, POST),
        json("/tokens/tags", accounts_api.set_tags, POST),
        json("/tokens/tags/all", accounts_api.all_tag_names),
        json("/tokens/note", accounts_api.set_note, POST),
        json("/tokens/test", accounts_api.test_token, POST),
        json("/settings", settings_api.get_settings),
        json("/settings", settings_api.post_settings, POST),
        json("/egresses", egresses_api.list_egresses),
        json("/egresses/clearance", egresses_api.set_clearance, POST),
        json("/stats", dashboard_api.stats),
        json("/storage/mode", dashboard_api.storage_mode),
        json("/cache/size", cache_api.size),
        json("/cache/clear", cache_api.clear_all, POST),
        json("/cache/clear/images", cache_api.clear_images, POST),
        json("/cache/clear/videos", cache_api.clear_videos, POST),
        json("/keys", keys_api.list_keys),
        json("/keys", keys_api.create_key, POST),
        json("/keys/{key_id}", keys_api.delete_key, ["DELETE"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(LastResort, answer=json_server_error)],
        exception_handlers={
            HTTPException: json_http_error,
            ClientDisconnect: client_gone,
            StoreUnavailable: json_store_unavailable,
        },
    )
    app.router.redirect_slashes = False  # an unknown path is a JSON 404, not a redirect to guess at
    return app


def admin_mounts(svc: Services) -> list[BaseRoute]:
    """The two admin apps, mounted: the JSON API under /api, the HTML admin on its own paths."""
    admin = build_admin(svc)
    return [
        Mount("/api", app=api_app(admin), name="admin_api"),
        SegmentMount(pages_app(admin), ("login", "logout", "manage", "static"), name="admin"),
    ]
