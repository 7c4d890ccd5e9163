"""``GET /``: grok.com's home page, the first thing a browser (and the doctor) loads from an egress.

A plain app shell by default. ``home-403-cf`` answers with Cloudflare's challenge page (``cf-mitigated:
challenge``), ``home-403`` with grok.com's own anti-bot refusal (JSON code 7), and the other ``home-<status>``
faults as on every side endpoint. The edge's ``require_cf_clearance`` challenges this page like any other.
"""

from __future__ import annotations

from aiohttp import web

from .fake_errors import cloudflare_response, status_or_slow
from .fake_http import request_token
from .fake_state import state_of

HOME_PATH = "/"
HOME_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Grok</title>
<meta name="grok-site-verification" content="fake-site-verification"></head>
<body><div id="root"></div><script src="/_next/static/chunks/main-app.js" async></script></body></html>
"""

routes = web.RouteTableDef()


@routes.get(HOME_PATH)
async def handle_home(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    fault = state.take_fault("home", request_token(request))
    if fault is not None and fault.name == "home-403-cf":
        return cloudflare_response()
    failed = await status_or_slow(fault)
    if failed is not None:
        return failed
    return web.Response(text=HOME_PAGE, content_type="text/html", headers={"Cache-Control": "private, no-store"})
