"""The HTTP and WebSocket steps, each one call of the gateway's own protocol code (``grok/``) over the egress's
transport: the home page, the account's session, modes, rate limits, one chat turn and an asset round trip.
Each returns its ``Step``; what a failure means comes from ``verdicts``."""

from __future__ import annotations

import asyncio
import base64
import logging
import struct
import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..grok.client import GrokClient
from ..grok.errors import UploadRejected, UpstreamConnectionError, UpstreamHTTPError
from ..grok.events import End, ErrorEvent, Text
from ..grok.headers import page_headers
from ..grok.mgw import stream_mgw
from ..grok.unknown_shapes import UNKNOWN_SHAPES
from ..settings import RuntimeSettings
from .report import Step, Verdict, mask
from .targets import Target
from .verdicts import explain_event, failed, failing

log = logging.getLogger("grok2api.diagnose")
CHAT_MODE = "fast"  # the cheapest mode: every tier has it, one query per turn
CHAT_PROMPT = "Reply with exactly one word: pong"
PROBE_FILE = "grok2api-doctor.png"
_PROBE_ERRORS = (UpstreamHTTPError, UpstreamConnectionError, UploadRejected, TimeoutError)


@dataclass(frozen=True)
class Timeouts:
    step: float = 30.0  # one HTTP call
    chat: float = 90.0  # the whole chat turn, handshake to done


@dataclass
class Probe:
    """What the steps share: the egress, its settings and client, the account, and what earlier steps learned."""

    target: Target
    settings: RuntimeSettings
    client: GrokClient
    token: str
    timeouts: Timeouts = field(default_factory=Timeouts)
    user_id: str = ""  # from the session step, or known from the store

    async def run(self, name: str, subject: str, check: Callable[[], Awaitable[Step]], limit: float = 0) -> Step:
        """One step under its time limit; a failure of the call becomes the step's verdict."""
        try:
            async with asyncio.timeout(limit or self.timeouts.step):
                return await check()
        except _PROBE_ERRORS as exc:
            return failed(name, subject, exc, self.target)
        except Exception as exc:  # the doctor reports what it could not check; it never dies of it
            log.warning("the doctor's %s step failed unexpectedly", name, exc_info=True)
            return failed(name, subject, exc, self.target)


async def home_page(probe: Probe) -> Step:
    """``GET /`` as a browser navigates to it, with the egress's Cloudflare cookie and no account."""

    async def check() -> Step:
        url = f"{probe.settings.upstream_url}/"
        answer = await probe.client.http.request(
            "GET", url, page_headers(probe.settings), proxy=probe.settings.proxy_url, timeout=probe.timeouts.step
        )
        if answer.status >= 400:
            raise UpstreamHTTPError(
                answer.status,
                answer.body[:4096].decode("utf-8", "replace"),
                answer.headers.get("Content-Type", ""),
                headers=answer.headers,
            )
        size = f"{len(answer.body) / 1024:.0f} KB" if len(answer.body) >= 1024 else f"{len(answer.body)} bytes"
        where = f", redirecting to {answer.headers.get('Location', '?')}" if answer.status >= 300 else ""
        verdict = f"grok.com's home page loads (HTTP {answer.status}, {size}{where}): Cloudflare lets this egress in"
        return Step(name="home_page", ok=True, verdict=verdict)

    return await probe.run("home_page", "the home page", check)


async def auth_session(probe: Probe) -> Step:
    async def check() -> Step:
        probe.user_id = await probe.client.auth_session(probe.token, probe.settings)
        verdict = f"signed in: the account is valid (user {mask(probe.user_id)})"
        return Step(name="auth_session", ok=True, verdict=verdict)

    return await probe.run("auth_session", "/api/auth/session", check)


async def modes(probe: Probe) -> Step:
    async def check() -> Step:
        offered = await probe.client.modes(probe.token, probe.settings)
        if not offered:
            raise UpstreamHTTPError(200, "/rest/modes listed no modes")
        usable = [m.id for m in offered if m.available]
        verdict = (
            f"grok.com offers {len(offered)} modes ({', '.join(m.id for m in offered[:8])}); "
            f"{len(usable)} available to this account"
        )
        return Step(name="modes", ok=True, verdict=verdict)

    return await probe.run("modes", "/rest/modes", check)


async def rate_limits(probe: Probe) -> Step:
    async def check() -> Step:
        window = await probe.client.rate_limits(probe.token, CHAT_MODE, probe.settings)
        if window.remaining is None:
            raise UpstreamHTTPError(200, "/rest/rate-limits answered without remainingQueries")
        total = f" of {window.total}" if window.total is not None else ""
        verdict = f"{CHAT_MODE}: {window.remaining}{total} queries left"
        if window.window_seconds:
            verdict += f" in a {window.window_seconds // 60} min window"
        if window.remaining == 0 and window.wait_seconds:
            verdict += f"; it resets in {int(window.wait_seconds)} s, so the chat turn will be refused until then"
        return Step(name="rate_limits", ok=True, verdict=verdict)

    return await probe.run("rate_limits", "/rest/rate-limits", check)


def _unknown_since(before: Counter[str]) -> list[str]:
    return sorted(name for name, n in UNKNOWN_SHAPES.counts.items() if n > before.get(name, 0))


async def chat_turn(probe: Probe) -> Step:
    """One temporary chat turn over the chat WebSocket, in the cheapest mode, asking for one word."""
    if not probe.user_id:
        return Step(
            name="chat_turn",
            ok=False,
            verdict="not run: the account's user id is unknown (the session step failed)",
            code=Verdict.SKIPPED,
        )
    before = Counter(UNKNOWN_SHAPES.counts)
    started = time.monotonic()

    async def check() -> Step:
        text, error, ended = "", None, False
        turn = stream_mgw(probe.client.sockets, probe.token, probe.user_id, CHAT_MODE, CHAT_PROMPT, [], probe.settings)
        try:
            async for batch in turn:
                for event in batch:
                    if isinstance(event, Text):
                        text += event.text
                    elif isinstance(event, ErrorEvent):
                        error = event
                    elif isinstance(event, End):
                        ended = True
        finally:
            await turn.aclose()
        if error is not None:
            code, meaning = explain_event(error)
            return failing("chat_turn", code, f"the chat turn: {meaning}", probe.target)
        if not ended or not text.strip():
            raise UpstreamHTTPError(200, "the chat ended without an answer")
        answer = " ".join(text.split())[:60]
        verdict = (
            f"grok.com answered over the chat WebSocket in mode {CHAT_MODE} in {time.monotonic() - started:.1f} s: "
            f"“{answer}”"
        )
        unknown = _unknown_since(before)
        if unknown:
            verdict += f"; it also sent shapes the parser does not know ({', '.join(unknown[:5])})"
        return Step(name="chat_turn", ok=True, verdict=verdict)

    return await probe.run("chat_turn", "the chat WebSocket", check, probe.timeouts.chat)


def probe_png(side: int = 64) -> bytes:
    """A grey ``side``×``side`` PNG: 64×64 is the smallest image grok.com's upload takes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * side for _ in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


async def asset_download(probe: Probe) -> Step:
    """Upload a small test image with the account, then download it back from the assets host."""

    async def check() -> Step:
        image = probe_png()
        b64 = base64.b64encode(image).decode()
        _, uri = await probe.client.upload(probe.token, PROBE_FILE, "image/png", b64, probe.settings)
        if not uri:
            raise UpstreamHTTPError(200, "the upload answered without a fileUri")
        data, content_type = await probe.client.download(probe.token, uri, probe.settings, timeout=probe.timeouts.step)
        if not data:
            raise UpstreamHTTPError(200, "the asset host sent an empty file")
        host = urlsplit(probe.settings.assets_url).netloc
        verdict = (
            f"uploaded a 64×64 test image and downloaded it back from {host} "
            f"({len(data)} bytes, {content_type or 'no content type'})"
        )
        return Step(name="asset_download", ok=True, verdict=verdict)

    return await probe.run("asset_download", "the asset round trip", check)
