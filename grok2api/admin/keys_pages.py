"""The API keys page: create (the key is shown once), revoke, and usage per key."""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from ..grok.catalog import MODELS
from . import keys_ops
from .context import Ctx
from .dashboard_query import recent_usage
from .htmx import trigger

CHANGED = "keys-changed"  # the event the keys table reloads on


async def _table_context(ctx: Ctx) -> dict[str, Any]:
    now = time.time()
    usage = keys_ops.usage_by_key(await recent_usage(ctx.svc, now))  # flushes this process's counters first
    keys = await ctx.svc.store.list_client_keys()
    rows = [(k, keys_ops.status(k, now), usage.get(k.id, (0, 0))) for k in reversed(keys)]
    return {"rows": rows, "shared_key_set": bool(ctx.svc.settings.api_key)}


def _form_context(errors: dict[str, str] | None = None, values: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "models": list(MODELS),
        "errors": errors or {},
        "created": None,
        "secret": "",
        "values": values or {"name": "", "rpm": "", "expires": "", "models": []},
    }


async def keys_page(ctx: Ctx) -> Response:
    table = await _table_context(ctx)
    if ctx.fragment() == "keys-table":
        return ctx.html("_keys_table.html", **table)
    return ctx.html("keys.html", **table, **_form_context())


async def create_key(ctx: Ctx) -> Response:
    form = await ctx.request.form()
    fields = {k: str(form.get(k) or "") for k in ("name", "rpm", "expires")}
    models = [str(m) for m in form.getlist("models")]
    try:
        req = keys_ops.parse_form(fields, models)
    except keys_ops.KeyFormError as exc:
        return ctx.html("_key_form.html", status=422, **_form_context(exc.errors, {**fields, "models": models}))
    key, secret = await keys_ops.create(ctx.svc, req)
    created = ctx.html("_key_form.html", **{**_form_context(), "created": key, "secret": secret})
    return trigger(created, CHANGED)


async def revoke_key(ctx: Ctx) -> Response:
    key_id = str(ctx.request.path_params.get("key_id", ""))
    if not await keys_ops.revoke(ctx.svc, key_id):
        return trigger(ctx.html("_notice.html", status=404, message="No such key.", error=True), CHANGED)
    return ctx.html("_keys_table.html", **(await _table_context(ctx)))
