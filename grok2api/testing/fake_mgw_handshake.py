"""Who may open ``/ws/mgw/?uid=<userId>``: the sso cookie's account, its ``x-userid`` cookie and the uid naming
it, an Origin of grok.com (or of the fake itself), then any queued refusal.

A refusal is an ordinary HTTP answer instead of ``101``, worded as grok.com words it (401 invalid credentials,
403 blocked-user, 403 anti-bot code 7, 403 Cloudflare challenge page, 429, 5xx). It is kept until a plain GET of
the same URL reads it back, because aiohttp's client cannot see the body of a failed handshake.
"""

from __future__ import annotations

from aiohttp import web

from .fake_accounts import FakeAccount
from .fake_errors import ERR_ANTIBOT, ERR_BLOCKED, ERR_INVALID, refusal_response
from .fake_faults import MGW_HANDSHAKE_FAULTS
from .fake_http import json_response, own_origins, parse_cookies, request_token, text_response
from .fake_records import Refusal
from .fake_state import FakeState

GROK_ORIGIN = "https://grok.com"


def _key(request: web.Request) -> tuple[str | None, str]:
    return request_token(request), request.query.get("uid", "")


def _check(state: FakeState, request: web.Request) -> FakeAccount | web.Response:
    """The account this handshake belongs to, or the refusal grok.com would give it."""
    token, uid = _key(request)
    account = state.identify(token)
    if account is None or account.state == "invalid":
        return json_response(401, ERR_INVALID)
    if account.state == "blocked":
        return json_response(403, ERR_BLOCKED)
    cookies = parse_cookies(request.headers.getall("Cookie", []))
    if not uid or uid != account.user_id or cookies.get("x-userid") != uid:
        return json_response(401, ERR_INVALID)
    if request.headers.get("Origin") not in (GROK_ORIGIN, *own_origins(request)):
        return json_response(403, ERR_ANTIBOT)
    return account


def admit(state: FakeState, request: web.Request) -> FakeAccount | web.Response:
    """The account of an acceptable handshake, else its refusal. A queued ``mgw-`` refusal, or a chat one, wins
    over letting it through."""
    checked = _check(state, request)
    if isinstance(checked, FakeAccount):
        token = checked.token
        fault = state.take_fault("mgw", token, MGW_HANDSHAKE_FAULTS) or state.take_fault(
            "chat", token, MGW_HANDSHAKE_FAULTS
        )
        if fault is None:
            return checked
        checked = refusal_response(fault)
    state.mgw_refusals[_key(request)] = Refusal.of(checked)
    record = state.record_mgw(request, request_token(request), request.query.get("uid", ""))
    record.refused = checked.status
    return checked


def plain_get(state: FakeState, request: web.Request) -> web.Response:
    """A GET without the upgrade: the refusal the last handshake got, else what the checks say now."""
    kept = state.mgw_refusals.pop(_key(request), None)
    if kept is not None:
        return kept.response()
    checked = _check(state, request)
    if isinstance(checked, web.Response):
        return checked
    return text_response(426, "Upgrade Required\n")
