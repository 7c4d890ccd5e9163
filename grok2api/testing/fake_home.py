"""grok.com's home page (its ``grok-site-verification`` meta is what signed statsig values embed) and the page
where the fake's Cloudflare challenge is solved (a clearance for the caller's address and User-Agent)."""

from __future__ import annotations

import secrets

from aiohttp import web

from .fake_cloudflare import SOLVE_PATH
from .fake_state import state_of

HOME_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Grok</title>
<meta name="grok-site-verification" content="{meta}"></head><body><div id="root"></div></body></html>
"""

routes = web.RouteTableDef()


@routes.get("/")
async def home(request: web.Request) -> web.StreamResponse:
    page = HOME_PAGE.format(meta=state_of(request).site_verification)
    return web.Response(text=page, content_type="text/html")


@routes.get(SOLVE_PATH)
async def solve(request: web.Request) -> web.StreamResponse:
    """A browser that ran the challenge script: a clearance for its address and User-Agent."""
    cloudflare = state_of(request).cloudflare
    value = cloudflare.issue(request.remote or "", request.headers.get("User-Agent", ""))
    response = web.Response(text="solved", content_type="text/plain")
    response.set_cookie("cf_clearance", value, path="/", httponly=True, secure=False)
    response.set_cookie("__cf_bm", secrets.token_hex(8), path="/", httponly=True)
    return response
