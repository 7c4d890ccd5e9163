"""A transport that looks like Chrome to grok.com's edge: curl_cffi impersonating a Chrome release for
HTTP and WebSockets (Cloudflare ties ``cf_clearance`` to the TLS/HTTP2 fingerprint, and aiohttp has
Python's OpenSSL one). curl_cffi is optional (the ``browser`` extra); this module imports it lazily."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import aiohttp
from multidict import CIMultiDict

from . import transport as _limits
from .errors import UpstreamConnectionError, UpstreamHTTPError
from .transport import (
    AiohttpTransport,
    FormPart,
    HttpAnswer,
    HttpPool,
    HttpStream,
    Transport,
    WebSocket,
    _http_url,
    retry_after_of,
)

if TYPE_CHECKING:
    from curl_cffi.requests import AsyncSession, Response
    from curl_cffi.requests.websockets import AsyncWebSocket

    from ..settings import RuntimeSettings

log = logging.getLogger("grok2api.grok.browser")
DEFAULT_PROFILE = "chrome146"
_CHROME = re.compile(r"chrome(\d+)(?:_[a-z]+)?")
_REFUSAL_BODY_LIMIT = 4096
MAX_HANDLES = 2048


def available() -> bool:
    """Whether curl_cffi is installed."""
    try:
        import curl_cffi  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def chrome_profiles() -> tuple[str, ...]:
    """The desktop Chrome targets the installed curl_cffi can impersonate, oldest first (empty without it)."""
    if not available():
        return ()
    from curl_cffi.requests import BrowserType

    names = [b.value for b in BrowserType if _CHROME.fullmatch(b.value)]
    # newest last; of one major, the plain target (Windows) after its platform variants
    return tuple(sorted(names, key=lambda n: (chrome_major(n), "_" not in n, n)))


def chrome_major(profile: str) -> int:
    """The Chrome major a profile names (``chrome146`` → 146, ``chrome133a`` → 133); 0 when none."""
    found = re.match(r"chrome(\d+)", profile)
    return int(found.group(1)) if found else 0


def newest_chrome() -> str:
    profiles = chrome_profiles()
    return profiles[-1] if profiles else DEFAULT_PROFILE


def resolve_profile(profile: str) -> str:
    """The profile to impersonate: ``profile`` when the installed curl_cffi has it, else its newest Chrome
    (only the default can get here: other unsupported values fail validation)."""
    profiles = chrome_profiles()
    return profile if not profiles or profile in profiles else newest_chrome()


def profile_error(profile: str) -> str | None:
    """Why ``profile`` cannot be used, or None. Without curl_cffi only the form is checked; the default is
    always accepted (an older curl_cffi without it impersonates its newest Chrome instead)."""
    if not re.fullmatch(r"chrome\d+[a-z]?(?:_[a-z]+)?", profile):
        return f"browser_profile must name a Chrome target such as {DEFAULT_PROFILE}, not {profile[:40]!r}"
    profiles = chrome_profiles()
    if profiles and profile not in profiles and profile != DEFAULT_PROFILE:
        return (
            f"browser_profile: the installed curl_cffi cannot impersonate {profile}; "
            f"the newest Chrome it has is {newest_chrome()} (it has {', '.join(profiles[-6:])})"
        )
    return None


# libcurl's error codes (CURLE_*) that say which step failed.
_CURL_PROXY = frozenset({5, 97})  # COULDNT_RESOLVE_PROXY, PROXY
_CURL_CONNECT = frozenset({6, 7})  # COULDNT_RESOLVE_HOST, COULDNT_CONNECT
_CURL_TIMEOUT = 28  # OPERATION_TIMEDOUT
_CURL_CUT = frozenset({18, 52, 55, 56})  # PARTIAL_FILE, GOT_NOTHING, SEND_ERROR, RECV_ERROR
_REFUSED_UPGRADE = re.compile(r"Refused WebSocket upgrade: (\d{3})")


def _connection_error(exc: BaseException) -> UpstreamConnectionError:
    from curl_cffi.requests import exceptions as cx

    log.info("upstream transport error: %r", exc)
    code = getattr(exc, "code", 0)
    if isinstance(exc, cx.ProxyError) or code in _CURL_PROXY:
        text = "could not connect to the configured proxy"
    elif isinstance(exc, cx.Timeout | TimeoutError) or code == _CURL_TIMEOUT:
        text = "grok.com did not answer in time"
    elif isinstance(exc, cx.ConnectionError) or code in _CURL_CONNECT:
        text = "could not connect to grok.com"
    elif code in _CURL_CUT:
        text = "grok.com closed the connection"
    else:
        text = "the connection to grok.com failed"
    return UpstreamConnectionError(text)


def _errors() -> tuple[type[Exception], ...]:
    from curl_cffi import CurlError

    errors: tuple[type[Exception], ...] = (CurlError, ConnectionError, TimeoutError)
    return errors


def _headers(resp: Response) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in resp.headers.multi_items():
        out.add(name, value or "")
    return out


class _CurlStream:
    """A streamed curl_cffi answer. Its body is one iterator however it is read (``read_some`` to judge a refusal,
    then ``chunks``): curl_cffi's own iterator waits for ever when asked again after the body ended."""

    def __init__(self, resp: Response) -> None:
        self._resp = resp
        self.status = resp.status_code
        self.headers = _headers(resp)
        self._source: AsyncIterator[bytes] = resp.aiter_content()  # type: ignore[no-untyped-call]
        self._ended = False
        self._left = b""  # read by ``read_some`` beyond its limit, given to ``chunks`` first

    async def _next(self) -> bytes | None:
        if self._ended:
            return None
        try:
            return await anext(self._source)
        except StopAsyncIteration:
            self._ended = True
            return None

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._left:
            left, self._left = self._left, b""
            yield left
        try:
            while (chunk := await self._next()) is not None:
                yield chunk
        except _errors() as exc:
            raise _connection_error(exc) from exc

    async def read_some(self, limit: int) -> bytes:
        body, self._left = bytearray(self._left), b""
        try:
            while len(body) < limit and (chunk := await self._next()) is not None:
                body += chunk
        except _errors():
            self._ended = True
        self._left = bytes(body[limit:])
        return bytes(body[:limit])


async def _end_transfer(resp: Response) -> None:
    """End a streamed response: a finished transfer is just collected; one left early is cancelled, which
    takes its handle off curl's multi and drops the connection (``Response.aclose`` would wait for grok.com
    to end the answer, which a stalled or abandoned one never does)."""
    transfer = resp.astream_task
    if not isinstance(transfer, asyncio.Task):
        return
    if not transfer.done():
        transfer.cancel()
    await asyncio.wait({transfer})


def _header_lines(lines: list[bytes]) -> CIMultiDict[str]:
    """The headers of the last answer among curl's header lines (after a redirect or a 100, only the last counts)."""
    seen: CIMultiDict[str] = CIMultiDict()
    for raw in lines:
        line = raw.decode("latin-1").strip()
        if line.startswith("HTTP/"):
            seen = CIMultiDict()
        elif ":" in line:
            name, value = line.split(":", 1)
            seen.add(name.strip(), value.strip())
    return seen


class CurlWebSocket:
    def __init__(self, ws: AsyncWebSocket, handshake_headers: CIMultiDict[str]) -> None:
        self._ws = ws
        self.handshake_headers = handshake_headers

    async def send_json(self, *objs: Any) -> None:
        try:
            for obj in objs:
                await self._ws.send_str(_limits._ENCODER.encode(obj).decode())
        except _errors() as exc:
            raise _connection_error(exc) from exc

    def buffered(self) -> bool:
        return False  # curl_cffi reads frame by frame: nothing to batch

    def known_closed(self) -> bool:
        return False  # only a read would tell

    async def receive_text(self) -> str | None:
        from curl_cffi.const import CurlWsFlag
        from curl_cffi.requests.websockets import WebSocketClosed

        while True:
            try:
                data, flags = await self._ws.recv()
            except WebSocketClosed:
                return None
            except _errors() as exc:
                if "too large" in str(exc).lower() or "too big" in str(exc).lower():
                    raise UpstreamConnectionError("grok.com sent a WebSocket frame over 16 MiB") from exc
                raise _connection_error(exc) from exc
            if flags & CurlWsFlag.CLOSE:
                return None
            if flags & (CurlWsFlag.TEXT | CurlWsFlag.BINARY):
                return data.decode("utf-8", "replace")

    async def close(self) -> None:
        try:
            async with asyncio.timeout(2.0):
                await self._ws.close()
        except _errors() as exc:  # TimeoutError among them
            log.debug("closing the WebSocket failed: %r", exc)


def _keep(lines: list[bytes], line: bytes) -> int:
    lines.append(bytes(line))
    return len(line)  # curl's header callback answers how much it took


class CurlTransport:
    """curl_cffi impersonating ``profile`` for grok.com's HTTP calls and WebSockets. ``session()`` (calls
    to other hosts, such as client image URLs) stays on aiohttp."""

    def __init__(self, profile: str = DEFAULT_PROFILE) -> None:
        self.profile = resolve_profile(profile)
        if self.profile != profile:
            log.warning("curl_cffi cannot impersonate %s; using %s", profile, self.profile)
        self._aiohttp = HttpPool()
        self._session: AsyncSession[Response] | None = None

    def session(self, proxy: str) -> Any:
        return self._aiohttp.session(proxy)

    def _curl(self) -> AsyncSession[Response]:
        if self._session is None:
            from curl_cffi import CurlOpt
            from curl_cffi.requests import AsyncSession

            # No cookie jar: every call carries its own account's cookie, and one account's Set-Cookie
            # must never ride along with another's request.
            # Only the headers grok2api builds (they name the same Chrome as the profile); HTTP/2 over TLS
            # only, as Chrome (no h2c upgrade on plain http, which only the fake grok.com speaks).
            self._session = AsyncSession(
                impersonate=self.profile,
                discard_cookies=True,
                default_headers=False,
                http_version="v2tls",
                # A live WebSocket holds its handle for the whole answer, and a connect beyond the limit
                # fails rather than waits: room for every chat a worker may stream at once (handles are
                # made on demand).
                max_clients=MAX_HANDLES,
                curl_options={CurlOpt.CONNECTTIMEOUT_MS: 15000},
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        data: bytes | None = None,
        form: Sequence[FormPart] | None = None,
        proxy: str = "",
        timeout: float | None = None,
    ) -> HttpAnswer:
        mime = None
        if form is not None:
            from curl_cffi import CurlMime

            mime = CurlMime()
            for part in form:
                value = part.value.encode() if isinstance(part.value, str) else part.value
                mime.addpart(name=part.name, data=value, filename=part.filename, content_type=part.content_type)
        try:
            resp = await self._curl().request(
                method,  # type: ignore[arg-type]
                url,
                headers=dict(headers),
                data=data,
                multipart=mime,
                proxy=proxy or None,
                timeout=timeout or 300,
                allow_redirects=False,
            )
        except _errors() as exc:
            raise _connection_error(exc) from exc
        finally:
            if mime is not None:
                mime.close()
        return HttpAnswer(resp.status_code, _headers(resp), resp.content)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        data: bytes | None = None,
        proxy: str = "",
        timeout: float | None = None,
    ) -> AsyncIterator[HttpStream]:
        try:
            resp = await self._curl().request(
                method,  # type: ignore[arg-type]
                url,
                headers=dict(headers),
                data=data,
                proxy=proxy or None,
                # On a stream curl bounds the connection and stalls (no byte for that long), not the total.
                timeout=(15, timeout) if timeout else None,
                allow_redirects=False,
                stream=True,
            )
        except _errors() as exc:
            raise _connection_error(exc) from exc
        try:
            yield _CurlStream(resp)
        finally:
            await _end_transfer(resp)

    async def websocket(
        self, url: str, headers: Mapping[str, str], proxy: str, *, on_sent: Callable[[], object] | None = None
    ) -> WebSocket:
        from curl_cffi import CurlOpt

        if on_sent is not None:
            on_sent()  # curl sends the request on its own thread: no moment to hook

        lines: list[bytes] = []  # the handshake answer's header lines, for a refusal
        try:
            async with asyncio.timeout(_limits.HANDSHAKE_TIMEOUT):
                ws = await self._curl().ws_connect(
                    url,
                    headers=dict(headers),
                    proxy=proxy or None,
                    max_message_size=_limits.MAX_FRAME,
                    drain_on_error=True,  # frames that arrived before a broken connection are still read
                    timeout=_limits.HANDSHAKE_TIMEOUT,
                    curl_options={CurlOpt.HEADERFUNCTION: lambda line: _keep(lines, line)},
                )
        except _errors() as exc:
            refused = _REFUSED_UPGRADE.search(str(exc))
            if refused:
                raise await self._refusal(url, headers, proxy, int(refused.group(1)), lines) from exc
            raise _connection_error(exc) from exc
        return CurlWebSocket(ws, _header_lines(lines))

    async def _refusal(
        self, url: str, headers: Mapping[str, str], proxy: str, status: int, lines: list[bytes]
    ) -> UpstreamHTTPError:
        """curl drops the body of a refused handshake, but the body says why (blocked account, anti-bot,
        Cloudflare): ask again with a plain GET and read it. The handshake's own status and headers stay
        authoritative; the body is used only when the GET is refused the same way."""
        seen = _header_lines(lines)
        body, content_type = "", seen.get("Content-Type", "")
        try:
            answer = await self.request("GET", _http_url(url), headers, proxy=proxy, timeout=10)
        except UpstreamConnectionError as exc:
            log.info("could not read the WebSocket refusal body: %s", exc)
        else:
            if answer.status == status:
                body = answer.body[:_REFUSAL_BODY_LIMIT].decode("utf-8", "replace")
                content_type = answer.headers.get("Content-Type", content_type)
                for name, value in answer.headers.items():
                    seen.setdefault(name, value)
        return UpstreamHTTPError(status, body, content_type, retry_after_of(seen), headers=seen)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self._aiohttp.close()


class SelectedTransport:
    """The transport the current settings name (``upstream_transport``, ``browser_profile``), chosen per
    call so a settings change applies to the next call. ``session()`` (other hosts) is always aiohttp."""

    def __init__(self, settings: Callable[[], RuntimeSettings]) -> None:
        self._settings = settings
        self.aiohttp = AiohttpTransport()
        self._curl: dict[str, CurlTransport] = {}

    def current(self) -> Transport:
        settings = self._settings()
        if settings.transport_name() == "aiohttp":
            return self.aiohttp
        found = self._curl.get(settings.browser_profile)
        if found is None:
            found = self._curl[settings.browser_profile] = CurlTransport(settings.browser_profile)
        return found

    def session(self, proxy: str) -> tuple[aiohttp.ClientSession, str | None]:
        return self.aiohttp.session(proxy)

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        data: bytes | None = None,
        form: Sequence[FormPart] | None = None,
        proxy: str = "",
        timeout: float | None = None,
    ) -> HttpAnswer:
        return await self.current().request(method, url, headers, data=data, form=form, proxy=proxy, timeout=timeout)

    def stream(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        data: bytes | None = None,
        proxy: str = "",
        timeout: float | None = None,
    ) -> contextlib.AbstractAsyncContextManager[HttpStream]:
        return self.current().stream(method, url, headers, data=data, proxy=proxy, timeout=timeout)

    async def websocket(
        self, url: str, headers: Mapping[str, str], proxy: str, *, on_sent: Callable[[], object] | None = None
    ) -> WebSocket:
        return await self.current().websocket(url, headers, proxy, on_sent=on_sent)

    async def close(self) -> None:
        await self.aiohttp.close()
        for curl in self._curl.values():
            await curl.close()
        self._curl = {}
