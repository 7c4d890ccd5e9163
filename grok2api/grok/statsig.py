"""Signed ``x-statsig-id`` values from a signer service (``statsig_signer_url``): POST
``{method, path, environment: {metaContent}}`` → ``{"x-statsig-id": …}``. The value embeds the
``grok-site-verification`` meta of grok.com's home page (read through the egress the call uses), is cached per
egress, method and path for an hour, and is dropped when grok.com answers it with an anti-bot 403."""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time
from collections.abc import Awaitable, Callable

import aiohttp
import msgspec

log = logging.getLogger("grok2api.grok.statsig")
TTL = 3600.0
_TIMEOUT = aiohttp.ClientTimeout(total=20, sock_connect=10)
_META = re.compile(r"<meta\b[^>]*\bname=[\"']grok-site-verification[\"'][^>]*>", re.IGNORECASE)
_CONTENT = re.compile(r"\bcontent=[\"']([^\"']*)[\"']", re.IGNORECASE)
_ENCODER = msgspec.json.Encoder()


class StatsigError(Exception):
    """No signed value could be had; the message says why."""


def site_verification(page: str) -> str:
    """The ``content`` of grok.com's ``<meta name="grok-site-verification">``; "" when the page has none."""
    tag = _META.search(page)
    found = _CONTENT.search(tag.group(0)) if tag else None
    return html.unescape(found.group(1)) if found else ""


def sign_body(method: str, path: str, meta: str) -> dict[str, object]:
    return {"method": method.upper(), "path": path, "environment": {"metaContent": meta}}


MetaReader = Callable[[], Awaitable[str]]  # grok.com's home page through the egress, as text


class StatsigSigner:
    """Signed values and the home page meta they need, cached; shared by every egress of the process."""

    def __init__(self, session: Callable[[], aiohttp.ClientSession]) -> None:
        self._session = session
        self._values: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._metas: dict[str, tuple[str, float]] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    async def value(self, signer_url: str, egress: str, method: str, path: str, read_home: MetaReader) -> str:
        """The value for ``method`` ``path`` through ``egress``, from the cache while it is under an hour old."""
        key = (egress, method.upper(), path)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one signer call per key, however many requests wait for it
            cached = self._values.get(key)
            if cached is not None and time.monotonic() - cached[1] < TTL:
                return cached[0]
            meta = await self._meta(egress, read_home)
            signed = await self._sign(signer_url, method, path, meta)
            self._values[key] = (signed, time.monotonic())
            return signed

    def drop(self, egress: str, method: str, path: str) -> None:
        """Forget the value (and the page meta it was made from) after grok.com refused it."""
        self._values.pop((egress, method.upper(), path), None)
        self._metas.pop(egress, None)

    async def _meta(self, egress: str, read_home: MetaReader) -> str:
        cached = self._metas.get(egress)
        if cached is not None and time.monotonic() - cached[1] < TTL:
            return cached[0]
        meta = site_verification(await read_home())
        if not meta:
            raise StatsigError("grok.com's home page has no grok-site-verification meta to sign with")
        self._metas[egress] = (meta, time.monotonic())
        return meta

    async def _sign(self, signer_url: str, method: str, path: str, meta: str) -> str:
        try:
            async with self._session().post(
                signer_url,
                data=_ENCODER.encode(sign_body(method, path, meta)),
                headers={"Content-Type": "application/json"},
                timeout=_TIMEOUT,
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
            log.info("statsig signer call failed: %r", exc)
            raise StatsigError("could not reach the statsig signer (statsig_signer_url)") from None
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            data = None
        value = data.get("x-statsig-id") if isinstance(data, dict) else None
        if status != 200 or not isinstance(value, str) or not value:
            raise StatsigError(f"the statsig signer answered HTTP {status} without an x-statsig-id")
        return value
