"""Generated images and videos: downloaded once with the owning account's cookie, kept in the disk
cache, linked as ``/images/{name}`` (or inlined as base64) and recorded in the store's media index,
so that any replica can re-fetch a name it has never seen."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import logging
import re
import time
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from ..grok.client import GrokClient
from ..grok.errors import UpstreamConnectionError, UpstreamHTTPError
from ..settings import RuntimeSettings
from ..store.base import MediaEntry, Store
from .cache import CachedFile, MediaCache, kind_of, sniff_type, valid_name

log = logging.getLogger("grok2api.media")

MB = 1024 * 1024
MAX_ASSET_BYTES = 256 * MB  # one asset held in memory while it is written out
DOWNLOAD_TIMEOUT = {"image": 60.0, "video": 180.0}
# What a failed download raises; callers degrade to a link that re-fetches on demand.
FETCH_ERRORS = (UpstreamHTTPError, UpstreamConnectionError, OSError)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_SUFFIX = re.compile(r"\.[a-z0-9]{1,5}")


def media_name(path: str) -> str:
    """The public name of an asset: its path segments joined by '-', as the reference named them
    (``users/U/generated/I/image.jpg`` → ``users-U-generated-I-image.jpg``). Names that would be
    unsafe or too long become a hash that keeps the extension."""
    raw = urlsplit(path).path if "://" in path else path
    name = _UNSAFE.sub("-", raw.strip("/").replace("/", "-")).lstrip(".-_")
    if valid_name(name):
        return name
    suffix = PurePosixPath(raw).suffix.lower()
    return hashlib.sha256(path.encode()).hexdigest()[:40] + (suffix if _SUFFIX.fullmatch(suffix) else "")


def cache_cap_bytes(kind: str, settings: RuntimeSettings) -> int:
    mb = settings.video_cache_max_size_mb if kind == "video" else settings.image_cache_max_size_mb
    return mb * MB


class MediaService:
    def __init__(self, data_dir: Path, store: Store, client: GrokClient) -> None:
        self.cache = MediaCache(data_dir)
        self.store = store
        self.client = client
        self._inflight: dict[str, asyncio.Task[CachedFile]] = {}

    def path_for(self, name: str) -> Path | None:
        return self.cache.path_for(name)

    async def remember(self, path: str, token: str) -> str:
        """Record who owns an asset under its public name, and return the name."""
        name = media_name(path)
        entry = MediaEntry(
            name=name, kind=kind_of(name), upstream_path=path, account_token=token, created_at=time.time()
        )
        await self.store.put_media(entry)
        return name

    async def fetch(self, name: str, upstream_path: str, token: str, settings: RuntimeSettings) -> CachedFile:
        """The cached file, downloading it first if needed. Concurrent callers share one download,
        which runs as its own task so that one caller going away does not cancel it for the rest."""
        cached = await self.cache.lookup(name)
        if cached is not None:
            return cached
        task = self._inflight.get(name)
        if task is None:
            task = asyncio.create_task(self._download(name, upstream_path, token, settings), name=f"media:{name}")
            self._inflight[name] = task
            task.add_done_callback(lambda t: self._settled(name, t))
        return await asyncio.shield(task)

    def _settled(self, name: str, task: asyncio.Task[CachedFile]) -> None:
        if self._inflight.get(name) is task:
            del self._inflight[name]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone away

    async def _download(self, name: str, upstream_path: str, token: str, settings: RuntimeSettings) -> CachedFile:
        kind = kind_of(name)
        cap = cache_cap_bytes(kind, settings)
        data, _ = await self.client.download(
            token, upstream_path, settings, timeout=DOWNLOAD_TIMEOUT[kind], max_bytes=min(cap, MAX_ASSET_BYTES)
        )
        content_type = sniff_type(data[:16], name)
        if not content_type.startswith(f"{kind}/"):
            # A login page or an error document answered with 200 must not be cached as media.
            raise UpstreamHTTPError(200, f"the asset is not an {kind} ({content_type})")
        await self.cache.write(name, data)
        evicted = await self.cache.evict(kind, cap, keep=name)
        if evicted:
            log.info("evicted %d cached %s file(s) to stay under %d MB", evicted, kind, cap // MB)
        cached = await self.cache.lookup(name)
        if cached is None:
            raise FileNotFoundError(f"{name} vanished right after it was cached")
        return cached

    async def download(self, path: str, token: str, settings: RuntimeSettings) -> bytes:
        """An image's bytes without caching or indexing them (a passing preview)."""
        cap = min(cache_cap_bytes("image", settings), MAX_ASSET_BYTES)
        data, _ = await self.client.download(token, path, settings, timeout=DOWNLOAD_TIMEOUT["image"], max_bytes=cap)
        return data

    async def keep(self, path: str, data: bytes, token: str, settings: RuntimeSettings) -> str:
        """Cache image bytes grok.com sent inline (an Imagine ``blob``) and return their public name. With
        the asset's ``path`` they are indexed like a download (re-fetchable later); without one the name
        comes from the bytes and lives as long as the cached file."""
        content_type = sniff_type(data[:16])
        if not content_type.startswith("image/"):
            raise UpstreamHTTPError(200, f"the inline image is not an image ({content_type})")
        if path:
            name = await self.remember(path, token)
        else:
            name = f"imagine-{hashlib.sha256(data).hexdigest()[:40]}.{content_type.split('/')[1]}"
        await self.cache.write(name, data)
        await self.cache.evict("image", cache_cap_bytes("image", settings), keep=name)
        return name

    async def open(self, name: str, settings: RuntimeSettings) -> CachedFile | None:
        """A file to serve: from the cache, else re-fetched through the media index (so links made
        by another replica, or before the cache was cleared, keep working). None when unknown."""
        if not valid_name(name):
            return None
        cached = await self.cache.lookup(name)
        if cached is not None:
            return cached
        entry = await self.store.get_media(name)
        if entry is None:
            return None
        return await self.fetch(name, entry.upstream_path, entry.account_token, settings)

    def public_url(self, name: str, settings: RuntimeSettings, base_url: str | None = None) -> str:
        """``{base_url}/images/{name}``; a relative link when no base URL is configured."""
        base = settings.base_url if base_url is None else base_url.rstrip("/")
        return f"{base}/images/{name}"

    async def data_url(self, cached: CachedFile) -> str:
        data = await asyncio.to_thread(cached.path.read_bytes)
        return f"data:{cached.content_type};base64,{base64.b64encode(data).decode()}"

    async def _image(self, path: str, token: str, settings: RuntimeSettings) -> str:
        name = await self.remember(path, token)
        link = self.public_url(name, settings)
        try:
            cached = await self.fetch(name, path, token, settings)
            if settings.image_mode == "base64":
                link = await self.data_url(cached)
        except FETCH_ERRORS as exc:
            # The local link still works later: a miss re-fetches through the media index.
            log.warning("could not cache %s: %s", name, exc)
        return f"![Generated Image]({link})"

    async def image_markdown(self, paths: list[str], token: str, settings: RuntimeSettings) -> str:
        lines = await asyncio.gather(*(self._image(p, token, settings) for p in paths))
        return "\n".join(lines) + "\n"

    async def video_markdown(self, path: str, token: str, settings: RuntimeSettings) -> str:
        name = await self.remember(path, token)
        try:
            await self.fetch(name, path, token, settings)
        except FETCH_ERRORS as exc:
            log.warning("could not cache %s: %s", name, exc)
        src = html.escape(self.public_url(name, settings), quote=True)
        return f'<video src="{src}" controls="controls"></video>\n'

    async def close(self) -> None:
        """Cancel downloads still running (at shutdown)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
