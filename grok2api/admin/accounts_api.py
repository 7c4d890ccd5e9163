"""/api/tokens*: the reference's token admin endpoints over our account pool.

``token_type`` is the reference's tier name ("sso" = basic, "ssoSuper" = super). Rows carry the
reference's fields and status labels plus our explicit ``state`` / ``state_reason``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ..compat.reference_shapes import TOKEN_TYPES, token_record
from ..store.base import Account, AdminSession, Tier
from . import accounts_ops as ops
from .accounts_input import parse_input
from .accounts_query import AccountQuery, all_tags, paginate
from .context import Admin
from .json_api import BadRequest, fail, ok, read_object, string, strings

_QUERY_PARAMS = ("q", "tier", "state", "tag", "sort", "page", "size")


def _tier(data: dict[str, Any]) -> str:
    token_type = data.get("token_type")
    if not isinstance(token_type, str) or token_type not in TOKEN_TYPES:
        raise BadRequest("token_type must be 'sso' or 'ssoSuper'.", "INVALID_TYPE")
    return TOKEN_TYPES[token_type]


def _find(admin: Admin, data: dict[str, Any]) -> Account:
    _tier(data)
    token = string(data, "token")
    acc = ops.by_token(admin.svc, token.strip())
    if acc is None:
        raise BadRequest("No such token in the pool.", "TOKEN_NOT_FOUND", 404)
    return acc


async def list_tokens(request: Request, admin: Admin, session: AdminSession) -> Response:
    accounts = admin.svc.pool.accounts()
    params = request.query_params
    if any(p in params for p in _QUERY_PARAMS):
        # Our extension for big pools: the reference's filters plus paging, same row shape.
        page = paginate(accounts, AccountQuery.parse(params))
        return ok(total=page.total, page=page.page, pages=page.pages, data=[token_record(a) for a in page.rows])
    ordered = sorted(accounts, key=lambda a: (a.tier != Tier.BASIC, a.created_at, a.id))
    return ok(total=len(ordered), data=[token_record(a) for a in ordered])


async def add_tokens(request: Request, admin: Admin, session: AdminSession) -> Response:
    data = await read_object(request)
    tier = _tier(data)
    parsed = parse_input(["\n".join(t.replace("\n", " ") for t in strings(data, "tokens"))], tier)
    summary = await ops.add(admin.svc, parsed)
    count = summary.added + summary.updated
    rejected = [{"token": r.token, "reason": r.reason} for r in summary.rejected]
    return ok(
        f"Added {summary.added}, updated {summary.updated}, rejected {len(rejected)} token(s).",
        count=count,
        added=summary.added,
        updated=summary.updated,
        rejected=rejected,
    )


async def delete_tokens(request: Request, admin: Admin, session: AdminSession) -> Response:
    data = await read_object(request)
    _tier(data)
    removed = await ops.remove(admin.svc, [t.strip() for t in strings(data, "tokens") if t.strip()])
    return ok(f"Deleted {removed} token(s).", count=removed)


async def set_tags(request: Request, admin: Admin, session: AdminSession) -> Response:
    data = await read_object(request)
    acc = _find(admin, data)
    tags = await ops.set_tags(admin.svc, acc, strings(data, "tags"))
    return ok("Tags updated.", tags=tags)


async def all_tag_names(request: Request, admin: Admin, session: AdminSession) -> Response:
    return ok(data=all_tags(admin.svc.pool.accounts()))


async def set_note(request: Request, admin: Admin, session: AdminSession) -> Response:
    data = await read_object(request)
    acc = _find(admin, data)
    note = data.get("note")
    if not isinstance(note, str):
        raise BadRequest("'note' must be a string.", "INVALID_FIELD", field="note")
    return ok("Note updated.", note=await ops.set_note(admin.svc, acc, note))


_ERROR_TYPES = {
    "invalid": ("expired", 401),
    "blocked": ("blocked", 403),
    "cooling": ("limited", 429),
    "rate_limited": ("limited", 429),
}


async def test_token(request: Request, admin: Admin, session: AdminSession) -> Response:
    data = await read_object(request)
    _tier(data)
    token = string(data, "token").strip()
    acc = ops.by_token(admin.svc, token)
    outcome = await (ops.test(admin.svc, acc) if acc else ops.test_outside_pool(admin.svc, token))
    details: dict[str, Any] = {"state": outcome.state, "explanation": outcome.explanation, "in_pool": acc is not None}
    if outcome.account is not None:
        details["state_reason"] = outcome.account.state_reason
    if outcome.ok:
        remaining = -1 if outcome.remaining is None else outcome.remaining
        limit = -1 if outcome.limit is None else outcome.limit
        return ok(
            "Token is valid.",
            data={
                "valid": True,
                "remaining_queries": remaining,
                "limit": limit,
                "heavy_remaining_queries": outcome.heavy_remaining,
                **details,
            },
        )
    error_type, error_code = _ERROR_TYPES.get(outcome.state, ("unknown", 502))
    # Like the reference: the check ran, the token failed it, so this is a 200 with success false.
    return fail(
        200,
        outcome.message,
        "TOKEN_TEST_FAILED",
        data={"valid": False, "error_type": error_type, "error_code": error_code, **details},
    )
