"""The protocol layer's own errors: what grok.com answered, or that it could not be reached.

Nothing above the gateway sees these; the gateway turns them into failures (``failures.py``) and
client-facing errors.
"""

from __future__ import annotations

from collections.abc import Mapping


class UpstreamHTTPError(Exception):
    """grok.com answered with a non-200 status (or a 200 whose body is unusable). ``headers`` (names
    lower-cased) keep what classifies an answer beyond its body, such as ``cf-mitigated``."""

    def __init__(
        self,
        status: int,
        body: str,
        content_type: str = "",
        retry_after: float | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status
        self.body = body
        self.content_type = content_type
        self.retry_after = retry_after
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}


class UpstreamConnectionError(Exception):
    """grok.com could not be reached or dropped the connection."""


class UploadRejected(Exception):
    """grok.com took an upload but refused the file itself (upload v2's ``terminalError``, e.g. "Image
    dimensions are insufficient"). The file is at fault, not the account: no other account would take it.
    ``index`` is the file's position among the request's images."""

    def __init__(self, reason: str, index: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.index = index


class TurnNotAdmitted(Exception):
    """The turn's query was not taken (the account's window emptied or its state changed meanwhile): its
    message was never sent, so nothing was spent at grok.com."""


TRANSPORT_ERRORS = (UpstreamHTTPError, UpstreamConnectionError)
