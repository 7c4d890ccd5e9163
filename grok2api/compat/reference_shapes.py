"""Translations between our account model and the reference gateway's admin vocabulary.

The reference calls tiers ``sso`` / ``ssoSuper`` and shows four status labels; we also expose the
explicit ``state`` and ``state_reason`` that those labels flatten.
"""

from __future__ import annotations

from typing import Any

from ..store.base import Account, AccountState, Tier

TOKEN_TYPES = {"sso": Tier.BASIC, "ssoSuper": Tier.SUPER}
# The reference knows no heavy tier: heavy accounts show as super, the closest it has.
TYPE_OF_TIER = {Tier.BASIC.value: "sso", Tier.SUPER.value: "ssoSuper", Tier.HEAVY.value: "ssoSuper"}
POOL_OF_TIER = {Tier.BASIC.value: "ssoNormal", Tier.SUPER.value: "ssoSuper", Tier.HEAVY.value: "ssoSuper"}

UNUSED, LIMITED, EXPIRED, ACTIVE = "未使用", "限流中", "失效", "正常"


def _ms(ts: float | None) -> int | None:
    return None if ts is None else int(ts * 1000)


def _count(value: int | None) -> int:
    return -1 if value is None else value


def status_label(acc: Account) -> str:
    """The reference's label: unusable → 失效, cooling or empty → 限流中, unknown → 未使用, else 正常."""
    if acc.state in (AccountState.INVALID, AccountState.BLOCKED, AccountState.DISABLED):
        return EXPIRED
    if acc.state == AccountState.COOLING:
        return LIMITED
    left = acc.remaining
    if acc.tier in (Tier.SUPER, Tier.HEAVY) and acc.heavy_remaining is not None:
        left = acc.heavy_remaining if left is None else max(left, acc.heavy_remaining)
    if left is None:
        return UNUSED
    return LIMITED if left <= 0 else ACTIVE


def token_record(acc: Account) -> dict[str, Any]:
    """One row of ``GET /api/tokens``."""
    return {
        "token": acc.token,
        "token_type": TYPE_OF_TIER.get(acc.tier, "sso"),
        "created_time": _ms(acc.created_at),
        "remaining_queries": _count(acc.remaining),
        "heavy_remaining_queries": _count(acc.heavy_remaining),
        "status": status_label(acc),
        "tags": list(acc.tags),
        "note": acc.note,
        "id": acc.id,
        "tier": acc.tier,
        "state": acc.state,
        "state_reason": acc.state_reason,
        "cooldown_until": _ms(acc.cooldown_until),
        "failed_count": acc.failure_count,
        "last_failure_time": _ms(acc.last_failure_at),
        "last_failure_reason": acc.last_failure or None,
        "last_used_time": _ms(acc.last_used_at),
        "requests_ok": acc.requests_ok,
        "requests_failed": acc.requests_failed,
    }


def token_json(accounts: list[Account]) -> dict[str, dict[str, dict[str, Any]]]:
    """The reference's ``data/token.json`` document (so an export can be imported on either side)."""
    out: dict[str, dict[str, dict[str, Any]]] = {"ssoNormal": {}, "ssoSuper": {}}
    for acc in accounts:
        out[POOL_OF_TIER.get(acc.tier, "ssoNormal")][acc.token] = {
            "createdTime": _ms(acc.created_at),
            "remainingQueries": _count(acc.remaining),
            "heavyremainingQueries": _count(acc.heavy_remaining),
            "status": "expired" if acc.state in (AccountState.INVALID, AccountState.BLOCKED) else "active",
            "failedCount": acc.failure_count,
            "lastFailureTime": _ms(acc.last_failure_at),
            "lastFailureReason": acc.last_failure or None,
            "tags": list(acc.tags),
            "note": acc.note,
            "state": acc.state,
            "stateReason": acc.state_reason,
        }
    return out


def pool_stats(accounts: list[Account]) -> dict[str, Any]:
    """``GET /api/stats``: per tier total/unused/limited/expired/active, by the labels above."""
    keys = {UNUSED: "unused", LIMITED: "limited", EXPIRED: "expired", ACTIVE: "active"}
    tiers: dict[str, dict[str, int]] = {
        name: {"total": 0, "unused": 0, "limited": 0, "expired": 0, "active": 0} for name in ("normal", "super")
    }
    for acc in accounts:
        bucket = tiers["super" if acc.tier in (Tier.SUPER, Tier.HEAVY) else "normal"]
        bucket["total"] += 1
        bucket[keys[status_label(acc)]] += 1
    return {**tiers, "total": len(accounts)}
