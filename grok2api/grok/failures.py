"""What grok.com's answers mean: an HTTP status and body, a dropped connection or an in-band error
becomes one ``Failure`` of a ``FailureKind``. The pool decides what each kind does to an account."""

from __future__ import annotations

from enum import StrEnum

import msgspec

from .errors import UpstreamConnectionError, UpstreamHTTPError
from .events import ErrorEvent

_CREDENTIAL_MARKERS = (
    "invalid-credentials",
    "bad-credentials",
    "failed to look up session id",
    "session not found",
    "token expired",
    "token revoked",
    "account suspended",
    "email-domain-rejected",
    "unauthenticated",
)
_CLOUDFLARE_MARKERS = ("just a moment", "challenge-platform", "__cf_chl", "cf-chl-", "cloudflare")


class FailureKind(StrEnum):
    INVALID = "invalid"  # credentials rejected: counts towards invalid
    BLOCKED = "blocked"  # the account is banned
    EGRESS = "egress"  # Cloudflare / anti-bot: the gateway's problem, not the account's
    RATE_LIMITED = "rate_limited"  # cool the account until its window resets
    SERVER = "server"  # 5xx or connection trouble: try elsewhere
    REJECTED = "rejected"  # grok.com refused this request itself (4xx): retrying will not help
    CANCELLED = "cancelled"  # the client went away before an answer: nobody's fault


class Failure(msgspec.Struct):
    kind: FailureKind
    reason: str
    retry_after: float | None = None
    charged: bool = False  # True when the upstream had already accepted (and charged) the request

    @property
    def retryable(self) -> bool:
        return self.kind in (FailureKind.INVALID, FailureKind.BLOCKED, FailureKind.RATE_LIMITED, FailureKind.SERVER)


_BLOCKED_MARKERS = ("blocked-user", "user is blocked")
_ANTI_BOT_REASON = (
    "grok.com rejected the request as a bot (403 anti-bot): set statsig_signer_url (or a valid x_statsig_id), "
    "refresh the egress's cf_clearance, or add proxy_urls"
)


def _cloudflare_challenge(exc: UpstreamHTTPError, body: str) -> bool:
    if exc.headers.get("cf-mitigated", "").strip().lower() == "challenge":
        return True
    is_html = "html" in exc.content_type.lower() or body.lstrip().startswith("<")
    return exc.status in (403, 503) and is_html and any(m in body for m in _CLOUDFLARE_MARKERS)


def egress_refusal(exc: UpstreamHTTPError) -> str | None:
    """Which refusal of the egress an answer is: ``"challenge"`` (a Cloudflare challenge: the egress needs a
    fresh clearance), ``"anti_bot"`` (grok.com's own anti-bot 403: the statsig or the clearance), or None
    (anything else, a blocked account or rejected credentials included)."""
    if classify_http(exc).kind != FailureKind.EGRESS:
        return None
    return "challenge" if _cloudflare_challenge(exc, exc.body.lower()) else "anti_bot"


def cloudflare_challenged(exc: UpstreamHTTPError) -> bool:
    """Whether the answer is Cloudflare's challenge rather than grok.com's own anti-bot refusal (both are the
    egress's problem, but their fixes differ)."""
    return _cloudflare_challenge(exc, exc.body.lower())


def classify_http(exc: UpstreamHTTPError) -> Failure:
    """Also classifies a refused WebSocket handshake (its status and refusal body)."""
    body = exc.body.lower()
    status = exc.status
    # Blocked first: a retry past the anti-bot or Cloudflare checks would lose this signal.
    if status == 403 and any(m in body for m in _BLOCKED_MARKERS):
        return Failure(FailureKind.BLOCKED, "grok.com reports this account as blocked (403 blocked-user)")
    if _cloudflare_challenge(exc, body):
        return Failure(
            FailureKind.EGRESS,
            "grok.com answered with a Cloudflare challenge: give the egress a fresh cf_clearance (admin Egresses, "
            "or flaresolverr_url), or add proxy_urls",
        )
    if status == 401 or (status in (400, 403) and any(m in body for m in _CREDENTIAL_MARKERS)):
        return Failure(FailureKind.INVALID, f"session rejected by grok.com (HTTP {status}): invalid credentials")
    if status == 403:
        return Failure(FailureKind.EGRESS, _ANTI_BOT_REASON)
    if status == 429:
        wait = f", retry after {int(exc.retry_after)} s" if exc.retry_after else ""
        return Failure(FailureKind.RATE_LIMITED, f"429 from grok.com{wait}", exc.retry_after)
    if status >= 500 or status == 200:
        return Failure(FailureKind.SERVER, f"grok.com error (HTTP {status})")
    snippet = exc.body.strip().replace("\n", " ")[:160]
    return Failure(FailureKind.REJECTED, f"grok.com rejected the request (HTTP {status}): {snippet}")


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, UpstreamHTTPError):
        return classify_http(exc)
    if isinstance(exc, UpstreamConnectionError):
        return Failure(FailureKind.SERVER, f"connection to grok.com failed: {exc}")
    if isinstance(exc, TimeoutError):
        return Failure(FailureKind.SERVER, "grok.com did not answer in time")
    return Failure(FailureKind.SERVER, f"unexpected upstream failure: {type(exc).__name__}")


def classify_event(event: ErrorEvent, *, charged: bool = False) -> Failure:
    """An error grok.com reported inside an answer."""
    if event.anti_bot:
        fix = "refresh the egress's cf_clearance or add proxy_urls"
        reason = f"grok.com rejected the chat as a bot ({event.message}): {fix}"
        return Failure(FailureKind.EGRESS, reason, charged=charged)
    kind = FailureKind.RATE_LIMITED if event.rate_limited else FailureKind.SERVER
    return Failure(kind, event.message, charged=charged)
