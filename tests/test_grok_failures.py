"""What grok.com's answers mean for an account: the failure classification."""

from __future__ import annotations

import pytest

from grok2api.grok.errors import UpstreamConnectionError, UpstreamHTTPError
from grok2api.grok.events import ErrorEvent
from grok2api.grok.failures import FailureKind, classify, classify_event


@pytest.mark.parametrize(
    ("status", "body", "ctype", "kind"),
    [
        (
            401,
            '{"error":{"code":16,"message":"Failed to look up session ID. [WKE=unauthorized:invalid-credentials]"}}',
            "application/json",
            FailureKind.INVALID,
        ),
        (
            403,
            '{"error":{"code":7,"message":"User is blocked [WKE=unauthorized:blocked-user]"}}',
            "application/json",
            FailureKind.BLOCKED,
        ),
        (
            403,
            '{"error":{"code":7,"message":"Request rejected by anti-bot rules."}}',
            "application/json",
            FailureKind.EGRESS,
        ),
        (
            403,
            "<html><title>Just a moment...</title><script src='/cdn-cgi/challenge-platform/x'></script></html>",
            "text/html",
            FailureKind.EGRESS,
        ),
        (400, '{"error":{"message":"token expired"}}', "application/json", FailureKind.INVALID),
        (429, '{"error":{"code":8,"message":"Too many requests"}}', "application/json", FailureKind.RATE_LIMITED),
        (502, "<html>Bad gateway</html>", "text/html", FailureKind.SERVER),
        (400, '{"error":{"message":"message too long"}}', "application/json", FailureKind.REJECTED),
    ],
)
def test_classify_http(status: int, body: str, ctype: str, kind: FailureKind) -> None:
    failure = classify(UpstreamHTTPError(status, body, ctype, retry_after=7 if status == 429 else None))
    assert failure.kind == kind
    assert failure.reason
    if kind == FailureKind.RATE_LIMITED:
        assert failure.retry_after == 7
        assert "retry after 7 s" in failure.reason


def test_classify_connection_and_egress_messages() -> None:
    assert classify(UpstreamConnectionError("reset")).kind == FailureKind.SERVER
    cf = classify(UpstreamHTTPError(403, "<title>Just a moment...</title>", "text/html"))
    assert "cf_clearance" in cf.reason and "proxy_url" in cf.reason
    antibot = classify(UpstreamHTTPError(403, '{"error":{"code":7,"message":"anti-bot"}}', "application/json"))
    assert "statsig" in antibot.reason
    assert not cf.retryable and classify(UpstreamConnectionError("x")).retryable


def test_in_band_errors_are_rate_limits_or_server_failures() -> None:
    limited = classify_event(ErrorEvent("You've reached your usage limit.", None, True), charged=True)
    assert (limited.kind, limited.charged) == (FailureKind.RATE_LIMITED, True)
    assert classify_event(ErrorEvent("Internal error", 13, False)).kind == FailureKind.SERVER


def test_blocked_user_wins_over_every_other_marker() -> None:
    body = "<html>Just a moment... challenge-platform</html> unauthenticated [WKE=unauthorized:blocked-user]"
    assert classify(UpstreamHTTPError(403, body, "text/html")).kind == FailureKind.BLOCKED
    assert classify(UpstreamHTTPError(403, '{"error":"User is blocked"}', "application/json")).kind == (
        FailureKind.BLOCKED
    )


@pytest.mark.parametrize("status", [403, 429, 503])
def test_a_cloudflare_mitigation_header_is_the_egress(status: int) -> None:
    exc = UpstreamHTTPError(status, "", "", headers={"CF-Mitigated": "challenge"})
    failure = classify(exc)
    assert failure.kind == FailureKind.EGRESS and "cf_clearance" in failure.reason
    assert exc.headers == {"cf-mitigated": "challenge"}


def test_an_anti_bot_error_event_is_the_egress_not_the_account() -> None:
    failure = classify_event(ErrorEvent("Request rejected by anti-bot rules.", anti_bot=True), charged=True)
    assert failure.kind == FailureKind.EGRESS and not failure.retryable
    assert "anti-bot" in failure.reason and "cf_clearance" in failure.reason
