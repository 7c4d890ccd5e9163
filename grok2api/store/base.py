"""The storage contract shared by the SQL (SQLite, MySQL) and Redis backends.

Every backend passes the same test suite (tests/test_store.py). Times are epoch seconds (float).

Quota is a window per (account, mode), where a mode is grok.com's model id (``fast``, ``auto``,
``expert``, ``heavy``, …) and every request costs one query of its mode. ``None`` means "unknown"
(never learned from grok.com): an unknown window may be reserved, and is later learned from the
rate-limits endpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Protocol

import msgspec


class AccountState(StrEnum):
    ACTIVE = "active"
    COOLING = "cooling"  # until ``cooldown_until``
    INVALID = "invalid"  # credentials rejected
    BLOCKED = "blocked"  # banned by grok.com
    DISABLED = "disabled"  # switched off by an operator


class Tier(StrEnum):
    """Subscription tiers, lowest first: basic < super < heavy."""

    BASIC = "basic"
    SUPER = "super"
    HEAVY = "heavy"


FAST_MODE = "fast"  # the mode the 2025 ``remaining`` counter became
HEAVY_MODE = "heavy"  # the mode the 2025 ``heavy_remaining`` counter became


class ModeQuota(msgspec.Struct, kw_only=True):
    """One (account, mode) window as grok.com's rate-limits endpoint reports it. A window whose four
    values are all unknown is the same as no window: accounts leave it out of ``quotas``."""

    remaining: int | None = None  # None = unknown (never learned): may be reserved
    total: int | None = None  # totalQueries (0 = the mode is not available to this account)
    window_seconds: int | None = None  # windowSizeSeconds
    reset_at: float | None = None  # epoch seconds when the window resets (from waitTimeSeconds)


class Account(msgspec.Struct, kw_only=True):
    id: int
    token: str
    tier: str = Tier.BASIC
    state: str = AccountState.ACTIVE
    state_reason: str = ""
    state_changed_at: float | None = None
    user_id: str = ""  # grok.com's userId (from /api/auth/session); "" = not known yet
    cooldown_until: float | None = None
    failure_count: int = 0  # consecutive failures that count towards ``invalid``
    last_failure: str = ""
    last_failure_at: float | None = None
    tags: list[str] = msgspec.field(default_factory=list)
    note: str = ""
    created_at: float = 0.0
    last_used_at: float | None = None
    requests_ok: int = 0
    requests_failed: int = 0
    quotas: dict[str, ModeQuota] = msgspec.field(default_factory=dict)  # mode -> window

    # Read-only views of the 2025 counters, for consumers that only display them.
    @property
    def remaining(self) -> int | None:
        q = self.quotas.get(FAST_MODE)
        return None if q is None else q.remaining

    @property
    def heavy_remaining(self) -> int | None:
        q = self.quotas.get(HEAVY_MODE)
        return None if q is None else q.remaining

    @property
    def window_reset_at(self) -> float | None:
        q = self.quotas.get(FAST_MODE)
        return None if q is None else q.reset_at


class NewAccount(msgspec.Struct, kw_only=True):
    """An account to add. Adding a token that exists keeps its history (counters, quota windows,
    ``created_at``) and only updates the fields given here (``tier`` always;
    ``tags``/``note``/``state``/``state_reason``/``user_id`` when not None). ``quotas`` seeds a new
    account's windows."""

    token: str
    tier: str = Tier.BASIC
    tags: list[str] | None = None
    note: str | None = None
    state: str | None = None
    state_reason: str | None = None
    created_at: float | None = None
    user_id: str | None = None
    quotas: dict[str, ModeQuota] | None = None


class AddResult(msgspec.Struct):
    added: int = 0
    updated: int = 0


class AccountPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Fields an operator or the pool may overwrite. UNSET fields are left alone; each mode given in
    ``quotas`` has its window replaced whole, other modes are untouched."""

    tier: str | msgspec.UnsetType = msgspec.UNSET
    state: str | msgspec.UnsetType = msgspec.UNSET
    state_reason: str | msgspec.UnsetType = msgspec.UNSET
    user_id: str | msgspec.UnsetType = msgspec.UNSET
    quotas: dict[str, ModeQuota] | msgspec.UnsetType = msgspec.UNSET
    cooldown_until: float | None | msgspec.UnsetType = msgspec.UNSET
    failure_count: int | msgspec.UnsetType = msgspec.UNSET
    tags: list[str] | msgspec.UnsetType = msgspec.UNSET
    note: str | msgspec.UnsetType = msgspec.UNSET


class Settlement(msgspec.Struct, kw_only=True):
    """What one finished (or failed) upstream call means for its account, written in one round trip.
    Every settle of an existing account stamps ``last_used_at``.

    - ``mode``: the mode the request used; ``refund`` and ``learned`` apply to its window ("" = none).
    - ``refund``: queries given back to that window's ``remaining`` (the upstream did not charge;
      negative charges more); an unknown window stays unknown.
    - ``ok``: a success: consecutive failures reset, ``requests_ok`` += 1.
    - ``failure``: a human reason: ``requests_failed`` += 1, ``last_failure``/``last_failure_at`` set;
      if ``counts_towards_invalid`` the consecutive ``failure_count`` += 1, and when it reaches
      ``invalid_after`` the state becomes ``invalid`` with ``failure`` as reason.
    - ``state``/``state_reason``/``cooldown_until``: an explicit state change (cooling, blocked...).
    - ``learned``: the window grok.com reported for ``mode``, applied after the refund: it replaces
      the window whole. With ``learned_cap`` its ``remaining`` only lowers a known count (or fills an
      unknown one), and ``total``/``window_seconds``/``reset_at`` are set only when not None: a
      background reconciliation must not hand back quota that requests in flight already took.
    """

    mode: str = ""
    refund: int = 0
    ok: bool = False
    failure: str | None = None
    counts_towards_invalid: bool = False
    invalid_after: int = 3
    state: str | None = None
    state_reason: str = ""
    cooldown_until: float | None = None
    learned: ModeQuota | msgspec.UnsetType = msgspec.UNSET
    learned_cap: bool = False


class Versions(msgspec.Struct):
    """Cheap change counters polled by every worker to invalidate in-memory snapshots.
    ``accounts`` is bumped by adds, removals, patches and state changes (not by plain quota moves)."""

    accounts: int = 0
    settings: int = 0


class ClientKey(msgspec.Struct, kw_only=True):
    """A client API key. Only the SHA-256 hex digest of the secret is stored."""

    id: str
    name: str
    key_hash: str
    prefix: str  # first characters of the key, for display
    models: list[str] = msgspec.field(default_factory=list)  # empty = every model
    rpm: int = 0  # requests per minute, 0 = unlimited
    expires_at: float | None = None
    revoked: bool = False
    created_at: float = 0.0
    last_used_at: float | None = None
    requests: int = 0


class AdminSession(msgspec.Struct, kw_only=True):
    """An admin login. ``id_hash`` is the SHA-256 of the cookie/bearer value."""

    id_hash: str
    username: str
    csrf: str
    created_at: float
    expires_at: float


class MediaEntry(msgspec.Struct, kw_only=True):
    """Maps a public media name (``/images/{name}``) to its upstream asset and owning account."""

    name: str
    kind: str  # "image" | "video"
    upstream_path: str
    account_token: str
    created_at: float = 0.0


class UsageRow(msgspec.Struct, kw_only=True):
    """Requests aggregated per hour (``hour`` = epoch seconds // 3600 * 3600)."""

    hour: int
    model: str
    outcome: str  # "ok" | "error"
    key_id: str = ""
    count: int = 0


class EgressState(msgspec.Struct, kw_only=True):
    """What every worker and replica shares about one egress (a proxy, or the direct connection), by ``key``:
    the Cloudflare cookies issued to it with the User-Agent they were issued with, and its last challenge
    (``challenged_at`` None = none since its clearance or its last call that went through)."""

    key: str
    cookies: dict[str, str] = msgspec.field(default_factory=dict)
    user_agent: str = ""
    clearance_source: str = ""  # "operator" | "flaresolverr" | "" (none)
    clearance_at: float | None = None
    challenged_at: float | None = None
    evidence: str = ""  # what the challenge looked like
    updated_at: float = 0.0


class VideoStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"


class VideoJob(msgspec.Struct, kw_only=True):
    """A video made in the background (OpenAI's Videos API). Any worker or replica answers for it and any
    runner may claim it.

    Ids are time-ordered (``video_`` + 12 hex digits of milliseconds + random), so id order is creation order.
    Running it: every claim takes a lease (``lease_owner`` until ``lease_until``) and increments ``attempt``;
    each write of the runner names the attempt it holds and is refused once another claim took over.
    ``account_id`` is the account charged for the job, one query of the model's mode, at most once for the
    whole job (a later attempt reuses it); ``upstream_accepted`` records that grok.com took the call.
    """

    id: str
    key_id: str = ""  # the client key that made it ("" = the shared api_key, or an open gateway)
    idempotency_key: str = ""  # a digest of the client's Idempotency-Key ("" = none)
    model: str
    prompt: str
    seconds: int  # grok.com's duration
    size: str  # as reported to the client, e.g. "720x1280"
    aspect_ratio: str
    resolution: str
    status: str = VideoStatus.QUEUED
    progress: int = 0
    created_at: float
    completed_at: float | None = None
    error_code: str = ""
    error_message: str = ""
    media_name: str = ""  # the MP4 in the media index, once completed
    thumbnail_name: str = ""
    has_image: bool = False  # made from an input image (``video_image``)
    attempt: int = 0
    lease_owner: str = ""
    lease_until: float | None = None
    account_id: int | None = None
    upstream_accepted: bool = False


class VideoImage(msgspec.Struct, kw_only=True):
    """The input image of a video job, as it will be uploaded to grok.com."""

    file_name: str
    mime: str
    b64: str


class VideoPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What one runner write changes (UNSET fields are left alone). ``status`` completed or failed ends the job:
    its lease and its input image are gone and no later write of any attempt is taken."""

    status: str | msgspec.UnsetType = msgspec.UNSET
    progress: int | msgspec.UnsetType = msgspec.UNSET
    lease_until: float | msgspec.UnsetType = msgspec.UNSET
    completed_at: float | msgspec.UnsetType = msgspec.UNSET
    error_code: str | msgspec.UnsetType = msgspec.UNSET
    error_message: str | msgspec.UnsetType = msgspec.UNSET
    media_name: str | msgspec.UnsetType = msgspec.UNSET
    thumbnail_name: str | msgspec.UnsetType = msgspec.UNSET
    upstream_accepted: bool | msgspec.UnsetType = msgspec.UNSET


class SchemaState(msgspec.Struct):
    """Where the stored schema stands against this code's (SQL: the Alembic revision; Redis: the key layout)."""

    current: str  # what the store holds
    expected: str  # what this code migrates to

    @property
    def up_to_date(self) -> bool:
        return self.current == self.expected


class StoreUnavailable(Exception):
    """The store could not be reached (connection refused or lost, or no answer within the store timeout).
    Raised by the guarded store (``store.guard``); the edge answers 503 with ``Retry-After``."""

    def __init__(self, reason: str, retry_after: int = 5) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Charge(StrEnum):
    """The outcome of charging a video job to an account."""

    TAKEN = "taken"  # one query of the account's window is now the job's
    NO_QUOTA = "no_quota"  # the account is not active or its window is empty: nothing changed
    LOST = "lost"  # the attempt no longer holds the job (or it is charged already): nothing changed


class Store(Protocol):
    """The persistence contract. Implementations: store.sql.SqlStore, store.redis.RedisStore."""

    kind: str  # "sqlite" | "mysql" | "redis"

    async def open(self) -> None:
        """Connect and bring the schema up to date (SQL: Alembic upgrade head)."""

    async def close(self) -> None: ...

    async def versions(self) -> Versions: ...

    async def schema_state(self) -> SchemaState:
        """The stored schema against this code's (for readiness: open() migrated it; a restored backup may not be)."""

    # accounts
    async def list_accounts(self) -> list[Account]:
        """Every account in id order, with its quota windows (entirely unknown windows left out)."""

    async def get_account(self, token: str) -> Account | None: ...
    async def add_accounts(self, items: Sequence[NewAccount]) -> AddResult: ...
    async def remove_accounts(self, tokens: Sequence[str]) -> int: ...
    async def update_account(self, token: str, patch: AccountPatch) -> bool: ...
    async def update_accounts(self, tokens: Sequence[str], patch: AccountPatch) -> int:
        """Apply one patch to many accounts in as few round trips as the backend allows (operator bulk
        actions on thousands of accounts); returns how many existed."""

    async def reserve(self, account_id: int, mode: str) -> bool:
        """Atomically take one query of ``mode`` from an *active* account: True when taken or when that
        window is unknown (it stays unknown), False when the account is not active (or does not exist)
        or the window has none left."""

    async def settle(self, account_id: int, settlement: Settlement) -> None:
        """Apply a settlement atomically; a no-op for an account that does not exist. An explicit
        ``state`` wins over the ``invalid`` transition; neither overrides an operator's ``disabled``."""

    # runtime settings (a flat mapping of name -> JSON value)
    async def load_settings(self) -> dict[str, Any]: ...
    async def save_settings(self, values: dict[str, Any]) -> None:
        """Merge ``values`` into the stored settings and bump ``Versions.settings``."""

    # admin sessions
    async def put_session(self, session: AdminSession) -> None: ...
    async def get_session(self, id_hash: str) -> AdminSession | None: ...
    async def delete_session(self, id_hash: str) -> None: ...
    async def delete_sessions(self, except_id_hash: str | None = None) -> int: ...

    # client API keys
    async def put_client_key(self, key: ClientKey) -> None: ...
    async def list_client_keys(self) -> list[ClientKey]: ...
    async def revoke_client_key(self, key_id: str) -> bool: ...
    async def touch_client_keys(self, uses: dict[str, int], at: float) -> None:
        """Add request counts per key id and stamp ``last_used_at`` (flushed periodically)."""

    # rate windows (client-key rpm, admin login throttle), shared by every worker and replica
    async def hit_window(self, name: str, window_seconds: float, limit: int) -> float:
        """Count one hit on the window ``name``, atomically and in one round trip: 0.0 when it is within ``limit``,
        else the seconds until the window ends. A window opens at its first hit and lasts ``window_seconds``; the
        first hit after it ended opens the next one. Hits over the limit count too."""

    async def clear_window(self, name: str) -> None:
        """Forget the window ``name`` (its next hit opens a new one)."""

    # media index
    async def put_media(self, entry: MediaEntry) -> None: ...
    async def get_media(self, name: str) -> MediaEntry | None: ...

    # usage counters
    async def add_usage(self, rows: Sequence[UsageRow]) -> None:
        """Add ``count`` to each (hour, model, outcome, key_id) bucket."""

    async def usage_since(self, hour: int) -> list[UsageRow]: ...

    # egresses
    async def list_egresses(self) -> list[EgressState]:
        """Every egress the store knows of, in key order."""

    async def save_egress_clearance(
        self, key: str, cookies: dict[str, str], user_agent: str, source: str, at: float
    ) -> None:
        """Store the egress's clearance (an empty ``cookies`` forgets it) and clear its challenge mark; the egress
        is created when new."""

    async def mark_egress(self, key: str, challenged_at: float | None, evidence: str = "") -> None:
        """Set (or, with None, clear) the egress's challenge mark, leaving its clearance alone."""

    async def merge_egress_cookies(self, key: str, cookies: dict[str, str], at: float) -> None:
        """Set these Cloudflare cookies of the egress, in one atomic step: its other cookies, its User-Agent, the
        clearance's source and time and its mark stay as they are; the egress is created when new."""

    # video jobs
    async def create_video_job(self, job: VideoJob, image: VideoImage | None = None) -> tuple[VideoJob, bool]:
        """Store a new queued job (and its input image); (job, True). When ``job.idempotency_key`` is set and
        the same ``key_id`` already has a job under it, that job instead, (existing, False), also when both
        arrive at the same moment."""

    async def get_video_job(self, job_id: str) -> VideoJob | None: ...
    async def get_video_image(self, job_id: str) -> VideoImage | None:
        """The input image of a job made from one, until the job ends."""

    async def list_video_jobs(
        self, key_id: str, *, after: str = "", limit: int = 20, descending: bool = True
    ) -> tuple[list[VideoJob], bool]:
        """One page of ``key_id``'s jobs in id (creation) order, starting past the id ``after``; and whether
        more follow."""

    async def delete_video_job(self, job_id: str) -> bool:
        """Remove a job, its image and its idempotency key; a runner still holding it loses its next write."""

    async def claim_video_job(self, owner: str, lease_until: float, now: float) -> VideoJob | None:
        """Atomically take the oldest job that is queued, or running under a lease that expired before ``now``:
        it becomes in progress under ``owner`` until ``lease_until``, with ``attempt`` + 1. Two claimers never
        get the same job for the same attempt. None when there is nothing to run."""

    async def update_video_job(self, job_id: str, attempt: int, patch: VideoPatch) -> bool:
        """Apply ``patch`` when the job is in progress under ``attempt``; False (and nothing changed) otherwise."""

    async def charge_video_job(self, job_id: str, attempt: int, account_id: int, mode: str) -> Charge:
        """In one atomic step, reserve one query of ``mode`` on the account (as ``reserve`` does) and record it
        as the job's charge: only while ``attempt`` holds the job in progress and no charge is recorded yet.
        Charging the same account again for the same attempt is TAKEN without a second query (safe to retry)."""

    async def release_video_charge(self, job_id: str, attempt: int, account_id: int, mode: str, refund: bool) -> bool:
        """Forget the job's charge on ``account_id`` (and ``upstream_accepted``), giving the query back to a known
        window when ``refund``; only while ``attempt`` holds the job. False when nothing was released."""

    # stored responses (the Responses API's ``store``): opaque UTF-8 JSON per (id, client key), until expires_at
    async def put_response(self, response_id: str, key_id: str, body: bytes, expires_at: float) -> None:
        """Keep ``body`` (UTF-8 text) as response ``response_id`` of client key ``key_id`` until ``expires_at``;
        putting the same id again replaces it."""

    async def get_response(self, response_id: str, key_id: str) -> bytes | None:
        """The body, when the response exists, belongs to ``key_id`` and has not expired; None otherwise."""

    async def delete_response(self, response_id: str, key_id: str) -> bool:
        """Remove ``key_id``'s response; False when there was none (or it was another key's, or expired)."""

    async def purge_responses(self, before: float) -> int:
        """Remove the responses that expired before ``before`` (housekeeping); how many went. Backends whose
        entries expire by themselves may return 0."""


def now() -> float:
    import time

    return time.time()


def hour_of(ts: float) -> int:
    return int(ts // 3600 * 3600)
