"""The cache page: sizes of the media cache and clearing images, videos or everything (confirmed)."""

from __future__ import annotations

from typing import Any, cast

from starlette.responses import Response

from ..services import Services
from .cache_ops import ClearKind, cache_size, clear_cache
from .context import Ctx

KINDS = ("images", "videos", "all")


async def sizes(svc: Services) -> dict[str, Any]:
    """The reference's size fields (``image_size``, ``video_size_bytes``, ...)."""
    data: dict[str, Any] = (await cache_size(svc.media))["data"]
    return data


async def cache_page(ctx: Ctx) -> Response:
    template = "_cache.html" if ctx.fragment() == "cache" else "cache.html"
    return ctx.html(template, cache=await sizes(ctx.svc), notice="")


async def clear(ctx: Ctx) -> Response:
    kind = str(ctx.request.path_params.get("kind", ""))
    if kind not in KINDS:
        return ctx.html("_notice.html", status=404, message="Unknown cache kind.", error=True)
    result = await clear_cache(ctx.svc.media, cast(ClearKind, kind))
    return ctx.html("_cache.html", cache=await sizes(ctx.svc), notice=str(result["message"]))
