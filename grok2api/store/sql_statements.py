"""Hand-written SQL for the per-request statements (reserve, settle, version poll).

Building these with SQLAlchemy expressions on every request cost more CPU than the rest of the
request; plain SQL strings, cached per statement shape, cost almost nothing. The SQL is standard
(CASE, named ``:params``) and runs unchanged on SQLite and MySQL/MariaDB, except the upsert clause.

MySQL evaluates SET assignments left to right and later ones see earlier results, so every column
is assigned only after each expression that reads it: the state CASEs come first.

Lock order: a statement that touches both tables locks the ``accounts`` row first (reserve's EXISTS
reads it before the quota row is locked), so settle writes ``accounts`` before ``account_quotas``;
the other order deadlocks on InnoDB under concurrent reserves.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import msgspec

from .base import ModeQuota, Settlement

REASON_LEN = 1024
VERSIONS_SQL = "SELECT name, value FROM meta"
QUOTA_FIELDS = ("remaining", "total", "window_seconds", "reset_at")
QUOTAS_SQL = f"SELECT account_id, mode, {', '.join(QUOTA_FIELDS)} FROM account_quotas ORDER BY account_id, mode"
# NULL - 1 stays NULL, so an unknown window stays unknown (and still matches: it may be reserved). A window
# whose reset time has passed has rolled over: its count is stale, so it becomes unknown (learned again later)
# and the take succeeds. ``remaining`` is assigned before ``reset_at`` because MySQL applies SETs left to right.
_EXPIRED = "(reset_at IS NOT NULL AND reset_at <= :now)"
RESERVE_SQL = (
    f"UPDATE account_quotas SET remaining = CASE WHEN {_EXPIRED} THEN NULL ELSE remaining - 1 END, "
    f"reset_at = CASE WHEN {_EXPIRED} THEN NULL ELSE reset_at END "
    f"WHERE account_id = :id AND mode = :mode AND (remaining IS NULL OR remaining >= 1 OR {_EXPIRED}) "
    "AND EXISTS (SELECT 1 FROM accounts WHERE id = :id AND state = 'active')"
)
# The first reservation of a mode: record the unknown window (a concurrent one may have done it already).
_FIRST_WINDOW = (
    "INSERT INTO account_quotas (account_id, mode) SELECT id, :mode FROM accounts WHERE id = :id AND state = 'active' "
)
FIRST_WINDOW_SQL = {
    "sqlite": _FIRST_WINDOW + "ON CONFLICT (account_id, mode) DO NOTHING",
    "mysql": _FIRST_WINDOW + "ON DUPLICATE KEY UPDATE account_id = account_id",
}
# A rate window: the first hit opens it (hits 1, ends now + window); later hits count until it ends, and the first
# hit after that opens the next one. ``hits`` is assigned before ``ends_at`` (MySQL's left-to-right SETs), and
# MySQL hands the new count back as the insert id.
_WINDOW_ENDED = "rate_windows.ends_at <= :now"
HIT_WINDOW_SQL = {
    "sqlite": "INSERT INTO rate_windows (name, ends_at, hits) VALUES (:name, :ends, 1) ON CONFLICT (name) DO UPDATE "
    f"SET hits = CASE WHEN {_WINDOW_ENDED} THEN 1 ELSE rate_windows.hits + 1 END, "
    f"ends_at = CASE WHEN {_WINDOW_ENDED} THEN :ends ELSE rate_windows.ends_at END",
    "mysql": "INSERT INTO rate_windows (name, ends_at, hits) VALUES (:name, :ends, LAST_INSERT_ID(1)) "
    f"ON DUPLICATE KEY UPDATE hits = LAST_INSERT_ID(CASE WHEN {_WINDOW_ENDED} THEN 1 ELSE rate_windows.hits + 1 END), "
    f"ends_at = CASE WHEN {_WINDOW_ENDED} THEN :ends ELSE rate_windows.ends_at END",
}
WINDOW_END_SQL = "SELECT ends_at FROM rate_windows WHERE name = :name"
PRUNE_WINDOWS_SQL = "DELETE FROM rate_windows WHERE ends_at <= :now"
BUMP_IF_CHANGED_SQL = (
    "UPDATE meta SET value = value + 1 WHERE name = 'accounts_version' "
    "AND EXISTS (SELECT 1 FROM accounts WHERE id = :id AND state_changed_at = :ts)"
)


@lru_cache(maxsize=64)
def settle_sql(state: bool, counted: bool, ok: bool, failure: bool) -> str:
    """The ``accounts`` UPDATE for one settlement shape (it always stamps ``last_used_at``)."""
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
    sets.append("last_used_at = :ts")
    return f"UPDATE accounts SET {', '.join(sets)} WHERE id = :id"


@lru_cache(maxsize=64)
def quota_settle_sql(dialect: str, refund: bool, learned: str) -> str:
    """The ``account_quotas`` statement for one settlement shape. ``learned`` is "" (refund only), "set"
    (replace the window), "cap" (lower or fill ``remaining``) or "keep" (capped, ``remaining`` not learned).
    """
    if not learned:  # a missing row is an unknown window, and a refund leaves it unknown
        return "UPDATE account_quotas SET remaining = remaining + :refund WHERE account_id = :id AND mode = :mode"
    current = "remaining + :refund" if refund else "remaining"
    if learned == "set":
        sets = [f"{f} = :{f}" for f in QUOTA_FIELDS]
    else:
        if learned == "cap":
            low = f"CASE WHEN remaining IS NULL OR {current} > :remaining THEN :remaining ELSE {current} END"
        else:
            low = current
        sets = [f"remaining = {low}"] + [f"{f} = COALESCE(:{f}, {f})" for f in QUOTA_FIELDS[1:]]
    # A missing row is an unknown window: the learned values are what it becomes.
    insert = (
        f"INSERT INTO account_quotas (account_id, mode, {', '.join(QUOTA_FIELDS)}) "
        f"VALUES (:id, :mode, {', '.join(':' + f for f in QUOTA_FIELDS)}) "
    )
    if dialect == "mysql":
        return insert + "ON DUPLICATE KEY UPDATE " + ", ".join(sets)
    return insert + "ON CONFLICT (account_id, mode) DO UPDATE SET " + ", ".join(sets)


def settle_steps(
    dialect: str, account_id: int, s: Settlement, ts: float
) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
    """(statements, may_change_state) for one settlement, ``accounts`` first: the store runs the rest only
    when that one found the account. All statements share one parameter dict."""
    counted = s.failure is not None and s.counts_towards_invalid
    params: dict[str, Any] = {"id": account_id, "ts": ts}
    steps = [(settle_sql(s.state is not None, counted, s.ok, s.failure is not None), params)]
    if s.state is not None:
        params.update(state=s.state, state_reason=s.state_reason[:REASON_LEN], cooldown_until=s.cooldown_until)
    if s.failure is not None:
        params.update(failure=s.failure[:REASON_LEN], invalid_after=s.invalid_after)
    learned = _learned_shape(s)
    if s.mode and (s.refund or learned):
        params.update(mode=s.mode, refund=s.refund)
        if isinstance(s.learned, ModeQuota):
            params.update(msgspec.structs.asdict(s.learned))
        steps.append((quota_settle_sql(dialect, bool(s.refund), learned), params))
    return steps, s.state is not None or counted


def _learned_shape(s: Settlement) -> str:
    learned = s.learned
    if not isinstance(learned, ModeQuota):
        return ""
    if not s.learned_cap:
        return "set"
    if learned.remaining is not None:
        return "cap"
    return "keep" if (learned.total, learned.window_seconds, learned.reset_at) != (None, None, None) else ""
