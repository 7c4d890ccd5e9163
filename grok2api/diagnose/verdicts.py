"""Turning what grok.com (or the network) answered into a step's verdict and fix.

The meaning comes from the gateway's own classifier (``grok/failures.py``: the same kinds the pool acts on); this
module only words it for an operator and adds what to do, which depends on the egress (its transport, its proxy,
the Chrome its User-Agent names)."""

from __future__ import annotations

from ..grok.errors import UploadRejected, UpstreamConnectionError, UpstreamHTTPError
from ..grok.events import ErrorEvent
from ..grok.failures import Failure, FailureKind, classify, classify_event, cloudflare_challenged
from .report import Step, Verdict
from .targets import Target

_SNIPPET = 160


def _snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat[:_SNIPPET] + ("…" if len(flat) > _SNIPPET else "")


def _explain_http(exc: UpstreamHTTPError, failure: Failure) -> tuple[Verdict, str]:
    status = exc.status
    if failure.kind is FailureKind.EGRESS:
        if cloudflare_challenged(exc):
            header = ", cf-mitigated: challenge" if exc.headers.get("cf-mitigated") else ""
            return Verdict.CLOUDFLARE, (
                f"Cloudflare challenged this egress (HTTP {status}, a “Just a moment…” page{header}): it does not "
                "trust this IP, User-Agent or TLS fingerprint, and grok.com never saw the request"
            )
        return Verdict.ANTI_BOT, (
            f"grok.com's own anti-bot refused it (HTTP {status}: {_snippet(exc.body)}); Cloudflare let it through"
        )
    if failure.kind is FailureKind.INVALID:
        return Verdict.LOGGED_OUT, f"grok.com does not accept the account's cookie: it is logged out (HTTP {status})"
    if failure.kind is FailureKind.BLOCKED:
        return Verdict.BLOCKED, "grok.com reports the account as blocked (blocked-user)"
    if failure.kind is FailureKind.RATE_LIMITED:
        wait = f"; it resets in {int(exc.retry_after)} s" if exc.retry_after else ""
        return Verdict.RATE_LIMITED, f"grok.com says the account is rate limited (HTTP {status}{wait})"
    if failure.kind is FailureKind.REJECTED:
        if status == 404:
            return Verdict.NOT_FOUND, "the server answered 404 Not Found"
        return Verdict.REJECTED, f"grok.com refused the request itself (HTTP {status}: {_snippet(exc.body)})"
    if status == 200:
        return Verdict.CHANGED, f"grok.com answered in a shape grok2api does not know ({_snippet(exc.body)})"
    return Verdict.SERVER_ERROR, f"grok.com or the proxy failed (HTTP {status})"


def explain(exc: BaseException) -> tuple[Verdict, str]:
    """The verdict code and a plain sentence for a failed call."""
    if isinstance(exc, UploadRejected):
        return Verdict.REJECTED, f"grok.com refused the test file: {exc.reason}"
    if isinstance(exc, TimeoutError):
        return Verdict.TIMEOUT, "no answer in time"
    failure = classify(exc)
    if isinstance(exc, UpstreamHTTPError):
        return _explain_http(exc, failure)
    if isinstance(exc, UpstreamConnectionError):
        return Verdict.CONNECTION_FAILED, str(exc)
    return Verdict.SERVER_ERROR, failure.reason


def explain_event(event: ErrorEvent) -> tuple[Verdict, str]:
    """The verdict for an error grok.com reported inside a chat answer."""
    failure = classify_event(event)
    if failure.kind is FailureKind.EGRESS:
        return Verdict.ANTI_BOT, f"grok.com's anti-bot rejected the chat ({_snippet(event.message)})"
    if failure.kind is FailureKind.RATE_LIMITED:
        return Verdict.RATE_LIMITED, f"the account's window for this mode is used up ({_snippet(event.message)})"
    return Verdict.ANSWER_FAILED, f"grok.com took the turn but its answer failed ({_snippet(event.message)})"


def fix_for(code: Verdict, target: Target, step: str = "") -> str:
    """What an operator does about ``code`` on this egress ("" for a pass)."""
    curl_hint = "set upstream_transport to curl_cffi (a browser's TLS fingerprint), "
    if target.transport != "aiohttp":
        curl_hint = ""
    proxied = bool(target.proxy_url)
    if code is Verdict.CLOUDFLARE:
        where = "through the proxy" if proxied else "from this machine's IP"
        return (
            f"Open grok.com in Chrome {target.chrome_major} {where}, pass the check, and copy its cf_clearance cookie "
            f"into the cf_clearance setting (it is bound to that IP and User-Agent); {curl_hint}"
            "or route through another proxy_url. No account is at fault."
        )
    if code is Verdict.ANTI_BOT:
        return (
            f"grok.com judges the client, not the account: {curl_hint}turn on dynamic_statsig or set a fresh "
            "x_statsig_id, refresh cf_clearance, or try another proxy_url."
        )
    if code is Verdict.DNS_FAILED:
        if proxied:
            return "Check the proxy's host name in proxy_url, and this machine's DNS server."
        return "Check this machine's DNS server (e.g. /etc/resolv.conf) and the host in upstream_url."
    if code is Verdict.TCP_FAILED:
        if proxied:
            return "Check that the proxy runs and that proxy_url names its host and port."
        return "Check the firewall and the outbound network to grok.com, or route through proxy_url."
    if code is Verdict.NOT_FOUND and step == "asset_download":
        return "Check assets_url (grok.com's files are on https://assets.grok.com) and the proxy for downloads."
    return _FIXES.get(code, "")


_FIXES = {
    Verdict.TLS_FAILED: (
        "Something between the gateway and grok.com intercepts TLS (a corporate proxy, an antivirus) or the host "
        "is not grok.com: check upstream_url and the network, or route through proxy_url."
    ),
    Verdict.TRANSPORT_MISSING: (
        "Install curl_cffi (pip install 'grok2api[browser]'), or set upstream_transport to aiohttp."
    ),
    Verdict.LOGGED_OUT: (
        "Sign in to grok.com in a browser and replace this account's token with the new sso cookie (the Accounts "
        "page, or grok2api accounts add), or remove the account."
    ),
    Verdict.BLOCKED: (
        "grok.com banned this account: remove it from the pool, and diagnose with another account "
        "(--account, or the account picker)."
    ),
    Verdict.RATE_LIMITED: (
        "Wait until the window resets, or diagnose with another account: this says nothing about the egress."
    ),
    Verdict.SERVER_ERROR: (
        "grok.com or the proxy is having trouble: try again in a few minutes; if only this egress fails, check "
        "its proxy."
    ),
    Verdict.CONNECTION_FAILED: "Check the proxy (proxy_url) and this machine's network, then run the doctor again.",
    Verdict.TIMEOUT: "grok.com or the proxy is slow or drops packets: check the proxy and the network, then retry.",
    Verdict.REJECTED: "grok.com refused grok2api's request: its protocol may have moved on; update grok2api.",
    Verdict.NOT_FOUND: "Check upstream_url (https://grok.com); grok.com may have moved this endpoint.",
    Verdict.CHANGED: "grok.com changed this answer: update grok2api (the gateway will stumble on it too).",
    Verdict.ANSWER_FAILED: (
        "Try again; if the chat fails the same way on every account, grok.com may have changed its chat: "
        "update grok2api."
    ),
    Verdict.NO_ACCOUNT: (
        "Add an account (the Accounts page, or grok2api accounts add TOKEN), or name one "
        "(grok2api doctor --account TOKEN)."
    ),
}


def failing(name: str, code: Verdict, verdict: str, target: Target) -> Step:
    """A failed step whose verdict the caller worded; the fix follows from ``code``."""
    return Step(name=name, ok=False, verdict=verdict, fix=fix_for(code, target, name), code=code)


def failed(name: str, subject: str, exc: BaseException, target: Target) -> Step:
    """A failed step: ``subject`` (e.g. "the home page") with what the failure means and its fix."""
    code, meaning = explain(exc)
    return failing(name, code, f"{subject}: {meaning}", target)


def skipped(name: str, reason: str) -> Step:
    return Step(name=name, ok=False, verdict=f"not run: {reason}", code=Verdict.SKIPPED)
