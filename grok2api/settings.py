"""Runtime settings: stored in the store, validated by a msgspec struct, overridable from the
environment as ``GROK2API_<NAME>`` (an environment value wins over the stored one)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

log = logging.getLogger("grok2api.settings")

# grok.com has rejected the older "e:" prefix since mid-2026; this is the same value with "x1:".
DEFAULT_STATSIG = "eDE6VHlwZUVycm9yOiBDYW5ub3QgcmVhZCBwcm9wZXJ0aWVzIG9mIHVuZGVmaW5lZCAocmVhZGluZyAnY2hpbGROb2Rlcycp"
DEFAULT_FILTERED_TAGS = "xaiartifact,xai:tool_usage_card,grok:render"
_HTTP_URL = re.compile(r"https?://[^\s\"'<>]+")
_PROXY_URL = re.compile(r"(https?|socks5h?|socks4a?)://\S+$")
DIRECT = "direct"  # an egress without a proxy


def _without_secret(url: str) -> str:
    """A proxy URL fit for an error message: its credentials left out."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}"[:80]


Seconds = Annotated[float, msgspec.Meta(ge=0, le=86400)]
Megabytes = Annotated[int, msgspec.Meta(ge=1, le=1024 * 1024)]


class RuntimeSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # global
    api_key: str = ""
    base_url: str = ""
    image_mode: Literal["url", "base64"] = "url"
    image_cache_max_size_mb: Megabytes = 512
    video_cache_max_size_mb: Megabytes = 1024
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # How long the Responses API keeps a stored response (store: true) for GET and previous_response_id.
    responses_ttl_hours: Annotated[int, msgspec.Meta(ge=1, le=8760)] = 720
    # grok
    upstream_url: str = "https://grok.com"
    assets_url: str = "https://assets.grok.com"
    # Hosts an answer's absolute asset URLs may point at (besides assets_url's): no other is ever sent a cookie.
    asset_hosts: str = "assets.grok.com,imagine-public.x.ai,imgen.x.ai"
    filtered_tags: str = DEFAULT_FILTERED_TAGS
    show_thinking: bool = True
    think_format: Literal["reasoning_content", "think_tags"] = "reasoning_content"
    # How often Grok is asked again when an emulated tool call or a JSON answer does not validate.
    output_repair_turns: Annotated[int, msgspec.Meta(ge=0, le=3)] = 1
    temporary: bool = True
    chat_transport: Literal["ws", "rest"] = "ws"
    # How long a chatting account's spare chat socket may wait for its next turn (0 = no spares); below the 25 s
    # heartbeat grok.com's clients keep (when grok.com lets a silent socket go is not documented).
    spare_socket_seconds: Annotated[float, msgspec.Meta(ge=0, le=20)] = 15.0
    modes_refresh_seconds: Annotated[float, msgspec.Meta(ge=60, le=86400)] = 1800.0
    canary_interval_minutes: Annotated[int, msgspec.Meta(ge=0, le=1440)] = 0  # the drift canary (0 = off)
    x_statsig_id: str = DEFAULT_STATSIG
    dynamic_statsig: bool = False
    statsig_prefix: Literal["x1:", "e:"] = "x1:"
    # A signer minting real x-statsig-id values (POST {method, path, environment}); "" keeps the value above.
    statsig_signer_url: str = ""
    # proxy
    # aiohttp until curl_cffi lets go of an abandoned chat socket as promptly (see the README's Transport).
    upstream_transport: Literal["auto", "aiohttp", "curl_cffi"] = "auto"
    browser_profile: str = "chrome146"
    proxy_url: str = ""
    # The egresses: proxies (comma or whitespace separated; "direct" for none), each with its own clearance.
    proxy_urls: str = ""
    cache_proxy_url: str = ""
    cf_clearance: str = ""
    flaresolverr_url: str = ""
    egress_retry_seconds: Annotated[float, msgspec.Meta(ge=10, le=86400)] = 600.0
    # timeouts
    stream_first_response_timeout: Seconds = 30.0
    stream_chunk_timeout: Seconds = 120.0
    stream_total_timeout: Seconds = 600.0
    # pool
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    retry_budget_seconds: Seconds = 60.0
    invalid_after_failures: Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    account_max_concurrency: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    default_cooldown_seconds: Seconds = 300.0
    # media
    allow_private_image_urls: bool = False
    image_fetch_max_mb: Megabytes = 20

    def __post_init__(self) -> None:
        # Normalise the values the reference also normalised, so every reader sees one form.
        if self.proxy_url.startswith("socks5://"):
            self.proxy_url = "socks5h://" + self.proxy_url[len("socks5://") :]
        if self.cf_clearance.startswith("cf_clearance="):
            self.cf_clearance = self.cf_clearance[len("cf_clearance=") :]
        self.upstream_url = self.upstream_url.rstrip("/")
        self.assets_url = self.assets_url.rstrip("/")
        self.base_url = self.base_url.rstrip("/")
        for name in ("upstream_url", "assets_url", "base_url"):
            value = getattr(self, name)
            if (value or name != "base_url") and not _HTTP_URL.fullmatch(value):
                raise ValueError(f"{name} must be an http:// or https:// URL")
        for name in ("proxy_url", "cache_proxy_url"):
            value = getattr(self, name)
            if value and not _PROXY_URL.match(value):
                raise ValueError(f"{name} must start with http://, https://, socks5:// or socks5h://")
        for value in self.proxy_url_list():
            if value != DIRECT and not _PROXY_URL.match(value):
                raise ValueError(
                    f"proxy_urls: {_without_secret(value)} must start with http://, https://, socks5:// or socks5h://"
                )
        for name in ("flaresolverr_url", "statsig_signer_url"):
            value = getattr(self, name).strip().rstrip("/")
            setattr(self, name, value)
            if value and not _HTTP_URL.fullmatch(value):
                raise ValueError(f"{name} must be an http:// or https:// URL")
        from .grok.browser import profile_error

        if (problem := profile_error(self.browser_profile)) is not None:
            raise ValueError(problem)
        if not self.dynamic_statsig and not self.x_statsig_id:
            raise ValueError("x_statsig_id cannot be empty unless dynamic_statsig is on")

    def transport_name(self) -> Literal["aiohttp", "curl_cffi"]:
        """The transport ``upstream_transport`` picks: ``auto`` is curl_cffi when it is installed."""
        if self.upstream_transport != "auto":
            return self.upstream_transport
        from .grok.browser import available

        return "curl_cffi" if available() else "aiohttp"

    def proxy_url_list(self) -> list[str]:
        """The egresses' proxies in order, ``direct`` for none: ``proxy_urls``, then the older ``proxy_url``
        when it is not among them; just ``direct`` when neither is set. Duplicates are dropped."""
        found: list[str] = []
        for raw in [*re.split(r"[\s,]+", self.proxy_urls), self.proxy_url]:
            value = raw.strip()
            if value.startswith("socks5://"):
                value = "socks5h://" + value[len("socks5://") :]
            if value and value not in found:
                found.append(value)
        return found or [DIRECT]

    def asset_host_list(self) -> list[str]:
        return [h.strip().lower() for h in self.asset_hosts.split(",") if h.strip()]

    def filtered_tag_list(self) -> list[str]:
        return [t.strip().lower() for t in self.filtered_tags.split(",") if t.strip()]


SETTING_NAMES: tuple[str, ...] = RuntimeSettings.__struct_fields__
SECRET_SETTINGS = frozenset({"api_key", "cf_clearance", "proxy_url", "proxy_urls", "cache_proxy_url"})
_FIELD_TYPES = {f.name: f.type for f in msgspec.structs.fields(RuntimeSettings)}


class SettingsError(ValueError):
    """Invalid settings; ``errors`` maps a field name to a readable message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings given as ``GROK2API_<NAME>``; values are parsed for the field's type."""
    out: dict[str, Any] = {}
    for name in SETTING_NAMES:
        raw = environ.get(f"GROK2API_{name.upper()}")
        if raw is not None:
            out[name] = _coerce(name, raw)
    return out


def _coerce(name: str, raw: Any) -> Any:
    """Turn a string (from the environment or a form) into the field's type; other values pass."""
    if not isinstance(raw, str):
        return raw
    typ = _FIELD_TYPES[name]
    text = raw.strip()
    try:
        return msgspec.convert(text, typ, strict=False)
    except msgspec.ValidationError:
        return text


def build(stored: Mapping[str, Any], overrides: Mapping[str, Any]) -> RuntimeSettings:
    """Merge stored values under environment overrides; unknown stored keys are ignored."""
    merged = {k: v for k, v in stored.items() if k in _FIELD_TYPES}
    merged.update(overrides)
    try:
        return msgspec.convert(merged, RuntimeSettings, strict=False)
    except (msgspec.ValidationError, ValueError):
        # A bad stored value must not keep the gateway from starting: fall back field by field.
        good: dict[str, Any] = {}
        for key, value in merged.items():
            try:
                msgspec.convert({**good, key: value}, RuntimeSettings, strict=False)
            except (msgspec.ValidationError, ValueError) as exc:
                source = f"GROK2API_{key.upper()}" if key in overrides else "the stored value"
                # Name the setting, never the value: it may be a secret.
                log.warning("ignoring invalid setting %s from %s: %s", key, source, str(exc).split(" - at ")[0])
                continue
            good[key] = value
        return msgspec.convert(good, RuntimeSettings, strict=False)


def validate_update(current: RuntimeSettings, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Check a partial update; return the coerced values or raise SettingsError per field."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for key, raw in changes.items():
        if key not in _FIELD_TYPES:
            errors[key] = "unknown setting"
            continue
        try:
            # The field's own type and bounds; rules between fields are checked below on the merged result.
            values[key] = msgspec.convert(_coerce(key, raw), _FIELD_TYPES[key])
        except msgspec.ValidationError as exc:
            errors[key] = str(exc).split(" - at ")[0]
    if not errors:
        try:
            msgspec.convert({**msgspec.structs.asdict(current), **values}, RuntimeSettings)
        except (msgspec.ValidationError, ValueError) as exc:
            message = str(exc).split(" - at ")[0]
            errors[next((k for k in values if k in message), "settings")] = message
    if errors:
        raise SettingsError(errors)
    return values


def as_dict(settings: RuntimeSettings) -> dict[str, Any]:
    return msgspec.structs.asdict(settings)
