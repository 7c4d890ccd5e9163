"""The fake's Cloudflare: an egress (told apart by the address its requests come from) that is being challenged
gets the challenge page until it presents a ``cf_clearance`` issued to it, with the User-Agent it was issued to and
a Sec-Ch-Ua naming the same Chrome; the challenge is solved at ``SOLVE_PATH`` (``fake_home``; what the FlareSolverr
stand-in's browser does). Also the check of signed statsig values (``signed_statsig``: a value not signed over the
current build's ``grok-site-verification`` meta gets the anti-bot 403)."""

from __future__ import annotations

import base64
import re
import secrets

from aiohttp import web

from .fake_errors import ERR_ANTIBOT, cloudflare_response
from .fake_http import json_response

CLOUDFLARE_PREFIX = "/cdn-cgi/"  # Cloudflare's own paths: never challenged, never grok.com's
SOLVE_PATH = CLOUDFLARE_PREFIX + "challenge-platform/solve"
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

    def challenge(self, *sources: str) -> None:
        """Challenge the egresses whose requests come from ``sources`` until they present a clearance."""
        self.challenged.update(sources)

    def issue(self, source: str, user_agent: str) -> str:
        value = secrets.token_hex(12)
        self.issued[value] = (source, user_agent)
        return value

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
