"""What the fake remembers of each call for tests to assert on: HTTP requests and mgw WebSocket sessions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .fake_http import JsonDict

MAX_RECORDED_BODY = 64 * 1024
MAX_RECORDED_STRING = 16 * 1024  # a prompt with tool schemas in it stays whole


def shrink(value: Any) -> Any:
    """Cut long strings (base64 uploads, huge prompts, 1 MiB chunks) so recordings stay small."""
    if isinstance(value, str) and len(value) > MAX_RECORDED_STRING:
        return f"{value[:256]}...[{len(value) - 256} more chars]"
    if isinstance(value, dict):
        return {k: shrink(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shrink(v) for v in value]
    return value


@dataclass
class RecordedRequest:
    """One request as the fake saw it. Header names are lower-cased; bodies over 64 KiB are truncated."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    raw: bytes
    time: float
    token: str | None = None
    query: dict[str, str] = field(default_factory=dict)
    truncated: bool = False

    def to_dict(self) -> JsonDict:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "json": self.json,
            "time": self.time,
            "token": self.token,
            "truncated": self.truncated,
        }


@dataclass
class MgwRecord:
    """One ``/ws/mgw/`` connection: the handshake, what the client sent and every server event, in order.

    ``refused`` is the handshake's status when it was turned away. ``sent`` holds the server events as sent
    (envelope and all), ``received`` the client events; long strings in both are shortened.
    """

    token: str | None
    uid: str
    headers: dict[str, str]
    time: float
    refused: int | None = None
    session_id: str = ""
    mode: str | None = None
    x_grok: JsonDict = field(default_factory=dict)
    items: list[list[JsonDict]] = field(default_factory=list)
    file_attachment_ids: list[str] = field(default_factory=list)
    received: list[JsonDict] = field(default_factory=list)
    sent: list[JsonDict] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    closed: bool = False
    idle_closed: bool = False  # the fake closed it for saying nothing (``mgw_idle_seconds``)

    @property
    def input_chunks(self) -> list[JsonDict]:
        """The input chunks of the latest user message."""
        return self.items[-1] if self.items else []

    def sent_events(self, kind: str | None = None) -> list[JsonDict]:
        """The ``event`` objects sent, optionally only those of one type."""
        events = [envelope["event"] for envelope in self.sent]
        return [e for e in events if kind is None or e.get("type") == kind]

    def sent_types(self) -> list[str]:
        return [str(event.get("type")) for event in self.sent_events()]

    def to_dict(self) -> JsonDict:
        return {
            "token": self.token,
            "uid": self.uid,
            "headers": self.headers,
            "time": self.time,
            "refused": self.refused,
            "session_id": self.session_id,
            "mode": self.mode,
            "x_grok": self.x_grok,
            "items": self.items,
            "file_attachment_ids": self.file_attachment_ids,
            "received": self.received,
            "sent": self.sent,
            "responses": self.responses,
            "closed": self.closed,
        }


@dataclass
class Refusal:
    """A refused handshake's answer, kept so that a plain GET of the same URL can read the body: aiohttp's
    client reports a failed WebSocket handshake with its status and headers only."""

    status: int
    body: bytes
    content_type: str
    charset: str | None
    headers: dict[str, str]

    @classmethod
    def of(cls, response: web.Response) -> Refusal:
        skip = {"content-type", "content-length"}
        headers = {k: v for k, v in response.headers.items() if k.lower() not in skip}
        body = response.body if isinstance(response.body, bytes) else b""
        return cls(response.status, body, response.content_type, response.charset, headers)

    def response(self) -> web.Response:
        response = web.Response(status=self.status, body=self.body, headers=dict(self.headers))
        response.content_type = self.content_type
        if self.charset is not None:
            response.charset = self.charset
        return response


@dataclass
class ImagineRecord:
    """One ``/ws/imagine/listen`` connection: the handshake, the messages the client sent and the frames it got.

    ``refused`` is the handshake's status when it was turned away; ``request`` is the last ``input_text`` content
    (with its ``properties``). Blobs in ``sent`` are shortened.
    """

    token: str | None
    headers: dict[str, str]
    time: float
    refused: int | None = None
    received: list[JsonDict] = field(default_factory=list)
    sent: list[JsonDict] = field(default_factory=list)
    request: JsonDict | None = None
    closed: bool = False

    @property
    def properties(self) -> JsonDict:
        found = self.request.get("properties") if self.request else None
        return found if isinstance(found, dict) else {}

    def to_dict(self) -> JsonDict:
        return {
            "token": self.token,
            "headers": self.headers,
            "time": self.time,
            "refused": self.refused,
            "received": self.received,
            "sent": self.sent,
            "request": self.request,
            "closed": self.closed,
        }
