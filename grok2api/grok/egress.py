"""Egresses: the ways out to grok.com. Each is a proxy (or none) with the Cloudflare cookies and User-Agent that
were issued to it, and its health. Cloudflare ties ``cf_clearance`` to the egress IP, the User-Agent and the TLS
fingerprint, so an account always goes out through one egress (rendezvous hashing of its token over the healthy
egresses) and its cookie, IP and fingerprint stay together; it moves only while that egress is unhealthy."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Mapping, Sequence

import msgspec

from ..settings import DIRECT

# Cookies Cloudflare sets for a site; the only ones an egress keeps (never an account's).
_CLOUDFLARE_COOKIE = re.compile(r"cf_clearance|__cf_bm|_cfuvid|cf_chl_\w*|__cf_chl_\w*|__cflb")
_CHROME_MAJOR = re.compile(r"Chrome/(\d+)")
_SEC_CH_UA = '"Chromium";v="{major}", "Not-A.Brand";v="24", "Google Chrome";v="{major}"'


class Egress(msgspec.Struct, kw_only=True):
    """One egress as a call sees it. ``key`` names it in the store (a digest of its proxy URL, so the URL's
    credentials are never a key); ``label`` is the proxy without its credentials."""

    key: str
    proxy: str  # "" = a direct connection
    label: str
    cookies: dict[str, str] = msgspec.field(default_factory=dict)  # Cloudflare cookies issued to this egress
    user_agent: str = ""  # the User-Agent the cookies were issued with ("" = the browser profile's)
    clearance_source: str = ""  # "operator" | "flaresolverr" | ""
    clearance_at: float | None = None
    challenged_at: float | None = None  # the last challenge not cleared since (None = none)
    evidence: str = ""  # what that challenge looked like

    def healthy(self, retry_seconds: float, now: float | None = None) -> bool:
        """Not challenged, or challenged long enough ago that it is worth trying again."""
        if self.challenged_at is None:
            return True
        return (now if now is not None else time.time()) - self.challenged_at >= retry_seconds


def egress_key(proxy: str) -> str:
    """The store key of the egress through ``proxy`` (``direct`` for none)."""
    if not proxy or proxy == DIRECT:
        return DIRECT
    return "p-" + hashlib.sha256(proxy.encode()).hexdigest()[:16]


def proxy_label(proxy: str) -> str:
    """``scheme://host:port`` of a proxy, credentials left out; ``direct`` for none."""
    if not proxy or proxy == DIRECT:
        return DIRECT
    scheme, _, rest = proxy.partition("://")
    host = rest.rpartition("@")[2].split("/", 1)[0]
    return f"{scheme}://{host}"


def _score(key: str, token: str) -> bytes:
    return hashlib.blake2b(f"{key}\n{token}".encode(), digest_size=8).digest()


def pick(token: str, egresses: Sequence[Egress], retry_seconds: float, now: float | None = None) -> Egress:
    """The egress an account (its ``token``) goes out through: of the healthy egresses, the one scoring highest
    for it (rendezvous hashing). It needs no storage, every worker and replica agrees, adding or removing an
    egress moves only the accounts that must move, and an account leaves its egress only while that one is
    unhealthy. When none is healthy, every egress counts."""
    if len(egresses) == 1:
        return egresses[0]  # the usual case, on every call: nothing to choose
    if not egresses:
        raise ValueError("no egress configured")
    at = now if now is not None else time.time()
    healthy = [e for e in egresses if e.healthy(retry_seconds, at)] or list(egresses)
    return max(healthy, key=lambda e: _score(e.key, token))


def cloudflare_cookie(name: str) -> bool:
    return bool(_CLOUDFLARE_COOKIE.fullmatch(name))


def parse_clearance(text: str) -> dict[str, str]:
    """Cloudflare cookies from what an operator pastes: a bare ``cf_clearance`` value, ``cf_clearance=…``, or a
    whole Cookie line (only its Cloudflare cookies are kept). Raises ValueError when nothing usable is there."""
    text = text.strip().strip('"').strip()
    if text.lower().startswith("cookie:"):
        text = text[len("cookie:") :].strip()
    if "=" not in text:
        if not text or any(c in text for c in " ;,\t\r\n"):
            raise ValueError("paste a cf_clearance value or a Cookie line holding one")
        return {"cf_clearance": text}
    cookies: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and cloudflare_cookie(name.strip()) and value.strip():
            cookies[name.strip()] = value.strip()
    if not cookies:
        raise ValueError("no Cloudflare cookie (cf_clearance, __cf_bm, _cfuvid, cf_chl_*) in what was pasted")
    return cookies


def set_cookies(values: Iterable[str]) -> dict[str, str]:
    """The Cloudflare cookies an answer sets (its ``Set-Cookie`` header values); a cookie being deleted (an empty
    value, ``Max-Age`` of 0 or less) and every other cookie (an account's ``sso`` first of all) are left out."""
    found: dict[str, str] = {}
    for header in values:
        pair, *attributes = header.split(";")
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip().strip('"')
        if not sep or not value or not cloudflare_cookie(name):
            continue
        if any(_expired(attribute) for attribute in attributes):
            continue
        found[name] = value
    return found


def _expired(attribute: str) -> bool:
    key, _, value = attribute.partition("=")
    if key.strip().lower() != "max-age":
        return False
    try:
        return int(value.strip()) <= 0
    except ValueError:
        return False


def with_cookies(header: str, cookies: Mapping[str, str]) -> str:
    """A Cookie header carrying ``cookies`` (a Cloudflare cookie of the same name it carried is replaced; the account's
    own cookies keep their order and place)."""
    if not cookies:
        return header
    kept = [p.strip() for p in header.split(";") if p.strip() and p.strip().partition("=")[0].strip() not in cookies]
    kept.extend(f"{name}={value}" for name, value in cookies.items())
    return "; ".join(kept)


def with_user_agent(headers: dict[str, str], user_agent: str) -> None:
    """Send ``user_agent`` (the one a clearance was issued with) and a Sec-Ch-Ua naming its Chrome major, or none
    when it is not Chrome: Cloudflare refuses a clearance presented by another browser."""
    if not user_agent:
        return
    for name in [n for n in headers if n.lower() == "user-agent"]:
        del headers[name]
    headers["User-Agent"] = user_agent
    names = [n for n in headers if n.lower() == "sec-ch-ua"]
    if not names:
        return
    found = _CHROME_MAJOR.search(user_agent)
    for name in names:
        if found:
            headers[name] = _SEC_CH_UA.format(major=found.group(1))
        else:
            del headers[name]
