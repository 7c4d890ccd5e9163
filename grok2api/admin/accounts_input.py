"""Bulk token input (pasted text or an uploaded file) turned into accounts plus readable rejections.

Accepted: one token per line, ``sso=...`` or whole cookie lines, a JSON list of tokens, or the
reference gateway's ``token.json`` (its tier, tags, notes and status are kept).
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Iterable

import msgspec

from ..compat.reference_import import load_json, parse_tokens_text
from ..grok.headers import normalize_token
from ..store.base import NewAccount
from .views import mask_token

MAX_TOKEN_LENGTH = 2048
# One paste or file may hold at most this many tokens (lines or JSON entries): bounds the time and
# memory a single request takes, whatever the upload cap lets through.
MAX_LINES = 100_000
MAX_TAGS = 20
MAX_TAG_LENGTH = 64
MAX_NOTE_LENGTH = 2000
_LATEST_TIME = 4_102_444_800.0  # 2100-01-01: later "createdTime" values are garbage (and overflow exports)
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~+/=%-]+")
_TOO_MANY = f"more than {MAX_LINES} lines or entries in one go: the rest was ignored (split the input)"


def clean_tags(tags: Iterable[str]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        tag = tag.strip()[:MAX_TAG_LENGTH]
        if tag and tag not in out:
            out.append(tag)
    return out[:MAX_TAGS]


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


def _full(out: ParsedTokens) -> bool:
    """True once the input limit is reached (noting it once in the rejections)."""
    if len(out.accounts) + len(out.rejected) < MAX_LINES:
        return False
    if not out.rejected or out.rejected[-1].reason != _TOO_MANY:
        out.rejected.append(Rejected("(input)", _TOO_MANY))
    return True


def _admit(out: ParsedTokens, seen: set[str], acc: NewAccount, raw: str) -> None:
    problem = _problem(acc.token)
    if problem is None and acc.token in seen:
        problem = "duplicate in this input"
    if problem is not None:
        out.rejected.append(Rejected(mask_token(acc.token or raw.strip()), problem))
        return
    # Imported token.json records get the limits the edit form has.
    if acc.tags is not None:
        acc.tags = clean_tags(acc.tags)
    if acc.note is not None:
        acc.note = acc.note.strip()[:MAX_NOTE_LENGTH]
    if acc.created_at is not None and not (math.isfinite(acc.created_at) and 0 < acc.created_at < _LATEST_TIME):
        acc.created_at = None
    seen.add(acc.token)
    out.accounts.append(acc)


def parse_input(texts: Iterable[str], tier: str) -> ParsedTokens:
    """Several sources (a paste, a file) into one result; a token given twice is added once."""
    out = ParsedTokens()
    seen: set[str] = set()
    for text in texts:
        if text.strip() and not _full(out):
            _parse_one(out, seen, text, tier)
    return out


def _parse_one(out: ParsedTokens, seen: set[str], text: str, tier: str) -> None:
    stripped = text.lstrip("\ufeff").strip()
    if stripped.startswith(("{", "[")):
        try:
            data = load_json(stripped)  # refuses lone surrogates ("\\ud800"), which json.loads lets through
        except json.JSONDecodeError as exc:
            out.rejected.append(Rejected("(file)", f"not valid JSON: {exc.msg} at line {exc.lineno}"))
            return
        except RecursionError:
            out.rejected.append(Rejected("(file)", "not valid JSON: nested too deeply"))
            return
        if isinstance(data, list):
            for item in data:
                if _full(out):
                    return
                raw = item if isinstance(item, str) else ""
                _admit(out, seen, NewAccount(token=normalize_token(raw), tier=tier), raw or "(not a string)")
            return
        if not any(k in data for k in ("ssoNormal", "sso", "ssoSuper")):
            out.rejected.append(Rejected("(file)", "a JSON object must be a token.json with ssoNormal/ssoSuper"))
            return
        try:
            records = parse_tokens_text(stripped)
        except (TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
            out.rejected.append(Rejected("(file)", f"not a usable token.json: {type(exc).__name__}: {exc}"[:200]))
            return
        for acc in records:
            if _full(out):
                return
            _admit(out, seen, acc, acc.token)
        return
    # Line by line without building a list of every line (the text may be 16 MB of newlines).
    for line in io.StringIO(stripped, newline=None):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if _full(out):
            return
        _admit(out, seen, NewAccount(token=normalize_token(line), tier=tier), line)
