"""The ways out to grok.com the doctor checks. A ``Target`` is one egress: the transport (and the browser it
impersonates), the proxy, the Cloudflare cookies and the User-Agent. ``targets`` is the one place that lists
them, one per configured egress (``proxy_urls``, or the direct connection), with what the store knows of each;
every caller (the CLI, the Diagnose page, the canary) follows it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from ..egresses import build_egresses
from ..grok.browser import CurlTransport, available, chrome_major, resolve_profile
from ..grok.egress import Egress
from ..grok.egress_transport import EgressTransport
from ..grok.headers import user_agent
from ..grok.statsig import StatsigSigner
from ..grok.transport import AiohttpTransport, Transport
from ..settings import DIRECT, RuntimeSettings

DEFAULT_EGRESS = DIRECT  # the name of the one egress of a gateway without proxies


@dataclass(frozen=True)
class Target:
    name: str
    transport: Literal["aiohttp", "curl_cffi"]
    profile: str  # the Chrome curl_cffi impersonates; the User-Agent names its major on either transport
    user_agent: str
    proxy_url: str = ""
    cookies: Mapping[str, str] = field(default_factory=dict)  # Cloudflare's (cf_clearance, …)
    egress: Egress | None = None  # the gateway's egress it checks (its stored cookies and User-Agent go out)

    @property
    def chrome_major(self) -> int:
        return chrome_major(self.profile)

    def fingerprint(self) -> str:
        """The TLS fingerprint this egress presents, in words."""
        if self.transport == "aiohttp":
            return "Python's OpenSSL fingerprint (aiohttp), which Cloudflare can tell from a browser"
        return f"Chrome {self.chrome_major}'s fingerprint (curl_cffi impersonating {self.profile})"

    def describe(self) -> str:
        route = f"through the proxy {proxy_host(self.proxy_url)}" if self.proxy_url else "direct"
        return f"{self.transport}, {route}"


def targets(settings: RuntimeSettings, egresses: Sequence[Egress] | None = None) -> list[Target]:
    """Every egress the gateway reaches grok.com through: ``egresses`` as the gateway knows them now, or (without
    them) the configured ones with nothing stored. A pasted ``cf_clearance`` setting counts where an egress has
    none of its own."""
    found = build_egresses(settings.proxy_url_list(), {}) if egresses is None else egresses
    profile = resolve_profile(settings.browser_profile)
    out: list[Target] = []
    for egress in found:
        cookies = dict(egress.cookies)
        if settings.cf_clearance:
            cookies.setdefault("cf_clearance", settings.cf_clearance)
        out.append(
            Target(
                name=egress.label,
                transport=settings.transport_name(),
                profile=profile,
                user_agent=egress.user_agent or user_agent(settings),
                proxy_url=egress.proxy,
                cookies=cookies,
                egress=egress,
            )
        )
    return out


def settings_for(target: Target, settings: RuntimeSettings) -> RuntimeSettings:
    """The settings the protocol code reads, bound to ``target`` (its proxy, clearance, transport and browser),
    with a temporary chat so the doctor leaves nothing in the account's history."""
    return msgspec.structs.replace(
        settings,
        proxy_url=target.proxy_url,
        cf_clearance=target.cookies.get("cf_clearance", ""),
        upstream_transport=target.transport,
        browser_profile=target.profile,
        temporary=True,
    )


def transport_missing(target: Target) -> bool:
    return target.transport == "curl_cffi" and not available()


def open_transport(target: Target, settings: RuntimeSettings) -> Transport:
    """A transport of the doctor's own for ``target`` (closed after the run): bound to its egress, so the
    egress's cookies, User-Agent and signed statsig go out as on real traffic, but a refusal is only reported,
    not stored (the doctor's report is the verdict)."""
    inner: Transport = AiohttpTransport() if target.transport == "aiohttp" else CurlTransport(target.profile)
    if target.egress is None:
        return inner
    return _ProbeTransport(inner, target.egress.key, _ProbeHooks(target.egress, settings, inner))


class _ProbeTransport(EgressTransport):
    async def close(self) -> None:
        await self.inner.close()  # the doctor's own, unlike the gateway's bound views


class _ProbeHooks:
    """The egress hooks of a doctor's run: the egress as listed, nothing written, no FlareSolverr."""

    def __init__(self, egress: Egress, settings: RuntimeSettings, inner: Transport) -> None:
        self._egress = egress
        self._settings = settings
        self.signer = StatsigSigner(lambda: inner.session("")[0])

    def settings(self) -> RuntimeSettings:
        return self._settings

    def egress(self, key: str) -> Egress:
        return self._egress

    async def refused(self, key: str, evidence: str) -> None:
        return None

    async def recovered(self, key: str) -> None:
        return None

    async def refresh(self, key: str) -> bool:
        return False

    def cookies_set(self, key: str, cookies: dict[str, str]) -> None:
        return None


def proxy_host(proxy_url: str) -> str:
    """The proxy's host and port, never its credentials."""
    parts = urlsplit(proxy_url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname or "")
