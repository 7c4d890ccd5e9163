"""SQL storage: SQLite (the default, one file in the data dir) and MySQL/MariaDB.

Statements are SQLAlchemy Core on an async engine: every method is one short transaction, and quota moves
are single guarded UPDATEs so concurrent workers (and processes) never over-spend a window.
Quota windows live in ``account_quotas``, one row per (account, mode); a missing row is an unknown window.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import msgspec
from sqlalchemy import (
    ColumnElement,
    TextClause,
    bindparam,
    case,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from .base import (
    Account,
    AccountPatch,
    AccountState,
    AddResult,
    AdminSession,
    Charge,
    ClientKey,
    EgressState,
    MediaEntry,
    ModeQuota,
    NewAccount,
    SchemaState,
    Settlement,
    UsageRow,
    Versions,
    VideoImage,
    VideoJob,
    VideoPatch,
    VideoStatus,
    now,
)
from .sql_engine import MYSQL_DEADLOCK, make_engine, normalize_url, sqlite_pragmas
from .sql_schema import (
    AccountQuotaRow,
    AccountRow,
    AdminSessionRow,
    Base,
    ClientKeyRow,
    EgressRow,
    MediaRow,
    MetaRow,
    RateWindowRow,
    SettingRow,
    StoredResponseRow,
    UsageCountRow,
    VideoJobRow,
    table_of,
)
from .sql_statements import (
    BUMP_IF_CHANGED_SQL,
    FIRST_WINDOW_SQL,
    HIT_WINDOW_SQL,
    PRUNE_WINDOWS_SQL,
    QUOTA_FIELDS,
    QUOTAS_SQL,
    REASON_LEN,
    RESERVE_SQL,
    VERSIONS_SQL,
    WINDOW_END_SQL,
    settle_steps,
)

log = logging.getLogger("grok2api.store")
CHECKPOINT_EVERY = 256  # inline commits between WAL checkpoints (each commit logs a few pages)
IN_CHUNK = 500  # bound IN (...) lists: SQLite caps bound parameters, MySQL caps packet size

ACCOUNTS_VERSION = "accounts_version"

SETTINGS_VERSION = "settings_version"

PRUNE_EVERY = 300.0  # seconds between removals of ended rate windows (per process)
_DEADLOCK_RETRIES = 5


def _mysql_errno(exc: OperationalError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@lru_cache(maxsize=256)
def _text(sql: str) -> TextClause:
    return text(sql)


def _chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


_decode_strs = msgspec.json.Decoder(list[str]).decode

_ACCOUNT_COLUMNS = (
    AccountRow.id,
    AccountRow.token,
    AccountRow.tier,
    AccountRow.state,
    AccountRow.state_reason,
    AccountRow.state_changed_at,
    AccountRow.user_id,
    AccountRow.cooldown_until,
    AccountRow.failure_count,
    AccountRow.last_failure,
    AccountRow.last_failure_at,
    AccountRow.tags,
    AccountRow.note,
    AccountRow.created_at,
    AccountRow.last_used_at,
    AccountRow.requests_ok,
    AccountRow.requests_failed,
)
_CLIENT_KEY_COLUMNS = tuple(table_of(ClientKeyRow).c)


_VIDEOS = table_of(VideoJobRow)
_RESPONSES = table_of(StoredResponseRow)
_VIDEO_COLUMNS = tuple(_VIDEOS.c[f] for f in VideoJob.__struct_fields__)  # everything but the image
_VIDEO_IN_PROGRESS = _VIDEOS.c.status == VideoStatus.IN_PROGRESS
_VIDEO_ENDS = (VideoStatus.COMPLETED, VideoStatus.FAILED)
_REFUND_SQL = "UPDATE account_quotas SET remaining = remaining + 1 WHERE account_id = :id AND mode = :mode"

_ACCOUNT_FIELDS = tuple(c.key for c in _ACCOUNT_COLUMNS)
_LIST_ACCOUNTS_SQL = f"SELECT {', '.join(_ACCOUNT_FIELDS)} FROM accounts ORDER BY id"
_QUOTA_KEYS = ("account_id", "mode")
_QUOTA_COLUMNS = tuple(getattr(AccountQuotaRow, f) for f in QUOTA_FIELDS)


def _account(row: Sequence[Any], quotas: dict[str, ModeQuota] | None = None) -> Account:
    fields = dict(zip(_ACCOUNT_FIELDS, row, strict=True))
    fields["tags"] = _decode_strs(fields["tags"])
    return Account(**fields, quotas=quotas or {})


def _windows(rows: Iterable[Sequence[Any]]) -> dict[int, dict[str, ModeQuota]]:
    """Quota rows (account_id, mode, remaining, total, window_seconds, reset_at) grouped by account;
    entirely unknown windows are left out, as if their row did not exist."""
    out: dict[int, dict[str, ModeQuota]] = {}
    for account_id, mode, remaining, total, window, reset in rows:
        if remaining is None and total is None and window is None and reset is None:
            continue
        out.setdefault(account_id, {})[mode] = ModeQuota(
            remaining=remaining, total=total, window_seconds=window, reset_at=reset
        )
    return out


def _quota_rows(account_id: int, quotas: dict[str, ModeQuota]) -> list[dict[str, Any]]:
    return [{"account_id": account_id, "mode": m, **msgspec.structs.asdict(q)} for m, q in quotas.items()]


def _video_job(row: Sequence[Any]) -> VideoJob:
    fields = dict(zip(VideoJob.__struct_fields__, row, strict=True))
    fields["idempotency_key"] = fields["idempotency_key"] or ""  # NULL: none (NULLs never collide)
    fields["has_image"] = bool(fields["has_image"])
    fields["upstream_accepted"] = bool(fields["upstream_accepted"])
    return VideoJob(**fields)


class _NoQuota(Exception):
    """Rolls a video charge back: the account had no query to give."""


def _client_key(row: Any) -> ClientKey:
    return ClientKey(
        id=row.id,
        name=row.name,
        key_hash=row.key_hash,
        prefix=row.prefix,
        models=_decode_strs(row.models),
        rpm=row.rpm,
        expires_at=row.expires_at,
        revoked=bool(row.revoked),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        requests=row.requests,
    )


def _state_stamp(new_state: Any, ts: float) -> tuple[Any, Any]:
    """``state_changed_at = ts`` when the state moves. Put it before ``state`` in ordered_values(): MySQL
    evaluates SET assignments left to right, so a later position would compare against the new state."""
    return (AccountRow.state_changed_at, case((AccountRow.state != new_state, ts), else_=AccountRow.state_changed_at))


_PATCH_FIELDS = (
    "tier",
    "state",
    "state_reason",
    "user_id",
    "cooldown_until",
    "failure_count",
    "tags",
    "note",
)


class SqlStore:
    """``Store`` on SQLAlchemy: ``sqlite+aiosqlite:///path`` or ``mysql+asyncmy://user:pass@host/db``."""

    def __init__(self, url: str | URL, *, timeout: float | None = None) -> None:
        """``timeout``: seconds a MySQL connect or answer may take before the call fails (None = no limit)."""
        self.url = normalize_url(url)
        self.kind = "sqlite" if self.url.get_backend_name() == "sqlite" else "mysql"
        self.timeout = timeout
        self._engine: AsyncEngine | None = None
        self._pruned_at = 0.0
        self._raw: sqlite3.Connection | None = None  # the hot path's own connection (SQLite only)
        self._sync_thread: ThreadPoolExecutor | None = None
        self._inline: sqlite3.Connection | None = None  # the event loop's own connection (SQLite file only)
        self._inline_commits = 0
        self._checkpoint: asyncio.Future[None] | None = None
        self.trace: Callable[[str], None] | None = None  # tests: sees every hot-path statement

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("SqlStore.open() has not been called")
        return self._engine

    async def open(self) -> None:
        from .migrate import upgrade_to_head

        if self._engine is None:
            self._engine = make_engine(self.url, self.timeout)
        if self.kind == "sqlite" or self.timeout is None:
            await upgrade_to_head(self._engine)
            return
        # A migration, or the wait for another instance's, may take longer than one answer is allowed to.
        migrating = make_engine(self.url)
        try:
            await upgrade_to_head(migrating)
        finally:
            await migrating.dispose()

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        if self._inline is not None:
            inline, self._inline = self._inline, None
            inline.close()
        if self._raw is not None:
            raw, self._raw = self._raw, None
            await asyncio.get_running_loop().run_in_executor(self._sqlite_thread(), raw.close)
        if self._sync_thread is not None:
            self._sync_thread.shutdown(wait=False)
            self._sync_thread = None

    async def _hot(self, steps: list[tuple[str, dict[str, Any]]], *, gated: bool = True) -> list[int]:
        """Run per-request statements in one transaction and return their row counts. ``gated``: the
        statements after the first run only when the first matched its row.

        On SQLite they run right here on the event loop's own sqlite3 connection: such a transaction
        takes tens of microseconds (WAL, no fsync per commit), a hop to a thread and back costs more.
        When another connection holds the write lock (another worker, an admin write), the loop never
        waits: the same transaction goes to one dedicated thread, whose connection waits in SQLite's
        busy handler and where writes queue in order. On MySQL they run on the async engine."""
        if self.trace is not None:
            for sql, _ in steps:
                self.trace(sql)
        if self.kind == "sqlite":
            inline = self._inline_conn()
            if inline is not None:
                try:
                    done = self._sqlite_write(steps, gated, inline)
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # the primary code
                        raise
                else:
                    self._after_inline_commit()
                    return done
            return await asyncio.get_running_loop().run_in_executor(
                self._sqlite_thread(), self._sqlite_write, steps, gated
            )
        counts: list[int] = []
        async with self.engine.begin() as conn:
            for sql, params in steps:
                if gated and counts and counts[0] != 1:
                    break
                counts.append((await conn.execute(_text(sql), params)).rowcount)
        return counts

    async def _hot_query(self, *sqls: str) -> list[list[tuple[Any, ...]]]:
        """Run read statements in one transaction (one consistent snapshot); their rows, in order."""
        if self.kind == "sqlite":
            return await asyncio.get_running_loop().run_in_executor(self._sqlite_thread(), self._sqlite_read, sqls)
        async with self.engine.connect() as conn:
            return [[tuple(r) for r in await conn.execute(_text(sql))] for sql in sqls]

    def _sqlite_thread(self) -> ThreadPoolExecutor:
        if self._sync_thread is None:
            self._sync_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grok2api-sqlite")
        return self._sync_thread

    def _sqlite_conn(self) -> sqlite3.Connection:
        if self._raw is None:
            path = normalize_url(self.url).database or ":memory:"
            self._raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            sqlite_pragmas(self._raw, None)
        return self._raw

    def _inline_conn(self) -> sqlite3.Connection | None:
        """The loop's connection: never waits for a lock (busy_timeout 0) and never checkpoints (that
        writes and syncs the database file: ``_after_inline_commit`` has the thread do it). None for an
        in-memory database, which only one connection can see."""
        if self._inline is None:
            path = normalize_url(self.url).database or ""
            if not path or path == ":memory:" or path.startswith("file:"):
                return None
            self._inline = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            sqlite_pragmas(self._inline, None)
            self._inline.execute("PRAGMA busy_timeout=0")
            self._inline.execute("PRAGMA wal_autocheckpoint=0")
        return self._inline

    def _after_inline_commit(self) -> None:
        """Every CHECKPOINT_EVERY inline commits, a passive WAL checkpoint on the thread (as SQLite's own
        autocheckpoint would do after about as many pages), so the log stays short."""
        self._inline_commits += 1
        if self._inline_commits % CHECKPOINT_EVERY or (self._checkpoint is not None and not self._checkpoint.done()):
            return
        self._checkpoint = asyncio.get_running_loop().run_in_executor(self._sqlite_thread(), self._sqlite_checkpoint)

    def _sqlite_checkpoint(self) -> None:
        try:
            self._sqlite_conn().execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the next one will try again
            log.info("SQLite checkpoint failed: %s", exc)

    def _sqlite_write(
        self, steps: list[tuple[str, dict[str, Any]]], gated: bool, conn: sqlite3.Connection | None = None
    ) -> list[int]:
        conn = conn or self._sqlite_conn()
        if len(steps) == 1:
            # One statement is a transaction of its own (autocommit), and a write statement takes the write
            # lock before it reads, as BEGIN IMMEDIATE does: the same locking, two calls fewer.
            sql, params = steps[0]
            return [conn.execute(sql, params).rowcount]
        conn.execute("BEGIN IMMEDIATE")
        counts: list[int] = []
        try:
            for sql, params in steps:
                if gated and counts and counts[0] != 1:
                    break
                counts.append(conn.execute(sql, params).rowcount)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return counts

    def _sqlite_read(self, sqls: Sequence[str]) -> list[list[tuple[Any, ...]]]:
        conn = self._sqlite_conn()
        if len(sqls) == 1:
            return [list(conn.execute(sqls[0]))]
        conn.execute("BEGIN")
        try:
            return [list(conn.execute(sql)) for sql in sqls]
        finally:
            conn.execute("COMMIT")

    # helpers

    async def _bump(self, conn: AsyncConnection, name: str, *where: ColumnElement[bool]) -> None:
        await conn.execute(update(MetaRow).where(MetaRow.name == name, *where).values(value=MetaRow.value + 1))

    def _upsert(
        self, model: type[Base], keys: Sequence[str], columns: Sequence[str], add: Sequence[str] = ()
    ) -> Insert:
        """INSERT that overwrites ``columns`` (or adds to ``add``) when the primary key exists."""
        table = table_of(model)
        if self.kind == "mysql":
            my = mysql_insert(table)
            return my.on_duplicate_key_update(
                {c: table.c[c] + my.inserted[c] if c in add else my.inserted[c] for c in columns if c not in keys}
            )
        lite = sqlite_insert(table)
        return lite.on_conflict_do_update(
            index_elements=list(keys),
            set_={c: table.c[c] + lite.excluded[c] if c in add else lite.excluded[c] for c in columns if c not in keys},
        )

    # versions

    async def versions(self) -> Versions:
        (rows,) = await self._hot_query(VERSIONS_SQL)
        found = {name: int(value) for name, value in rows}
        return Versions(accounts=found.get(ACCOUNTS_VERSION, 0), settings=found.get(SETTINGS_VERSION, 0))

    async def schema_state(self) -> SchemaState:
        from .migrate import head_revision

        (rows,) = await self._hot_query("SELECT version_num FROM alembic_version")
        return SchemaState(current=",".join(str(r[0]) for r in rows), expected=head_revision())

    # accounts

    async def list_accounts(self) -> list[Account]:
        # Every worker reloads the whole pool when any account changes state: with thousands of
        # accounts these plain queries (and tuple rows) are several times faster than the ORM-style path.
        # Windows come from one more query, grouped here, never one query per account.
        rows, quota_rows = await self._hot_query(_LIST_ACCOUNTS_SQL, QUOTAS_SQL)
        windows = _windows(quota_rows)
        return [_account(row, windows.get(row[0])) for row in rows]

    async def get_account(self, token: str) -> Account | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(*_ACCOUNT_COLUMNS).where(AccountRow.token_hash == token_hash(token)))
            ).first()
            if row is None:
                return None
            quota_rows = await conn.execute(
                select(AccountQuotaRow.account_id, AccountQuotaRow.mode, *_QUOTA_COLUMNS)
                .where(AccountQuotaRow.account_id == row.id)
                .order_by(AccountQuotaRow.mode)
            )
            windows = _windows(quota_rows)
        return _account(row, windows.get(row.id))

    async def add_accounts(self, items: Sequence[NewAccount]) -> AddResult:
        wanted: dict[str, NewAccount] = {}
        for item in items:
            wanted[token_hash(item.token)] = item  # a repeated token: its last entry wins
        if not wanted:
            return AddResult()
        ts = now()
        async with self.engine.begin() as conn:
            # Write first: this takes SQLite's write lock before the read below (a read-then-write
            # transaction fails with SQLITE_BUSY when another writer got in between) and, on MySQL, locks
            # the meta row so concurrent imports of the same token serialize instead of hitting the
            # unique key.
            await self._bump(conn, ACCOUNTS_VERSION)
            hashes = list(wanted)
            existing: set[str] = set()
            for chunk in _chunks(hashes):
                existing.update(
                    (await conn.scalars(select(AccountRow.token_hash).where(AccountRow.token_hash.in_(chunk)))).all()
                )
            new_rows: list[dict[str, Any]] = []
            # Existing tokens get different field sets; group them so each shape is one executemany.
            updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for h in hashes:
                item = wanted[h]
                if h not in existing:
                    new_rows.append(self._new_account_row(h, item, ts))
                    continue
                values: dict[str, Any] = {"tier": item.tier}
                if item.tags is not None:
                    values["tags"] = _json(item.tags)
                if item.note is not None:
                    values["note"] = item.note
                if item.state is not None:
                    values["state"] = item.state
                if item.state_reason is not None:
                    values["state_reason"] = item.state_reason[:REASON_LEN]
                if item.user_id is not None:
                    values["user_id"] = item.user_id
                updates.setdefault(tuple(values), []).append({"b_hash": h, **{f"b_{k}": v for k, v in values.items()}})
            if new_rows:
                await conn.execute(insert(AccountRow), new_rows)
                await self._seed_windows(conn, [h for h in hashes if h not in existing and wanted[h].quotas], wanted)
            for shape, params in updates.items():
                sets: list[tuple[Any, Any]] = []
                if "state" in shape:
                    sets.append(_state_stamp(bindparam("b_state"), ts))
                sets += [(getattr(AccountRow, k), bindparam(f"b_{k}")) for k in shape]
                await conn.execute(
                    update(AccountRow).where(AccountRow.token_hash == bindparam("b_hash")).ordered_values(*sets), params
                )
        return AddResult(added=len(new_rows), updated=sum(len(p) for p in updates.values()))

    async def _seed_windows(self, conn: AsyncConnection, hashes: list[str], wanted: dict[str, NewAccount]) -> None:
        """Write the given windows of accounts just inserted (their ids are only known now)."""
        rows: list[dict[str, Any]] = []
        for chunk in _chunks(hashes):
            found = await conn.execute(
                select(AccountRow.id, AccountRow.token_hash).where(AccountRow.token_hash.in_(chunk))
            )
            for account_id, h in found:
                rows += _quota_rows(account_id, wanted[h].quotas or {})
        if rows:
            await conn.execute(insert(AccountQuotaRow), rows)

    @staticmethod
    def _new_account_row(h: str, item: NewAccount, ts: float) -> dict[str, Any]:
        return {
            "token_hash": h,
            "token": item.token,
            "tier": item.tier,
            "state": item.state or AccountState.ACTIVE,
            "state_reason": (item.state_reason or "")[:REASON_LEN],
            "state_changed_at": ts if item.state else None,
            "user_id": item.user_id or "",
            "cooldown_until": None,
            "failure_count": 0,
            "last_failure": "",
            "last_failure_at": None,
            "tags": _json(item.tags or []),
            "note": item.note or "",
            "created_at": item.created_at if item.created_at is not None else ts,
            "last_used_at": None,
            "requests_ok": 0,
            "requests_failed": 0,
        }

    async def remove_accounts(self, tokens: Sequence[str]) -> int:
        hashes = list({token_hash(t) for t in tokens})
        removed = 0
        async with self.engine.begin() as conn:
            for chunk in _chunks(hashes):
                # Their windows go with them (ON DELETE CASCADE).
                removed += (await conn.execute(delete(AccountRow).where(AccountRow.token_hash.in_(chunk)))).rowcount
            if removed:
                await self._bump(conn, ACCOUNTS_VERSION)
        return removed

    async def update_account(self, token: str, patch: AccountPatch) -> bool:
        return await self.update_accounts([token], patch) == 1

    async def update_accounts(self, tokens: Sequence[str], patch: AccountPatch) -> int:
        given = {f: getattr(patch, f) for f in _PATCH_FIELDS if getattr(patch, f) is not msgspec.UNSET}
        quotas = patch.quotas if isinstance(patch.quotas, dict) else {}
        hashes = list(dict.fromkeys(token_hash(t) for t in tokens))
        sets: list[tuple[Any, Any]] = []
        if "state" in given:
            sets.append(_state_stamp(given["state"], now()))
        for name, value in given.items():
            if name == "tags":
                value = _json(value)
            elif name == "state_reason":
                value = value[:REASON_LEN]
            sets.append((getattr(AccountRow, name), value))
        found = 0
        async with self.engine.begin() as conn:
            for chunk in _chunks(hashes):
                where = AccountRow.token_hash.in_(chunk)
                # ``accounts`` before ``account_quotas``: the lock order of every hot-path statement.
                if sets:
                    # Matched rows (asyncmy sets CLIENT.FOUND_ROWS), so an unchanged account still counts.
                    found += (await conn.execute(update(AccountRow).where(where).ordered_values(*sets))).rowcount
                if quotas:
                    ids = (await conn.scalars(select(AccountRow.id).where(where))).all()
                    rows = [r for account_id in ids for r in _quota_rows(account_id, quotas)]
                    if rows:  # each given window replaced whole
                        await conn.execute(
                            self._upsert(AccountQuotaRow, _QUOTA_KEYS, [*_QUOTA_KEYS, *QUOTA_FIELDS]), rows
                        )
                    found += 0 if sets else len(ids)
                elif not sets:
                    found += int(await conn.scalar(select(func.count()).where(where)) or 0)
            if found and (sets or quotas):
                await self._bump(conn, ACCOUNTS_VERSION)
        return found

    async def reserve(self, account_id: int, mode: str) -> bool:
        # One guarded statement: the row lock (MySQL) or write lock (SQLite) makes check and take atomic.
        params = {"id": account_id, "mode": mode, "now": now()}
        if (await self._hot([(RESERVE_SQL, params)]))[0] == 1:
            return True
        # No row matched: the account is not active, the window is empty, or this mode has no row yet. Only
        # the last needs more, once per (account, mode): record the unknown window, then the same guarded
        # take decides (it also covers a concurrent first reservation or settlement of the same window).
        counts = await self._hot([(FIRST_WINDOW_SQL[self.kind], params), (RESERVE_SQL, params)], gated=False)
        return counts[-1] == 1

    async def settle(self, account_id: int, settlement: Settlement) -> None:
        """Apply a settlement in one transaction, one statement per table: ``accounts``, the mode's window,
        then the version counter when the state may have moved."""
        ts = now()
        steps, may_change = settle_steps(self.kind, account_id, settlement, ts)
        if may_change:
            # Bump only if the state really moved: this settle stamped state_changed_at with ``ts``.
            steps.append((BUMP_IF_CHANGED_SQL, {"id": account_id, "ts": ts}))
        await self._hot(steps)

    # settings

    async def load_settings(self) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(SettingRow.name, SettingRow.value))).all()
        return {name: msgspec.json.decode(value) for name, value in rows}

    async def save_settings(self, values: dict[str, Any]) -> None:
        rows = [{"name": k, "value": _json(v)} for k, v in values.items()]
        async with self.engine.begin() as conn:
            if rows:
                await conn.execute(self._upsert(SettingRow, ["name"], ["name", "value"]), rows)
            await self._bump(conn, SETTINGS_VERSION)

    # admin sessions

    async def put_session(self, session: AdminSession) -> None:
        row = msgspec.structs.asdict(session)
        async with self.engine.begin() as conn:
            # Housekeeping on login: expired sessions are never read again.
            await conn.execute(delete(AdminSessionRow).where(AdminSessionRow.expires_at <= now()))
            await conn.execute(self._upsert(AdminSessionRow, ["id_hash"], list(row)), [row])

    async def get_session(self, id_hash: str) -> AdminSession | None:
        t = table_of(AdminSessionRow)
        stmt = select(t).where(t.c.id_hash == id_hash, t.c.expires_at > now())
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else AdminSession(**row._asdict())

    async def delete_session(self, id_hash: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(AdminSessionRow).where(AdminSessionRow.id_hash == id_hash))

    async def delete_sessions(self, except_id_hash: str | None = None) -> int:
        stmt = delete(AdminSessionRow)
        if except_id_hash is not None:
            stmt = stmt.where(AdminSessionRow.id_hash != except_id_hash)
        async with self.engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount

    # client API keys

    async def put_client_key(self, key: ClientKey) -> None:
        row = msgspec.structs.asdict(key)
        row["models"] = _json(key.models)
        async with self.engine.begin() as conn:
            await conn.execute(self._upsert(ClientKeyRow, ["id"], list(row)), [row])

    async def list_client_keys(self) -> list[ClientKey]:
        stmt = select(*_CLIENT_KEY_COLUMNS).order_by(ClientKeyRow.created_at, ClientKeyRow.id)
        async with self.engine.connect() as conn:
            return [_client_key(r) for r in await conn.execute(stmt)]

    async def revoke_client_key(self, key_id: str) -> bool:
        stmt = update(ClientKeyRow).where(ClientKeyRow.id == key_id).values(revoked=True)
        async with self.engine.begin() as conn:
            # Matched rows on both backends (asyncmy sets FOUND_ROWS), so an already revoked key counts.
            return (await conn.execute(stmt)).rowcount == 1

    async def touch_client_keys(self, uses: dict[str, int], at: float) -> None:
        params = [{"b_id": k, "b_n": n, "b_at": at} for k, n in uses.items() if n]
        if not params:
            return
        stmt = (
            update(ClientKeyRow)
            .where(ClientKeyRow.id == bindparam("b_id"))
            .values(requests=ClientKeyRow.requests + bindparam("b_n"), last_used_at=bindparam("b_at"))
        )
        async with self.engine.begin() as conn:
            await conn.execute(stmt, params)

    # rate windows

    async def hit_window(self, name: str, window_seconds: float, limit: int) -> float:
        ts = now()
        params = {"name": name, "now": ts, "ends": ts + window_seconds}
        prune = ts - self._pruned_at > PRUNE_EVERY
        if prune:
            self._pruned_at = ts
        if self.kind == "sqlite":
            hits, ends_at = await asyncio.get_running_loop().run_in_executor(
                self._sqlite_thread(), self._sqlite_hit, params, prune
            )
        else:
            if prune:
                await self._prune_windows(params)
            hits, ends_at = await self._mysql_hit(params, limit)
        # Another process may have opened the window a moment after this one read the clock: never past it.
        return min(window_seconds, max(0.001, ends_at - ts)) if hits > limit else 0.0

    async def _prune_windows(self, params: dict[str, Any]) -> None:
        """Remove ended windows (best effort: a window left over is reset by its next hit anyway)."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(_text(PRUNE_WINDOWS_SQL), params)
        except OperationalError:
            self._pruned_at = 0.0  # try again with the next hit

    async def _mysql_hit(self, params: dict[str, Any], limit: int) -> tuple[int, float]:
        for attempt in range(_DEADLOCK_RETRIES):
            try:
                async with self.engine.begin() as conn:
                    # The new count comes back as the statement's insert id (LAST_INSERT_ID(expr)): one round trip.
                    hits = int((await conn.execute(_text(HIT_WINDOW_SQL["mysql"]), params)).lastrowid)
                    if hits <= limit:
                        return hits, 0.0
                    # Only a refused hit reads when its window ends.
                    return hits, float((await conn.execute(_text(WINDOW_END_SQL), params)).scalar_one())
            except OperationalError as exc:
                # InnoDB may pick one of several first hits on a new row as a deadlock victim: nothing was
                # counted for it, so it simply goes again.
                if _mysql_errno(exc) != MYSQL_DEADLOCK or attempt == _DEADLOCK_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _sqlite_hit(self, params: dict[str, Any], prune: bool) -> tuple[int, float]:
        conn = self._sqlite_conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if prune:
                conn.execute(PRUNE_WINDOWS_SQL, params)
            conn.execute(HIT_WINDOW_SQL["sqlite"], params)
            hits, ends_at = conn.execute("SELECT hits, ends_at FROM rate_windows WHERE name = :name", params).fetchone()
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return int(hits), float(ends_at)

    async def clear_window(self, name: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(RateWindowRow).where(RateWindowRow.name == name))

    # media index

    async def put_media(self, entry: MediaEntry) -> None:
        row = msgspec.structs.asdict(entry)
        async with self.engine.begin() as conn:
            await conn.execute(self._upsert(MediaRow, ["name"], list(row)), [row])

    async def get_media(self, name: str) -> MediaEntry | None:
        t = table_of(MediaRow)
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t).where(t.c.name == name))).first()
        return None if row is None else MediaEntry(**row._asdict())

    # egresses

    async def list_egresses(self) -> list[EgressState]:
        t = table_of(EgressRow)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t).order_by(t.c.key))).all()
        out: list[EgressState] = []
        for row in rows:
            values = row._asdict()
            values["cookies"] = msgspec.json.decode(values["cookies"] or "{}")
            out.append(EgressState(**values))
        return out

    async def save_egress_clearance(
        self, key: str, cookies: dict[str, str], user_agent: str, source: str, at: float
    ) -> None:
        row = {
            "key": key,
            "cookies": _json(cookies),
            "user_agent": user_agent[:512],
            "clearance_source": source if cookies else "",
            "clearance_at": at if cookies else None,
            "challenged_at": None,
            "evidence": "",
            "updated_at": at,
        }
        async with self.engine.begin() as conn:
            await conn.execute(self._upsert(EgressRow, ["key"], list(row)), [row])

    async def mark_egress(self, key: str, challenged_at: float | None, evidence: str = "") -> None:
        ts = now()
        row = {
            "key": key,
            "cookies": "{}",
            "user_agent": "",
            "clearance_source": "",
            "clearance_at": None,
            "challenged_at": challenged_at,
            "evidence": evidence[:REASON_LEN] if challenged_at is not None else "",
            "updated_at": ts,
        }
        async with self.engine.begin() as conn:
            # A new egress gets the whole row; a known one only its mark (its clearance stays).
            mark = ["key", "challenged_at", "evidence", "updated_at"]
            await conn.execute(self._upsert(EgressRow, ["key"], mark), [row])

    async def merge_egress_cookies(self, key: str, cookies: dict[str, str], at: float) -> None:
        if not cookies:
            return
        t = table_of(EgressRow)
        row = {
            "key": key,
            "cookies": "{}",
            "user_agent": "",
            "clearance_source": "",
            "clearance_at": None,
            "challenged_at": None,
            "evidence": "",
            "updated_at": at,
        }
        # JSON_SET (MariaDB/MySQL and SQLite alike) changes only these names, in the row, so a clearance another
        # worker stored meanwhile is not overwritten with an older one.
        changes: list[Any] = []
        for name, value in cookies.items():
            changes += [f'$."{name}"', value]
        async with self.engine.begin() as conn:
            await conn.execute(self._upsert(EgressRow, ["key"], ["key", "updated_at"]), [row])
            await conn.execute(
                update(t)
                .where(t.c.key == key)
                .values(cookies=func.json_set(func.coalesce(func.nullif(t.c.cookies, ""), "{}"), *changes))
            )

    # usage counters

    async def add_usage(self, rows: Sequence[UsageRow]) -> None:
        buckets: dict[tuple[int, str, str, str], int] = {}
        for r in rows:
            key = (r.hour, r.model, r.outcome, r.key_id)
            buckets[key] = buckets.get(key, 0) + r.count
        params = [{"hour": h, "model": m, "outcome": o, "key_id": k, "count": n} for (h, m, o, k), n in buckets.items()]
        if not params:
            return
        keys = ["hour", "model", "outcome", "key_id"]
        async with self.engine.begin() as conn:
            await conn.execute(self._upsert(UsageCountRow, keys, [*keys, "count"], add=["count"]), params)

    async def usage_since(self, hour: int) -> list[UsageRow]:
        t = table_of(UsageCountRow)
        stmt = select(t).where(t.c.hour >= hour).order_by(t.c.hour, t.c.model, t.c.outcome, t.c.key_id)
        async with self.engine.connect() as conn:
            return [UsageRow(**r._asdict()) for r in await conn.execute(stmt)]

    # video jobs (rare next to chats: plain transactions on the engine, never the hot path)

    async def create_video_job(self, job: VideoJob, image: VideoImage | None = None) -> tuple[VideoJob, bool]:
        row = msgspec.structs.asdict(job)
        row["idempotency_key"] = job.idempotency_key or None
        row["error_message"] = job.error_message[:REASON_LEN]
        row.update(image_name=None, image_mime=None, image_b64=None)
        if image is not None:
            row.update(image_name=image.file_name, image_mime=image.mime, image_b64=image.b64)
        if job.idempotency_key and (found := await self._video_by_idempotency(job)) is not None:
            return found, False
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(VideoJobRow), [row])
        except IntegrityError:
            # The same key at the same moment: the unique constraint let only the other request in.
            found = await self._video_by_idempotency(job) if job.idempotency_key else None
            if found is None:
                raise
            return found, False
        return job, True

    async def _video_by_idempotency(self, job: VideoJob) -> VideoJob | None:
        t = _VIDEOS
        stmt = select(*_VIDEO_COLUMNS).where(t.c.key_id == job.key_id, t.c.idempotency_key == job.idempotency_key)
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _video_job(row)

    async def get_video_job(self, job_id: str) -> VideoJob | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(*_VIDEO_COLUMNS).where(_VIDEOS.c.id == job_id))).first()
        return None if row is None else _video_job(row)

    async def get_video_image(self, job_id: str) -> VideoImage | None:
        t = _VIDEOS
        stmt = select(t.c.image_name, t.c.image_mime, t.c.image_b64).where(t.c.id == job_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None or row.image_b64 is None:
            return None
        return VideoImage(file_name=row.image_name or "image", mime=row.image_mime or "", b64=row.image_b64)

    async def list_video_jobs(
        self, key_id: str, *, after: str = "", limit: int = 20, descending: bool = True
    ) -> tuple[list[VideoJob], bool]:
        t = _VIDEOS
        stmt = select(*_VIDEO_COLUMNS).where(t.c.key_id == key_id)
        if after:
            stmt = stmt.where(t.c.id < after if descending else t.c.id > after)
        stmt = stmt.order_by(t.c.id.desc() if descending else t.c.id.asc()).limit(limit + 1)
        async with self.engine.connect() as conn:
            jobs = [_video_job(r) for r in await conn.execute(stmt)]
        return jobs[:limit], len(jobs) > limit

    async def delete_video_job(self, job_id: str) -> bool:
        async with self.engine.begin() as conn:
            return (await conn.execute(delete(VideoJobRow).where(VideoJobRow.id == job_id))).rowcount == 1

    async def claim_video_job(self, owner: str, lease_until: float, now: float) -> VideoJob | None:
        t = _VIDEOS
        claimable = (t.c.status == VideoStatus.QUEUED) | (_VIDEO_IN_PROGRESS & (t.c.lease_until < now))
        # Read, then take with a guarded UPDATE in its own transaction: a read-then-write transaction fails on
        # SQLite when another writer got in between, and the guard alone decides between two claimers.
        lost: set[str] = set()
        for _ in range(3):  # a claimer that lost every race reads again, past the jobs it lost
            async with self.engine.connect() as conn:
                found = (
                    await conn.execute(select(t.c.id, t.c.attempt).where(claimable).order_by(t.c.id).limit(10))
                ).all()
            candidates = [(str(job_id), int(attempt)) for job_id, attempt in found if job_id not in lost]
            if not candidates:
                return None
            for job_id, attempt in candidates:
                take = (
                    update(VideoJobRow)
                    .where(t.c.id == job_id, t.c.attempt == attempt, claimable)
                    .values(
                        status=VideoStatus.IN_PROGRESS, attempt=attempt + 1, lease_owner=owner, lease_until=lease_until
                    )
                )
                async with self.engine.begin() as conn:
                    if (await conn.execute(take)).rowcount == 1:
                        # Read back in the same transaction: it sees its own write whatever another pooled
                        # connection's snapshot would show, and the row stays locked until the commit.
                        row = (await conn.execute(select(*_VIDEO_COLUMNS).where(t.c.id == job_id))).one()
                        return _video_job(row)
                lost.add(job_id)
        return None

    async def update_video_job(self, job_id: str, attempt: int, patch: VideoPatch) -> bool:
        t = _VIDEOS
        values = msgspec.structs.asdict(patch)
        values = {k: v for k, v in values.items() if v is not msgspec.UNSET}
        if "error_message" in values:
            values["error_message"] = values["error_message"][:REASON_LEN]
        if values.get("status") in _VIDEO_ENDS:  # no lease any more, and the input image is not needed again
            values.update(lease_until=None, image_name=None, image_mime=None, image_b64=None)
        if not values:
            return await self._holds(job_id, attempt)
        stmt = update(VideoJobRow).where(t.c.id == job_id, t.c.attempt == attempt, _VIDEO_IN_PROGRESS).values(**values)
        async with self.engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def _holds(self, job_id: str, attempt: int) -> bool:
        t = _VIDEOS
        stmt = select(t.c.id).where(t.c.id == job_id, t.c.attempt == attempt, _VIDEO_IN_PROGRESS)
        async with self.engine.connect() as conn:
            return await conn.scalar(stmt) is not None

    async def charge_video_job(self, job_id: str, attempt: int, account_id: int, mode: str) -> Charge:
        t = _VIDEOS
        held = (t.c.id == job_id, t.c.attempt == attempt, _VIDEO_IN_PROGRESS)
        record = (
            update(VideoJobRow)
            .where(*held, t.c.account_id.is_(None))
            .values(account_id=account_id, upstream_accepted=False)
        )
        params = {"id": account_id, "mode": mode, "now": now()}
        try:
            # One transaction, the job's row first: the charge and the query it stands for commit together or not.
            async with self.engine.begin() as conn:
                if (await conn.execute(record)).rowcount != 1:
                    charged = await conn.scalar(select(t.c.account_id).where(*held))
                    return Charge.TAKEN if charged == account_id else Charge.LOST
                if (await conn.execute(_text(RESERVE_SQL), params)).rowcount != 1:
                    await conn.execute(_text(FIRST_WINDOW_SQL[self.kind]), params)
                    if (await conn.execute(_text(RESERVE_SQL), params)).rowcount != 1:
                        raise _NoQuota
        except _NoQuota:
            return Charge.NO_QUOTA
        return Charge.TAKEN

    async def release_video_charge(self, job_id: str, attempt: int, account_id: int, mode: str, refund: bool) -> bool:
        t = _VIDEOS
        forget = (
            update(VideoJobRow)
            .where(t.c.id == job_id, t.c.attempt == attempt, _VIDEO_IN_PROGRESS, t.c.account_id == account_id)
            .values(account_id=None, upstream_accepted=False)
        )
        async with self.engine.begin() as conn:
            if (await conn.execute(forget)).rowcount != 1:
                return False
            if refund:  # an unknown window stays unknown (NULL + 1)
                await conn.execute(_text(_REFUND_SQL), {"id": account_id, "mode": mode})
        return True

    # stored responses

    async def put_response(self, response_id: str, key_id: str, body: bytes, expires_at: float) -> None:
        row = {"id": response_id, "key_id": key_id, "body": body, "expires_at": expires_at}
        async with self.engine.begin() as conn:
            await conn.execute(self._upsert(StoredResponseRow, ["id"], list(row)), [row])

    async def get_response(self, response_id: str, key_id: str) -> bytes | None:
        t = _RESPONSES
        stmt = select(t.c.body).where(t.c.id == response_id, t.c.key_id == key_id, t.c.expires_at > now())
        async with self.engine.connect() as conn:
            body = (await conn.execute(stmt)).scalar()
        return None if body is None else bytes(body)

    async def delete_response(self, response_id: str, key_id: str) -> bool:
        t = _RESPONSES
        stmt = delete(t).where(t.c.id == response_id, t.c.key_id == key_id, t.c.expires_at > now())
        async with self.engine.begin() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def purge_responses(self, before: float) -> int:
        async with self.engine.begin() as conn:
            return (await conn.execute(delete(_RESPONSES).where(_RESPONSES.c.expires_at < before))).rowcount
