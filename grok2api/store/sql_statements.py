"""Hand-written SQL for the per-request statements (reserve, settle, version poll).

Building these with SQLAlchemy expressions on every request cost more CPU than the rest of the
request; plain SQL strings, cached per statement shape, cost almost nothing. The SQL is standard
(CASE, named ``:params``) and runs unchanged on SQLite and MySQL/MariaDB.

MySQL evaluates SET assignments left to right and later ones see earlier results, so every column
is assigned only after each expression that reads it: the state CASEs come first.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec

from .base import Settlement

REASON_LEN = 1024
VERSIONS_SQL = "SELECT name, value FROM meta"
_RESERVE = (
    "UPDATE accounts SET {col} = {col} - :cost, last_used_at = :now "
    "WHERE id = :id AND state = 'active' AND ({col} IS NULL OR {col} >= :cost)"
)
RESERVE_SQL = {False: _RESERVE.format(col="remaining"), True: _RESERVE.format(col="heavy_remaining")}
BUMP_IF_CHANGED_SQL = (
    "UPDATE meta SET value = value + 1 WHERE name = 'accounts_version' "
    "AND EXISTS (SELECT 1 FROM accounts WHERE id = :id AND state_changed_at = :ts)"
)


def _quota_set(col: str, param: str, mode: str) -> str:
    if mode == "cap":  # only ever lower a known count; fill an unknown one
        return f"{col} = CASE WHEN {col} IS NULL OR {col} > :{param} THEN :{param} ELSE {col} END"
    if mode == "set":
        return f"{col} = :{param}"
    return f"{col} = {col} + :refund"  # NULL + n stays NULL


@lru_cache(maxsize=256)
def settle_sql(state: bool, counted: bool, ok: bool, failure: bool, quota: tuple[str, str], window: bool) -> str:
    """The UPDATE for one settlement shape; ``quota`` is the mode per column ("", refund, set, cap)."""
    sets: list[str] = []
    if state:
        keep = "state = 'disabled'"
        sets += [
            f"state_changed_at = CASE WHEN {keep} THEN state_changed_at ELSE :ts END",
            f"state_reason = CASE WHEN {keep} THEN state_reason ELSE :state_reason END",
            f"cooldown_until = CASE WHEN {keep} THEN cooldown_until ELSE :cooldown_until END",
            f"state = CASE WHEN {keep} THEN state ELSE :state END",
        ]
    elif counted:
        trip = "(state <> 'disabled' AND failure_count + 1 >= :invalid_after)"
        sets += [
            f"state_changed_at = CASE WHEN {trip} AND state <> 'invalid' THEN :ts ELSE state_changed_at END",
            f"state_reason = CASE WHEN {trip} THEN :failure ELSE state_reason END",
            f"state = CASE WHEN {trip} THEN 'invalid' ELSE state END",
        ]
    if counted:
        sets.append("failure_count = failure_count + 1")
    elif ok:
        sets.append("failure_count = 0")
    if ok:
        sets.append("requests_ok = requests_ok + 1")
    if failure:
        sets += ["requests_failed = requests_failed + 1", "last_failure = :failure", "last_failure_at = :ts"]
    for col, mode in zip(("remaining", "heavy_remaining"), quota, strict=True):
        if mode:
            sets.append(_quota_set(col, col, mode))
    if window:
        sets.append("window_reset_at = :window_reset_at")
    if not sets:
        return ""
    return f"UPDATE accounts SET {', '.join(sets)} WHERE id = :id"


def _quota_mode(learned: Any, refunded: bool, s: Settlement) -> str:
    if learned is not msgspec.UNSET:
        if s.learned_cap:
            return "cap" if learned is not None else ""
        return "set"
    return "refund" if refunded and s.refund else ""


def settle_statement(account_id: int, s: Settlement, ts: float) -> tuple[str, dict[str, Any], bool]:
    """(sql, params, may_change_state) for one settlement; sql is "" when there is nothing to write."""
    counted = s.failure is not None and s.counts_towards_invalid
    quota = (_quota_mode(s.remaining, not s.heavy, s), _quota_mode(s.heavy_remaining, s.heavy, s))
    window = s.window_reset_at is not msgspec.UNSET
    sql = settle_sql(s.state is not None, counted, s.ok, s.failure is not None, quota, window)
    params: dict[str, Any] = {"id": account_id, "ts": ts}
    if s.state is not None:
        params.update(state=s.state, state_reason=s.state_reason[:REASON_LEN], cooldown_until=s.cooldown_until)
    if s.failure is not None:
        params.update(failure=s.failure[:REASON_LEN], invalid_after=s.invalid_after)
    if "refund" in quota:
        params["refund"] = s.refund
    if quota[0] in ("set", "cap"):
        params["remaining"] = s.remaining
    if quota[1] in ("set", "cap"):
        params["heavy_remaining"] = s.heavy_remaining
    if window:
        params["window_reset_at"] = s.window_reset_at
    return sql, params, s.state is not None or counted
