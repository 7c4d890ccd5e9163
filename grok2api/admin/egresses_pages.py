"""The egresses page: each way out to grok.com with its health and clearance, and a form per egress to paste a
``cf_clearance`` (or a Cookie line) with the User-Agent of the browser that made it."""

from __future__ import annotations

from starlette.responses import Response

from .context import Ctx
from .egresses_ops import ClearanceInputError, UnknownEgress, describe, save_clearance


def _table(ctx: Ctx, notice: str = "", error: bool = False, status: int = 200) -> Response:
    settings = ctx.svc.settings
    return ctx.html(
        "_egresses_table.html",
        status=status,
        rows=describe(ctx.svc),
        notice=notice,
        error=error,
        flaresolverr=bool(settings.flaresolverr_url),
        signer=bool(settings.statsig_signer_url),
    )


async def egresses_page(ctx: Ctx) -> Response:
    if ctx.fragment() == "egresses-table":
        return _table(ctx)
    settings = ctx.svc.settings
    return ctx.html(
        "egresses.html",
        rows=describe(ctx.svc),
        notice="",
        error=False,
        flaresolverr=bool(settings.flaresolverr_url),
        signer=bool(settings.statsig_signer_url),
    )


async def save(ctx: Ctx) -> Response:
    key = str(ctx.request.path_params.get("key", ""))
    form = await ctx.request.form()
    pasted = "" if form.get("forget") else str(form.get("clearance") or "")
    if not pasted.strip() and not form.get("forget"):
        return _table(ctx, "Paste a cf_clearance value or a Cookie line, or choose Forget.", error=True, status=422)
    try:
        egress = await save_clearance(ctx.svc, key, pasted, str(form.get("user_agent") or ""))
    except UnknownEgress:
        return _table(ctx, "No such egress (the proxies may have changed).", error=True, status=404)
    except ClearanceInputError as exc:
        return _table(ctx, f"Nothing was saved: {exc}.", error=True, status=422)
    done = "forgot its clearance" if not egress.cookies else f"stored {', '.join(sorted(egress.cookies))}"
    return _table(ctx, f"{egress.label}: {done}; in effect now on every worker.")
