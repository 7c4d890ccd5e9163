"""What the fake grok.com remembers between calls, and the knobs tests turn.

Accounts with their quota windows, recorded requests, queued faults, generated assets and media posts. Every
endpoint family reads and changes this one object, which it finds on the app under ``STATE_KEY``.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from .fake_errors import ERR_BLOCKED, ERR_INVALID
from .fake_faults import Fault, FaultQueue
from .fake_http import JsonDict, Reject, decode_json, headers_dict, json_response, request_token

MAX_RECORDED_BODY = 64 * 1024
MAX_ASSETS = 100_000
MAX_POSTS = 10_000

# tier -> (quota units, window seconds, heavy quota)
TIER_DEFAULTS: dict[str, tuple[int, int, int]] = {
    "basic": (80, 72_000, 0),
    "super": (140, 7_200, 20),
    "heavy": (400, 7_200, 20),
}
EXPERT_COST = 4
IMAGE_COST = 4


# --------------------------------------------------------------------------------------------------- records


@dataclass
class RecordedRequest:
    """One request as the fake saw it. Header names are lower-cased; bodies over 64 KiB are truncated."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    raw: bytes
    time: float
    token: str | None = None
    query: dict[str, str] = field(default_factory=dict)
    truncated: bool = False

    def to_dict(self) -> JsonDict:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "json": self.json,
            "time": self.time,
            "token": self.token,
            "truncated": self.truncated,
        }


def _shrink(value: Any) -> Any:
    """Cut long strings (base64 uploads, huge prompts) so recordings stay small."""
    if isinstance(value, str) and len(value) > 1024:
        return f"{value[:256]}...[{len(value) - 256} more chars]"
    if isinstance(value, dict):
        return {k: _shrink(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shrink(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------------- accounts


def _user_id(token: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-grok-user:{token}"))


@dataclass
class FakeAccount:
    """A grok.com account: quota units in one window, a separate heavy counter, and its uploads."""

    token: str
    tier: str = "basic"
    state: str = "ok"
    remaining: int = 80
    total: int = 80
    heavy_remaining: int = 0
    heavy_total: int = 0
    window_seconds: int = 72_000
    window_started: float = field(default_factory=time.time)
    user_id: str = ""
    uploads: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    in_flight: int = 0

    def __post_init__(self) -> None:
        if not self.user_id:
            self.user_id = _user_id(self.token)

    @property
    def quota(self) -> int:
        """Remaining units in the current window (alias of ``remaining``)."""
        return self.remaining

    @quota.setter
    def quota(self, value: int) -> None:
        self.remaining = value

    def refresh(self, now: float | None = None) -> None:
        """Windows reset lazily: whoever looks at the quota first after the window ends refills it."""
        now = time.time() if now is None else now
        if now - self.window_started >= self.window_seconds:
            self.remaining = self.total
            self.heavy_remaining = self.heavy_total
            self.window_started = now

    def seconds_left(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return max(1, math.ceil(self.window_started + self.window_seconds - now))

    def to_dict(self) -> JsonDict:
        self.refresh()
        return {
            "token": self.token,
            "tier": self.tier,
            "state": self.state,
            "remaining": self.remaining,
            "total": self.total,
            "heavy_remaining": self.heavy_remaining,
            "heavy_total": self.heavy_total,
            "window_seconds": self.window_seconds,
            "window_started": self.window_started,
            "user_id": self.user_id,
            "uploads": len(self.uploads),
            "in_flight": self.in_flight,
        }


def _tier_from_token(token: str) -> str:
    for tier in ("super", "heavy"):
        if token.startswith(tier):
            return tier
    return "basic"


def _state_from_token(token: str) -> str:
    for state in ("invalid", "blocked"):
        if token.startswith(state):
            return state
    return "ok"


# --------------------------------------------------------------------------------------------------- state


class FakeState:
    """Shared state of one fake; ``FakeGrok`` adds the server around it."""

    def __init__(
        self,
        *,
        token_delay: float = 0.0,
        first_line_delay: float = 0.0,
        accept_unknown: bool = True,
        seed: int = 1,
        framing: str = "ndjson",
    ) -> None:
        if framing not in ("ndjson", "sse"):
            raise ValueError("framing must be 'ndjson' or 'sse'")
        self.token_delay = token_delay
        self.first_line_delay = first_line_delay
        self.accept_unknown = accept_unknown
        self.framing = framing
        self.requests: list[RecordedRequest] = []
        self.posts: dict[str, JsonDict] = {}
        self.require_cf_clearance: str | None = None
        self.strict_statsig = False
        self.statsig_prefixes: tuple[str, ...] = ("e:", "x1:")
        self.max_concurrency_per_account = 0
        self.max_recorded = 50_000
        self._accounts: dict[str, FakeAccount] = {}
        self._by_uid: dict[str, FakeAccount] = {}
        self._assets: dict[str, str] = {}  # generated asset path -> owner token
        self._faults = FaultQueue()
        self._rng = random.Random(seed)

    # ---------------------------------------------------------------- accounts

    def add_account(
        self,
        token: str,
        tier: str = "basic",
        state: str = "ok",
        quota: int | None = None,
        heavy_quota: int | None = None,
    ) -> FakeAccount:
        if tier not in TIER_DEFAULTS:
            raise ValueError(f"unknown tier {tier!r}")
        if state not in ("ok", "invalid", "blocked"):
            raise ValueError(f"unknown state {state!r}")
        units, window, heavy = TIER_DEFAULTS[tier]
        units = units if quota is None else quota
        heavy = heavy if heavy_quota is None else heavy_quota
        account = FakeAccount(
            token=token,
            tier=tier,
            state=state,
            remaining=units,
            total=units,
            heavy_remaining=heavy,
            heavy_total=heavy,
            window_seconds=window,
        )
        self._accounts[token] = account
        self._by_uid[account.user_id] = account
        return account

    def account(self, token: str) -> FakeAccount:
        return self._accounts[token]

    @property
    def accounts(self) -> list[FakeAccount]:
        return list(self._accounts.values())

    def account_by_user_id(self, user_id: str) -> FakeAccount | None:
        return self._by_uid.get(user_id)

    def resolve(self, request: web.Request) -> FakeAccount:
        """The account behind the sso cookie, or a 401/403 exactly as grok.com words it."""
        token = request_token(request)
        if token is None:
            raise Reject(json_response(401, ERR_INVALID))
        account = self._accounts.get(token)
        if account is None:
            if not self.accept_unknown:
                raise Reject(json_response(401, ERR_INVALID))
            account = self.add_account(token, tier=_tier_from_token(token), state=_state_from_token(token))
        if account.state == "invalid":
            raise Reject(json_response(401, ERR_INVALID))
        if account.state == "blocked":
            raise Reject(json_response(403, ERR_BLOCKED))
        account.refresh()
        return account

    # ---------------------------------------------------------------- faults

    def push_fault(self, fault: str, *, token: str | None = None, count: int = 1, **params: Any) -> None:
        """Queue ``fault`` (``name`` or ``name:param``) for the next ``count`` calls of its endpoint."""
        self._faults.push(fault, token=token, count=count, params=params)

    def take_fault(self, endpoint: str, token: str | None) -> Fault | None:
        return self._faults.take(endpoint, token)

    def clear(self) -> None:
        self.requests.clear()
        self._faults.clear()

    # ---------------------------------------------------------------- records

    def record(self, request: web.Request, raw: bytes, token: str | None) -> None:
        truncated = len(raw) > MAX_RECORDED_BODY
        body: Any = None
        if raw:
            with contextlib.suppress(msgspec.DecodeError):
                body = decode_json(raw)
        if truncated:
            body, raw = _shrink(body), raw[:MAX_RECORDED_BODY]
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                headers=headers_dict(request),
                json=body,
                raw=raw,
                time=time.time(),
                token=token,
                query=dict(request.query),
                truncated=truncated,
            )
        )
        if len(self.requests) > self.max_recorded:
            del self.requests[: len(self.requests) - self.max_recorded]

    # ---------------------------------------------------------------- media

    def register_asset(self, path: str, token: str) -> None:
        """Make a generated asset downloadable by the account that owns ``token``."""
        self._assets[path] = token
        if len(self._assets) > MAX_ASSETS:
            del self._assets[next(iter(self._assets))]

    # Tests seed assets through the older private name.
    _register_asset = register_asset

    def asset_owner(self, path: str) -> str | None:
        return self._assets.get(path)

    def add_post(self, post: JsonDict) -> None:
        self.posts[post["id"]] = post
        if len(self.posts) > MAX_POSTS:
            del self.posts[next(iter(self.posts))]

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


STATE_KEY = web.AppKey("fake_grok_state", FakeState)


def state_of(request: web.Request) -> FakeState:
    return request.app[STATE_KEY]
