"""/api/cache/*: the reference's cache endpoints, answered by ``cache_ops``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..store.base import AdminSession
from .cache_ops import cache_size, clear_cache
from .context import Admin


async def size(request: Request, admin: Admin, session: AdminSession) -> Response:
    return JSONResponse(await cache_size(admin.svc.media))


async def clear_all(request: Request, admin: Admin, session: AdminSession) -> Response:
    return JSONResponse(await clear_cache(admin.svc.media, "all"))


async def clear_images(request: Request, admin: Admin, session: AdminSession) -> Response:
    return JSONResponse(await clear_cache(admin.svc.media, "images"))


async def clear_videos(request: Request, admin: Admin, session: AdminSession) -> Response:
    return JSONResponse(await clear_cache(admin.svc.media, "videos"))
