"""``GET /``: grok.com's home page, the first thing a browser (and the doctor) loads from an egress. Its
``grok-site-verification`` meta is what signed statsig values embed.

A plain app shell by default. ``home-403-cf`` answers with Cloudflare's challenge page (``cf-mitigated:
challenge``), ``home-403`` with grok.com's own anti-bot refusal (JSON code 7), and the other ``home-<status>``
faults as on every side endpoint. The edge's Cloudflare play challenges this page like any other. Also the page
where the fake's Cloudflare challenge is solved (a clearance for the caller's address and User-Agent).
"""

from __future__ import annotations

import secrets

from aiohttp import web

from .fake_cloudflare import SOLVE_PATH
from .fake_errors import cloudflare_response, status_or_slow
from .fake_http import request_token
from .fake_state import state_of

HOME_PATH = "/"
HOME_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Grok</title>
<meta name="grok-site-verification" content="{meta}"></head>
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
    page = HOME_PAGE.format(meta=state.site_verification)
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "private, no-store"})


@routes.get(SOLVE_PATH)
async def solve(request: web.Request) -> web.StreamResponse:
    """A browser that ran the challenge script: a clearance for its address and User-Agent."""
    cloudflare = state_of(request).cloudflare
    value = cloudflare.issue(request.remote or "", request.headers.get("User-Agent", ""))
    response = web.Response(text="solved", content_type="text/plain")
    response.set_cookie("cf_clearance", value, path="/", httponly=True, secure=False)
    response.set_cookie("__cf_bm", secrets.token_hex(8), path="/", httponly=True)
    return response
