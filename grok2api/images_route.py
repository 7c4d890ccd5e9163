"""``GET /images/{name}``: cached media, re-fetched through the media index on a miss."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from .grok.client import UpstreamConnectionError, UpstreamHTTPError
from .media import sniff_type
from .services import Services


def _not_found() -> Response:
    return JSONResponse({"error": {"message": "File not found", "type": "invalid_request_error", "param": None,
                                   "code": "not_found"}}, status_code=404)


async def serve_media(request: Request) -> Response:
    svc: Services = request.app.state.services
    name = request.path_params["name"]
    path = svc.media.path_for(name)
    if path is None:
        return _not_found()
    if not path.exists():
        entry = await svc.store.get_media(name)
        if entry is None:
            return _not_found()
        try:
            path = await svc.media.fetch(name, entry.upstream_path, entry.account_token, svc.settings)
        except (UpstreamHTTPError, UpstreamConnectionError, OSError):
            return _not_found()
    with path.open("rb") as fh:
        head = fh.read(16)
    headers = {"Cache-Control": "public, max-age=86400", "Access-Control-Allow-Origin": "*"}
    return FileResponse(path, media_type=sniff_type(head, name), headers=headers)
