"""Generated images and videos: downloaded with the owning account's cookie, cached on disk under
the data dir, served at ``/images/{name}``, and indexed in the store so any replica can re-fetch."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from pathlib import Path

from .grok.client import GrokClient, UpstreamConnectionError, UpstreamHTTPError
from .settings import RuntimeSettings
from .store.base import MediaEntry, Store

log = logging.getLogger("grok2api.media")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".avi")


def media_name(path: str) -> str:
    """The public file name of an asset path: its segments joined by '-' (as the reference did)."""
    return path.strip("/").replace("/", "-")


def kind_of(name: str) -> str:
    return "video" if name.lower().endswith(VIDEO_SUFFIXES) else "image"


def sniff_type(data: bytes, name: str) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return "video/mp4" if kind_of(name) == "video" else "application/octet-stream"


class MediaService:
    def __init__(self, data_dir: Path, store: Store, client: GrokClient) -> None:
        self.dirs = {"image": data_dir / "images", "video": data_dir / "videos"}
        for d in self.dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.client = client
        self._inflight: dict[str, asyncio.Future[Path]] = {}

    def path_for(self, name: str) -> Path | None:
        """The cache file for a public name, or None when the name could escape the directory."""
        if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith(".") or "\x00" in name:
            return None
        return self.dirs[kind_of(name)] / name

    async def fetch(self, name: str, upstream_path: str, token: str, settings: RuntimeSettings) -> Path:
        """Download once into the cache (concurrent callers share one download)."""
        target = self.path_for(name)
        if target is None:
            raise ValueError("bad media name")
        if target.exists():
            return target
        pending = self._inflight.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Path] = asyncio.get_running_loop().create_future()
        self._inflight[name] = fut
        try:
            timeout = 120.0 if kind_of(name) == "video" else 60.0
            data, _ = await self.client.download(token, upstream_path, settings, timeout=timeout)
            await asyncio.to_thread(_atomic_write, target, data)
            fut.set_result(target)
            return target
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: callers that never awaited must not warn
            raise
        finally:
            self._inflight.pop(name, None)

    async def remember(self, path: str, token: str) -> str:
        name = media_name(path)
        await self.store.put_media(
            MediaEntry(name=name, kind=kind_of(name), upstream_path=path, account_token=token, created_at=time.time())
        )
        return name

    def public_url(self, name: str, settings: RuntimeSettings) -> str:
        return f"{settings.base_url}/images/{name}"

    async def image_markdown(self, paths: list[str], token: str, settings: RuntimeSettings) -> str:
        out: list[str] = []
        for path in paths:
            name = await self.remember(path, token)
            try:
                file = await self.fetch(name, path, token, settings)
            except (UpstreamHTTPError, UpstreamConnectionError, OSError) as exc:
                log.warning("could not cache %s: %s", name, exc)
                out.append(f"![Generated Image]({self.public_url(name, settings)})")
                continue
            if settings.image_mode == "base64":
                data = await asyncio.to_thread(file.read_bytes)
                mime = sniff_type(data, name)
                out.append(f"![Generated Image](data:{mime};base64,{base64.b64encode(data).decode()})")
            else:
                out.append(f"![Generated Image]({self.public_url(name, settings)})")
        return "\n".join(out) + "\n"

    async def video_markdown(self, path: str, token: str, settings: RuntimeSettings) -> str:
        name = await self.remember(path, token)
        try:
            await self.fetch(name, path, token, settings)
        except (UpstreamHTTPError, UpstreamConnectionError, OSError) as exc:
            log.warning("could not cache %s: %s", name, exc)
        return f'<video src="{self.public_url(name, settings)}" controls="controls"></video>\n'


def _atomic_write(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
