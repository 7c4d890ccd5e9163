"""E4 ``POST /rest/rate-limits``: what is left of an account's quota window, in the shape grok.com answers."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .fake_errors import status_fault
from .fake_http import JsonDict, bad_request, json_body, json_response
from .fake_state import EXPERT_COST, FakeAccount, state_of

LIMITS_PATH = "/rest/rate-limits"

# Model names whose E4 answer is a shared token budget (2025 shape); others get flat query counts.
TOKEN_BUDGET_MODELS = frozenset({"grok-3", "grok-4-mini-thinking-tahoe", "grok-4"})
HEAVY_LIMIT_NAMES = frozenset({"grok-4-heavy", "heavy"})

routes = web.RouteTableDef()


@routes.post(LIMITS_PATH)
async def handle_limits(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    account = state.resolve(request)
    fault = state.take_fault("limits", account.token)
    if fault is not None and fault.name == "limits-slow":
        await asyncio.sleep(fault.seconds(35.0))
    elif fault is not None and fault.name != "limits-missing":
        return status_fault(int(fault.name[len("limits-") :]), fault)
    body = json_body(request)
    model = body.get("modelName")
    if not isinstance(model, str) or not model:
        raise bad_request("modelName is required")
    limits = rate_limits(account, model)
    if fault is not None and fault.name == "limits-missing":
        limits.pop("remainingTokens", None)
    return json_response(200, limits)


def rate_limits(account: FakeAccount, model: str) -> JsonDict:
    """The E4 answer for one model name, reflecting what E1 has consumed in the current window."""
    account.refresh()
    wait = account.seconds_left()
    if model in HEAVY_LIMIT_NAMES:
        remaining, total = account.heavy_remaining, account.heavy_total
    elif model in TOKEN_BUDGET_MODELS:
        return _token_budget_limits(account, wait)
    else:
        cost = EXPERT_COST if model == "expert" else 1
        remaining, total = account.remaining // cost, account.total // cost
    out: JsonDict = {
        "windowSizeSeconds": account.window_seconds,
        "remainingQueries": remaining,
        "totalQueries": total,
        "lowEffortRateLimits": None,
        "highEffortRateLimits": None,
    }
    if remaining <= 0:
        out["waitTimeSeconds"] = wait
    return out


def _token_budget_limits(account: FakeAccount, wait: int) -> JsonDict:
    low: JsonDict = {"cost": 1, "remainingQueries": account.remaining}
    high: JsonDict = {"cost": EXPERT_COST, "remainingQueries": account.remaining // EXPERT_COST}
    for effort in (low, high):
        if effort["remainingQueries"] <= 0:
            effort["waitTimeSeconds"] = wait
    out: JsonDict = {
        "windowSizeSeconds": account.window_seconds,
        "remainingQueries": 0,
        "totalQueries": 0,
        "remainingTokens": account.remaining,
        "totalTokens": account.total,
        "lowEffortRateLimits": low,
        "highEffortRateLimits": high,
    }
    if account.remaining <= 0:
        out["waitTimeSeconds"] = wait
    return out
