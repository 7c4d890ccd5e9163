"""GET /manage: the dashboard, and its live fragment (polled by htmx every few seconds)."""

from __future__ import annotations

from starlette.responses import Response

from ..diagnose.canary import notices
from . import dashboard_query
from .cache_pages import sizes as cache_sizes
from .context import Ctx

POLL_SECONDS = 5


async def dashboard_page(ctx: Ctx) -> Response:
    summary = await dashboard_query.load(ctx.svc)
    cache = await cache_sizes(ctx.svc)
    template = "_dashboard.html" if ctx.fragment() == "dashboard" else "dashboard.html"
    return ctx.html(
        template,
        s=summary,
        cache=cache,
        poll=POLL_SECONDS,
        states=dashboard_query.STATES,
        tiers=dashboard_query.TIERS,
        notices=notices(ctx.svc.canary),
    )
