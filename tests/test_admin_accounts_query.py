from __future__ import annotations

from grok2api.admin.accounts_query import AccountQuery, all_tags, filtered, paginate
from grok2api.store.base import Account, ModeQuota


def acc(i: int, remaining: int | None = None, **kw: object) -> Account:
    quotas = {"fast": ModeQuota(remaining=remaining)}
    return Account(id=i, token=kw.pop("token", f"tok-{i:03d}"), created_at=float(i), quotas=quotas, **kw)  # type: ignore[arg-type]


POOL = [
    acc(1, tier="super", remaining=5, tags=["eu"], note="Bought in May", last_used_at=50.0),
    acc(2, remaining=None, tags=["eu", "vip"], last_used_at=None),
    acc(3, remaining=40, state="cooling", last_used_at=70.0),
    acc(4, remaining=0, token="SPECIAL-token", last_used_at=10.0),
]


def test_parse_keeps_valid_values_and_drops_the_rest() -> None:
    q = AccountQuery.parse(
        {
            "q": "  abc ",
            "tier": "super",
            "state": "cooling",
            "tag": "eu",
            "sort": "remaining",
            "page": "3",
            "size": "100",
        }
    )
    assert q == AccountQuery("abc", "super", "cooling", "eu", "remaining", 3, 100)
    bad = AccountQuery.parse({"tier": "gold", "state": "dead", "sort": "evil", "page": "-2", "size": "7"})
    assert bad == AccountQuery()


def test_params_round_trip_and_omit_defaults() -> None:
    q = AccountQuery(q="a b", tag="eu", page=2)
    assert q.params() == "q=a+b&tag=eu&page=2"
    assert q.params(page=1) == "q=a+b&tag=eu"
    assert AccountQuery.parse(dict(p.split("=") for p in q.params(size=100).split("&"))).size == 100


def test_filters_search_token_and_note_case_insensitively() -> None:
    assert [a.id for a in filtered(POOL, AccountQuery(q="special"))] == [4]
    assert [a.id for a in filtered(POOL, AccountQuery(q="may"))] == [1]
    assert [a.id for a in filtered(POOL, AccountQuery(tier="super"))] == [1]
    assert [a.id for a in filtered(POOL, AccountQuery(state="cooling"))] == [3]
    assert [a.id for a in filtered(POOL, AccountQuery(tag="eu"))] == [2, 1]  # newest first


def test_sorts_put_unknown_values_last() -> None:
    assert [a.id for a in filtered(POOL, AccountQuery(sort="remaining"))] == [3, 1, 4, 2]
    assert [a.id for a in filtered(POOL, AccountQuery(sort="-remaining"))] == [4, 1, 3, 2]
    assert [a.id for a in filtered(POOL, AccountQuery(sort="last_used"))] == [3, 1, 4, 2]
    assert [a.id for a in filtered(POOL, AccountQuery(sort="-last_used"))] == [4, 1, 3, 2]


def test_paginate_clamps_and_counts() -> None:
    pool = [acc(i) for i in range(1, 131)]
    page = paginate(pool, AccountQuery(size=50, page=9))
    assert (page.page, page.pages, page.total, len(page.rows), page.pool_size) == (3, 3, 130, 30, 130)
    assert page.rows[0].id == 30  # newest first: 130..81, 80..31, 30..1
    empty = paginate([], AccountQuery())
    assert (empty.page, empty.pages, empty.rows) == (1, 1, [])
    assert all_tags(POOL) == ["eu", "vip"]
