"""What grok.com's edge does before any endpoint runs (record the call, then the Cloudflare and statsig checks) and
to every answer before it goes out (Cloudflare's ``__cf_bm``)."""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from .fake_cloudflare import CLOUDFLARE_PREFIX, statsig_refusal
from .fake_control import CONTROL_PREFIX
from .fake_errors import ERR_ANTIBOT, cloudflare_response
from .fake_http import RAW_KEY, TOKEN_KEY, Handler, Reject, json_response, parse_cookies, sso_token
from .fake_state import FakeState, state_of


def statsig_valid(value: str, prefixes: tuple[str, ...] = ("e:", "x1:")) -> bool:
    """True when the header is base64 of ASCII text starting with one of the accepted prefixes."""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        return False
    return any(decoded.startswith(p) and len(decoded) > len(p) for p in prefixes)


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Admit the call (control endpoints skip that: they are not grok.com) and turn a ``Reject`` into its answer."""
    try:
        if not request.path.startswith(CONTROL_PREFIX):
            await _admit(state_of(request), request)
        return await handler(request)
    except Reject as reject:
        return reject.response


async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer's headers, streamed answers and WebSocket handshakes included, just before they are sent."""
    if not request.path.startswith(CONTROL_PREFIX):
        state_of(request).cloudflare.set_bot_cookie(request, response)


async def _admit(state: FakeState, request: web.Request) -> None:
    """Record the call, then apply the checks every grok.com endpoint shares (Cloudflare, statsig)."""
    raw = await request.read()
    cookies = parse_cookies(request.headers.getall("Cookie", []))
    token = sso_token(cookies)
    request[TOKEN_KEY] = token
    request[RAW_KEY] = raw
    state.record(request, raw, token)
    if request.path.startswith(CLOUDFLARE_PREFIX):
        return
    if state.require_cf_clearance is not None and cookies.get("cf_clearance") != state.require_cf_clearance:
        raise Reject(cloudflare_response())
    if (challenge := state.cloudflare.check(request, cookies.get("cf_clearance"))) is not None:
        raise Reject(challenge)
    if state.signed_statsig and request.path.startswith(("/rest/", "/http/")):
        if (refusal := statsig_refusal(request, state.site_verification)) is not None:
            raise Reject(refusal)
    if request.path.startswith("/rest/"):
        statsig = request.headers.get("x-statsig-id", "")
        if not statsig or (state.strict_statsig and not statsig_valid(statsig, state.statsig_prefixes)):
            raise Reject(json_response(403, ERR_ANTIBOT))
