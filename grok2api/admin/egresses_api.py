"""/api/egresses: the egresses with their health (GET) and an operator's clearance for one (POST
/api/egresses/clearance ``{key, cf_clearance, user_agent}``; an empty ``cf_clearance`` forgets it)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..store.base import AdminSession
from .context import Admin
from .egresses_ops import ClearanceInputError, UnknownEgress, describe, save_clearance
from .json_api import BadRequest, ok, read_object, string


async def list_egresses(request: Request, admin: Admin, session: AdminSession) -> Response:
    return ok(data=describe(admin.svc))


async def set_clearance(request: Request, admin: Admin, session: AdminSession) -> Response:
    body = await read_object(request, 64 * 1024)
    key = string(body, "key")
    pasted = string(body, "cf_clearance", required=False)
    user_agent = string(body, "user_agent", required=False)
    try:
        egress = await save_clearance(admin.svc, key, pasted, user_agent)
    except UnknownEgress:
        raise BadRequest(f"No egress has the key {key[:64]!r}.", "UNKNOWN_EGRESS", 404) from None
    except ClearanceInputError as exc:
        raise BadRequest(str(exc), "INVALID_CLEARANCE", field="cf_clearance") from None
    return ok("Clearance saved." if egress.cookies else "Clearance forgotten.", data=describe(admin.svc, [egress])[0])
