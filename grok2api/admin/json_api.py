"""Helpers shared by the JSON admin API: the reference's ``{success, message, ...}`` envelope."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..edge import decode_json, read_body
from ..errors import BodyTooLarge, InvalidRequest

MAX_JSON_BYTES = 32 * 1024 * 1024


class BadRequest(Exception):
    def __init__(self, message: str, code: str = "INVALID_REQUEST", status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.extra = extra

    def response(self) -> JSONResponse:
        return fail(self.status, self.message, self.code, **self.extra)


def ok(message: str = "", **fields: Any) -> JSONResponse:
    body: dict[str, Any] = {"success": True}
    if message:
        body["message"] = message
    body.update(fields)
    return JSONResponse(body)


def fail(status: int, message: str, code: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"success": False, "message": message, "code": code, **extra}, status_code=status)


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it passes ``limit``: never buffered whole first."""
    try:
        return await read_body(request, limit)
    except BodyTooLarge:
        raise BadRequest("The request body is too large.", "TOO_LARGE", 413) from None
    except InvalidRequest as err:  # an unreadable Content-Length
        raise BadRequest(err.message, "INVALID_REQUEST") from None


async def read_object(request: Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The JSON object body, or BadRequest (400 for malformed JSON, 413 when too large)."""
    body = await read_capped(request, limit)
    try:
        data = decode_json(body or b"{}")  # the edge's decoder: it refuses lone surrogates, as /v1 does
    except InvalidRequest:
        raise BadRequest("The body is not valid JSON.", "INVALID_JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.", "INVALID_JSON")
    return data


def string(data: dict[str, Any], name: str, required: bool = True) -> str:
    value = data.get(name, "" if not required else None)
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(f"'{name}' must be a non-empty string.", "INVALID_FIELD", field=name)
    return value


def strings(data: dict[str, Any], name: str) -> list[str]:
    value = data.get(name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"'{name}' must be a list of strings.", "INVALID_FIELD", field=name)
    return list(value)
