"""What an account may use: E4 ``POST /rest/rate-limits`` (one mode's query window) and ``POST /rest/modes``."""

from __future__ import annotations

from aiohttp import web

from .fake_accounts import FakeAccount
from .fake_errors import status_or_slow
from .fake_http import JsonDict, bad_request, json_body, json_response
from .fake_modes import DEFAULT_MODE
from .fake_state import state_of

LIMITS_PATH = "/rest/rate-limits"
MODES_PATH = "/rest/modes"

routes = web.RouteTableDef()


@routes.post(LIMITS_PATH)
async def handle_limits(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    account = state.resolve(request)
    fault = state.take_fault("limits", account.token)
    failed = await status_or_slow(fault)
    if failed is not None:
        return failed
    mode = json_body(request).get("modelName")
    if not isinstance(mode, str) or not mode:
        raise bad_request("modelName is required")
    if mode not in state.modes:
        raise bad_request(f"Invalid model name: {mode}")
    limits = rate_limits(account, mode)
    if fault is not None and fault.name == "limits-missing":
        # What a client may only assume: chenyme's client falls back to a 7200 s window.
        del limits["totalQueries"], limits["windowSizeSeconds"]
    return json_response(200, limits)


def rate_limits(account: FakeAccount, mode: str) -> JsonDict:
    """The window of one mode, reflecting what the chats have used; ``waitTimeSeconds`` once it is empty."""
    window = account.window(mode)
    out: JsonDict = {
        "windowSizeSeconds": window.window_seconds,
        "remainingQueries": window.remaining,
        "totalQueries": window.total,
        "lowEffortRateLimits": None,
        "highEffortRateLimits": None,
    }
    # A mode the tier does not get (total 0) has nothing to wait for.
    if window.remaining <= 0 < window.total:
        out["waitTimeSeconds"] = window.seconds_left()
    return out


@routes.post(MODES_PATH)
async def handle_modes(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    account = state.resolve(request)
    failed = await status_or_slow(state.take_fault("modes", account.token))
    if failed is not None:
        return failed
    locale = json_body(request).get("locale", "en")
    if not isinstance(locale, str):
        raise bad_request("locale must be a string")
    modes = [mode.to_dict(account.tier) for mode in state.modes.values()]
    return json_response(200, {"modes": modes, "defaultModeId": DEFAULT_MODE})
