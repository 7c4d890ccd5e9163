"""What the doctor found: one ``Step`` per check (a verdict in plain words and its fix) and one ``Report`` per
egress. ``public_json`` is the shape ``grok2api doctor --json`` prints."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec


class Verdict(StrEnum):
    """A step's outcome as a short stable code (metrics label, tests); the sentence is in ``Step.verdict``."""

    OK = "ok"
    SKIPPED = "skipped"  # not run: an earlier step already failed in a way that decides it
    DNS_FAILED = "dns_failed"
    TCP_FAILED = "tcp_failed"
    TLS_FAILED = "tls_failed"
    TRANSPORT_MISSING = "transport_missing"  # curl_cffi chosen but not installed
    CLOUDFLARE = "cloudflare_challenge"
    ANTI_BOT = "anti_bot"  # grok.com's own anti-bot (Cloudflare let the call through)
    LOGGED_OUT = "logged_out"
    BLOCKED = "blocked"
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    CONNECTION_FAILED = "connection_failed"
    TIMEOUT = "timeout"
    REJECTED = "rejected"  # grok.com refused the request itself (a 4xx that is none of the above)
    NOT_FOUND = "not_found"
    CHANGED = "unexpected_answer"  # a 200 in a shape grok2api does not know
    ANSWER_FAILED = "answer_failed"  # the chat started but its answer failed
    NO_ACCOUNT = "no_account"


# The steps in the order they run; the names are what ``--json`` prints.
STEP_TITLES = {
    "dns": "DNS",
    "tcp": "TCP",
    "tls": "TLS",
    "home_page": "Home page",
    "auth_session": "Account session",
    "modes": "Modes",
    "rate_limits": "Rate limits",
    "chat_turn": "Chat turn",
    "asset_download": "Asset download",
}
CHAT_STEP = "chat_turn"
_MAX_TEXT = 600  # a verdict or fix is a sentence or two; grok.com's bodies are cut before they get here


class Step(msgspec.Struct, kw_only=True):
    name: str
    ok: bool
    verdict: str
    fix: str = ""
    code: str = Verdict.OK

    def __post_init__(self) -> None:
        self.verdict = self.verdict[:_MAX_TEXT]
        self.fix = self.fix[:_MAX_TEXT]

    @property
    def title(self) -> str:
        return STEP_TITLES.get(self.name, self.name)


class Report(msgspec.Struct, kw_only=True):
    """Every step for one egress (``egress`` names it), run with one account (masked) at ``at`` (epoch s)."""

    egress: str
    transport: str  # the transport and the fingerprint it presents, in words
    account: str
    at: float
    steps: list[Step]

    @property
    def ok(self) -> bool:
        """The doctor's bottom line: a chat turn worked."""
        return any(s.name == CHAT_STEP and s.ok for s in self.steps)

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def first_failure(self) -> Step | None:
        return next((s for s in self.steps if not s.ok and s.code != Verdict.SKIPPED), None)


def mask(token: str) -> str:
    """Enough of a token to tell accounts apart, never enough to use it."""
    return f"{token[:6]}…{token[-4:]}" if len(token) > 14 else (token[:3] + "…" if token else "")


def public_json(reports: list[Report]) -> dict[str, Any]:
    """``{"ok", "steps": [{"name", "ok", "verdict", "fix"}…]}``: ``ok`` only when a chat turn worked on every
    egress; with several egresses each step also names its ``egress``."""
    several = len(reports) > 1
    steps: list[dict[str, Any]] = []
    for report in reports:
        for s in report.steps:
            item: dict[str, Any] = {"name": s.name, "ok": s.ok, "verdict": s.verdict, "fix": s.fix}
            if several:
                item["egress"] = report.egress
            steps.append(item)
    return {"ok": bool(reports) and all(r.ok for r in reports), "steps": steps}
