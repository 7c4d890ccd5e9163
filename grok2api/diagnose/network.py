"""The first three steps, below HTTP: does the first hop's name resolve (grok.com, or the proxy when one is
set), does it take a TCP connection, and does a TLS handshake with grok.com complete (through an HTTP proxy's
tunnel when there is one). They tell a network problem from everything Cloudflare and grok.com decide later."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .report import Step, Verdict
from .targets import Target, proxy_host, transport_missing
from .verdicts import failing

Resolver = Callable[[str, int], Awaitable[list[str]]]
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Hop:
    """Where the first connection goes: grok.com itself, or the proxy."""

    host: str
    port: int
    via_proxy: bool
    label: str  # how the verdicts name it


def upstream_address(upstream_url: str) -> tuple[str, int, bool]:
    """(host, port, tls) of ``upstream_url``."""
    parts = urlsplit(upstream_url)
    tls = parts.scheme == "https"
    return parts.hostname or "", parts.port or (443 if tls else 80), tls


def first_hop(target: Target, upstream_url: str) -> Hop:
    if target.proxy_url:
        parts = urlsplit(target.proxy_url)
        default = 1080 if parts.scheme.startswith("socks") else (443 if parts.scheme == "https" else 80)
        return Hop(parts.hostname or "", parts.port or default, True, f"the proxy {proxy_host(target.proxy_url)}")
    host, port, _ = upstream_address(upstream_url)
    return Hop(host, port, False, f"{host}:{port}")


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def dns_step(hop: Hop, target: Target, resolve: Resolver = system_resolver) -> Step:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            addresses = await resolve(hop.host, hop.port)
    except (OSError, TimeoutError) as exc:
        reason = "no answer in time" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        who = "the proxy's host " + hop.host if hop.via_proxy else hop.host
        verdict = f"{who} does not resolve ({reason})"
        return failing("dns", Verdict.DNS_FAILED, verdict, target)
    shown = ", ".join(addresses[:3]) + (f" and {len(addresses) - 3} more" if len(addresses) > 3 else "")
    verdict = f"{hop.host} resolves to {shown}"
    if hop.via_proxy:
        verdict = f"the proxy's host {verdict}; the proxy resolves grok.com itself"
    return Step(name="dns", ok=True, verdict=verdict)


async def tcp_step(hop: Hop, target: Target) -> Step:
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            _, writer = await asyncio.open_connection(hop.host, hop.port)
    except (OSError, TimeoutError) as exc:
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {CONNECT_TIMEOUT:.0f} s (a firewall may drop it)"
        elif isinstance(exc, ConnectionRefusedError):
            reason = "the connection was refused (nothing listens there)"
        else:
            reason = exc.strerror or str(exc)
        verdict = f"could not connect to {hop.label}: {reason}"
        return failing("tcp", Verdict.TCP_FAILED, verdict, target)
    writer.close()
    await _closed(writer)
    return Step(name="tcp", ok=True, verdict=f"{hop.label} accepts connections")


async def _closed(writer: asyncio.StreamWriter) -> None:
    try:
        await writer.wait_closed()
    except (OSError, ssl.SSLError):
        pass  # a peer that hangs up first is fine: the check is done


def _tls_failure(target: Target, verdict: str) -> Step:
    return failing("tls", Verdict.TLS_FAILED, verdict, target)


async def tls_step(target: Target, upstream_url: str) -> Step:
    """A TLS handshake with grok.com (direct, or through an HTTP proxy's CONNECT tunnel), and which fingerprint
    the transport presents. Python's own handshake checks the way and the certificate; the gateway's calls then
    go out with the transport's fingerprint."""
    if transport_missing(target):
        verdict = "upstream_transport is curl_cffi, but curl_cffi is not installed"
        return failing("tls", Verdict.TRANSPORT_MISSING, verdict, target)
    host, port, tls = upstream_address(upstream_url)
    presents = f"the transport presents {target.fingerprint()}"
    if not tls:
        return Step(name="tls", ok=True, verdict=f"not used (plain HTTP); over https {presents}")
    scheme = urlsplit(target.proxy_url).scheme if target.proxy_url else ""
    if scheme and scheme != "http":
        verdict = f"checked by the next step: the handshake goes through the {scheme} proxy; {presents}"
        return Step(name="tls", ok=True, verdict=verdict)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            writer = await _handshake(target.proxy_url if scheme else "", host, port)
    except _TunnelRefused as exc:
        return _tls_failure(target, f"the proxy would not open a tunnel to {host}:{port} ({exc})")
    except ssl.SSLCertVerificationError as exc:
        return _tls_failure(target, f"{host}'s certificate is not trusted ({exc.verify_message})")
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        reason = "no answer in time" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
        return _tls_failure(target, f"the TLS handshake with {host} failed ({reason})")
    ssl_object = writer.get_extra_info("ssl_object")
    version = ssl_object.version() if ssl_object else "TLS"
    writer.close()
    await _closed(writer)
    return Step(name="tls", ok=True, verdict=f"{version} handshake with {host} completed; {presents}")


class _TunnelRefused(Exception):
    pass


async def _handshake(http_proxy: str, host: str, port: int) -> asyncio.StreamWriter:
    """A TLS connection to ``host``: direct, or inside a CONNECT tunnel through ``http_proxy``."""
    context = ssl.create_default_context()
    if not http_proxy:
        _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=host)
        return writer
    writer = await _tunnel(http_proxy, host, port)
    try:
        await writer.start_tls(context, server_hostname=host)
    except BaseException:
        writer.close()
        raise
    return writer


async def _tunnel(proxy_url: str, host: str, port: int) -> asyncio.StreamWriter:
    """A CONNECT tunnel through an HTTP proxy (with its credentials, if the URL has them)."""
    parts = urlsplit(proxy_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    try:
        lines = [f"CONNECT {host}:{port} HTTP/1.1", f"Host: {host}:{port}"]
        if parts.username is not None:
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            lines.append("Proxy-Authorization: Basic " + base64.b64encode(secret).decode())
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        status = (await reader.readline()).decode("latin-1").split()
        while (await reader.readline()).strip():
            pass  # the rest of the proxy's answer head
        if len(status) < 2 or status[1] != "200":
            raise _TunnelRefused(f"HTTP {status[1] if len(status) > 1 else '?'}")
    except BaseException:
        writer.close()
        raise
    return writer
