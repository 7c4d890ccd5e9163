"""The HTTP calls to grok.com: chat (streamed NDJSON → events), the account's identity, modes and
rate limits, upload (v2, with the legacy JSON upload as fallback), media post and asset download. They go
through the process's transport (aiohttp, or curl_cffi impersonating Chrome), bound to the account's egress."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec
from multidict import CIMultiDict

from ..settings import RuntimeSettings
from .catalog import ModelSpec
from .errors import UploadRejected, UpstreamConnectionError, UpstreamHTTPError
from .events import ErrorEvent, Event, StreamParser
from .headers import api_headers, asset_headers
from .spare_sockets import SpareSockets
from .transport import FormPart, HttpStream, Transport, WebSocketOpener, report_in_band_refusal, retry_after_of

log = logging.getLogger("grok2api.client")
MAX_LINE = 16 * 1024 * 1024
_ERROR_BODY_LIMIT = 4096
_SHORT_TIMEOUT = 30.0
_UPLOAD_TIMEOUT = 120.0
UPLOAD_V2_PATH = "/http/upload-file-v2/direct"
LEGACY_UPLOAD_PATH = "/rest/app-chat/upload-file"
IMAGINE_UPLOAD_SOURCE = "IMAGINE_SELF_UPLOAD_FILE_SOURCE"
# Answers that mean "no upload v2 here" (an older or trimmed deployment), never "this file is bad".
LEGACY_UPLOAD_STATUSES = frozenset({404, 405, 410, 501})
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder()


class QuotaInfo(msgspec.Struct):
    remaining: int | None
    total: int | None
    window_seconds: int | None
    wait_seconds: float | None


class ModeInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of ``/rest/modes``: a mode id (``fast``, ``expert``, …) as grok.com describes it."""

    id: str
    title: str
    description: str = ""
    availability: str = "available"  # available | unavailable | requiresUpgrade | comingSoon | …
    default: bool = False  # grok.com's defaultModeId

    @property
    def available(self) -> bool:
        return self.availability.lower() == "available"


async def _json_answer(
    http: Transport,
    method: str,
    url: str,
    headers: dict[str, str],
    proxy: str,
    timeout: float,
    *,
    data: bytes | None = None,
    form: list[FormPart] | None = None,
) -> Any:
    """One call whose answer is JSON: a non-200 raises UpstreamHTTPError (with grok.com's body), a broken
    connection UpstreamConnectionError, and a 200 that is not JSON an UpstreamHTTPError too."""
    answer = await http.request(method, url, headers, data=data, form=form, proxy=proxy, timeout=timeout)
    if answer.status != 200:
        raise _error(answer.status, answer.headers, answer.body[:_ERROR_BODY_LIMIT])
    try:
        return _DECODER.decode(answer.body)
    except msgspec.DecodeError as exc:
        raise UpstreamHTTPError(200, answer.body[:200].decode("utf-8", "replace"), "invalid JSON") from exc


def _error(status: int, headers: CIMultiDict[str], raw: bytes) -> UpstreamHTTPError:
    return UpstreamHTTPError(
        status,
        raw.decode("utf-8", "replace"),
        headers.get("Content-Type", ""),
        retry_after_of(headers),
        headers=headers,
    )


async def _error_from(resp: HttpStream) -> UpstreamHTTPError:
    return _error(resp.status, resp.headers, await resp.read_some(_ERROR_BODY_LIMIT))


async def _reported_anti_bot(http: Transport, url: str, batch: list[Event]) -> bool:
    """Report an anti-bot error line of a 200 answer to the egress (see ``report_in_band_refusal``); True if found."""
    for event in batch:
        if isinstance(event, ErrorEvent) and event.anti_bot:
            code = f" (code {event.code})" if event.code is not None else ""
            await report_in_band_refusal(
                http, "POST", url, f"an anti-bot error{code} in the streamed answer", event.message
            )
            return True
    return False


Router = Callable[[str], Transport]  # an account's token -> the transport through its egress


class GrokClient:
    """grok.com's calls for an account (its ``token``). With a ``router`` each account's calls go through its own
    egress (``router(token)``); without one, everything goes through ``http`` (a transport bound to one egress,
    or a bare one)."""

    def __init__(self, http: Transport, router: Router | None = None) -> None:
        self.http = http
        self.router = router
        self.spares = SpareSockets()  # the chat sockets opened ahead of an account's next turn

    def via(self, token: str) -> Transport:
        """The transport ``token``'s calls go through."""
        return self.router(token) if self.router is not None else self.http

    @property
    def sockets(self) -> WebSocketOpener:
        """Opens WebSockets over ``http`` (for a client bound to one egress)."""
        return self.http

    def sockets_for(self, token: str) -> WebSocketOpener:
        """Opens the account's WebSockets, through the same egress as its HTTP calls."""
        return self.via(token)

    async def stream_chat(
        self, token: str, payload: dict[str, Any], settings: RuntimeSettings, *, referer: str | None = None
    ) -> AsyncGenerator[list[Event], None]:
        """POST conversations/new and yield the events of each network read as one non-empty batch
        (under load one read carries many lines; batching keeps per-event overhead off the hot path).
        Raises UpstreamHTTPError for a non-200 answer and UpstreamConnectionError when the connection
        fails or drops."""
        url = f"{settings.upstream_url}/rest/app-chat/conversations/new"
        headers = api_headers(token, settings, referer=referer)
        parser = StreamParser()
        data = _ENCODER.encode(payload)
        http = self.via(token)
        reported = False  # an anti-bot error line, told to the egress once
        async with http.stream("POST", url, headers, data=data) as resp:
            if resp.status != 200:
                raise await _error_from(resp)
            buf = bytearray()
            async for chunk in resp.chunks():
                buf += chunk
                start = 0
                batch: list[Event] = []
                while (nl := buf.find(b"\n", start)) >= 0:
                    batch.extend(parser.feed_line(bytes(buf[start:nl])))
                    start = nl + 1
                if start:
                    del buf[:start]
                if len(buf) > MAX_LINE:
                    buf.clear()  # an absurd line: drop it rather than grow without bound
                if batch:
                    reported = reported or await _reported_anti_bot(http, url, batch)
                    yield batch
            batch = list(parser.feed_line(bytes(buf))) if buf else []
            batch += parser.finish()
            if batch:
                reported = reported or await _reported_anti_bot(http, url, batch)
                yield batch

    async def _post_json(
        self,
        token: str,
        path: str,
        body: dict[str, Any],
        settings: RuntimeSettings,
        *,
        upload: bool = False,
        referer: str | None = None,
    ) -> Any:
        return await self._json_call("POST", token, path, body, settings, upload=upload, referer=referer)

    async def _json_call(
        self,
        method: str,
        token: str,
        path: str,
        body: dict[str, Any] | None,
        settings: RuntimeSettings,
        *,
        upload: bool = False,
        referer: str | None = None,
    ) -> Any:
        headers = api_headers(token, settings, upload=upload, referer=referer)
        if body is None:
            del headers["Content-Type"]
        data = _ENCODER.encode(body) if body is not None else None
        url = f"{settings.upstream_url}{path}"
        return await _json_answer(self.via(token), method, url, headers, "", _SHORT_TIMEOUT, data=data)

    async def rate_limits(self, token: str, mode: ModelSpec | str, settings: RuntimeSettings) -> QuotaInfo:
        """The query window of a mode (``"fast"``, ``"expert"``, …, or a model's mode)."""
        name = mode if isinstance(mode, str) else mode.mode
        return parse_mode_limits(await self._post_json(token, "/rest/rate-limits", {"modelName": name}, settings))

    async def imagine_quota(self, token: str, settings: RuntimeSettings) -> dict[str, QuotaInfo]:
        """The Imagine windows (``image``, ``imagePro``, ``imageEdit``, ``video``, ``video720p``) grok.com
        reports for the account; a kind it answers null for is left out."""
        data = await self._post_json(
            token, "/rest/media/imagine/quota_info", {}, settings, referer=f"{settings.upstream_url}/imagine"
        )
        return parse_imagine_quota(data)

    async def auth_session(self, token: str, settings: RuntimeSettings) -> str:
        """The account's userId (the chat WebSocket needs it). A signed-out session raises a 401 and a
        blocked one a 403 blocked-user, so both classify like grok.com's HTTP answers."""
        return parse_auth_session(await self._json_call("GET", token, "/api/auth/session", None, settings))

    async def modes(self, token: str, settings: RuntimeSettings) -> list[ModeInfo]:
        """The modes grok.com offers this account."""
        return parse_modes(await self._post_json(token, "/rest/modes", {"locale": "en"}, settings))

    async def upload(
        self, token: str, name: str, mime: str, b64: str, settings: RuntimeSettings, *, source: str | None = None
    ) -> tuple[str, str]:
        """Upload one file with the account; returns (fileMetadataId, fileUri). Upload v2 (multipart) first;
        the legacy JSON upload only when v2 is not there (404/405/410/501). ``source`` is v2's ``file_source``
        (``IMAGINE_UPLOAD_SOURCE`` for Imagine edits). A file grok.com refuses raises UploadRejected."""
        data = base64.b64decode(b64)
        try:
            return await self._upload_v2(token, name, mime, data, settings, source)
        except UpstreamHTTPError as exc:
            if exc.status not in LEGACY_UPLOAD_STATUSES:
                raise
            log.info("upload v2 answered HTTP %d; using the legacy upload", exc.status)
        return await self._upload_legacy(token, name, mime, b64, settings)

    async def _upload_v2(
        self, token: str, name: str, mime: str, data: bytes, settings: RuntimeSettings, source: str | None
    ) -> tuple[str, str]:
        referer = f"{settings.upstream_url}/imagine" if source == IMAGINE_UPLOAD_SOURCE else None
        headers = api_headers(token, settings, referer=referer)
        del headers["Content-Type"]  # the transport writes the multipart type with its boundary
        del headers["x-xai-request-id"]  # the web app sends none on this call
        form = [FormPart("file", data, filename=name, content_type=mime)]
        if source:
            form.append(FormPart("file_source", source))
        url = f"{settings.upstream_url}{UPLOAD_V2_PATH}"
        answer = await _json_answer(self.via(token), "POST", url, headers, "", _UPLOAD_TIMEOUT, form=form)
        return parse_upload_v2(answer)

    async def _upload_legacy(
        self, token: str, name: str, mime: str, b64: str, settings: RuntimeSettings
    ) -> tuple[str, str]:
        data = await self._post_json(
            token,
            LEGACY_UPLOAD_PATH,
            {"fileName": name, "fileMimeType": mime, "content": b64},
            settings,
            upload=True,
        )
        file_id = data.get("fileMetadataId") if isinstance(data, dict) else None
        if not isinstance(file_id, str) or not file_id:
            raise UpstreamHTTPError(200, "upload-file answered without fileMetadataId")
        return file_id, str(data.get("fileUri") or "")

    async def download(
        self,
        token: str,
        path: str,
        settings: RuntimeSettings,
        *,
        timeout: float = 60,
        max_bytes: int = 512 * 1024 * 1024,
    ) -> tuple[bytes, str]:
        """Fetch one asset with the owning account's cookie; returns (bytes, content type)."""
        url = asset_url(path, settings)
        # The account's own egress, unless media downloads have a proxy of their own (cache_proxy_url).
        async with self.via(token).stream(
            "GET", url, asset_headers(token, settings), proxy=settings.cache_proxy_url, timeout=timeout
        ) as resp:
            if resp.status != 200:
                raise await _error_from(resp)
            body = bytearray()
            async for chunk in resp.chunks():
                body += chunk
                if len(body) > max_bytes:
                    raise UpstreamHTTPError(413, "asset larger than the cache limit")
            length = resp.headers.get("Content-Length")
            encoded = resp.headers.get("Content-Encoding", "identity").lower() != "identity"
            if length is not None and length.isdigit() and not encoded and int(length) != len(body):
                raise UpstreamConnectionError("asset download was truncated")
            return bytes(body), resp.headers.get("Content-Type", "")


def asset_url(path: str, settings: RuntimeSettings) -> str:
    """Where an asset is fetched: a path under ``assets_url``; an absolute URL on ``assets_url``'s or
    ``upstream_url``'s host and port; or an https URL on one of ``asset_hosts``. Anything else is refused
    (403) before a request: it would be sent the account's cookie."""
    if not path.startswith(("http://", "https://")):
        return f"{settings.assets_url}/{path.lstrip('/')}"
    parts = urlsplit(path)
    if parts.netloc.lower() in {urlsplit(u).netloc.lower() for u in (settings.assets_url, settings.upstream_url)}:
        return path
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and parts.port in (None, 443) and host in settings.asset_host_list():
        return path
    raise UpstreamHTTPError(403, f"{host or path[:80]} is not an asset host (see the asset_hosts setting)")


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    number = _seconds(value)
    return int(number) if number is not None else None


def _wait(data: dict[str, Any]) -> float | None:
    wait = _seconds(data.get("waitTimeSeconds"))
    if wait is None:
        for effort in ("lowEffortRateLimits", "highEffortRateLimits"):
            sub = data.get(effort)
            if isinstance(sub, dict) and (wait := _seconds(sub.get("waitTimeSeconds"))) is not None:
                break
    return wait


def parse_mode_limits(data: Any) -> QuotaInfo:
    """A mode's window: queries, one per request (legacy token keys may appear beside them; ignored)."""
    if not isinstance(data, dict):
        return QuotaInfo(None, None, None, None)
    return QuotaInfo(
        _count(data.get("remainingQueries")),
        _count(data.get("totalQueries")),
        _count(data.get("windowSizeSeconds")),
        _wait(data),
    )


def parse_imagine_quota(data: Any) -> dict[str, QuotaInfo]:
    """Each Imagine kind's ``{available, remainingQueries, windowSizeSeconds, nextAvailableAt?}``. A kind
    answered null, or unavailable without a next time, is one the account does not have (total 0); with a
    next time it is empty until then (``nextAvailableAt`` in epoch seconds, milliseconds or ISO 8601)."""
    out: dict[str, QuotaInfo] = {}
    if not isinstance(data, dict):
        return out
    for kind, entry in data.items():
        if entry is None:
            out[kind] = QuotaInfo(0, 0, None, None)
            continue
        if not isinstance(entry, dict):
            continue
        remaining, window = _count(entry.get("remainingQueries")), _count(entry.get("windowSizeSeconds"))
        wait = _until(entry.get("nextAvailableAt"))
        available = entry.get("available")
        if available is False and wait is None:
            out[kind] = QuotaInfo(0, 0, window, None)
        else:
            out[kind] = QuotaInfo(0 if available is False else remaining, None, window, wait)
    return out


def _until(value: Any) -> float | None:
    """Seconds from now until ``value`` (epoch s or ms, or an ISO 8601 time); None when absent or past."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        at = value / 1000 if value > 10**11 else float(value)
    elif isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    else:
        return None
    left = at - time.time()
    return left if left > 0 else None


def _terminal_reason(value: Any) -> str | None:
    """Why upload v2 refused the file, or None when ``terminalError`` is empty (null, "", false, {}, …)."""
    if not value:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        for key in ("message", "reason", "error", "detail", "description", "code"):
            found = value.get(key)
            if isinstance(found, str) and found.strip():
                return found.strip()
            if isinstance(found, dict):
                nested = _terminal_reason(found)
                if nested:
                    return nested
    return _ENCODER.encode(value).decode()[:_ERROR_BODY_LIMIT]


def parse_upload_v2(data: Any) -> tuple[str, str]:
    """(fileMetadataId, fileUri) of an upload v2 answer; UploadRejected for a ``terminalError``."""
    if not isinstance(data, dict):
        raise UpstreamHTTPError(200, "upload v2 answered without an object")
    reason = _terminal_reason(data.get("terminalError"))
    if reason is not None:
        raise UploadRejected(reason)
    meta = data.get("fileMetadata")
    meta = meta if isinstance(meta, dict) else {}
    # fileMetadataId is what chats and edits reference; the others stand in when grok.com finishes later.
    for file_id in (meta.get("fileMetadataId"), meta.get("fileId"), data.get("uploadId")):
        if isinstance(file_id, str) and file_id.strip():
            uri = meta.get("fileUri")
            return file_id.strip(), uri if isinstance(uri, str) else ""
    raise UpstreamHTTPError(200, "upload v2 answered without a fileMetadataId")


def parse_auth_session(data: Any) -> str:
    raw = _ENCODER.encode(data).decode()[:_ERROR_BODY_LIMIT]
    if not isinstance(data, dict):
        raise UpstreamHTTPError(200, f"auth/session answered without a session: {raw}")
    status = str(data.get("status") or "").strip().lower()
    if status == "unauthenticated":
        raise UpstreamHTTPError(401, raw, "application/json")
    if status == "blocked":
        raise UpstreamHTTPError(403, f"session status blocked [blocked-user]: {raw}", "application/json")
    session, user = data.get("session"), data.get("user")
    for holder, key in ((session, "userId"), (user, "id"), (user, "userId"), (data, "userId")):
        value = holder.get(key) if isinstance(holder, dict) else None
        if isinstance(value, str) and value.strip():
            return value.strip()
    # Not read as signed out: a changed answer shape must not mark every account invalid.
    raise UpstreamHTTPError(200, f"auth/session answered without a userId: {raw}")


def _availability(value: Any) -> str:
    """``"available"``, or an object naming it (``{"available": {}}``, ``{"status": "available"}``)."""
    if isinstance(value, dict):
        named = value.get("status") or value.get("state") or next(iter(value), "")
        value = named if isinstance(named, str) else ""
    if not isinstance(value, str) or not value:
        return "available"
    return value.removeprefix("AVAILABILITY_").removeprefix("availability_")


def parse_modes(data: Any) -> list[ModeInfo]:
    items = data.get("modes") if isinstance(data, dict) else data
    default = data.get("defaultModeId") if isinstance(data, dict) else None
    modes: list[ModeInfo] = []
    for item in items if isinstance(items, list) else []:
        mode_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(mode_id, str) or not mode_id:
            continue
        title, description = item.get("title"), item.get("description")
        modes.append(
            ModeInfo(
                id=mode_id,
                title=title if isinstance(title, str) and title else mode_id,
                description=description if isinstance(description, str) else "",
                availability=_availability(item.get("availability")),
                default=mode_id == default,
            )
        )
    return modes
