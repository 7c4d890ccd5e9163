"""The settings page: one form per group, validated server-side with errors next to each field;
secrets are write-only and values set by the environment are shown locked. Also the password form."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..settings import SettingsError
from .context import Ctx
from .sessions import PasswordChangeError
from .settings_meta import FIELDS_BY_GROUP, GROUP_TITLES, GROUPS, changes_from_form, display, humanize, masked


def _group_context(
    ctx: Ctx, gid: str, errors: dict[str, str] | None = None, submitted: dict[str, str] | None = None, notice: str = ""
) -> dict[str, Any]:
    values = masked(ctx.svc.settings)
    shown = {f.name: display(f, values[f.name]) for f in FIELDS_BY_GROUP[gid]}
    for name, raw in (submitted or {}).items():
        if name in shown and name in (errors or {}):
            shown[name] = raw  # keep what the operator typed next to its error
    return {
        "gid": gid,
        "title": GROUP_TITLES[gid],
        "fields": FIELDS_BY_GROUP[gid],
        "values": shown,
        "locked": ctx.svc.overrides,
        "errors": errors or {},
        "notice": notice,
    }


async def settings_page(ctx: Ctx) -> Response:
    groups = [_group_context(ctx, gid) for gid, _, _ in GROUPS]
    env_password = bool(ctx.admin.auth.env_password)
    return ctx.html("settings.html", groups=groups, env_password=env_password, password_error="", password_notice="")


async def save_group(ctx: Ctx) -> Response:
    gid = str(ctx.request.path_params.get("group", ""))
    if gid not in FIELDS_BY_GROUP:
        return ctx.html("_notice.html", status=404, message="No such settings group.", error=True)
    form = await ctx.request.form()
    raw = {k: v for k, v in form.items() if isinstance(v, str)}
    changes = changes_from_form(FIELDS_BY_GROUP[gid], raw, ctx.svc.settings, ctx.svc.overrides)
    if not changes:
        return ctx.html("_settings_group.html", **_group_context(ctx, gid, notice="Nothing changed."))
    try:
        await ctx.svc.update_settings(changes)
    except SettingsError as exc:
        errors = {k: humanize(v) for k, v in exc.errors.items()}
        group_error = errors.pop("settings", "")
        context = _group_context(
            ctx, gid, errors, raw, notice=group_error or "Nothing was saved: fix the fields marked below."
        )
        return ctx.html("_settings_group.html", status=422, **context)
    names = ", ".join(sorted(changes))
    return ctx.html("_settings_group.html", **_group_context(ctx, gid, notice=f"Saved ({names}); in effect now."))


async def change_password(ctx: Ctx) -> Response:
    form = await ctx.request.form()
    fields = {k: str(form.get(k) or "") for k in ("current", "new", "confirm")}
    try:
        ended = await ctx.admin.auth.change_password(ctx.session, fields["current"], fields["new"], fields["confirm"])
    except PasswordChangeError as exc:
        return ctx.html(
            "_password_form.html",
            status=422,
            env_password=bool(ctx.admin.auth.env_password),
            password_error=str(exc),
            password_notice="",
        )
    notice = f"Password changed; {ended} other session(s) signed out."
    return ctx.html("_password_form.html", env_password=False, password_error="", password_notice=notice)
