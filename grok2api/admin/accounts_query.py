"""Search, filter, sort and page the account list in memory (pure; 10 000 accounts take a few ms)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from ..store.base import Account, AccountState, Tier

PAGE_SIZES = (25, 50, 100, 200)
SORTS = {
    "created": "newest first",
    "remaining": "most remaining",
    "-remaining": "least remaining",
    "last_used": "recently used",
    "-last_used": "least recently used",
}
STATES = tuple(s.value for s in AccountState)
TIERS = tuple(t.value for t in Tier)


_SMALL_INT = re.compile(r"[0-9]{1,18}")


def small_int(raw: str) -> int | None:
    """A non-negative ASCII integer of at most 18 digits, or None. ``str.isdigit`` is not enough:
    it accepts "²" (which ``int`` refuses) and 5000-digit strings (beyond Python's parsing limit)."""
    raw = raw.strip()
    return int(raw) if _SMALL_INT.fullmatch(raw) else None


@dataclass(frozen=True)
class AccountQuery:
    q: str = ""
    tier: str = ""
    state: str = ""
    tag: str = ""
    sort: str = "created"
    page: int = 1
    size: int = 50

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> AccountQuery:
        """Read query parameters; anything unknown or malformed falls back to the default."""

        def number(name: str, default: int) -> int:
            value = small_int(params.get(name, ""))
            return default if value is None else value

        size = number("size", cls.size)
        return cls(
            q=params.get("q", "").strip()[:200],
            tier=params.get("tier", "") if params.get("tier", "") in TIERS else "",
            state=params.get("state", "") if params.get("state", "") in STATES else "",
            tag=params.get("tag", "").strip()[:100],
            sort=params.get("sort", "") if params.get("sort", "") in SORTS else cls.sort,
            page=max(1, number("page", 1)),
            size=size if size in PAGE_SIZES else cls.size,
        )

    def params(self, **changes: str | int) -> str:
        """This query as a URL query string, with some values changed (e.g. ``page=3``)."""
        values: dict[str, str | int] = {
            "q": self.q,
            "tier": self.tier,
            "state": self.state,
            "tag": self.tag,
            "sort": self.sort,
            "page": self.page,
            "size": self.size,
        }
        values.update(changes)
        defaults = {"sort": "created", "page": 1, "size": 50}
        return urlencode({k: v for k, v in values.items() if v != "" and defaults.get(k) != v})


@dataclass
class AccountPage:
    rows: list[Account]
    total: int  # accounts matching the filters
    page: int
    pages: int
    query: AccountQuery
    pool_size: int = 0
    tags: list[str] = field(default_factory=list)  # every tag in the pool, for the palette and filter


def matches(acc: Account, query: AccountQuery, needle: str) -> bool:
    if query.tier and acc.tier != query.tier:
        return False
    if query.state and acc.state != query.state:
        return False
    if query.tag and query.tag not in acc.tags:
        return False
    return not needle or needle in acc.token.lower() or needle in acc.note.lower()


def filtered(accounts: Iterable[Account], query: AccountQuery) -> list[Account]:
    needle = query.q.lower()
    found = [a for a in accounts if matches(a, query, needle)]
    if query.sort in ("remaining", "-remaining"):
        known = [a for a in found if a.remaining is not None]
        unknown = [a for a in found if a.remaining is None]
        known.sort(key=lambda a: (a.remaining or 0, a.id), reverse=query.sort == "remaining")
        return known + unknown  # "not checked yet" sorts last either way
    if query.sort in ("last_used", "-last_used"):
        used = [a for a in found if a.last_used_at is not None]
        never = [a for a in found if a.last_used_at is None]
        used.sort(key=lambda a: (a.last_used_at or 0.0, a.id), reverse=query.sort == "last_used")
        return used + never
    found.sort(key=lambda a: (a.created_at, a.id), reverse=True)
    return found


def all_tags(accounts: Iterable[Account]) -> list[str]:
    return sorted({t for a in accounts for t in a.tags})


def paginate(accounts: list[Account], query: AccountQuery) -> AccountPage:
    matching = filtered(accounts, query)
    pages = max(1, math.ceil(len(matching) / query.size))
    page = min(query.page, pages)
    start = (page - 1) * query.size
    return AccountPage(
        matching[start : start + query.size],
        len(matching),
        page,
        pages,
        query,
        pool_size=len(accounts),
        tags=all_tags(accounts),
    )
