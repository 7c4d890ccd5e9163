from __future__ import annotations

from grok2api.compat.reference_shapes import pool_stats, status_label, token_json, token_record
from grok2api.store.base import Account, ModeQuota


def acc(remaining: int | None = None, heavy_remaining: int | None = None, **kw: object) -> Account:
    quotas = {"fast": ModeQuota(remaining=remaining), "heavy": ModeQuota(remaining=heavy_remaining)}
    return Account(id=1, token="t", quotas=quotas, **kw)  # type: ignore[arg-type]


def test_status_labels() -> None:
    assert status_label(acc()) == "未使用"
    assert status_label(acc(remaining=3)) == "正常"
    assert status_label(acc(remaining=0)) == "限流中"
    assert status_label(acc(remaining=9, state="cooling")) == "限流中"
    for state in ("invalid", "blocked", "disabled"):
        assert status_label(acc(remaining=9, state=state)) == "失效"
    assert status_label(acc(tier="super", remaining=0, heavy_remaining=2)) == "正常"  # either counter counts
    assert status_label(acc(tier="super", heavy_remaining=0)) == "限流中"


def test_token_record_has_reference_fields_in_reference_units() -> None:
    row = token_record(
        acc(
            tier="super",
            created_at=1.5,
            remaining=None,
            heavy_remaining=4,
            tags=["x"],
            note="n",
            state="invalid",
            state_reason="401",
            last_failure="boom",
            last_failure_at=2.0,
        )
    )
    assert row["token_type"] == "ssoSuper" and row["created_time"] == 1500
    assert (row["remaining_queries"], row["heavy_remaining_queries"]) == (-1, 4)
    assert (row["status"], row["state"], row["state_reason"]) == ("失效", "invalid", "401")
    assert (row["last_failure_reason"], row["last_failure_time"]) == ("boom", 2000)


def test_token_json_and_stats() -> None:
    accounts = [acc(remaining=1), Account(id=2, token="s", tier="super", state="blocked"), Account(id=3, token="u")]
    doc = token_json(accounts)
    assert set(doc) == {"ssoNormal", "ssoSuper"} and set(doc["ssoNormal"]) == {"t", "u"}
    assert doc["ssoSuper"]["s"]["status"] == "expired" and doc["ssoNormal"]["t"]["remainingQueries"] == 1
    stats = pool_stats(accounts)
    assert stats["normal"] == {"total": 2, "unused": 1, "limited": 0, "expired": 0, "active": 1}
    assert stats["super"]["expired"] == 1 and stats["total"] == 3
