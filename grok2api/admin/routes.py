"""The admin's routes: the HTMX pages (cookie session + CSRF), the JSON API (bearer session) and
the vendored static files. ``create_app`` mounts whatever ``admin_routes`` returns."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..services import Services
from . import (
    accounts_api,
    accounts_pages,
    cache_api,
    cache_pages,
    dashboard_api,
    dashboard_pages,
    keys_pages,
    session_api,
    session_pages,
    settings_api,
    settings_pages,
)
from .context import Admin
from .guard import ApiHandler, PageHandler, SecureStatic, api, page
from .sessions import AdminAuth
from .views import Views

GET, POST = ["GET"], ["POST"]


def build_admin(svc: Services) -> Admin:
    return Admin(svc, AdminAuth(svc), Views(svc.boot.web_dir / "templates"))


async def admin_startup(svc: Services) -> None:
    """Run once at start-up: creates (and logs) the first admin password when none is configured."""
    await AdminAuth(svc).ensure_credentials()


def admin_routes(svc: Services) -> list[BaseRoute]:
    admin = build_admin(svc)

    def html(path: str, handler: PageHandler, methods: list[str] = GET) -> Route:
        return Route(path, page(admin, handler), methods=methods)

    def json(path: str, handler: ApiHandler, methods: list[str] = GET) -> Route:
        return Route(path, api(admin, handler), methods=methods)

    acc = accounts_pages
    return [
        Route("/login", session_pages.login_page(admin), methods=GET),
        Route("/login", session_pages.login_submit(admin), methods=POST),
        html("/logout", session_pages.logout, POST),
        html("/manage", dashboard_pages.dashboard_page),
        html("/manage/accounts", acc.accounts_page),
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
        html("/manage/settings", settings_pages.settings_page),
        html("/manage/settings/password", settings_pages.change_password, POST),
        html("/manage/settings/{group}", settings_pages.save_group, POST),
        html("/manage/keys", keys_pages.keys_page),
        html("/manage/keys", keys_pages.create_key, POST),
        html("/manage/keys/{key_id}/revoke", keys_pages.revoke_key, POST),
        html("/manage/cache", cache_pages.cache_page),
        html("/manage/cache/clear/{kind}", cache_pages.clear, POST),
        Route("/api/login", session_api.login(admin), methods=POST),
        json("/api/logout", session_api.logout, POST),
        json("/api/tokens", accounts_api.list_tokens),
        json("/api/tokens/add", accounts_api.add_tokens, POST),
        json("/api/tokens/delete", accounts_api.delete_tokens, POST),
        json("/api/tokens/tags", accounts_api.set_tags, POST),
        json("/api/tokens/tags/all", accounts_api.all_tag_names),
        json("/api/tokens/note", accounts_api.set_note, POST),
        json("/api/tokens/test", accounts_api.test_token, POST),
        json("/api/settings", settings_api.get_settings),
        json("/api/settings", settings_api.post_settings, POST),
        json("/api/stats", dashboard_api.stats),
        json("/api/storage/mode", dashboard_api.storage_mode),
        json("/api/cache/size", cache_api.size),
        json("/api/cache/clear", cache_api.clear_all, POST),
        json("/api/cache/clear/images", cache_api.clear_images, POST),
        json("/api/cache/clear/videos", cache_api.clear_videos, POST),
        Mount("/static", SecureStatic(StaticFiles(directory=svc.boot.web_dir / "static")), name="static"),
    ]
