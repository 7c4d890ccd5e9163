"""/login and /logout for the HTML admin.

The login form has no session yet, so its CSRF token is a double-submit cookie: a random value
set with the form (HttpOnly, SameSite=Strict) that the POST must echo in a hidden field.
"""

from __future__ import annotations

import hmac
import math
import secrets

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..edge import read_form
from ..errors import GatewayError
from .context import Admin, Ctx
from .guard import COOKIE_NAME, Endpoint, client_of, same_origin, secure_headers, set_cookie
from .htmx import redirect
from .sessions import SESSION_TTL

LOGIN_COOKIE = "g2a_login"


def _form(
    admin: Admin,
    request: Request,
    error: str = "",
    status: int = 200,
    username: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    token = secrets.token_urlsafe(24)
    body = admin.views.page("login.html", login_csrf=token, error=error, username=username)
    response = HTMLResponse(body, status_code=status, headers=headers)
    set_cookie(response, request, LOGIN_COOKIE, token, max_age=3600)
    return secure_headers(response)


def login_page(admin: Admin) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        await admin.auth.ensure_credentials()
        token = request.cookies.get(COOKIE_NAME)
        session, renewed = await admin.auth.session_renewed(token)
        if session is not None:
            response = RedirectResponse(admin.views.url("dashboard"), status_code=303)
            if renewed and token:
                set_cookie(response, request, COOKIE_NAME, token, max_age=int(SESSION_TTL))
            return secure_headers(response)
        return _form(admin, request)

    return endpoint


def login_submit(admin: Admin) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            form = await read_form(request)
        except GatewayError as exc:  # unreadable (400) or too large (413)
            return _form(admin, request, exc.message, exc.status)
        finally:
            await request.close()  # a multipart sign-in may carry files: only its text fields are wanted
        username = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        given = str(form.get("csrf_token") or "")
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not same_origin(request) or not given or not hmac.compare_digest(given.encode(), expected.encode()):
            return _form(admin, request, "The form expired or came from elsewhere; please sign in again.", 403)
        result = await admin.auth.login(username, password, client_of(request))
        if result.retry_after > 0:
            wait = math.ceil(result.retry_after)
            return _form(
                admin,
                request,
                f"Too many failed attempts; try again in {wait} s.",
                429,
                username,
                headers={"Retry-After": str(wait)},
            )
        if result.token is None:
            return _form(admin, request, "Wrong username or password.", 401, username)
        response = RedirectResponse(admin.views.url("dashboard"), status_code=303)
        set_cookie(response, request, COOKIE_NAME, result.token, max_age=int(SESSION_TTL))
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return secure_headers(response)

    return endpoint


async def logout(ctx: Ctx) -> Response:
    await ctx.admin.auth.logout(ctx.session)
    if ctx.htmx:
        response = redirect(ctx.admin.views.url("login"))
    else:
        response = RedirectResponse(ctx.admin.views.url("login"), status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
    return response
