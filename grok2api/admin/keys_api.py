"""/api/keys: client API keys through the JSON admin API. A key's secret is in the answer that creates it and
nowhere else (only its hash is stored); listings show its prefix."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..store.base import AdminSession
from . import keys_ops
from .context import Admin
from .json_api import BadRequest, ok, read_object


async def list_keys(request: Request, admin: Admin, session: AdminSession) -> Response:
    keys = await admin.svc.store.list_client_keys()
    return ok(total=len(keys), data=[keys_ops.key_record(k) for k in keys])


async def create_key(request: Request, admin: Admin, session: AdminSession) -> Response:
    data = await read_object(request)
    try:
        req = keys_ops.parse_api(data)
    except keys_ops.KeyFormError as exc:
        first = next(iter(exc.errors))
        raise BadRequest(str(exc), "INVALID_FIELD", field=first, errors=exc.errors) from None
    key, secret = await keys_ops.create(admin.svc, req)
    return ok("Key created; its secret is shown only this once.", data={**keys_ops.key_record(key), "key": secret})


async def delete_key(request: Request, admin: Admin, session: AdminSession) -> Response:
    key_id = str(request.path_params["key_id"])
    if not await keys_ops.revoke(admin.svc, key_id):
        raise BadRequest("No such key.", "KEY_NOT_FOUND", 404)
    return ok("Key revoked.")
