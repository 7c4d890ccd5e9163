"""Error answers worded and shaped the way grok.com and its edge send them."""

from __future__ import annotations

import asyncio
import math

from aiohttp import web

from .fake_faults import Fault, strip_prefix
from .fake_http import json_response, text_response

ERR_INVALID = {
    "error": {
        "code": 16,
        "message": "Failed to look up session ID. [WKE=unauthorized:invalid-credentials]",
        "details": [],
    }
}
ERR_BLOCKED = {"error": {"code": 7, "message": "User is blocked [WKE=unauthorized:blocked-user]", "details": []}}
ERR_ANTIBOT = {"error": {"code": 7, "message": "Request rejected by anti-bot rules."}}
ERR_RATE = {"error": {"code": 8, "message": "Too many requests", "details": []}}
ERR_TIER = {
    "error": {"code": 7, "message": "The requested model is not available for your subscription tier", "details": []}
}
USAGE_LIMIT_MESSAGE = "You've reached your usage limit. Please try again later."

CLOUDFLARE_PAGE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"><meta name="robots" content="noindex,nofollow">
</head><body><div class="main-wrapper" role="main"><div class="main-content"><h1>grok.com</h1>
<p>Verifying you are human. This may take a few seconds.</p><noscript>Enable JavaScript and cookies to continue
</noscript></div></div><script>(function(){window._cf_chl_opt={cvId:'3',cZone:'grok.com',cType:'managed'};
var a=document.createElement('script');a.src='/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=0';
document.getElementsByTagName('head')[0].appendChild(a);})();</script><form id="cf-chl-form" action="/?__cf_chl_rt_tk=0"
method="POST"></form></body></html>
"""
BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>server</center>\r\n</body>\r\n</html>\r\n"
)


def cloudflare_response() -> web.Response:
    headers = {"Server": "cloudflare", "cf-mitigated": "challenge", "Cache-Control": "no-cache"}
    return web.Response(status=403, text=CLOUDFLARE_PAGE, content_type="text/html", headers=headers)


def server_error(status: int, style: str | None) -> web.Response:
    """5xx as grok's edge sends it: an HTML error page, or a bare text line."""
    reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Error")
    if style == "text" or (style is None and status == 500):
        return text_response(status, f"{reason}\n")
    return web.Response(
        status=status, text=BAD_GATEWAY_PAGE.format(status=status, reason=reason), content_type="text/html"
    )


def too_many_requests(retry_after: float | None) -> web.Response:
    headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after is not None else None
    return json_response(429, ERR_RATE, headers)


def status_fault(status: int, fault: Fault) -> web.Response:
    """The answer of a queued status fault on the upload, post, limits and asset endpoints."""
    if status == 401:
        return json_response(401, ERR_INVALID)
    if status == 403:
        return json_response(403, ERR_ANTIBOT)
    if status == 429:
        return too_many_requests(fault.value())
    if status == 413:
        page = BAD_GATEWAY_PAGE.format(status=413, reason="Request Entity Too Large")
        return web.Response(status=413, text=page, content_type="text/html")
    if status == 404:
        return text_response(404, "Not Found\n")
    return server_error(status, fault.style())


async def status_or_slow(fault: Fault | None) -> web.Response | None:
    """A queued side-endpoint fault: its status answer, or ``slow:S`` (then the normal answer). Suffixes that are
    neither (``limits-missing``, ``asset-truncated``…) are the endpoint's own business."""
    if fault is None:
        return None
    suffix = strip_prefix(fault.name)
    if suffix == "slow":
        await asyncio.sleep(fault.seconds(35.0))
        return None
    return status_fault(int(suffix), fault) if suffix.isdigit() else None


def refusal_response(fault: Fault) -> web.Response:
    """A chat refused before it starts (``401``, ``403-blocked``, ``403-antibot``, ``403-cf``, ``429``, 5xx),
    worded like the real refusal; the WebSocket handshake is refused the same way."""
    name = strip_prefix(fault.name)
    if name == "401":
        return json_response(401, ERR_INVALID)
    if name == "403-blocked":
        return json_response(403, ERR_BLOCKED)
    if name == "403-antibot":
        return json_response(403, ERR_ANTIBOT)
    if name == "403-cf":
        return cloudflare_response()
    if name == "429":
        return too_many_requests(fault.value())
    return server_error(int(name), fault.style())
