"""The ways out to grok.com the doctor checks. A ``Target`` is one egress: the transport (and the browser it
impersonates), the proxy, the Cloudflare cookies and the User-Agent. ``targets`` is the one place that lists
them: today the gateway has one egress, made from the settings; once it has several, it returns one per egress
and every caller (the CLI, the Diagnose page, the canary) follows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from ..grok.browser import CurlTransport, available, chrome_major, resolve_profile
from ..grok.headers import user_agent
from ..grok.transport import AiohttpTransport, Transport
from ..settings import RuntimeSettings

DEFAULT_EGRESS = "default"


@dataclass(frozen=True)
class Target:
    name: str
    transport: Literal["aiohttp", "curl_cffi"]
    profile: str  # the Chrome curl_cffi impersonates; the User-Agent names its major on either transport
    user_agent: str
    proxy_url: str = ""
    cookies: Mapping[str, str] = field(default_factory=dict)  # Cloudflare's (cf_clearance, …)

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


def targets(settings: RuntimeSettings) -> list[Target]:
    """Every egress the gateway reaches grok.com through (today one, from the settings)."""
    cookies = {"cf_clearance": settings.cf_clearance} if settings.cf_clearance else {}
    return [
        Target(
            name=DEFAULT_EGRESS,
            transport=settings.transport_name(),
            profile=resolve_profile(settings.browser_profile),
            user_agent=user_agent(settings),
            proxy_url=settings.proxy_url,
            cookies=cookies,
        )
    ]


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


def open_transport(target: Target) -> Transport:
    """A transport of the doctor's own for ``target`` (closed after the run, apart from the serving one)."""
    return AiohttpTransport() if target.transport == "aiohttp" else CurlTransport(target.profile)


def proxy_host(proxy_url: str) -> str:
    """The proxy's host and port, never its credentials."""
    parts = urlsplit(proxy_url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname or "")
