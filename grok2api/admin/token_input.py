"""Bulk token input (pasted text or an uploaded file) turned into accounts plus readable rejections.

Accepted: one token per line, ``sso=...`` or whole cookie lines, a JSON list of tokens, or the
reference gateway's ``token.json`` (its tier, tags, notes and status are kept).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import msgspec

from ..grok.headers import normalize_token
from ..reference_import import parse_tokens_text
from ..store.base import NewAccount
from .views import mask_token

MAX_TOKEN_LENGTH = 2048
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~+/=%-]+")


class Rejected(msgspec.Struct):
    token: str  # masked
    reason: str


class ParsedTokens(msgspec.Struct):
    accounts: list[NewAccount] = msgspec.field(default_factory=list)
    rejected: list[Rejected] = msgspec.field(default_factory=list)


def _problem(token: str) -> str | None:
    if not token:
        return "no sso value found on this line"
    if len(token) > MAX_TOKEN_LENGTH:
        return f"longer than {MAX_TOKEN_LENGTH} characters"
    if not _TOKEN_CHARS.fullmatch(token):
        return "contains characters an SSO cookie cannot have"
    return None


def _admit(out: ParsedTokens, seen: set[str], acc: NewAccount, raw: str) -> None:
    problem = _problem(acc.token)
    if problem is None and acc.token in seen:
        problem = "duplicate in this input"
    if problem is not None:
        out.rejected.append(Rejected(mask_token(acc.token or raw.strip()), problem))
        return
    seen.add(acc.token)
    out.accounts.append(acc)


def parse_input(texts: Iterable[str], tier: str) -> ParsedTokens:
    """Several sources (a paste, a file) into one result; a token given twice is added once."""
    out = ParsedTokens()
    seen: set[str] = set()
    for text in texts:
        if text.strip():
            _parse_one(out, seen, text, tier)
    return out


def _parse_one(out: ParsedTokens, seen: set[str], text: str, tier: str) -> None:
    stripped = text.lstrip("\ufeff").strip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            out.rejected.append(Rejected("(file)", f"not valid JSON: {exc.msg} at line {exc.lineno}"))
            return
        if isinstance(data, list):
            for item in data:
                raw = item if isinstance(item, str) else ""
                _admit(out, seen, NewAccount(token=normalize_token(raw), tier=tier), raw or "(not a string)")
            return
        if not any(k in data for k in ("ssoNormal", "sso", "ssoSuper")):
            out.rejected.append(Rejected("(file)", "a JSON object must be a token.json with ssoNormal/ssoSuper"))
            return
        for acc in parse_tokens_text(stripped):
            _admit(out, seen, acc, acc.token)
        return
    for line in stripped.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        _admit(out, seen, NewAccount(token=normalize_token(line), tier=tier), line)
