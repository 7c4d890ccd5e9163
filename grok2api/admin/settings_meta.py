"""Every runtime setting with its group, help text and input kind, plus masking of secrets.

Groups follow the reference admin (global, grok, proxy, timeouts, media); the pool settings the
reference never had get their own group. A test checks that every setting appears exactly once.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

import msgspec

from ..settings import SECRET_SETTINGS, RuntimeSettings, as_dict

MASK = "********"

GROUPS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "global",
        "Global",
        (
            (
                "api_key",
                "The shared client key (Authorization: Bearer …) the reference had. Empty and no client keys "
                "means /v1 is open to anyone who can reach it. Named keys live under API keys.",
            ),
            ("log_level", "How much the gateway logs. Applies at once on every worker."),
            (
                "responses_ttl_hours",
                "How long the Responses API keeps a response it stored (store: true), for GET /v1/responses/{id} "
                "and previous_response_id follow-ups. Applies to responses stored from then on.",
            ),
        ),
    ),
    (
        "grok",
        "Grok",
        (
            (
                "filtered_tags",
                "Comma-separated Grok markup tags removed from answers (case-insensitive), "
                "in streamed and non-streamed replies alike.",
            ),
            ("show_thinking", "Send the model's reasoning to clients. Off: reasoning models answer without it."),
            (
                "think_format",
                "How reasoning is sent: reasoning_content deltas (what current clients read) or "
                "<think>…</think> inside the content, as the reference did.",
            ),
            (
                "output_repair_turns",
                "When Grok's tool call or JSON answer does not validate against the client's schema, how many "
                "times it is asked again with the validation error (0 = never) before the answer falls back to "
                "text or fails.",
            ),
            ("temporary", "Ask grok.com not to keep the conversations in the accounts' history."),
            (
                "chat_transport",
                "How chats reach grok.com: ws (its WebSocket, what the web app uses) or rest (the HTTP "
                "fallback, for egresses where the WebSocket is blocked).",
            ),
            (
                "spare_socket_seconds",
                "How long a chatting account's next chat socket may wait opened (0 = none): its next turn then "
                "skips the connection and the handshake. At most one per account, closed unused when it expires.",
            ),
            (
                "modes_refresh_seconds",
                "How often grok.com's list of modes is read again (new modes appear as grok-<mode>).",
            ),
            (
                "canary_interval_minutes",
                "Every this many minutes, one chat turn (mode fast, one account's query) checks that grok.com "
                "still answers the gateway; a failure, or answers the parser does not know, show on the "
                "dashboard and in /metrics. 0 = off.",
            ),
            ("upstream_url", "grok.com's base URL. Change it only for a mirror or the bundled fake grok.com."),
            ("assets_url", "Where generated images and videos are downloaded from."),
            (
                "asset_hosts",
                "Comma-separated hosts an answer may link media on (besides assets_url's); "
                "links elsewhere are never downloaded.",
            ),
        ),
    ),
    (
        "proxy",
        "Proxy and anti-bot",
        (
            (
                "upstream_transport",
                "How calls reach grok.com: curl_cffi looks like Chrome to Cloudflare (TLS and HTTP/2 fingerprint); "
                "aiohttp looks like Python and is often refused. auto uses curl_cffi when it is installed "
                "(the 'browser' extra, included in the container image). The default is aiohttp while curl_cffi "
                "releases an abandoned chat socket late. Applies to new calls.",
            ),
            (
                "browser_profile",
                "The Chrome release curl_cffi impersonates (e.g. chrome146). The User-Agent and Sec-Ch-Ua headers "
                "name the same Chrome major, on either transport, so a cf_clearance stays matched to them.",
            ),
            (
                "proxy_url",
                "HTTP or SOCKS5 proxy for calls to grok.com (socks5:// becomes socks5h:// so DNS resolves "
                "through the proxy). Use it when grok.com answers the gateway's IP with 403s.",
            ),
            (
                "proxy_urls",
                "The egresses: HTTP or SOCKS5 proxies separated by commas or spaces ('direct' for no proxy). Each "
                "keeps its own Cloudflare cookies and health; an account always goes out through the same one and "
                "moves only while that one is challenged. proxy_url is added to them when set.",
            ),
            ("cache_proxy_url", "Proxy for downloading generated media; empty uses the account's egress."),
            (
                "cf_clearance",
                "A Cloudflare clearance cookie value (with or without the 'cf_clearance=' prefix), for "
                "egress IPs that get a Cloudflare challenge. It must come from the proxy's IP. An egress with a "
                "clearance of its own (Egresses page) sends that one instead.",
            ),
            (
                "flaresolverr_url",
                "A FlareSolverr server (e.g. http://flaresolverr:8191). When an egress is challenged, FlareSolverr "
                "opens grok.com through that egress's proxy, and its cookies and User-Agent are kept for the egress; "
                "the call is retried once.",
            ),
            (
                "egress_retry_seconds",
                "How long a challenged egress is avoided before accounts are sent through it again.",
            ),
            ("x_statsig_id", "The anti-bot header sent to grok.com when dynamic_statsig is off."),
            ("dynamic_statsig", "Generate a fresh x-statsig-id per request instead of the fixed value."),
            (
                "statsig_prefix",
                "Prefix of generated x-statsig-id values: x1: (what grok.com accepts since mid-2026) or the older e:.",
            ),
            (
                "statsig_signer_url",
                "A signer that mints real x-statsig-id values: POST {method, path, environment:{metaContent}} → "
                '{"x-statsig-id": …}. Cached per call for an hour and signed again after an anti-bot 403; '
                "empty sends x_statsig_id.",
            ),
        ),
    ),
    (
        "timeouts",
        "Timeouts",
        (
            (
                "stream_first_response_timeout",
                "Seconds to wait for grok.com's first byte before trying another account (or failing with 504).",
            ),
            ("stream_chunk_timeout", "Seconds a stream may stay silent before it is cut."),
            ("stream_total_timeout", "Upper bound for one whole answer, in seconds (0 = no bound)."),
        ),
    ),
    (
        "media",
        "Media",
        (
            ("image_mode", "url: answers link to /images/… on this gateway; base64: images are inlined as data URLs."),
            (
                "base_url",
                "The public address of this gateway used in media links (e.g. https://grok.example.com). "
                "Empty gives relative links.",
            ),
            ("image_cache_max_size_mb", "Disk space for cached images; the oldest are evicted beyond it."),
            ("video_cache_max_size_mb", "Disk space for cached videos; the oldest are evicted beyond it."),
            ("image_fetch_max_mb", "Largest image a client may pass by URL."),
            (
                "allow_private_image_urls",
                "Allow image URLs that point at private, loopback or link-local addresses. "
                "Leave off unless the gateway only serves trusted clients.",
            ),
        ),
    ),
    (
        "pool",
        "Account pool",
        (
            ("max_attempts", "Accounts tried for one request before the client gets the error."),
            ("retry_budget_seconds", "Time one request may spend on retries across accounts."),
            ("invalid_after_failures", "Consecutive credential failures after which an account is marked invalid."),
            ("account_max_concurrency", "Requests one account may serve at a time (0 = no limit)."),
            ("default_cooldown_seconds", "How long a rate-limited account rests when grok.com gives no reset time."),
        ),
    ),
)

_FIELDS = {f.name: f for f in msgspec.structs.fields(RuntimeSettings)}


@dataclass(frozen=True)
class Field:
    name: str
    help: str
    kind: str  # "text" | "number" | "bool" | "choice" | "secret"
    choices: tuple[str, ...] = ()
    step: str = "1"
    low: float | None = None
    high: float | None = None


def _base(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _bounds(tp: Any) -> tuple[float | None, float | None]:
    low = high = None
    if typing.get_origin(tp) is typing.Annotated:
        for meta in typing.get_args(tp)[1:]:
            if isinstance(meta, msgspec.Meta):
                low = meta.ge if meta.ge is not None else low
                high = meta.le if meta.le is not None else high
    return low, high


def describe(name: str, help_text: str) -> Field:
    tp = _FIELDS[name].type
    base = _base(tp)
    low, high = _bounds(tp)
    if name in SECRET_SETTINGS:
        return Field(name, help_text, "secret")
    if base is bool:
        return Field(name, help_text, "bool")
    if typing.get_origin(base) is typing.Literal:
        return Field(name, help_text, "choice", tuple(str(v) for v in typing.get_args(base)))
    if base in (int, float):
        return Field(name, help_text, "number", step="1" if base is int else "any", low=low, high=high)
    return Field(name, help_text, "text")


FIELDS_BY_GROUP: dict[str, list[Field]] = {gid: [describe(n, h) for n, h in items] for gid, _, items in GROUPS}
GROUP_TITLES = {gid: title for gid, title, _ in GROUPS}
GROUP_OF = {f.name: gid for gid, fields in FIELDS_BY_GROUP.items() for f in fields}


def masked(settings: RuntimeSettings) -> dict[str, Any]:
    """Every setting, with secrets replaced by MASK when set (never sent back in clear)."""
    values = as_dict(settings)
    return {k: (MASK if v else "") if k in SECRET_SETTINGS else v for k, v in values.items()}


def display(field: Field, value: Any) -> str:
    if field.kind == "bool":
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def changes_from_form(
    fields: list[Field], form: typing.Mapping[str, Any], current: RuntimeSettings, locked: typing.Collection[str]
) -> dict[str, Any]:
    """Only what the operator actually changed: blank secrets keep their value, locked fields are skipped."""
    values = as_dict(current)
    out: dict[str, Any] = {}
    for field in fields:
        if field.name in locked:
            continue
        if field.kind == "secret":
            if form.get(f"clear_{field.name}"):
                if values[field.name]:
                    out[field.name] = ""
                continue
            raw = str(form.get(field.name) or "")
            if raw and raw != MASK:
                out[field.name] = raw
            continue
        if field.name not in form:
            continue
        raw = str(form.get(field.name))
        if raw.strip() != display(field, values[field.name]):
            out[field.name] = raw
    return out


_WORDS = {
    "`float`": "a number",
    "`int`": "a whole number",
    "`bool`": "true or false",
    "`str`": "text",
    "`null`": "nothing",
    "`array`": "a list",
    "`object`": "an object",
}


def humanize(message: str) -> str:
    """msgspec's "Expected `float`, got `str`" in words an operator reads without knowing Python."""
    for raw, word in _WORDS.items():
        message = message.replace(raw, word)
    return message.replace("`", "'")
