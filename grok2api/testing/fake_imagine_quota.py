"""``POST /rest/media/imagine/quota_info``: the account's Imagine windows (images, pro images, edits, videos,
720p videos), each ``{available, remainingQueries, windowSizeSeconds, nextAvailableAt?}`` or null."""

from __future__ import annotations

from aiohttp import web

from .fake_errors import status_or_slow
from .fake_http import json_response
from .fake_imagine_windows import quota_info
from .fake_state import state_of

QUOTA_INFO_PATH = "/rest/media/imagine/quota_info"

routes = web.RouteTableDef()


@routes.post(QUOTA_INFO_PATH)
async def handle_quota_info(request: web.Request) -> web.StreamResponse:
    state = state_of(request)
    account = state.resolve(request)
    failed = await status_or_slow(state.take_fault("limits", account.token))
    if failed is not None:
        return failed
    return json_response(200, quota_info(account))
