"""Plumbing every fake grok.com endpoint shares: JSON in and out, cookies, and leaving early with an error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

JsonDict = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

encode_json = msgspec.json.Encoder().encode
decode_json = msgspec.json.Decoder().decode

# Request keys the edge middleware fills in before any handler runs.
TOKEN_KEY = "fake_token"
RAW_KEY = "fake_raw"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=encode_json(body), content_type="application/json", headers=headers)


def error_response(status: int, code: int, message: str) -> web.Response:
    return json_response(status, {"error": {"code": code, "message": message, "details": []}})


def text_response(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


class Reject(Exception):
    """Carries a finished error response out of nested code; the edge middleware returns it."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def bad_request(message: str) -> Reject:
    return Reject(error_response(400, 3, message))


def request_token(request: web.Request) -> str | None:
    """The sso token of the call (None without one)."""
    token: str | None = request[TOKEN_KEY]
    return token


def json_body(request: web.Request) -> JsonDict:
    # Parsed whatever the Content-Type: grok.com takes JSON under text/plain too.
    try:
        body = decode_json(request[RAW_KEY])
    except msgspec.DecodeError:
        raise bad_request("Request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    return body


def headers_dict(request: web.Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        if key in out:
            out[key] += ("; " if key == "cookie" else ", ") + value
        else:
            out[key] = value
    return out


def parse_cookies(header_values: list[str]) -> dict[str, str]:
    """Split Cookie headers on ``;`` in any order and spacing; the first occurrence of a name wins."""
    cookies: dict[str, str] = {}
    for header in header_values:
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name and name not in cookies:
                cookies[name] = value.strip()
    return cookies


def sso_token(cookies: dict[str, str]) -> str | None:
    return cookies.get("sso") or cookies.get("sso-rw") or None


def own_origins(request: web.Request) -> tuple[str, str]:
    """The fake's own origins as a browser names them, from the Host header (a request relayed by a forward proxy
    has an absolute target whose scheme is ``ws`` and whose host lost its port)."""
    host = request.headers.get("Host", request.host)
    return f"http://{host}", f"https://{host}"
