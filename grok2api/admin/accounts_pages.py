"""The accounts page: a server-paged table with search and filters, bulk add / delete / enable /
disable / tag, per-row test, refresh, edit and delete, token copy and CSV / JSON export."""

from __future__ import annotations

import time

from starlette.datastructures import FormData, UploadFile
from starlette.responses import PlainTextResponse, Response

from ..store.base import Account
from . import accounts_ops as ops
from .accounts_export import csv_export, json_export
from .accounts_input import parse_input
from .accounts_query import PAGE_SIZES, SORTS, STATES, TIERS, AccountQuery, all_tags, filtered, paginate, small_int
from .context import Ctx
from .htmx import trigger

MAX_UPLOAD_BYTES = 16 * 1024 * 1024
CHANGED = "accounts-changed"  # the event the accounts table reloads on
BULK_ACTIONS = ("delete", "enable", "disable", "tag")


def _row(ctx: Ctx, acc: Account, result: ops.TestOutcome | None = None) -> Response:
    return ctx.html("_account_row.html", acc=acc, result=result, now=time.time())


def _notice(ctx: Ctx, message: str, status: int = 200, error: bool = False) -> Response:
    return ctx.html("_notice.html", status=status, message=message, error=error)


async def accounts_page(ctx: Ctx) -> Response:
    query = AccountQuery.parse(ctx.request.query_params)
    page = paginate(ctx.svc.pool.accounts(), query)
    template = "_accounts_table.html" if ctx.fragment() == "accounts-table" else "accounts.html"
    return ctx.html(
        template, page=page, query=query, sorts=SORTS, states=STATES, tiers=TIERS, sizes=PAGE_SIZES, now=time.time()
    )


async def _form(ctx: Ctx) -> FormData:
    # The paste box may hold thousands of tokens: allow a large text part, within the body cap.
    return await ctx.request.form(max_files=1, max_fields=100_000, max_part_size=MAX_UPLOAD_BYTES)


async def add_accounts(ctx: Ctx) -> Response:
    declared = small_int(ctx.request.headers.get("content-length", "")) or 0
    if declared > min(ctx.svc.boot.max_body_bytes, MAX_UPLOAD_BYTES + 65536):
        return _notice(ctx, "That is too large: upload at most 16 MB at a time.", 413, error=True)
    form = await _form(ctx)
    tier = str(form.get("tier") or "basic")
    if tier not in TIERS:
        return _notice(ctx, f"Unknown tier {tier!r}.", 422, error=True)
    sources = [str(form.get("tokens") or "")]
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            return _notice(ctx, "The file is larger than 16 MB.", 413, error=True)
        try:
            sources.append(data.decode("utf-8-sig"))
        except UnicodeDecodeError:
            return _notice(ctx, "The file is not UTF-8 text.", 422, error=True)
    if not any(s.strip() for s in sources):
        return _notice(ctx, "Paste tokens or choose a file first.", 422, error=True)
    summary = await ops.add(ctx.svc, parse_input(sources, tier))
    return trigger(ctx.html("_add_result.html", summary=summary), CHANGED)


async def bulk(ctx: Ctx) -> Response:
    form = await ctx.request.form()
    action = str(form.get("action") or "")
    if action not in BULK_ACTIONS:
        return _notice(ctx, "Choose an action.", 422, error=True)
    if form.get("scope") == "matching":
        query = AccountQuery.parse({k: str(v) for k, v in form.items() if isinstance(v, str)})
        accounts = filtered(ctx.svc.pool.accounts(), query)
    else:
        ids = [n for v in form.getlist("ids") if isinstance(v, str) and (n := small_int(v)) is not None]
        accounts = ops.by_ids(ctx.svc, ids)
    if not accounts:
        return _notice(ctx, "Select at least one account.", 422, error=True)
    if action == "delete":
        done = await ops.remove(ctx.svc, [a.token for a in accounts])
        message = f"Deleted {done} account(s)."
    elif action in ("enable", "disable"):
        done = await ops.set_enabled(ctx.svc, accounts, action == "enable")
        message = f"{action.capitalize()}d {done} account(s)."
    else:
        tag = str(form.get("bulk_tag") or "").strip()
        if not tag:
            return _notice(ctx, "Type the tag to add.", 422, error=True)
        done = await ops.add_tag(ctx.svc, accounts, tag)
        message = f"Tagged {done} account(s) with {tag!r}."
    return trigger(_notice(ctx, message), CHANGED)


def _account(ctx: Ctx) -> Account | None:
    account_id = small_int(str(ctx.request.path_params.get("account_id", "")))
    return None if account_id is None else ops.by_id(ctx.svc, account_id)


def _gone(ctx: Ctx) -> Response:
    return trigger(_notice(ctx, "That account no longer exists.", 404, error=True), CHANGED)


async def row(ctx: Ctx) -> Response:
    acc = _account(ctx)
    return _row(ctx, acc) if acc else _gone(ctx)


async def edit_form(ctx: Ctx) -> Response:
    acc = _account(ctx)
    if acc is None:
        return _gone(ctx)
    return ctx.html("_account_edit.html", acc=acc, palette=all_tags(ctx.svc.pool.accounts()))


async def edit(ctx: Ctx) -> Response:
    acc = _account(ctx)
    if acc is None:
        return _gone(ctx)
    form = await ctx.request.form()
    tags = str(form.get(f"tags-{acc.id}") or "").split(",")
    await ops.set_tags(ctx.svc, acc, tags)
    await ops.set_note(ctx.svc, acc, str(form.get(f"note-{acc.id}") or ""))
    after = ops.by_id(ctx.svc, acc.id)
    return _row(ctx, after) if after else _gone(ctx)


async def test(ctx: Ctx) -> Response:
    acc = _account(ctx)
    if acc is None:
        return _gone(ctx)
    outcome = await ops.test(ctx.svc, acc)
    return _row(ctx, outcome.account or acc, outcome)


async def toggle(ctx: Ctx) -> Response:
    acc = _account(ctx)
    if acc is None:
        return _gone(ctx)
    await ops.set_enabled(ctx.svc, [acc], acc.state == "disabled")
    after = ops.by_id(ctx.svc, acc.id)
    return _row(ctx, after) if after else _gone(ctx)


async def delete(ctx: Ctx) -> Response:
    acc = _account(ctx)
    if acc is not None:
        await ops.remove(ctx.svc, [acc.token])
    # An empty answer removes the row; the table reloads for the counts and the next page's rows.
    return trigger(Response(b""), CHANGED)


async def token(ctx: Ctx) -> Response:
    """The full token, fetched by the copy button (never embedded in the page)."""
    acc = _account(ctx)
    if acc is None:
        return PlainTextResponse("not found", status_code=404)
    return PlainTextResponse(acc.token, headers={"Cache-Control": "no-store"})


def _export_set(ctx: Ctx) -> list[Account]:
    params = ctx.request.query_params
    ids = {n for v in params.getlist("ids") if (n := small_int(v)) is not None}
    if ids:
        return ops.by_ids(ctx.svc, ids)
    return filtered(ctx.svc.pool.accounts(), AccountQuery.parse(params))


async def export_csv(ctx: Ctx) -> Response:
    return csv_export(_export_set(ctx))


async def export_json(ctx: Ctx) -> Response:
    return json_export(_export_set(ctx))


async def refresh(ctx: Ctx) -> Response:
    """Refresh the quota quietly: the row shows the new numbers, and the reason only on failure."""
    acc = _account(ctx)
    if acc is None:
        return _gone(ctx)
    outcome = await ops.test(ctx.svc, acc)
    return _row(ctx, outcome.account or acc, None if outcome.ok else outcome)
