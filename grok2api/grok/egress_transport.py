"""A transport bound to one egress: every call goes out through the egress's proxy with its Cloudflare cookies,
its User-Agent and (with ``statsig_signer_url``) a signed ``x-statsig-id``.

It also reads the answers for the egress's sake. A Cloudflare challenge marks the egress challenged (with the time
and what was seen, never against the account); with ``flaresolverr_url`` the egress gets fresh cookies and the call
is tried once more. An anti-bot 403 drops the signed statsig of that call and tries once more; when that does not
help, the egress is marked too. A proxy that cannot be reached marks it as well. A call that goes through
clears the mark. An anti-bot refusal inside an answer it let through (an ``error`` event on a WebSocket, an error
line in a 200 stream) is reported back by the protocol layer (``refused_in_band``) and marks the egress as well.
The Cloudflare cookies grok.com sets on any answer (``Set-Cookie``: a rotated ``__cf_bm``, a renewed
``cf_clearance``) are kept with the egress."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict

from .egress import Egress, set_cookies, with_cookies, with_user_agent
from .errors import UpstreamConnectionError, UpstreamHTTPError
from .failures import egress_refusal
from .headers import page_headers
from .statsig import StatsigError, StatsigSigner
from .transport import FormPart, HttpAnswer, HttpStream, Transport, WebSocket

if TYPE_CHECKING:
    from ..settings import RuntimeSettings

log = logging.getLogger("grok2api.grok.egress")
PEEK = 4096  # enough of a refusal's body to tell a challenge page from an anti-bot answer
# How the transports word a connection that failed; through a proxy, either means the proxy did not connect us.
_NO_CONNECTION = frozenset({"could not connect to the configured proxy", "could not connect to grok.com"})
_STATSIG = "x-statsig-id"


class EgressHooks(Protocol):
    """What a bound transport needs from whoever keeps the egresses (shared state, FlareSolverr, the signer)."""

    signer: StatsigSigner

    def settings(self) -> RuntimeSettings: ...

    def egress(self, key: str) -> Egress:
        """The egress as it is now (fresh cookies show up here once stored)."""

    async def refused(self, key: str, evidence: str) -> None:
        """Mark the egress challenged (or unreachable) now, with what was seen."""

    async def recovered(self, key: str) -> None:
        """A call went through an egress that was marked: clear the mark."""

    async def refresh(self, key: str) -> bool:
        """Get the egress a fresh clearance (FlareSolverr); True when one was stored."""

    def cookies_set(self, key: str, cookies: dict[str, str]) -> None:
        """grok.com set these Cloudflare cookies on an answer through the egress: keep the ones that changed."""


def _evidence(answer_status: int, headers: Mapping[str, str], method: str, url: str, kind: str) -> str:
    what = "a Cloudflare challenge" if kind == "challenge" else "an anti-bot 403"
    ray = headers.get("cf-ray", "")
    mitigated = headers.get("cf-mitigated", "")
    details = [f"HTTP {answer_status}"]
    if mitigated:
        details.append(f"cf-mitigated: {mitigated}")
    if ray:
        details.append(f"cf-ray {ray}")
    return f"{what} on {method} {urlsplit(url).path or '/'} ({', '.join(details)})"


def _suspect(status: int, headers: CIMultiDict[str]) -> bool:
    """Could this answer be a refusal of the egress? (Most are not: only those are read further.)"""
    return status in (403, 503) or "cf-mitigated" in headers


class _Peeked:
    """A stream whose first bytes were read to judge it; they are given back first."""

    def __init__(self, inner: HttpStream, head: bytes) -> None:
        self._inner = inner
        self._head = head
        self.status = inner.status
        self.headers = inner.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._head:
            head, self._head = self._head, b""
            yield head
        async for chunk in self._inner.chunks():
            yield chunk

    async def read_some(self, limit: int) -> bytes:
        head, self._head = self._head[:limit], self._head[limit:]
        if len(head) < limit:
            head += await self._inner.read_some(limit - len(head))
        return head


class EgressTransport:
    """``Transport`` through the egress ``key`` (see the module docstring); ``inner`` does the actual I/O."""

    def __init__(self, inner: Transport, key: str, hooks: EgressHooks) -> None:
        self.inner = inner
        self.key = key
        self._hooks = hooks

    @property
    def egress(self) -> Egress:
        return self._hooks.egress(self.key)

    def session(self, proxy: str) -> tuple[aiohttp.ClientSession, str | None]:
        return self.inner.session(proxy)

    # -- what goes out -------------------------------------------------------------------------------------

    async def _headers(self, method: str, url: str, headers: Mapping[str, str], egress: Egress) -> dict[str, str]:
        out = dict(headers)
        if egress.cookies:
            names = [n for n in out if n.lower() == "cookie"] or ["Cookie"]
            for name in names:
                out[name] = with_cookies(out.get(name, ""), egress.cookies)
        with_user_agent(out, egress.user_agent)
        signer_url = self._hooks.settings().statsig_signer_url
        if signer_url and _STATSIG in out:
            try:
                out[_STATSIG] = await self._hooks.signer.value(
                    signer_url, self.key, method, urlsplit(url).path, self._read_home
                )
            except StatsigError as exc:  # the fixed value goes out instead
                log.warning("egress %s: %s", egress.label, exc)
        return out

    async def _read_home(self) -> str:
        """grok.com's home page through this egress (for the statsig meta)."""
        settings = self._hooks.settings()
        answer = await self.request("GET", f"{settings.upstream_url}/", page_headers(settings), timeout=20)
        if answer.status != 200:
            raise StatsigError(f"grok.com's home page answered HTTP {answer.status}")
        return answer.body.decode("utf-8", "replace")

    # -- what comes back -----------------------------------------------------------------------------------

    async def _went_through(self, egress: Egress) -> None:
        if egress.challenged_at is not None:
            await self._hooks.recovered(self.key)

    async def _refused(self, exc: UpstreamHTTPError, method: str, url: str, retried: bool) -> bool:
        """Note a refusal of the egress; True when the call should be tried once more."""
        kind = egress_refusal(exc)
        if kind is None:
            return False
        evidence = _evidence(exc.status, exc.headers, method, url, kind)
        if kind == "anti_bot":
            path = urlsplit(url).path
            self._hooks.signer.drop(self.key, method, path)
            if not retried and self._hooks.settings().statsig_signer_url:
                log.info("egress %s: %s; signing again", self.egress.label, evidence)
                return True
            await self._hooks.refused(self.key, evidence)
            return False
        log.warning("egress %s: %s", self.egress.label, evidence)
        await self._hooks.refused(self.key, evidence)
        return not retried and await self._hooks.refresh(self.key)

    def _keep_cookies(self, headers: CIMultiDict[str]) -> None:
        values = headers.getall("Set-Cookie", ())
        if values:
            found = set_cookies(values)
            if found:
                self._hooks.cookies_set(self.key, found)

    async def refused_in_band(self, method: str, url: str, what: str, detail: str) -> None:
        """An anti-bot refusal inside an answer this transport let through (see ``transport.RefusalListener``):
        the call's signed statsig is dropped and the egress marked, as after an anti-bot 403 that signing again did
        not fix (the answer has begun: there is no trying again here)."""
        path = urlsplit(url).path or "/"
        self._hooks.signer.drop(self.key, method, path)
        evidence = f"{what} ({method} {path}: {' '.join(detail.split())[:200]})"
        log.warning("egress %s: %s", self.egress.label, evidence)
        await self._hooks.refused(self.key, evidence)

    async def _connection_failed(self, exc: UpstreamConnectionError, egress: Egress) -> None:
        if egress.proxy and str(exc) in _NO_CONNECTION:
            await self._hooks.refused(self.key, "the proxy could not be reached")

    # -- the Transport calls -------------------------------------------------------------------------------

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
        retried = False
        while True:
            egress = self.egress
            sent = await self._headers(method, url, headers, egress)
            try:
                answer = await self.inner.request(
                    method, url, sent, data=data, form=form, proxy=proxy or egress.proxy, timeout=timeout
                )
            except UpstreamConnectionError as exc:
                await self._connection_failed(exc, egress)
                raise
            self._keep_cookies(answer.headers)
            if not _suspect(answer.status, answer.headers):
                await self._went_through(egress)
                return answer
            refusal = _as_error(answer.status, answer.headers, answer.body[:PEEK])
            if not await self._refused(refusal, method, url, retried):
                return answer
            retried = True

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
        retried = False
        while True:
            egress = self.egress
            sent = await self._headers(method, url, headers, egress)
            try:
                async with self.inner.stream(
                    method, url, sent, data=data, proxy=proxy or egress.proxy, timeout=timeout
                ) as resp:
                    self._keep_cookies(resp.headers)
                    if not _suspect(resp.status, resp.headers):
                        await self._went_through(egress)
                        yield resp
                        return
                    head = await resp.read_some(PEEK)
                    if not await self._refused(_as_error(resp.status, resp.headers, head), method, url, retried):
                        yield _Peeked(resp, head)
                        return
            except UpstreamConnectionError as exc:
                await self._connection_failed(exc, egress)
                raise
            retried = True

    async def websocket(
        self, url: str, headers: Mapping[str, str], proxy: str, *, on_sent: Callable[[], object] | None = None
    ) -> WebSocket:
        retried = False
        while True:
            egress = self.egress
            sent = await self._headers("GET", url, headers, egress)
            try:
                ws = await self.inner.websocket(url, sent, proxy or egress.proxy, on_sent=on_sent)
            except UpstreamConnectionError as exc:
                await self._connection_failed(exc, egress)
                raise
            except UpstreamHTTPError as exc:
                if not await self._refused(exc, "GET", url, retried):
                    raise
                retried, on_sent = True, None  # (called with the first request)
                continue
            self._keep_cookies(ws.handshake_headers)
            await self._went_through(egress)
            return ws

    async def close(self) -> None:
        """The inner transport belongs to the process, not to this view of it."""


def _as_error(status: int, headers: CIMultiDict[str], body: bytes) -> UpstreamHTTPError:
    return UpstreamHTTPError(status, body.decode("utf-8", "replace"), headers.get("Content-Type", ""), headers=headers)
