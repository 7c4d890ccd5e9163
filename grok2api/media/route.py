"""``GET /images/{name}`` (public, like the reference): cached images and videos, re-fetched through
the media index on a miss. Ranges are answered (video players seek), and names that could leave
the cache directory are refused before touching the disk."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from ..edge import services
from ..errors import NotFound, UpstreamError
from ..grok.errors import UpstreamHTTPError
from ..services import Services
from .cache import CachedFile
from .service import FETCH_ERRORS

log = logging.getLogger("grok2api.media")

CACHE_HEADERS = {
    "Cache-Control": "public, max-age=86400",
    "Access-Control-Allow-Origin": "*",
    "X-Content-Type-Options": "nosniff",
}


async def serve_media(request: Request) -> Response:
    cached = await cached_media(services(request), request.path_params["name"])
    return FileResponse(cached.path, media_type=cached.content_type, headers=CACHE_HEADERS, stat_result=cached.stat)


async def cached_media(svc: Services, name: str) -> CachedFile:
    """The cached file of a media name, fetched again through the media index on a miss; NotFound or
    UpstreamError (both GatewayErrors) when there is nothing to serve."""
    try:
        cached = await svc.media.open(name, svc.settings)
    except FETCH_ERRORS as exc:
        log.warning("re-fetching %s failed: %s", name, exc)
        if isinstance(exc, UpstreamHTTPError) and exc.status in (401, 403, 404):
            # The asset is gone upstream or its account lost access: nothing to serve, ever.
            raise NotFound("This media file is no longer available.") from None
        raise UpstreamError("The media file is not cached and grok.com could not be reached; try again.") from None
    if cached is None:
        raise NotFound("No such media file.")
    return cached
