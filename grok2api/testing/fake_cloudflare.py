"""The fake's Cloudflare: an egress (told apart by the address its requests come from) that is being challenged
gets the challenge page until it presents a ``cf_clearance`` issued to it, with the User-Agent it was issued to and
a Sec-Ch-Ua naming the same Chrome; the challenge is solved at ``SOLVE_PATH`` (``fake_home``; what the FlareSolverr
stand-in's browser does). Also the check of signed statsig values (``signed_statsig``: a value not signed over the
current build's ``grok-site-verification`` meta gets the anti-bot 403).

With ``bot_management`` on, every egress holds a ``__cf_bm`` as Cloudflare's bot management hands out: an answer
(of any endpoint, the WebSocket handshakes included) to a request that did not present the egress's current value
sets it with ``Set-Cookie``; ``rotate`` gives egresses a new one, as its 30-minute expiry does."""

from __future__ import annotations

import base64
import re
import secrets

from aiohttp import web

from .fake_errors import ERR_ANTIBOT, cloudflare_response
from .fake_http import json_response, parse_cookies

CLOUDFLARE_PREFIX = "/cdn-cgi/"  # Cloudflare's own paths: never challenged, never grok.com's
SOLVE_PATH = CLOUDFLARE_PREFIX + "challenge-platform/solve"
BOT_COOKIE = "__cf_bm"
_MAJOR = re.compile(r"Chrome/(\d+)")
_CH_MAJOR = re.compile(r'"Google Chrome";v="(\d+)"')


def signed_value(method: str, path: str, meta: str) -> str:
    """What the signer stand-in answers for a call, and what the fake accepts with ``signed_statsig``."""
    return base64.b64encode(f"signed|{method.upper()}|{path}|{meta}".encode()).decode()


class FakeCloudflare:
    def __init__(self) -> None:
        self.challenged: set[str] = set()  # source addresses being challenged
        self.issued: dict[str, tuple[str, str]] = {}  # cf_clearance -> (source address, User-Agent)
        self.challenges: list[tuple[str, str]] = []  # (source address, path) of every challenge answered
        self.refusals: list[str] = []  # why a clearance that was presented was refused
        self.bot_management = False  # hand out a __cf_bm per egress (off: no answer sets one)
        self.bot_cookies: dict[str, str] = {}  # source address -> its current __cf_bm
        self.presented: list[tuple[str, str, str]] = []  # (source address, path, __cf_bm presented or "") per call

    def challenge(self, *sources: str) -> None:
        """Challenge the egresses whose requests come from ``sources`` until they present a clearance."""
        self.challenged.update(sources)

    def issue(self, source: str, user_agent: str) -> str:
        value = secrets.token_hex(12)
        self.issued[value] = (source, user_agent)
        return value

    def rotate(self, *sources: str) -> None:
        """A new ``__cf_bm`` for the egresses whose requests come from ``sources`` (every one known when none)."""
        for source in sources or tuple(self.bot_cookies):
            self.bot_cookies[source] = secrets.token_hex(8)

    def set_bot_cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        """With ``bot_management``: set the caller's current ``__cf_bm`` when the request did not present it."""
        if not self.bot_management:
            return
        source = request.remote or ""
        current = self.bot_cookies.get(source)
        if current is None:
            current = self.bot_cookies[source] = secrets.token_hex(8)
        presented = parse_cookies(request.headers.getall("Cookie", [])).get(BOT_COOKIE, "")
        self.presented.append((source, request.path, presented))
        if presented != current:
            # A header of its own: the hook runs after aiohttp turned the response's cookies into headers.
            cookie = f"{BOT_COOKIE}={current}; Path=/; Max-Age=1800; HttpOnly; Secure; SameSite=None"
            response.headers.add("Set-Cookie", cookie)

    def check(self, request: web.Request, clearance: str | None) -> web.Response | None:
        """None when the request may pass, else the challenge page."""
        source = request.remote or ""
        if source not in self.challenged:
            return None
        issued = self.issued.get(clearance or "")
        user_agent = request.headers.get("User-Agent", "")
        why = ""
        if issued is None:
            why = "no clearance" if not clearance else "an unknown clearance"
        elif issued[0] != source:
            why = f"a clearance issued to {issued[0]}, presented from {source}"
        elif issued[1] != user_agent:
            why = "a clearance presented with another User-Agent"
        elif not _same_chrome(user_agent, request.headers.get("Sec-Ch-Ua", "")):
            why = "a Sec-Ch-Ua that names another Chrome than the User-Agent"
        if not why:
            return None
        if clearance:
            self.refusals.append(why)
        self.challenges.append((source, request.path))
        return cloudflare_response()


def _same_chrome(user_agent: str, sec_ch_ua: str) -> bool:
    ua, ch = _MAJOR.search(user_agent), _CH_MAJOR.search(sec_ch_ua)
    return ua is None or ch is None or ua.group(1) == ch.group(1)


def statsig_refusal(request: web.Request, meta: str) -> web.Response | None:
    """The anti-bot 403 for a call without the signed value of the current build's meta."""
    if request.headers.get("x-statsig-id", "") == signed_value(request.method, request.path, meta):
        return None
    return json_response(403, ERR_ANTIBOT)
