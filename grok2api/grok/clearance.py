"""Fresh Cloudflare clearance from FlareSolverr: its ``request.get`` command opens grok.com in a real browser
through the egress's own proxy, solves the challenge, and answers with the cookies and the browser's
User-Agent, which then go out together from that egress."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import msgspec

from .egress import cloudflare_cookie

log = logging.getLogger("grok2api.grok.clearance")
SOLVE_TIMEOUT = 90.0  # FlareSolverr's own limit (maxTimeout) is 60 s; the browser start comes on top
_ENCODER = msgspec.json.Encoder()


class Clearance(msgspec.Struct):
    cookies: dict[str, str]
    user_agent: str


class ClearanceError(Exception):
    """FlareSolverr could not give a clearance; the message says why in plain words."""


def endpoint(flaresolverr_url: str) -> str:
    """FlareSolverr's API endpoint: the setting may name the server or its ``/v1``."""
    url = flaresolverr_url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


def proxy_spec(proxy: str) -> dict[str, str]:
    """The ``proxy`` object of a FlareSolverr command: the URL without credentials, which go beside it (the
    browser resolves names itself, so ``socks5h`` is plain ``socks5`` there)."""
    parts = urlsplit(proxy)
    scheme = "socks5" if parts.scheme == "socks5h" else parts.scheme
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    spec = {"url": f"{scheme}://{netloc}"}
    if parts.username:
        spec["username"] = unquote(parts.username)
    if parts.password:
        spec["password"] = unquote(parts.password)
    return spec


def solve_command(url: str, proxy: str, timeout: float = 60.0) -> dict[str, Any]:
    command: dict[str, Any] = {"cmd": "request.get", "url": url, "maxTimeout": int(timeout * 1000)}
    if proxy:
        command["proxy"] = proxy_spec(proxy)
    return command


def parse_solution(data: Any) -> Clearance:
    """The Cloudflare cookies and User-Agent of a FlareSolverr answer; ClearanceError when it failed."""
    if not isinstance(data, dict):
        raise ClearanceError("FlareSolverr answered without a JSON object")
    if data.get("status") != "ok":
        message = str(data.get("message") or data.get("status") or "no reason given")[:300]
        raise ClearanceError(f"FlareSolverr could not solve the challenge: {message}")
    solution = data.get("solution")
    solution = solution if isinstance(solution, dict) else {}
    cookies: dict[str, str] = {}
    for item in solution.get("cookies") or []:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("value"), str):
            if cloudflare_cookie(item["name"]) and item["value"]:
                cookies[item["name"]] = item["value"]
    user_agent = solution.get("userAgent")
    if "cf_clearance" not in cookies:
        raise ClearanceError("FlareSolverr's browser got through without a cf_clearance cookie")
    if not isinstance(user_agent, str) or not user_agent.strip():
        raise ClearanceError("FlareSolverr answered without the browser's User-Agent")
    return Clearance(cookies, user_agent.strip())


async def solve(session: aiohttp.ClientSession, flaresolverr_url: str, url: str, proxy: str) -> Clearance:
    """Ask FlareSolverr to open ``url`` through ``proxy`` ("" = its own connection) and return the clearance."""
    command = solve_command(url, proxy)
    try:
        async with session.post(
            endpoint(flaresolverr_url),
            data=_ENCODER.encode(command),
            headers={"Content-Type": "application/json"},
            proxy=None,
            timeout=aiohttp.ClientTimeout(total=SOLVE_TIMEOUT),
        ) as resp:
            raw = await resp.read()
    except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
        log.info("FlareSolverr call failed: %r", exc)
        raise ClearanceError("could not reach FlareSolverr (flaresolverr_url)") from None
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise ClearanceError(f"FlareSolverr answered HTTP {resp.status} without JSON") from None
    return parse_solution(data)
