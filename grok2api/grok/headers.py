"""Browser-like headers, the x-statsig-id anti-bot value and the account cookie for grok.com."""

from __future__ import annotations

import base64
import random
import string

from ..ids import uuid4_str
from ..settings import RuntimeSettings
from .browser import DEFAULT_PROFILE, chrome_major, resolve_profile

_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{major}.0.0.0 Safari/537.36"
)
_SEC_CH_UA = '"Chromium";v="{major}", "Not-A.Brand";v="24", "Google Chrome";v="{major}"'
USER_AGENT = _UA.format(major=chrome_major(DEFAULT_PROFILE))  # the default profile's


def user_agent(settings: RuntimeSettings) -> str:
    """A macOS Chrome User-Agent naming the major of ``browser_profile`` (what curl_cffi's TLS presents)."""
    return _UA.format(major=_major(settings))


def sec_ch_ua(settings: RuntimeSettings) -> str:
    return _SEC_CH_UA.format(major=_major(settings))


def _major(settings: RuntimeSettings) -> int:
    return chrome_major(resolve_profile(settings.browser_profile)) or chrome_major(DEFAULT_PROFILE)


_BASE = {
    "Accept": "*/*",
    "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8",
    "Accept-Encoding": "gzip, deflate, br",
    "Content-Type": "application/json",
    "Priority": "u=1, i",
    "User-Agent": USER_AGENT,
    "Sec-Ch-Ua": _SEC_CH_UA.format(major=chrome_major(DEFAULT_PROFILE)),
    "Sec-Ch-Ua-Mobile": "?0",
    "Sec-Ch-Ua-Platform": '"macOS"',
    "Sec-Fetch-Dest": "empty",
    "Sec-Fetch-Mode": "cors",
    "Sec-Fetch-Site": "same-origin",
    "Baggage": "sentry-environment=production,sentry-public_key=b311e0f2690c81f25e2c4cf6d4f7ce1c",
}
_ASSET = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8",
    "Sec-Fetch-Dest": "document",
    "Sec-Fetch-Mode": "navigate",
    "Sec-Fetch-Site": "same-site",
    "Sec-Fetch-User": "?1",
    "Upgrade-Insecure-Requests": "1",
}


def statsig_id(settings: RuntimeSettings) -> str:
    """The fixed value, or with dynamic_statsig a fresh imitation of the web client's error fallback."""
    if not settings.dynamic_statsig:
        return settings.x_statsig_id
    prefix = settings.statsig_prefix
    if random.random() < 0.5:
        tail = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        text = f"{prefix}TypeError: Cannot read properties of null (reading 'children['{tail}']')"
    else:
        tail = "".join(random.choices(string.ascii_lowercase, k=10))
        text = f"{prefix}TypeError: Cannot read properties of undefined (reading '{tail}')"
    return base64.b64encode(text.encode()).decode()


def normalize_token(raw: str) -> str:
    """Accept a bare SSO value, ``sso=...`` or a whole cookie line; return the bare value."""
    text = raw.strip().strip('"').strip()
    if ";" in text or text.startswith(("sso=", "sso-rw=")):
        pairs = [p.strip() for p in text.split(";")]
        values = dict(p.split("=", 1) for p in pairs if "=" in p)
        text = values.get("sso") or values.get("sso-rw") or ""
    return text.strip()


def cookie(token: str, settings: RuntimeSettings) -> str:
    value = f"sso-rw={token};sso={token}"
    if settings.cf_clearance:
        value += f";cf_clearance={settings.cf_clearance}"
    return value


def _base(settings: RuntimeSettings) -> dict[str, str]:
    headers = dict(_BASE)
    headers["User-Agent"] = user_agent(settings)
    headers["Sec-Ch-Ua"] = sec_ch_ua(settings)
    return headers


def api_headers(
    token: str, settings: RuntimeSettings, *, referer: str | None = None, upload: bool = False
) -> dict[str, str]:
    headers = _base(settings)
    headers["Origin"] = settings.upstream_url
    headers["Referer"] = referer or f"{settings.upstream_url}/"
    if upload:
        headers["Content-Type"] = "text/plain;charset=UTF-8"
    headers["x-statsig-id"] = statsig_id(settings)
    headers["x-xai-request-id"] = uuid4_str()
    headers["Cookie"] = cookie(token, settings)
    return headers


def asset_headers(token: str, settings: RuntimeSettings) -> dict[str, str]:
    headers = {k: v for k, v in _base(settings).items() if k != "Content-Type"}
    headers.update(_ASSET)
    headers["Referer"] = f"{settings.upstream_url}/"
    headers["Cookie"] = cookie(token, settings)
    return headers


def page_headers(settings: RuntimeSettings) -> dict[str, str]:
    """A browser's navigation to the home page: no account cookie, only the Cloudflare clearance (the page
    tells whether the egress gets through at all)."""
    headers = {k: v for k, v in _base(settings).items() if k not in ("Content-Type", "Priority")}
    headers.update(_ASSET)
    headers["Sec-Fetch-Site"] = "none"
    if settings.cf_clearance:
        headers["Cookie"] = f"cf_clearance={settings.cf_clearance}"
    return headers


def ws_cookie(token: str, user_id: str, settings: RuntimeSettings) -> str:
    """A WebSocket's cookie: the browser's order, plus ``x-userid`` naming the account when it is known."""
    parts = [f"sso={token}", f"sso-rw={token}"]
    if settings.cf_clearance:
        parts.append(f"cf_clearance={settings.cf_clearance}")
    if user_id:
        parts.append(f"x-userid={user_id}")
    return "; ".join(parts)


def ws_headers(token: str, user_id: str, settings: RuntimeSettings) -> dict[str, str]:
    """Handshake headers of grok.com's WebSockets (chat and Imagine): no statsig, no fetch metadata."""
    return {
        "Origin": settings.upstream_url,
        "User-Agent": user_agent(settings),
        "Accept-Language": _BASE["Accept-Language"],
        "Cache-Control": "no-cache",
        "Pragma": "no-cache",
        "Cookie": ws_cookie(token, user_id, settings),
    }
