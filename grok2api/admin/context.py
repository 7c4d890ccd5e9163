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
        """Render with what every template may use: the CSRF token, the user and the storage mode."""
        body = self.admin.views.page(
            template,
            csrf=self.session.csrf,
            username=self.session.username,
            storage_mode=self.svc.boot.storage_mode.upper(),
            path=self.request.url.path,
            **context,
        )
        return HTMLResponse(body, status_code=status)
