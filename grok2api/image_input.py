"""Client images (``image_url`` parts) turned into bytes ready to upload: data URLs, bare base64 and
http(s) URLs. Remote fetches refuse private, loopback and link-local addresses unless allowed,
are capped in size and time, and must really be images."""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from urllib.parse import urlsplit

import aiohttp
import msgspec

from .errors import InvalidRequest
from .grok.client import HttpPool
from .settings import RuntimeSettings

FETCH_TIMEOUT = 15.0
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


class PreparedImage(msgspec.Struct):
    file_name: str
    mime: str
    b64: str


def sniff_image(data: bytes) -> str | None:
    """The MIME type by content, or None when the bytes are not an image we know."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    return None


def _prepared(data: bytes, index: int) -> PreparedImage:
    mime = sniff_image(data)
    if mime is None:
        raise InvalidRequest(
            f"image {index + 1} is not a JPEG, PNG, GIF, WebP or BMP image", param=f"messages.image_url[{index}]"
        )
    ext = mime.split("/")[1]
    return PreparedImage(f"image.{ext}", mime, base64.b64encode(data).decode())


def _decode_b64(text: str, index: int) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=False)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"image {index + 1} is not valid base64", param=f"messages.image_url[{index}]") from None


async def _check_host(host: str, port: int, index: int) -> None:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise InvalidRequest(f"image {index + 1}: cannot resolve host {host!r}", param=f"messages.image_url[{index}]") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if addr.is_private or addr.is_loopback or addr.is_link_local or addr.is_reserved or addr.is_multicast \
                or addr.is_unspecified:
            raise InvalidRequest(
                f"image {index + 1}: fetching from a private, loopback or link-local address ({addr}) is not allowed "
                "(an operator can enable allow_private_image_urls)",
                param=f"messages.image_url[{index}]",
            )


async def _fetch(url: str, index: int, settings: RuntimeSettings, http: HttpPool) -> bytes:
    parts = urlsplit(url)
    if not parts.hostname:
        raise InvalidRequest(f"image {index + 1}: the URL has no host", param=f"messages.image_url[{index}]")
    if not settings.allow_private_image_urls:
        await _check_host(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), index)
    limit = settings.image_fetch_max_mb * 1024 * 1024
    session, _ = http.session("")
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT), allow_redirects=False
        ) as resp:
            if resp.status != 200:
                raise InvalidRequest(
                    f"image {index + 1}: fetching it answered HTTP {resp.status}", param=f"messages.image_url[{index}]"
                )
            body = bytearray()
            async for chunk in resp.content.iter_chunked(1 << 16):
                body += chunk
                if len(body) > limit:
                    raise InvalidRequest(
                        f"image {index + 1} is larger than {settings.image_fetch_max_mb} MB",
                        param=f"messages.image_url[{index}]",
                    )
            return bytes(body)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise InvalidRequest(
            f"image {index + 1}: could not fetch it ({type(exc).__name__})", param=f"messages.image_url[{index}]"
        ) from None


async def prepare_images(urls: list[str], settings: RuntimeSettings, http: HttpPool) -> list[PreparedImage]:
    async def one(index: int, url: str) -> PreparedImage:
        url = url.strip()
        if url.startswith("data:"):
            _, _, payload = url.partition(",")
            return _prepared(_decode_b64(payload, index), index)
        if url.startswith(("http://", "https://")):
            return _prepared(await _fetch(url, index, settings, http), index)
        return _prepared(_decode_b64(url, index), index)

    return list(await asyncio.gather(*(one(i, u) for i, u in enumerate(urls))))
