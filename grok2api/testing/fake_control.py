"""Control endpoints under ``/__fake/``: drive a fake that runs in another process (recordings, faults, accounts)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from .fake_http import JsonDict, decode_json, error_response, json_response
from .fake_state import state_of

CONTROL_PREFIX = "/__fake/"

# Attributes that ``POST /__fake/config`` may change.
CONFIG_KEYS = (
    "token_delay",
    "first_line_delay",
    "accept_unknown",
    "framing",
    "require_cf_clearance",
    "strict_statsig",
    "statsig_prefixes",
    "signed_statsig",
    "site_verification",
    "max_concurrency_per_account",
    "mgw_idle_seconds",
)

routes = web.RouteTableDef()


@routes.get(CONTROL_PREFIX + "requests")
async def list_requests(request: web.Request) -> web.StreamResponse:
    return json_response(200, [r.to_dict() for r in state_of(request).requests])


@routes.post(CONTROL_PREFIX + "reset")
async def reset(request: web.Request) -> web.StreamResponse:
    state_of(request).clear()
    return json_response(200, {"ok": True})


@routes.post(CONTROL_PREFIX + "fault")
async def push_fault(request: web.Request) -> web.StreamResponse:
    body = await _control_body(request)
    params = body.get("params") or {}
    try:
        if not isinstance(params, dict):
            raise ValueError("params must be an object")
        state_of(request).push_fault(
            str(body.get("fault", "")), token=body.get("token"), count=int(body.get("count", 1)), **params
        )
    except (TypeError, ValueError) as exc:
        return error_response(400, 3, str(exc))
    return json_response(200, {"ok": True})


@routes.get(CONTROL_PREFIX + "accounts")
async def list_accounts(request: web.Request) -> web.StreamResponse:
    return json_response(200, [a.to_dict() for a in state_of(request).accounts])


@routes.post(CONTROL_PREFIX + "accounts")
async def add_account(request: web.Request) -> web.StreamResponse:
    body = await _control_body(request)
    try:
        account = state_of(request).add_account(
            str(body["token"]),
            tier=str(body.get("tier", "basic")),
            state=str(body.get("state", "ok")),
            quota=body.get("quota"),
            heavy_quota=body.get("heavy_quota"),
            quotas=body.get("quotas"),
        )
    except (KeyError, ValueError) as exc:
        return error_response(400, 3, f"bad account: {exc}")
    return json_response(200, account.to_dict())


@routes.post(CONTROL_PREFIX + "modes")
async def modes(request: web.Request) -> web.StreamResponse:
    """Add a mode (``{"id", "title"?, "quotas"?, "available"?}``) or, for a listed one, set its availability."""
    state = state_of(request)
    body = await _control_body(request)
    mode_id, available = body.get("id"), body.get("available")
    if not isinstance(mode_id, str) or not (available is None or isinstance(available, bool)):
        return error_response(400, 3, "id must be a string and available a boolean or null")
    try:
        if mode_id in state.modes:
            state.set_mode_available(mode_id, available)
        else:
            state.add_mode(mode_id, title=body.get("title"), quotas=body.get("quotas"), available=available)
    except (TypeError, ValueError) as exc:
        return error_response(400, 3, f"bad mode: {exc}")
    return json_response(200, {"modes": sorted(state.modes)})


@routes.get(CONTROL_PREFIX + "mgw")
async def list_mgw(request: web.Request) -> web.StreamResponse:
    return json_response(200, [r.to_dict() for r in state_of(request).mgw])


@routes.get(CONTROL_PREFIX + "imagine")
async def list_imagine(request: web.Request) -> web.StreamResponse:
    return json_response(200, [r.to_dict() for r in state_of(request).imagine])


@routes.post(CONTROL_PREFIX + "config")
async def config(request: web.Request) -> web.StreamResponse:
    """Change the knobs a test would otherwise set as attributes on an in-process fake."""
    state = state_of(request)
    body = await _control_body(request)
    unknown = set(body) - set(CONFIG_KEYS)
    if unknown or body.get("framing", "ndjson") not in ("ndjson", "sse"):
        return error_response(400, 3, f"bad config keys or framing: {sorted(unknown)}")
    for key, value in body.items():
        setattr(state, key, tuple(value) if key == "statsig_prefixes" else value)
    return json_response(200, {key: getattr(state, key) for key in CONFIG_KEYS})


@routes.get(CONTROL_PREFIX + "cloudflare")
async def cloudflare_state(request: web.Request) -> web.StreamResponse:
    cloudflare = state_of(request).cloudflare
    return json_response(
        200,
        {
            "challenged": sorted(cloudflare.challenged),
            "challenges": [{"source": source, "path": path} for source, path in cloudflare.challenges],
            "refusals": cloudflare.refusals,
        },
    )


@routes.post(CONTROL_PREFIX + "cloudflare")
async def cloudflare_challenge(request: web.Request) -> web.StreamResponse:
    """``{"challenge": [address, …]}``: challenge the egresses whose requests come from those addresses;
    ``{"release": [...]}`` stops it."""
    body = await _control_body(request)
    cloudflare = state_of(request).cloudflare
    for key in ("challenge", "release"):
        value = body.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return error_response(400, 3, f"{key} must be a list of addresses")
    cloudflare.challenge(*body.get("challenge", []))
    cloudflare.challenged.difference_update(body.get("release", []))
    return json_response(200, {"challenged": sorted(cloudflare.challenged)})


async def _control_body(request: web.Request) -> JsonDict:
    raw = await request.read()
    try:
        body = decode_json(raw) if raw else {}
    except msgspec.DecodeError:
        raise web.HTTPBadRequest(text="body is not JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body
