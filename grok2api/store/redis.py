"""Redis backend for the store (``STORAGE_MODE=redis``).

Layout (``p`` = prefix, ``g2a`` by default)::

    p:schema           layout version (_SCHEMA); open() migrates older layouts
    p:acct:{id}        hash, one field per Account field ("" = None, tags as JSON), plus the quota
                       windows as q:<mode>:remaining|total|window|reset (absent or "" = unknown)
    p:acct:ids         sorted set id -> id (listing order)
    p:acct:by_token    hash sha256(token) -> id
    p:acct:next_id     counter
    p:meta             hash accounts_version, settings_version
    p:settings         hash name -> JSON value
    p:session:{hash}   JSON AdminSession, expiring with the session
    p:keys             hash id -> JSON ClientKey
    p:media:{name}     JSON MediaEntry
    p:usage:{hour}     hash "model|outcome|key_id" -> count
    p:usage:hours      sorted set of the hours above (for usage_since and pruning)
    p:once:{nonce}     result of a reserve/settle call, kept briefly (see _ONCE_TTL)
    p:rate:{name}      hits of a rate window, expiring when the window ends
    p:vjob:{id}        hash, one field per VideoJob field ("" = None, booleans "1"/"0")
    p:vjob:{id}:image  hash file_name, mime, b64 (the input image of a job made from one, until it ends)
    p:vjobs:queued     sorted set of queued job ids, all scored 0 (ids sort by creation)
    p:vjobs:running    sorted set of in-progress job ids scored by lease_until
    p:vjobs:key:{key}  sorted set of one client key's job ids, all scored 0 (for listing)
    p:vjobs:idem:{key}:{digest}  the job id an Idempotency-Key of that client key made
    p:resp:{id}        hash key_id, body (a stored response), expiring with it

Every multi-key change to accounts runs as a Lua script, so it is atomic and one round trip.
Scripts address keys they compute from the prefix, so this targets a single Redis (not Cluster).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, cast

import msgspec
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import RedisError

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
    hour_of,
    now,
)

log = logging.getLogger(__name__)

# The client retries a command after a connection error, and the first attempt may already have run. reserve and
# settle are not idempotent, so each call carries a nonce and the script records its result under it.
_ONCE_TTL = 120
_CHUNK = 500  # accounts per script call: bounds how long one call blocks the server
_USAGE_KEEP = 8 * 86400
_SCHEMA = 2

_OPTIONAL_NUMBERS = frozenset(("state_changed_at", "cooldown_until", "last_failure_at", "last_used_at"))
# ModeQuota field -> the suffix of its hash field q:<mode>:<suffix>
_QUOTA_SUFFIX = {"remaining": "remaining", "total": "total", "window_seconds": "window", "reset_at": "reset"}
_QUOTA_FIELD = {suffix: name for name, suffix in _QUOTA_SUFFIX.items()}

# KEYS: account, once.  ARGV: the window's remaining field, once TTL, the window's reset field, now.
_RESERVE = """
local done = redis.call('GET', KEYS[2])
if done then return tonumber(done) end
local cur = redis.call('HMGET', KEYS[1], 'state', ARGV[1], ARGV[3])
local ok = 0
if cur[1] == 'active' then
  local left = cur[2]
  local reset = cur[3]
  if reset and reset ~= '' and tonumber(reset) <= tonumber(ARGV[4]) then
    redis.call('HDEL', KEYS[1], ARGV[1], ARGV[3])  -- the window rolled over: its count is stale, now unknown
    ok = 1
  elseif not left or left == '' then
    ok = 1  -- unknown window: reservable, and it stays unknown
  elseif tonumber(left) >= 1 then
    redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
    ok = 1
  end
end
redis.call('SET', KEYS[2], ok, 'EX', tonumber(ARGV[2]))
return ok
"""

# KEYS: account, meta, once.  ARGV: JSON settlement (values already encoded as stored), once TTL.
_SETTLE = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('SET', KEYS[3], '1', 'EX', tonumber(ARGV[2]))
local k = KEYS[1]
local a = cjson.decode(ARGV[1])
local state = redis.call('HGET', k, 'state')
if not state then return 0 end
redis.call('HSET', k, 'last_used_at', a.now)
if a.refund ~= 0 then
  local left = redis.call('HGET', k, a.field)
  if left and left ~= '' then redis.call('HINCRBY', k, a.field, a.refund) end
end
if a.ok then
  redis.call('HINCRBY', k, 'requests_ok', 1)
  if not (a.failure and a.counts) then redis.call('HSET', k, 'failure_count', '0') end
end
local new_state, reason = nil, nil
if a.failure then
  redis.call('HINCRBY', k, 'requests_failed', 1)
  redis.call('HSET', k, 'last_failure', a.failure, 'last_failure_at', a.now)
  if a.counts then
    local n = redis.call('HINCRBY', k, 'failure_count', 1)
    if n >= a.invalid_after and state ~= 'disabled' then
      if state == 'invalid' then
        redis.call('HSET', k, 'state_reason', a.failure)  -- already invalid: not a state change
      else
        new_state, reason = 'invalid', a.failure
      end
    end
  end
end
if a.state and state ~= 'disabled' then  -- an explicit state wins over the invalid transition
  new_state, reason = a.state, a.state_reason
  redis.call('HSET', k, 'cooldown_until', a.cooldown_until)
end
if new_state then
  redis.call('HSET', k, 'state', new_state, 'state_reason', reason, 'state_changed_at', a.now)
  redis.call('HINCRBY', KEYS[2], 'accounts_version', 1)
end
if #a.learned > 0 then redis.call('HSET', k, unpack(a.learned)) end
for i = 1, #a.capped, 2 do  -- lower a known count only, or fill an unknown one
  local have = redis.call('HGET', k, a.capped[i])
  if not have or have == '' or tonumber(have) > tonumber(a.capped[i + 1]) then
    redis.call('HSET', k, a.capped[i], a.capped[i + 1])
  end
end
return 1
"""

# ARGV: account key prefix, ids...  Moves schema-1 quota fields into the windows of modes fast and heavy;
# an account already moved has none of them left, so running it again (or twice at once) changes nothing.
_MIGRATE_1 = """
local moves = {remaining = 'q:fast:remaining', heavy_remaining = 'q:heavy:remaining', window_reset_at = 'q:fast:reset'}
local n = 0
for i = 2, #ARGV do
  local key = ARGV[1] .. ARGV[i]
  for old, new in pairs(moves) do
    local v = redis.call('HGET', key, old)
    if v then
      if v ~= '' then redis.call('HSET', key, new, v) end
      redis.call('HDEL', key, old)
      n = n + 1
    end
  end
end
return n
"""

# KEYS: window.  ARGV: window length in ms, limit.  One hit; 0 within the limit, else the ms until the window ends.
_HIT_WINDOW = """
local n = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
if n > tonumber(ARGV[2]) then return math.max(left, 1) end
return 0
"""

# KEYS: schema.  ARGV: version.  Never moves the version back (a newer instance may have migrated further).
_SET_SCHEMA = """
local have = tonumber(redis.call('GET', KEYS[1]) or '0')
if have < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return have
"""

# KEYS: the egress set, the egress hash.  ARGV: egress key, updated_at, JSON {name: value} of the cookies to set.
_EGRESS_COOKIES = """
local raw = redis.call('HGET', KEYS[2], 'cookies')
local cookies = {}
if raw and raw ~= '' then cookies = cjson.decode(raw) end
for name, value in pairs(cjson.decode(ARGV[3])) do cookies[name] = value end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'cookies', cjson.encode(cookies), 'updated_at', ARGV[2])
return 1
"""

# KEYS: by_token, ids, next_id.  ARGV: account key prefix, JSON [{h, new, upd}].
_ADD = """
local items = cjson.decode(ARGV[2])
local added, updated = 0, 0
for _, it in ipairs(items) do
  local id = redis.call('HGET', KEYS[1], it.h)
  if id then
    local key = ARGV[1] .. id
    if it.st and redis.call('HGET', key, 'state') ~= it.st then  -- stamp only a real state change
      redis.call('HSET', key, 'state_changed_at', it.at)
    end
    redis.call('HSET', key, unpack(it.upd))
    updated = updated + 1
  else
    id = redis.call('INCR', KEYS[3])
    redis.call('HSET', ARGV[1] .. id, 'id', id, unpack(it.new))
    redis.call('ZADD', KEYS[2], id, id)
    redis.call('HSET', KEYS[1], it.h, id)
    added = added + 1
  end
end
return {added, updated}
"""

# KEYS: by_token, ids.  ARGV: account key prefix, token hashes...
_REMOVE = """
local n = 0
for i = 2, #ARGV do
  local id = redis.call('HGET', KEYS[1], ARGV[i])
  if id then
    redis.call('DEL', ARGV[1] .. id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('HDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
"""

# ARGV: account key prefix, ids...  Returns one JSON string: redis-py parses a reply of 10 000 hashes slowly.
_DUMP = """
local out = {}
for i = 2, #ARGV do
  local row = redis.call('HGETALL', ARGV[1] .. ARGV[i])
  if #row > 0 then out[#out + 1] = row end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
"""

# KEYS: account, meta.  ARGV: JSON [field, value, ...], new state or "", now.
_PATCH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local kv = cjson.decode(ARGV[1])
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'state') ~= ARGV[2] then
  kv[#kv + 1] = 'state_changed_at'
  kv[#kv + 1] = ARGV[3]
end
if #kv > 0 then
  redis.call('HSET', KEYS[1], unpack(kv))
  redis.call('HINCRBY', KEYS[2], 'accounts_version', 1)
end
return 1
"""


# The video job scripts address a job's other keys from the prefixes they are given (single Redis, as above).
# KEYS: job, image, queued, by key, idempotency (or the job again).  ARGV: id, JSON [field, value, ...], has an
# idempotency key "1"/"0", then the image's file_name, mime and b64 (or nothing). Returns the job id stored.
_VIDEO_CREATE = """
if ARGV[3] == '1' then
  local existing = redis.call('GET', KEYS[5])
  if existing then return existing end
  redis.call('SET', KEYS[5], ARGV[1])
end
redis.call('HSET', KEYS[1], unpack(cjson.decode(ARGV[2])))
if #ARGV >= 6 then redis.call('HSET', KEYS[2], 'file_name', ARGV[4], 'mime', ARGV[5], 'b64', ARGV[6]) end
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('ZADD', KEYS[4], 0, ARGV[1])
return ARGV[1]
"""

# KEYS: queued, running.  ARGV: job key prefix, owner, lease_until, now. The job's fields, or nil.
_VIDEO_CLAIM = """
for _ = 1, 10 do
  local id
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4], 'LIMIT', 0, 1)
  if #expired > 0 then
    id = expired[1]
  else
    local first = redis.call('ZRANGE', KEYS[1], 0, 0)
    if #first == 0 then return false end
    id = first[1]
    redis.call('ZREM', KEYS[1], id)
  end
  local key = ARGV[1] .. id
  if redis.call('EXISTS', key) == 1 then
    redis.call('HINCRBY', key, 'attempt', 1)
    redis.call('HSET', key, 'status', 'in_progress', 'lease_owner', ARGV[2], 'lease_until', ARGV[3])
    redis.call('ZADD', KEYS[2], ARGV[3], id)
    return redis.call('HGETALL', key)
  end
  redis.call('ZREM', KEYS[2], id)  -- deleted meanwhile
end
return false
"""

# KEYS: job, running, image.  ARGV: id, attempt, JSON [field, value, ...], new lease_until or "", ends the job
# "1"/"0" (then its lease and its input image go).
_VIDEO_UPDATE = """
local cur = redis.call('HMGET', KEYS[1], 'attempt', 'status')
if cur[1] ~= ARGV[2] or cur[2] ~= 'in_progress' then return 0 end
local kv = cjson.decode(ARGV[3])
if #kv > 0 then redis.call('HSET', KEYS[1], unpack(kv)) end
if ARGV[5] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('DEL', KEYS[3])
elseif ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
return 1
"""

# KEYS: job, account.  ARGV: attempt, account id, the window's remaining field, its reset field, now.
# The reserve of _RESERVE and the job's record of it, in one step. Retrying it is harmless: the same account
# already recorded for the attempt is "taken" again without a second query.
_VIDEO_CHARGE = """
local cur = redis.call('HMGET', KEYS[1], 'attempt', 'status', 'account_id')
if cur[1] ~= ARGV[1] or cur[2] ~= 'in_progress' then return 'lost' end
if cur[3] and cur[3] ~= '' then
  if cur[3] == ARGV[2] then return 'taken' end
  return 'lost'
end
local acc = redis.call('HMGET', KEYS[2], 'state', ARGV[3], ARGV[4])
if acc[1] ~= 'active' then return 'no_quota' end
local left, reset = acc[2], acc[3]
if reset and reset ~= '' and tonumber(reset) <= tonumber(ARGV[5]) then
  redis.call('HDEL', KEYS[2], ARGV[3], ARGV[4])  -- the window rolled over: its count is stale, now unknown
elseif left and left ~= '' then
  if tonumber(left) < 1 then return 'no_quota' end
  redis.call('HINCRBY', KEYS[2], ARGV[3], -1)
end
redis.call('HSET', KEYS[1], 'account_id', ARGV[2], 'upstream_accepted', '0')
return 'taken'
"""

# KEYS: job, account.  ARGV: attempt, account id, the window's remaining field, refund "1"/"0".
_VIDEO_RELEASE = """
local cur = redis.call('HMGET', KEYS[1], 'attempt', 'status', 'account_id')
if cur[1] ~= ARGV[1] or cur[2] ~= 'in_progress' or cur[3] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'account_id', '', 'upstream_accepted', '0')
if ARGV[4] == '1' then
  local left = redis.call('HGET', KEYS[2], ARGV[3])
  if left and left ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[3], 1) end  -- unknown stays unknown
end
return 1
"""

# KEYS: job, image, queued, running.  ARGV: id, by-key prefix, idempotency prefix.
_VIDEO_DELETE = """
local f = redis.call('HMGET', KEYS[1], 'key_id', 'idempotency_key')
if not f[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', ARGV[2] .. f[1], ARGV[1])
if f[2] and f[2] ~= '' then redis.call('DEL', ARGV[3] .. f[1] .. ':' .. f[2]) end
return 1
"""

# KEYS: the stored response.  ARGV: the client key id. Deletes it only when it is that key's.
_RESPONSE_DELETE = """
if redis.call('HGET', KEYS[1], 'key_id') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""

_VIDEO_INTS = frozenset(("seconds", "progress", "attempt"))
_VIDEO_OPTIONAL = frozenset(("completed_at", "lease_until", "account_id"))
_VIDEO_BOOLS = frozenset(("has_image", "upstream_accepted"))


def _video_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return _enc(value)


def _video_kv(values: dict[str, Any]) -> list[str]:
    kv: list[str] = []
    for field, value in values.items():
        kv += [field, _video_value(value)]
    return kv


def _decode_video(raw: dict[Any, Any]) -> VideoJob:
    data: dict[str, Any] = {}
    for field, value in raw.items():
        name, text = _str(field), _str(value)
        if name in _VIDEO_BOOLS:
            data[name] = text == "1"
        elif name in _VIDEO_OPTIONAL and text == "":
            data[name] = None
        elif name in VideoJob.__struct_fields__:
            data[name] = text
    return msgspec.convert(data, VideoJob, strict=False)  # strict=False parses the numeric strings


def _enc(value: Any) -> str:
    """A value as stored in an account hash field."""
    if value is None:
        return ""
    if isinstance(value, list):
        return msgspec.json.encode(value).decode()
    if isinstance(value, float):
        return repr(value)  # round-trips exactly, unlike Lua's tostring
    return str(value)


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _quota_key(mode: str, field: str) -> str:
    return f"q:{mode}:{_QUOTA_SUFFIX[field]}"


def _quota_kv(quotas: dict[str, ModeQuota]) -> list[str]:
    """Hash fields for whole windows: all four fields of each, so a window given replaces the stored one."""
    kv: list[str] = []
    for mode, window in quotas.items():
        for field in _QUOTA_SUFFIX:
            kv += [_quota_key(mode, field), _enc(getattr(window, field))]
    return kv


def _decode_account(raw: dict[Any, Any]) -> Account:
    data: dict[str, Any] = {}
    windows: dict[str, dict[str, str]] = {}
    for field, value in raw.items():
        name, text = _str(field), _str(value)
        if name.startswith("q:"):
            mode, _, suffix = name[2:].rpartition(":")
            if text and suffix in _QUOTA_FIELD:  # "" = unknown, the default
                windows.setdefault(mode, {})[_QUOTA_FIELD[suffix]] = text
        elif name == "tags":
            data[name] = msgspec.json.decode(text) if text else []
        elif name in _OPTIONAL_NUMBERS and text == "":
            data[name] = None
        else:
            data[name] = text
    data["quotas"] = windows  # entirely unknown windows have no field left here, so they are left out
    return msgspec.convert(data, Account, strict=False)  # strict=False parses the numeric strings


def _decode_egress(key: str, raw: dict[Any, Any]) -> EgressState:
    def when(name: str) -> float | None:
        value = raw.get(name) or ""
        return float(value) if value else None

    return EgressState(
        key=key,
        cookies=msgspec.json.decode(raw.get("cookies") or "{}", type=dict[str, str]),
        user_agent=str(raw.get("user_agent") or ""),
        clearance_source=str(raw.get("clearance_source") or ""),
        clearance_at=when("clearance_at"),
        challenged_at=when("challenged_at"),
        evidence=str(raw.get("evidence") or ""),
        updated_at=when("updated_at") or 0.0,
    )


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class RedisStore:
    """The Store protocol on Redis (redis://, rediss:// for TLS, unix://)."""

    kind = "redis"

    def __init__(self, url: str, *, prefix: str = "g2a", timeout: float | None = None) -> None:
        """``timeout``: seconds a connect or an answer may take before the command fails (None = no limit)."""
        # Building the client does no I/O; connections are opened on first use. A blocking pool makes a burst
        # of concurrent calls wait for a connection instead of failing (raise the cap with ?max_connections=N).
        pool = BlockingConnectionPool.from_url(
            url,
            decode_responses=True,
            health_check_interval=30,
            max_connections=50,
            timeout=20 if timeout is None else timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # Ride out a restart or failover; safe because reserve/settle are guarded by a nonce.
            retry=Retry(EqualJitterBackoff(cap=1.0, base=0.05), 3),
        )
        self.redis: Redis = Redis.from_pool(pool)
        self.prefix = prefix
        p = prefix
        self._acct = f"{p}:acct:"
        self._ids = f"{p}:acct:ids"
        self._by_token = f"{p}:acct:by_token"
        self._next_id = f"{p}:acct:next_id"
        self._meta = f"{p}:meta"
        self._settings = f"{p}:settings"
        self._keys = f"{p}:keys"
        self._usage_hours = f"{p}:usage:hours"
        self._egresses = f"{p}:egresses"  # the set of egress keys; each egress is a hash at {p}:egress:<key>
        self.settings_channel = f"{p}:settings:changed"
        self._reserve = self.redis.register_script(_RESERVE)
        self._settle = self.redis.register_script(_SETTLE)
        self._add = self.redis.register_script(_ADD)
        self._remove = self.redis.register_script(_REMOVE)
        self._patch = self.redis.register_script(_PATCH)
        self._dump = self.redis.register_script(_DUMP)
        self._migrate_1 = self.redis.register_script(_MIGRATE_1)
        self._set_schema = self.redis.register_script(_SET_SCHEMA)
        self._hit_window = self.redis.register_script(_HIT_WINDOW)
        self._egress_cookies = self.redis.register_script(_EGRESS_COOKIES)
        self._vjob = f"{p}:vjob:"
        self._vjobs_queued = f"{p}:vjobs:queued"
        self._vjobs_running = f"{p}:vjobs:running"
        self._vjobs_key = f"{p}:vjobs:key:"
        self._vjobs_idem = f"{p}:vjobs:idem:"
        self._video_create = self.redis.register_script(_VIDEO_CREATE)
        self._video_claim = self.redis.register_script(_VIDEO_CLAIM)
        self._video_update = self.redis.register_script(_VIDEO_UPDATE)
        self._video_charge = self.redis.register_script(_VIDEO_CHARGE)
        self._video_release = self.redis.register_script(_VIDEO_RELEASE)
        self._video_delete = self.redis.register_script(_VIDEO_DELETE)
        self._resp = f"{p}:resp:"
        self._response_delete = self.redis.register_script(_RESPONSE_DELETE)

    def _session_key(self, id_hash: str) -> str:
        return f"{self.prefix}:session:{id_hash}"

    def _media_key(self, name: str) -> str:
        return f"{self.prefix}:media:{name}"

    def _usage_key(self, hour: int) -> str:
        return f"{self.prefix}:usage:{hour}"

    def _once_key(self) -> str:
        return f"{self.prefix}:once:{uuid.uuid4().hex}"

    async def open(self) -> None:
        """Connect and bring the key layout to ``_SCHEMA``. The migration is idempotent, per account atomic,
        and safe when several instances open at once; a layout newer than this code is refused."""
        await self.redis.ping()
        schema = f"{self.prefix}:schema"
        found = await self.redis.get(schema)
        version = int(found) if found is not None else None
        if version is not None and version > _SCHEMA:
            raise RuntimeError(
                f"the Redis data under {self.prefix!r} has layout {version}; this grok2api reads {_SCHEMA}"
            )
        if version is None or version < 2:  # no version: fresh (nothing to move) or written before it was kept
            await self._migrate_from_1()
        await self._set_schema(keys=[schema], args=[_SCHEMA])

    async def _migrate_from_1(self) -> None:
        """Layout 1 kept the 2025 counters as account fields: move them into the fast and heavy windows."""
        ids = cast(list[str], await self.redis.zrange(self._ids, 0, -1))
        if not ids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for chunk in _chunks(ids, _CHUNK):
                await self._migrate_1(args=[self._acct, *chunk], client=pipe)
            moved = await pipe.execute()
        log.info("moved %d quota counter(s) of %d account(s) to per-mode windows", sum(moved), len(ids))

    async def close(self) -> None:
        await self.redis.aclose()

    async def schema_state(self) -> SchemaState:
        found = await self.redis.get(f"{self.prefix}:schema")
        # No version key: an empty keyspace (fresh, or flushed), which every layout reads as it is.
        current = _str(found) if found is not None else str(_SCHEMA)
        return SchemaState(current=current, expected=str(_SCHEMA))

    async def versions(self) -> Versions:
        accounts, settings = await self.redis.hmget(self._meta, ["accounts_version", "settings_version"])
        return Versions(accounts=int(accounts or 0), settings=int(settings or 0))

    # accounts

    async def list_accounts(self) -> list[Account]:
        ids = cast(list[str], await self.redis.zrange(self._ids, 0, -1))  # decode_responses
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for chunk in _chunks(ids, _CHUNK):
                await self._dump(args=[self._acct, *chunk], client=pipe)
            blobs = await pipe.execute()
        accounts: list[Account] = []
        for blob in blobs:
            for row in msgspec.json.decode(blob, type=list[list[str]]):
                accounts.append(_decode_account(dict(zip(row[::2], row[1::2], strict=True))))
        return accounts

    async def get_account(self, token: str) -> Account | None:
        id_ = await self.redis.hget(self._by_token, _token_hash(token))
        if id_ is None:
            return None
        row = await self.redis.hgetall(self._acct + _str(id_))
        return _decode_account(row) if row else None

    async def add_accounts(self, items: Sequence[NewAccount]) -> AddResult:
        unique: dict[str, NewAccount] = {}
        for item in items:  # the last occurrence of a token wins, first-seen order kept
            unique[item.token] = item
        if not unique:
            return AddResult()
        at = now()
        payload = [self._add_item(item, at) for item in unique.values()]
        async with self.redis.pipeline(transaction=False) as pipe:
            for chunk in _chunks(payload, _CHUNK):
                await self._add(
                    keys=[self._by_token, self._ids, self._next_id],
                    args=[self._acct, msgspec.json.encode(chunk)],
                    client=pipe,
                )
            pipe.hincrby(self._meta, "accounts_version", 1)
            results = await pipe.execute()
        added = sum(int(r[0]) for r in results[:-1])
        updated = sum(int(r[1]) for r in results[:-1])
        return AddResult(added=added, updated=updated)

    @staticmethod
    def _add_item(item: NewAccount, at: float) -> dict[str, Any]:
        created = Account(
            id=0,
            token=item.token,
            tier=item.tier,
            state=item.state or AccountState.ACTIVE,
            state_reason=item.state_reason or "",
            state_changed_at=at if item.state else None,
            user_id=item.user_id or "",
            tags=item.tags or [],
            note=item.note or "",
            created_at=item.created_at if item.created_at is not None else at,
        )
        new: list[str] = []
        for field in Account.__struct_fields__:
            if field not in ("id", "quotas"):
                new += [field, _enc(getattr(created, field))]
        new += _quota_kv(item.quotas or {})
        # An existing token keeps its history (quota windows too): only the given fields change.
        upd = ["tier", _enc(item.tier)]
        for field in ("tags", "note", "state", "state_reason", "user_id"):
            value = getattr(item, field)
            if value is not None:
                upd += [field, _enc(value)]
        out: dict[str, Any] = {"h": _token_hash(item.token), "new": new, "upd": upd}
        if item.state is not None:
            out.update(st=item.state, at=_enc(at))
        return out

    async def remove_accounts(self, tokens: Sequence[str]) -> int:
        hashes = list(dict.fromkeys(_token_hash(t) for t in tokens))
        if not hashes:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for chunk in _chunks(hashes, _CHUNK):
                await self._remove(keys=[self._by_token, self._ids], args=[self._acct, *chunk], client=pipe)
            results = await pipe.execute()
        removed = sum(int(r) for r in results)
        if removed:
            await self.redis.hincrby(self._meta, "accounts_version", 1)
        return removed

    async def update_account(self, token: str, patch: AccountPatch) -> bool:
        return await self.update_accounts([token], patch) == 1

    async def update_accounts(self, tokens: Sequence[str], patch: AccountPatch) -> int:
        hashes = list(dict.fromkeys(_token_hash(t) for t in tokens))
        if not hashes:
            return 0
        ids = [i for i in await self.redis.hmget(self._by_token, hashes) if i is not None]
        if not ids:
            return 0
        kv: list[str] = []
        for field in AccountPatch.__struct_fields__:
            value = getattr(patch, field)
            if field == "quotas":
                kv += _quota_kv(value) if isinstance(value, dict) else []
            elif value is not msgspec.UNSET:
                kv += [field, _enc(value)]
        args: list[bytes | str] = [
            msgspec.json.encode(kv),
            "" if patch.state is msgspec.UNSET else patch.state,
            _enc(now()),
        ]
        async with self.redis.pipeline(transaction=False) as pipe:  # one round trip for the whole batch
            for id_ in ids:
                await self._patch(keys=[self._acct + _str(id_), self._meta], args=args, client=pipe)
            done = await pipe.execute()
        return sum(1 for d in done if d)

    async def reserve(self, account_id: int, mode: str) -> bool:
        done = await self._reserve(
            keys=[f"{self._acct}{account_id}", self._once_key()],
            args=[_quota_key(mode, "remaining"), _ONCE_TTL, _quota_key(mode, "reset_at"), _enc(now())],
        )
        return bool(done)

    async def settle(self, account_id: int, settlement: Settlement) -> None:
        s = settlement
        args: dict[str, Any] = {"refund": s.refund if s.mode else 0, "ok": s.ok, "now": _enc(now())}
        if s.failure is not None:
            args.update(failure=s.failure, counts=s.counts_towards_invalid, invalid_after=s.invalid_after)
        if s.state is not None:
            args.update(state=s.state, state_reason=s.state_reason, cooldown_until=_enc(s.cooldown_until))
        learned: list[str] = []
        capped: list[str] = []
        if s.mode:
            args["field"] = _quota_key(s.mode, "remaining")
            if isinstance(s.learned, ModeQuota):
                for field in _QUOTA_SUFFIX:
                    value = getattr(s.learned, field)
                    if not s.learned_cap:
                        learned += [_quota_key(s.mode, field), _enc(value)]
                    elif value is None:
                        continue  # capped: an unknown value changes nothing
                    elif field == "remaining":
                        capped += [_quota_key(s.mode, field), _enc(value)]
                    else:
                        learned += [_quota_key(s.mode, field), _enc(value)]
        args["learned"] = learned
        args["capped"] = capped
        await self._settle(
            keys=[f"{self._acct}{account_id}", self._meta, self._once_key()],
            args=[msgspec.json.encode(args), _ONCE_TTL],
        )

    # runtime settings

    async def load_settings(self) -> dict[str, Any]:
        raw = await self.redis.hgetall(self._settings)
        return {_str(k): msgspec.json.decode(_str(v)) for k, v in raw.items()}

    async def save_settings(self, values: dict[str, Any]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            if values:
                pipe.hset(self._settings, mapping={k: msgspec.json.encode(v).decode() for k, v in values.items()})
            pipe.hincrby(self._meta, "settings_version", 1)
            results = await pipe.execute()
        version = int(results[-1])
        try:  # other instances also poll versions(), so a lost message only delays them
            await self.redis.publish(self.settings_channel, version)
        except RedisError as exc:
            log.warning("could not publish the settings change: %s", exc)

    # admin sessions

    async def put_session(self, session: AdminSession) -> None:
        key = self._session_key(session.id_hash)
        ttl_ms = int((session.expires_at - now()) * 1000)
        if ttl_ms <= 0:
            await self.redis.delete(key)
            return
        await self.redis.set(key, msgspec.json.encode(session).decode(), px=ttl_ms)

    async def get_session(self, id_hash: str) -> AdminSession | None:
        raw = await self.redis.get(self._session_key(id_hash))
        if raw is None:
            return None
        session = msgspec.json.decode(raw, type=AdminSession)
        return session if session.expires_at > now() else None

    async def delete_session(self, id_hash: str) -> None:
        await self.redis.delete(self._session_key(id_hash))

    async def delete_sessions(self, except_id_hash: str | None = None) -> int:
        keep = self._session_key(except_id_hash) if except_id_hash is not None else None
        pattern = _glob_escape(self._session_key("")) + "*"
        keys = [_str(k) async for k in self.redis.scan_iter(match=pattern, count=500)]
        keys = [k for k in dict.fromkeys(keys) if k != keep]  # SCAN may return a key twice
        deleted = 0
        for chunk in _chunks(keys, _CHUNK):
            deleted += int(await self.redis.delete(*chunk))
        return deleted

    # client API keys

    async def put_client_key(self, key: ClientKey) -> None:
        await self.redis.hset(self._keys, key.id, msgspec.json.encode(key).decode())

    async def list_client_keys(self) -> list[ClientKey]:
        raw = await self.redis.hgetall(self._keys)
        keys = [msgspec.json.decode(_str(v), type=ClientKey) for v in raw.values()]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    async def revoke_client_key(self, key_id: str) -> bool:
        async def revoke(pipe: Pipeline) -> bool:
            raw = await pipe.hget(self._keys, key_id)
            if raw is None:
                return False
            key = msgspec.json.decode(_str(raw), type=ClientKey)
            key.revoked = True
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hset(self._keys, key_id, msgspec.json.encode(key).decode())
            return True

        # Stored keys are JSON; WATCH keeps a concurrent touch from being overwritten (rare admin edit).
        return bool(await self.redis.transaction(revoke, self._keys, value_from_callable=True))

    async def touch_client_keys(self, uses: dict[str, int], at: float) -> None:
        ids = [key_id for key_id, n in uses.items() if n]
        if not ids:
            return

        async def touch(pipe: Pipeline) -> None:
            raw = await pipe.hmget(self._keys, ids)
            updates: dict[Any, str] = {}
            for key_id, blob in zip(ids, raw, strict=True):
                if blob is None:  # unknown or deleted key: nothing to count
                    continue
                key = msgspec.json.decode(_str(blob), type=ClientKey)
                key.requests += uses[key_id]
                key.last_used_at = at
                updates[key_id] = msgspec.json.encode(key).decode()
            pipe.multi()  # type: ignore[no-untyped-call]
            if updates:
                pipe.hset(self._keys, mapping=updates)

        await self.redis.transaction(touch, self._keys)

    # rate windows

    async def hit_window(self, name: str, window_seconds: float, limit: int) -> float:
        wait_ms = await self._hit_window(
            keys=[f"{self.prefix}:rate:{name}"], args=[max(1, round(window_seconds * 1000)), limit]
        )
        return int(wait_ms) / 1000

    async def clear_window(self, name: str) -> None:
        await self.redis.delete(f"{self.prefix}:rate:{name}")

    # media index

    async def put_media(self, entry: MediaEntry) -> None:
        await self.redis.set(self._media_key(entry.name), msgspec.json.encode(entry).decode())

    async def get_media(self, name: str) -> MediaEntry | None:
        raw = await self.redis.get(self._media_key(name))
        return None if raw is None else msgspec.json.decode(raw, type=MediaEntry)

    # egresses

    def _egress_key(self, key: str) -> str:
        return f"{self.prefix}:egress:{key}"

    async def list_egresses(self) -> list[EgressState]:
        keys = sorted(_str(k) for k in await self.redis.smembers(self._egresses))
        if not keys:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(self._egress_key(key))
            rows = await pipe.execute()
        return [_decode_egress(key, raw) for key, raw in zip(keys, rows, strict=True) if raw]

    async def _write_egress(self, key: str, fields: dict[str, str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self._egresses, key)
            pipe.hset(self._egress_key(key), mapping={k: v for k, v in fields.items()})
            await pipe.execute()

    async def save_egress_clearance(
        self, key: str, cookies: dict[str, str], user_agent: str, source: str, at: float
    ) -> None:
        fields: dict[str, str] = {
            "cookies": msgspec.json.encode(cookies).decode(),
            "user_agent": user_agent[:512],
            "clearance_source": source if cookies else "",
            "clearance_at": repr(at) if cookies else "",
            "challenged_at": "",
            "evidence": "",
            "updated_at": repr(at),
        }
        await self._write_egress(key, fields)

    async def mark_egress(self, key: str, challenged_at: float | None, evidence: str = "") -> None:
        marked = challenged_at is not None
        fields: dict[str, str] = {
            "challenged_at": repr(challenged_at) if marked else "",
            "evidence": evidence[:1024] if marked else "",
            "updated_at": repr(now()),
        }
        await self._write_egress(key, fields)

    async def merge_egress_cookies(self, key: str, cookies: dict[str, str], at: float) -> None:
        if not cookies:
            return
        keys = [self._egresses, self._egress_key(key)]
        await self._egress_cookies(keys=keys, args=[key, repr(at), msgspec.json.encode(cookies).decode()])

    # usage counters

    async def add_usage(self, rows: Sequence[UsageRow]) -> None:
        if not rows:
            return
        # Prune relative to the newest hour written (capped at the current one), so old rows stay queryable.
        cutoff = min(max(r.hour for r in rows), hour_of(now())) - _USAGE_KEEP
        async with self.redis.pipeline(transaction=True) as pipe:
            for r in rows:
                pipe.hincrby(self._usage_key(r.hour), f"{r.model}|{r.outcome}|{r.key_id}", r.count)
            pipe.zadd(self._usage_hours, {str(r.hour): r.hour for r in rows})
            pipe.zrangebyscore(self._usage_hours, "-inf", f"({cutoff}")
            results = await pipe.execute()
        old = [int(_str(h)) for h in results[-1]]
        if old:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(*(self._usage_key(h) for h in old))
                pipe.zrem(self._usage_hours, *(str(h) for h in old))
                await pipe.execute()

    async def usage_since(self, hour: int) -> list[UsageRow]:
        found = cast(list[str], await self.redis.zrangebyscore(self._usage_hours, hour, "+inf"))
        hours = [int(h) for h in found]
        if not hours:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for h in hours:
                pipe.hgetall(self._usage_key(h))
            buckets = await pipe.execute()
        rows: list[UsageRow] = []
        for h, bucket in zip(hours, buckets, strict=True):
            for field, count in bucket.items():
                # rsplit: a model name may contain "|", an outcome and a key id do not
                model, outcome, key_id = _str(field).rsplit("|", 2)
                rows.append(UsageRow(hour=h, model=model, outcome=outcome, key_id=key_id, count=int(count)))
        rows.sort(key=lambda r: (r.hour, r.model, r.outcome, r.key_id))
        return rows

    # video jobs

    def _video_keys(self, job_id: str) -> tuple[str, str]:
        return self._vjob + job_id, f"{self._vjob}{job_id}:image"

    async def create_video_job(self, job: VideoJob, image: VideoImage | None = None) -> tuple[VideoJob, bool]:
        key, image_key = self._video_keys(job.id)
        idem = f"{self._vjobs_idem}{job.key_id}:{job.idempotency_key}" if job.idempotency_key else key
        args: list[str] = [job.id, msgspec.json.encode(_video_kv(msgspec.structs.asdict(job))).decode()]
        args.append("1" if job.idempotency_key else "0")
        if image is not None:
            args += [image.file_name, image.mime, image.b64]
        stored = _str(
            await self._video_create(
                keys=[key, image_key, self._vjobs_queued, self._vjobs_key + job.key_id, idem], args=args
            )
        )
        if stored == job.id:
            return job, True
        found = await self.get_video_job(stored)
        if found is None:  # deleted in between: its key went with it, so the next try stores this one
            return await self.create_video_job(job, image)
        return found, False

    async def get_video_job(self, job_id: str) -> VideoJob | None:
        raw = await self.redis.hgetall(self._vjob + job_id)
        return _decode_video(raw) if raw else None

    async def get_video_image(self, job_id: str) -> VideoImage | None:
        raw = await self.redis.hgetall(self._video_keys(job_id)[1])
        if not raw:
            return None
        return msgspec.convert({_str(k): _str(v) for k, v in raw.items()}, VideoImage)

    async def list_video_jobs(
        self, key_id: str, *, after: str = "", limit: int = 20, descending: bool = True
    ) -> tuple[list[VideoJob], bool]:
        index = self._vjobs_key + key_id
        if descending:
            found = await self.redis.zrevrangebylex(index, f"({after}" if after else "+", "-", start=0, num=limit + 1)
        else:
            found = await self.redis.zrangebylex(index, f"({after}" if after else "-", "+", start=0, num=limit + 1)
        ids = [_str(i) for i in found]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids[:limit]:
                pipe.hgetall(self._vjob + job_id)
            rows = await pipe.execute()
        return [_decode_video(row) for row in rows if row], len(ids) > limit

    async def delete_video_job(self, job_id: str) -> bool:
        key, image_key = self._video_keys(job_id)
        done = await self._video_delete(
            keys=[key, image_key, self._vjobs_queued, self._vjobs_running],
            args=[job_id, self._vjobs_key, self._vjobs_idem],
        )
        return bool(done)

    async def claim_video_job(self, owner: str, lease_until: float, now: float) -> VideoJob | None:
        row = await self._video_claim(
            keys=[self._vjobs_queued, self._vjobs_running], args=[self._vjob, owner, _enc(lease_until), _enc(now)]
        )
        if not row:
            return None
        return _decode_video(dict(zip(row[::2], row[1::2], strict=True)))

    async def update_video_job(self, job_id: str, attempt: int, patch: VideoPatch) -> bool:
        values = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
        ends = values.get("status") in (VideoStatus.COMPLETED, VideoStatus.FAILED)
        if ends:
            values["lease_until"] = None
        lease = values.get("lease_until")
        done = await self._video_update(
            keys=[self._vjob + job_id, self._vjobs_running, self._video_keys(job_id)[1]],
            args=[
                job_id,
                str(attempt),
                msgspec.json.encode(_video_kv(values)).decode(),
                "" if lease is None else _enc(lease),
                "1" if ends else "0",
            ],
        )
        return bool(done)

    async def charge_video_job(self, job_id: str, attempt: int, account_id: int, mode: str) -> Charge:
        window = [_quota_key(mode, "remaining"), _quota_key(mode, "reset_at")]
        outcome = await self._video_charge(
            keys=[self._vjob + job_id, f"{self._acct}{account_id}"],
            args=[str(attempt), str(account_id), *window, _enc(now())],
        )
        return Charge(_str(outcome))

    async def release_video_charge(self, job_id: str, attempt: int, account_id: int, mode: str, refund: bool) -> bool:
        done = await self._video_release(
            keys=[self._vjob + job_id, f"{self._acct}{account_id}"],
            args=[str(attempt), str(account_id), _quota_key(mode, "remaining"), "1" if refund else "0"],
        )
        return bool(done)

    # stored responses (Redis expires them by itself)

    async def put_response(self, response_id: str, key_id: str, body: bytes, expires_at: float) -> None:
        key = self._resp + response_id
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"key_id": key_id, "body": body})
            pipe.pexpireat(key, int(expires_at * 1000))
            await pipe.execute()

    async def get_response(self, response_id: str, key_id: str) -> bytes | None:
        owner, body = await self.redis.hmget(self._resp + response_id, ["key_id", "body"])
        if owner != key_id or body is None:
            return None
        return body.encode() if isinstance(body, str) else bytes(body)

    async def delete_response(self, response_id: str, key_id: str) -> bool:
        return bool(await self._response_delete(keys=[self._resp + response_id], args=[key_id]))

    async def purge_responses(self, before: float) -> int:
        return 0  # each one carries its own expiry
