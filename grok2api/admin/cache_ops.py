"""Media cache management for the admin: sizes per kind and clearing, answered in the reference's
``/api/cache/*`` JSON shapes so existing admin clients keep working.

Clearing deletes cached files only; the media index stays, so links already handed out keep
working (the next request re-fetches the file from grok.com).
"""

from __future__ import annotations

from typing import Any, Literal

from ..media.service import MediaService

ClearKind = Literal["images", "videos", "all"]
_KIND = {"images": "image", "videos": "video"}


def human_size(size: int) -> str:
    """``12.3 KB`` below one megabyte, ``4.5 MB`` above, as the reference showed sizes."""
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


async def cache_size(media: MediaService) -> dict[str, Any]:
    """``GET /api/cache/size``."""
    _, image_bytes = await media.cache.usage("image")
    _, video_bytes = await media.cache.usage("video")
    total = image_bytes + video_bytes
    return {
        "success": True,
        "data": {
            "image_size": human_size(image_bytes),
            "video_size": human_size(video_bytes),
            "total_size": human_size(total),
            "image_size_bytes": image_bytes,
            "video_size_bytes": video_bytes,
            "total_size_bytes": total,
        },
    }


async def clear_cache(media: MediaService, kind: ClearKind) -> dict[str, Any]:
    """``POST /api/cache/clear`` (kind ``all``), ``/api/cache/clear/images`` and ``/api/cache/clear/videos``."""
    if kind == "all":
        images = await media.cache.clear("image")
        videos = await media.cache.clear("video")
        return {
            "success": True,
            "message": f"Cleared the media cache: {images} image(s) and {videos} video(s) deleted.",
            "data": {"deleted_count": images + videos, "image_count": images, "video_count": videos},
        }
    if kind not in _KIND:
        raise ValueError(f"unknown cache kind {kind!r} (images, videos or all)")
    deleted = await media.cache.clear(_KIND[kind])
    return {
        "success": True,
        "message": f"Cleared the {kind[:-1]} cache: {deleted} file(s) deleted.",
        "data": {"deleted_count": deleted, "type": kind},
    }
