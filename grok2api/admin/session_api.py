"""POST /api/login and /api/logout: bearer sessions for the JSON admin API (the reference's shapes;
a failed login is a 401 here, with the same ``{success: false, token: null, message}`` body)."""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..store.base import AdminSession
from .context import Admin
from .guard import Endpoint, client_of
from .json_api import BadRequest, ok, read_object

MAX_LOGIN_BYTES = 64 * 1024  # anyone may call /api/login: read no more than a sign-in needs


def login(admin: Admin) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            data = await read_object(request, MAX_LOGIN_BYTES)
        except BadRequest as exc:
            return JSONResponse({"success": False, "token": None, "message": exc.message}, status_code=exc.status)
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            return JSONResponse(
                {"success": False, "token": None, "message": "Send username and password."}, status_code=400
            )
        result = await admin.auth.login(username.strip(), password, client_of(request))
        if result.retry_after > 0:
            wait = math.ceil(result.retry_after)
            return JSONResponse(
                {"success": False, "token": None, "message": f"Too many failed attempts; try again in {wait} s."},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        if result.token is None:
            return JSONResponse(
                {"success": False, "token": None, "message": "Wrong username or password."}, status_code=401
            )
        return JSONResponse(
            {"success": True, "token": result.token, "message": "Signed in."}, headers={"Cache-Control": "no-store"}
        )

    return endpoint


async def logout(request: Request, admin: Admin, session: AdminSession) -> Response:
    await admin.auth.logout(session)
    return ok("Signed out.")
