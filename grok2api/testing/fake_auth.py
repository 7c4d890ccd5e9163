"""``GET /api/auth/session``: who an sso cookie belongs to. The ``userId`` it returns names the mgw socket.

grok.com answers 200 whatever the cookie: a dead or unknown one is ``unauthenticated``, a blocked account
``blocked``. The faults ``auth-unauthenticated`` and ``auth-blocked`` give those answers to any account, and
``auth-shape`` an authenticated session without a ``userId`` (a changed answer).
"""

from __future__ import annotations

from aiohttp import web

from .fake_errors import status_or_slow
from .fake_http import json_response, request_token
from .fake_state import state_of

SESSION_PATH = "/api/auth/session"

_SESSION_FAULTS = {
    "auth-unauthenticated": {"status": "unauthenticated"},
    "auth-blocked": {"status": "blocked"},
    "auth-shape": {"status": "authenticated", "sessionInfo": {"expires": "2030-01-01T00:00:00Z"}},
}

routes = web.RouteTableDef()


@routes.get(SESSION_PATH)
async def handle_session(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    token = request_token(request)
    fault = state.take_fault("auth", token)
    if fault is not None and fault.name in _SESSION_FAULTS:
        return json_response(200, _SESSION_FAULTS[fault.name])
    failed = await status_or_slow(fault)
    if failed is not None:
        return failed
    account = state.identify(token)
    if account is None or account.state == "invalid":
        return json_response(200, {"status": "unauthenticated"})
    if account.state == "blocked":
        return json_response(200, {"status": "blocked"})
    session = {"userId": account.user_id, "email": account.email, "organizationId": account.organization_id}
    return json_response(200, {"status": "authenticated", "session": session})
