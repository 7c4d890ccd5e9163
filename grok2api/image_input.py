"""Client images (``image_url`` parts) turned into bytes ready to upload: data URLs, bare base64 and
http(s) URLs. Every image is size-capped and must really be an image. Remote fetches refuse
private, loopback and link-local addresses unless the operator allows them; the checked address is
the one connected to (no second DNS lookup to rebind), and every redirect is checked again.
A bad image is a clear 400, never silently dropped."""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp
import msgspec
from yarl import URL

from .errors import InvalidRequest
from .grok.transport import SessionPool
from .settings import RuntimeSettings

FETCH_TIMEOUT = 15.0
MAX_REDIRECTS = 3
FETCH_CONCURRENCY = 4
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: for use inside one network only
_TRANSLATED = 0xFFFF0000  # the upper 96 bits of ::ffff:0:a.b.c.d (SIIT, RFC 2765)
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PreparedImage(msgspec.Struct):
    file_name: str
    mime: str
    b64: str


def sniff_image(data: bytes) -> str | None:
    """The MIME type by content, or None when the bytes are not an image we accept."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    return None


_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOFn markers (not DHT, JPG, DAC)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _JPEG_FRAMES:
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the image's header, or None when it cannot be read there."""
    mime = sniff_image(data)
    if mime == "image/jpeg":
        return _jpeg_size(data)
    if mime == "image/png" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if mime == "image/gif" and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if mime == "image/webp":
        return _webp_size(data)
    if mime == "image/bmp" and len(data) >= 26:
        width = int.from_bytes(data[18:22], "little", signed=True)
        return abs(width), abs(int.from_bytes(data[22:26], "little", signed=True))
    return None


def embedded_ipv4(addr: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries, in each form a host or a translator may act on: mapped
    (``::ffff:a.b.c.d``), compatible (``::a.b.c.d``), translated (``::ffff:0:a.b.c.d``), NAT64 (``64:ff9b::/96``),
    6to4 (``2002::/16``) and Teredo (server and client)."""
    found: list[ipaddress.IPv4Address] = []
    value = int(addr)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if addr.ipv4_mapped is not None:
        found.append(addr.ipv4_mapped)
    if value >> 32 == 0 or value >> 32 == _TRANSLATED or addr in _NAT64:
        found.append(low32)
    if addr.sixtofour is not None:
        found.append(addr.sixtofour)
    if addr.teredo is not None:
        found.extend(addr.teredo)
    return found


def forbidden_address(addr: IPAddress) -> bool:
    """True for anything but a public unicast address, including IPv4 hidden inside IPv6 and the IPv6 ranges
    that are private by definition (site-local ``fec0::/10``, local-use NAT64 ``64:ff9b:1::/48``)."""
    candidates: list[IPAddress] = [addr]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.is_site_local or addr in _LOCAL_NAT64:
            return True
        candidates.extend(embedded_ipv4(addr))
    return any(not a.is_global or a.is_multicast for a in candidates)


class _Source:
    """One image's position in the request, for error messages."""

    def __init__(self, label: str, param: str) -> None:
        self.label = label
        self.param = param

    def error(self, text: str) -> InvalidRequest:
        return InvalidRequest(f"{self.label}: {text}", param=self.param, code="invalid_image")


def prepare_bytes(data: bytes, settings: RuntimeSettings, label: str = "image", param: str = "image") -> PreparedImage:
    """Check raw image bytes (size and type) and make them ready to upload."""
    src = _Source(label, param)
    _check_size(len(data), settings, src)
    return _prepared(data, src)


def _check_size(size: int, settings: RuntimeSettings, src: _Source) -> None:
    if size > settings.image_fetch_max_mb * 1024 * 1024:
        raise src.error(f"the image is larger than {settings.image_fetch_max_mb} MB")


def _prepared(data: bytes, src: _Source) -> PreparedImage:
    if not data:
        raise src.error("the image is empty")
    mime = sniff_image(data)
    if mime is None:
        raise src.error("this is not a JPEG, PNG, GIF, WebP or BMP image")
    return PreparedImage(f"image.{mime.split('/')[1]}", mime, base64.b64encode(data).decode())


def _decode_b64(text: str, settings: RuntimeSettings, src: _Source) -> bytes:
    compact = "".join(text.split())
    # Check the size before decoding, so a huge string costs no more memory than it already does.
    _check_size(len(compact) * 3 // 4, settings, src)
    padded = compact + "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        raise src.error("the image is neither an http(s) URL, a data: URL nor valid base64") from None


def _data_url(url: str, settings: RuntimeSettings, src: _Source) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or not header.lower().endswith(";base64"):
        raise src.error("data: URLs must be base64-encoded (data:image/png;base64,...)")
    return _decode_b64(payload, settings, src)


async def _resolve(host: str, port: int, src: _Source) -> list[IPAddress]:
    """The addresses to connect to, refusing the host if any of them is not public."""
    addresses: list[IPAddress]
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = []
    if not addresses:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise src.error(f"cannot resolve the host {host!r}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise src.error(f"cannot resolve the host {host!r}")
    for addr in addresses:
        if forbidden_address(addr):
            raise src.error(
                f"fetching from a private, loopback or link-local address ({addr}) is not allowed "
                "(an operator can turn on allow_private_image_urls)"
            )
    return addresses


@dataclass
class _Target:
    """Where one request goes: candidate URLs (pinned to checked addresses), headers, TLS name."""

    urls: list[URL]
    headers: dict[str, str]
    server_hostname: str | None


async def _request_target(url: str, settings: RuntimeSettings, src: _Source) -> _Target:
    try:
        target = URL(url)
        host = target.host
        target.port  # noqa: B018 - an out-of-range port raises here, not later
    except ValueError:
        raise src.error("the image URL is not a valid URL") from None
    if not host or target.scheme not in ("http", "https"):
        raise src.error("only http(s) image URLs can be fetched")
    if settings.allow_private_image_urls:
        return _Target([target], {}, None)
    port = target.port or (443 if target.scheme == "https" else 80)
    addresses = await _resolve(host, port, src)
    # Connect to the addresses just checked, so a second DNS answer cannot point elsewhere.
    pinned = [target.with_host(str(addr)) for addr in addresses]
    host_header = host if target.is_default_port() else f"{host}:{port}"
    return _Target(pinned, {"Host": host_header}, host if target.scheme == "https" else None)


async def _get(session: aiohttp.ClientSession, target: _Target) -> aiohttp.ClientResponse:
    """The response from the first address that accepts a connection (like a browser falling back
    from IPv6 to IPv4)."""
    failure: aiohttp.ClientConnectorError | None = None
    for url in target.urls:
        try:
            return await session.get(
                url, headers=target.headers, server_hostname=target.server_hostname, allow_redirects=False
            )
        except aiohttp.ClientConnectorError as exc:
            failure = exc
    assert failure is not None  # there is always at least one address
    raise failure


async def _fetch(url: str, settings: RuntimeSettings, http: SessionPool, src: _Source) -> bytes:
    limit = settings.image_fetch_max_mb * 1024 * 1024
    session, _ = http.session("")  # user URLs go out directly, never through grok.com's proxy
    try:
        async with asyncio.timeout(FETCH_TIMEOUT):
            for _ in range(MAX_REDIRECTS + 1):
                target = await _request_target(url, settings, src)
                async with await _get(session, target) as resp:
                    location = resp.headers.get("Location")
                    if resp.status in _REDIRECTS and location:
                        url = urljoin(url, location)
                        continue
                    if resp.status != 200:
                        raise src.error(f"fetching it answered HTTP {resp.status}")
                    if resp.content_length is not None and resp.content_length > limit:
                        raise src.error(f"the image is larger than {settings.image_fetch_max_mb} MB")
                    body = bytearray()
                    async for chunk in resp.content.iter_chunked(1 << 16):
                        body += chunk
                        if len(body) > limit:
                            raise src.error(f"the image is larger than {settings.image_fetch_max_mb} MB")
                    return bytes(body)
            raise src.error(f"more than {MAX_REDIRECTS} redirects")
    except TimeoutError:
        raise src.error(f"fetching it took longer than {FETCH_TIMEOUT:.0f} seconds") from None
    except aiohttp.ClientError as exc:
        raise src.error(f"could not fetch it ({type(exc).__name__})") from None


async def prepare_images(
    urls: list[str], settings: RuntimeSettings, http: SessionPool, param: str = "messages"
) -> list[PreparedImage]:
    """Every ``image_url`` of a chat request as an upload-ready image (raises InvalidRequest naming ``param``,
    the request field that holds them)."""
    sem = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def one(index: int, url: str) -> PreparedImage:
        src = _Source(f"image {index + 1}", param)
        url = url.strip()
        scheme = _SCHEME.match(url)
        if scheme is None:
            return _prepared(_decode_b64(url, settings, src), src)
        name = scheme.group(0)[:-1].lower()
        if name == "data":
            return _prepared(_data_url(url, settings, src), src)
        if name not in ("http", "https"):
            raise src.error(f"unsupported image URL scheme {name!r} (use http(s), data: or base64)")
        if not urlsplit(url).netloc:
            raise src.error("the image URL has no host")
        async with sem:
            return _prepared(await _fetch(url, settings, http, src), src)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(i, u)) for i, u in enumerate(urls)]
    except BaseExceptionGroup as failed:
        # The first bad image is the answer; the group has already stopped the other fetches.
        raise failed.exceptions[0] from None
    return [t.result() for t in tasks]
