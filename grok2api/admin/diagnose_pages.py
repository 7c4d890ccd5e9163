"""The Diagnose page: the doctor's last result per egress (any worker's, from the store), a button that runs it
again for one egress with a chosen account (htmx swaps in the new result), and the canary's recent runs."""

from __future__ import annotations

import re

from starlette.responses import Response

from ..diagnose import records
from ..diagnose.doctor import DoctorAccount, run_target
from ..diagnose.targets import Target, targets
from ..store.base import Account, AccountState
from .context import Ctx

MAX_CHOICES = 100  # accounts offered in the picker (the first active ones)


def egress_id(name: str) -> str:
    """An HTML id for an egress's section."""
    return "egress-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "x")


def _active(ctx: Ctx) -> list[Account]:
    return sorted((a for a in ctx.svc.pool.accounts() if a.state == AccountState.ACTIVE), key=lambda a: a.id)


def _chosen(ctx: Ctx, raw: object) -> DoctorAccount | None:
    """The picked account, else the first active one (the doctor's default)."""
    active = _active(ctx)
    wanted = str(raw or "")
    found = next((a for a in active if str(a.id) == wanted), active[0] if active else None)
    return DoctorAccount(found.token, found.user_id) if found else None


async def diagnose_page(ctx: Ctx) -> Response:
    stored = await ctx.svc.store.load_settings()
    reports = records.reports_of(stored)
    return ctx.html(
        "diagnose.html",
        egresses=[(t, reports.get(t.name)) for t in targets(ctx.svc.settings, ctx.svc.egresses.all())],
        accounts=_active(ctx)[:MAX_CHOICES],
        runs=list(reversed(records.canary_runs(stored))),
        interval=ctx.svc.settings.canary_interval_minutes,
        egress_id=egress_id,
    )


async def run_doctor(ctx: Ctx) -> Response:
    form = await ctx.request.form()
    name = str(form.get("egress") or "")
    target: Target | None = next((t for t in targets(ctx.svc.settings, ctx.svc.egresses.all()) if t.name == name), None)
    if target is None:
        return ctx.html("_notice.html", status=404, message=f"There is no egress named {name!r}.", error=True)
    report = await run_target(target, _chosen(ctx, form.get("account")), ctx.svc.settings)
    await records.save_report(ctx.svc.store, report)
    return ctx.html("_diagnose_egress.html", egress=target, report=report, egress_id=egress_id)
