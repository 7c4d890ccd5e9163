"""The SQL schema as SQLAlchemy ORM models: what Alembic compares migrations against and what the
SQL store's statements are built from (nothing else; the store itself is in ``sql.py``)."""

from __future__ import annotations

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.mysql import LONGBLOB, LONGTEXT
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .sql_statements import REASON_LEN

# Deterministic constraint names, so later migrations can drop or alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Explicit table options: the server's default charset may be latin1, and a case-insensitive collation
# would merge keys (media names, model names) that SQLite and Redis keep apart.
MYSQL_TABLE_OPTIONS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AccountRow(Base):
    __tablename__ = "accounts"
    # AUTOINCREMENT: never hand a removed account's id to a new token (workers cache ids between polls).
    __table_args__ = {"sqlite_autoincrement": True, **MYSQL_TABLE_OPTIONS}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Tokens are long; a unique index on them would exceed InnoDB's key size under utf8mb4, so the
    # lookup key is their SHA-256.
    token_hash: Mapped[str] = mapped_column(CHAR(64), unique=True)
    token: Mapped[str] = mapped_column(String(2048))
    tier: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    state_reason: Mapped[str] = mapped_column(String(REASON_LEN))
    state_changed_at: Mapped[float | None] = mapped_column(Double)
    cooldown_until: Mapped[float | None] = mapped_column(Double)
    failure_count: Mapped[int] = mapped_column(Integer)
    last_failure: Mapped[str] = mapped_column(String(REASON_LEN))
    last_failure_at: Mapped[float | None] = mapped_column(Double)
    tags: Mapped[str] = mapped_column(Text)  # JSON list
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Double)
    last_used_at: Mapped[float | None] = mapped_column(Double)
    requests_ok: Mapped[int] = mapped_column(BigInteger)
    requests_failed: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[str] = mapped_column(String(64), server_default="")


class AccountQuotaRow(Base):
    """One quota window per (account, mode); NULL = unknown. A missing row is an unknown window."""

    __tablename__ = "account_quotas"
    __table_args__ = MYSQL_TABLE_OPTIONS

    account_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    mode: Mapped[str] = mapped_column(String(64), primary_key=True)
    remaining: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int | None] = mapped_column(Integer)
    window_seconds: Mapped[int | None] = mapped_column(Integer)
    reset_at: Mapped[float | None] = mapped_column(Double)


class SettingRow(Base):
    __tablename__ = "settings"
    __table_args__ = MYSQL_TABLE_OPTIONS

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)  # JSON


class MetaRow(Base):
    __tablename__ = "meta"
    __table_args__ = MYSQL_TABLE_OPTIONS

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class AdminSessionRow(Base):
    __tablename__ = "admin_sessions"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id_hash: Mapped[str] = mapped_column(CHAR(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(255))
    csrf: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double)


class ClientKeyRow(Base):
    __tablename__ = "client_keys"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    key_hash: Mapped[str] = mapped_column(CHAR(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(32))
    models: Mapped[str] = mapped_column(Text)  # JSON list
    rpm: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float | None] = mapped_column(Double)
    revoked: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[float] = mapped_column(Double)
    last_used_at: Mapped[float | None] = mapped_column(Double)
    requests: Mapped[int] = mapped_column(BigInteger)


class MediaRow(Base):
    __tablename__ = "media"
    __table_args__ = MYSQL_TABLE_OPTIONS

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    upstream_path: Mapped[str] = mapped_column(String(2048))
    account_token: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[float] = mapped_column(Double)


class UsageCountRow(Base):
    __tablename__ = "usage"
    __table_args__ = MYSQL_TABLE_OPTIONS

    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class EgressRow(Base):
    """One egress's shared state (see store.base.EgressState); ``key`` is a digest of its proxy URL or ``direct``."""

    __tablename__ = "egresses"
    __table_args__ = MYSQL_TABLE_OPTIONS

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    cookies: Mapped[str] = mapped_column(Text)  # JSON object: Cloudflare cookie name -> value
    user_agent: Mapped[str] = mapped_column(String(512))
    clearance_source: Mapped[str] = mapped_column(String(16))
    clearance_at: Mapped[float | None] = mapped_column(Double)
    challenged_at: Mapped[float | None] = mapped_column(Double)
    evidence: Mapped[str] = mapped_column(String(REASON_LEN))
    updated_at: Mapped[float] = mapped_column(Double)


class RateWindowRow(Base):
    """One rate window (a client key's minute, a login address's throttle): hits since it opened, and when it
    ends. A row whose window ended is reset by its next hit, or pruned."""

    __tablename__ = "rate_windows"
    __table_args__ = MYSQL_TABLE_OPTIONS

    name: Mapped[str] = mapped_column(String(191), primary_key=True)
    ends_at: Mapped[float] = mapped_column(Double)
    hits: Mapped[int] = mapped_column(Integer)


class VideoJobRow(Base):
    """A video job (see store.base.VideoJob); the input image is base64 text beside it, read only to run it and
    dropped when the job ends."""

    __tablename__ = "video_jobs"
    __table_args__ = (
        # The same Idempotency-Key of the same client key is one job, even for two requests at once (NULL = none).
        UniqueConstraint("key_id", "idempotency_key", name="uq_video_jobs_key_id_idempotency_key"),
        Index("ix_video_jobs_key_id_id", "key_id", "id"),  # a client's listing
        Index("ix_video_jobs_status_lease_until", "status", "lease_until"),  # what a runner may claim
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    prompt: Mapped[str] = mapped_column(Text)
    seconds: Mapped[int] = mapped_column(Integer)
    size: Mapped[str] = mapped_column(String(32))
    aspect_ratio: Mapped[str] = mapped_column(String(16))
    resolution: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Double)
    completed_at: Mapped[float | None] = mapped_column(Double)
    error_code: Mapped[str] = mapped_column(String(64))
    error_message: Mapped[str] = mapped_column(String(REASON_LEN))
    media_name: Mapped[str] = mapped_column(String(255))
    thumbnail_name: Mapped[str] = mapped_column(String(255))
    has_image: Mapped[bool] = mapped_column(Boolean)
    attempt: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str] = mapped_column(String(128))
    lease_until: Mapped[float | None] = mapped_column(Double)
    account_id: Mapped[int | None] = mapped_column(Integer)  # no foreign key: a job outlives a removed account
    upstream_accepted: Mapped[bool] = mapped_column(Boolean)
    image_name: Mapped[str | None] = mapped_column(String(255))
    image_mime: Mapped[str | None] = mapped_column(String(64))
    image_b64: Mapped[str | None] = mapped_column(Text().with_variant(LONGTEXT(), "mysql"))


class StoredResponseRow(Base):
    """A response of the Responses API kept for ``GET`` and ``previous_response_id`` (see store.base.Store)."""

    __tablename__ = "stored_responses"
    __table_args__ = (
        Index("ix_stored_responses_expires_at", "expires_at"),  # the purge of expired rows
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary().with_variant(LONGBLOB(), "mysql"))
    expires_at: Mapped[float] = mapped_column(Double)


def table_of(model: type[Base]) -> Table:
    return Base.metadata.tables[model.__tablename__]
