"""What an admin handler works with: the services, the auth, the views and the signed-in session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..services import Services
from ..store.base import AdminSession
from .htmx import is_htmx
from .sessions import AdminAuth
from .views import Views


@dataclass
class Admin:
    svc: Services
    auth: AdminAuth
    views: Views


@dataclass
class Ctx:
    request: Request
    admin: Admin
    session: AdminSession

    @property
    def svc(self) -> Services:
        return self.admin.svc

    @property
    def htmx(self) -> bool:
        return is_htmx(self.request)

    def fragment(self) -> str:
        """The id htmx wants to swap ("" for a whole page, also when htmx restores history)."""
        if not self.htmx or self.request.headers.get("HX-History-Restore-Request") == "true":
            return ""
        return self.request.headers.get("HX-Target", "")

    def html(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = self.admin.views.page(template, **page_context(self.admin, self.request, self.session), **context)
        return HTMLResponse(body, status_code=status)


def page_context(admin: Admin, request: Request, session: AdminSession | None) -> dict[str, Any]:
    """What ``base.html`` uses: the CSRF token and the user (blank when signed out), the storage
    mode and the path (for the active tab)."""
    return {
        "csrf": session.csrf if session else "",
        "username": session.username if session else "",
        "storage_mode": admin.svc.boot.storage_mode.upper(),
        "path": request.url.path,
    }
