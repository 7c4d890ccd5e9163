"""What the fake grok.com remembers between calls, and the knobs tests turn.

Accounts with their mode windows, the mode catalogue, recorded requests and mgw sessions, queued faults, generated
assets, media posts and video generations. Every endpoint family reads and changes this one object, which it finds on
the app under ``STATE_KEY``.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from .fake_accounts import STATES, FakeAccount, state_from_token, tier_from_token
from .fake_cloudflare import FakeCloudflare
from .fake_errors import ERR_BLOCKED, ERR_INVALID
from .fake_faults import Fault, FaultQueue
from .fake_http import JsonDict, Reject, decode_json, headers_dict, json_response, request_token
from .fake_modes import TIERS, ModeSpec, builtin_modes, extra_mode
from .fake_records import MAX_RECORDED_BODY, ImagineRecord, MgwRecord, RecordedRequest, Refusal, shrink
from .fake_video import VideoRecord

MAX_ASSETS = 100_000
MAX_POSTS = 10_000
MAX_MGW_SESSIONS = 10_000
MAX_VIDEOS = 10_000


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
        self.mgw: list[MgwRecord] = []
        self.imagine: list[ImagineRecord] = []
        self.posts: dict[str, JsonDict] = {}
        self.videos: list[VideoRecord] = []
        self.require_cf_clearance: str | None = None
        self.cloudflare = FakeCloudflare()
        self.site_verification = "ZmFrZS1idWlsZC0x"  # the home page's grok-site-verification meta (one per build)
        self.signed_statsig = False  # /rest/ and /http/ calls need the signer's value for the current meta
        self.strict_statsig = False
        self.statsig_prefixes: tuple[str, ...] = ("e:", "x1:")
        self.max_concurrency_per_account = 0
        # Clients ping the chat socket every 25 s (the browser about every 3 s); whether and when grok.com closes a
        # silent one is not documented, so by default the fake never does. Seconds: a socket that sent nothing
        # for this long, with no answer playing, is closed (what a client must survive if grok.com does).
        self.mgw_idle_seconds: float | None = None
        self.max_recorded = 50_000
        self.modes: dict[str, ModeSpec] = builtin_modes()
        self.sockets: set[web.WebSocketResponse] = set()
        # Refused mgw handshakes by (token, uid) and Imagine ones by (token, path), until a plain GET of the same URL
        # reads them.
        self.mgw_refusals: dict[tuple[str | None, str], Refusal] = {}
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
        quotas: dict[str, int] | None = None,
    ) -> FakeAccount:
        """An account with the tier's windows; ``quota``/``heavy_quota``/``quotas`` override totals per mode."""
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}")
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        totals = dict(quotas or {})
        if quota is not None:
            totals["fast"] = quota
        if heavy_quota is not None:
            totals["heavy"] = heavy_quota
        account = FakeAccount(token=token, tier=tier, state=state)
        for mode in self.modes.values():
            account.grant(mode, totals.get(mode.id))
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

    def set_tier(self, token: str, tier: str) -> FakeAccount:
        """Move an account (made up if new) to ``tier``; every window reopens with that tier's totals."""
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}")
        account = self._accounts.get(token) or self.add_account(token, tier=tier)
        account.tier = tier
        for mode in self.modes.values():
            account.grant(mode)
        return account

    def set_state(self, token: str, state: str) -> FakeAccount:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}")
        account = self._accounts.get(token) or self.add_account(token)
        account.state = state
        return account

    def block(self, token: str) -> FakeAccount:
        """grok.com blocks the account: 403 blocked-user everywhere, ``status: blocked`` from the session."""
        return self.set_state(token, "blocked")

    def identify(self, token: str | None) -> FakeAccount | None:
        """The account behind a token, made up from its prefixes when unknown tokens are accepted."""
        if token is None:
            return None
        account = self._accounts.get(token)
        if account is None and self.accept_unknown:
            account = self.add_account(token, tier=tier_from_token(token), state=state_from_token(token))
        if account is not None:
            account.refresh()
        return account

    def user_id(self, token: str) -> str:
        """The userId ``/api/auth/session`` gives ``token`` (the account is made up if new and allowed)."""
        account = self.identify(token)
        if account is None:
            raise KeyError(token)
        return account.user_id

    def resolve(self, request: web.Request) -> FakeAccount:
        """The account behind the sso cookie, or a 401/403 exactly as grok.com words it."""
        account = self.identify(request_token(request))
        if account is None or account.state == "invalid":
            raise Reject(json_response(401, ERR_INVALID))
        if account.state == "blocked":
            raise Reject(json_response(403, ERR_BLOCKED))
        return account

    # ---------------------------------------------------------------- modes

    def add_mode(
        self,
        mode_id: str,
        *,
        title: str | None = None,
        description: str = "",
        quotas: dict[str, int] | None = None,
        available: bool | None = None,
    ) -> ModeSpec:
        """List one more mode (e.g. ``grok-420-computer-use-sa``); every account gets its tier's window."""
        mode = extra_mode(mode_id, title=title, description=description, quotas=quotas, available=available)
        self.modes[mode_id] = mode
        for account in self._accounts.values():
            account.grant(mode)
        return mode

    def set_mode_available(self, mode_id: str, available: bool | None) -> None:
        """Force a mode available or unavailable for everyone; None goes back to 'the tiers with quota'."""
        self.modes[mode_id].available = available

    def mode_refusal(self, account: FakeAccount, mode_id: str) -> str | None:
        """Why ``account`` may not run a query of ``mode_id`` now: unknown, unavailable, tier, busy or quota."""
        mode = self.modes.get(mode_id)
        if mode is None:
            return "unknown"
        if mode.available is False:
            return "unavailable"
        if not mode.offered_to(account.tier):
            return "tier"
        cap = self.max_concurrency_per_account
        if cap > 0 and account.in_flight >= cap:
            return "busy"
        if account.window(mode_id).remaining < 1:
            return "quota"
        return None

    # ---------------------------------------------------------------- faults

    def push_fault(self, fault: str, *, token: str | None = None, count: int = 1, **params: Any) -> None:
        """Queue ``fault`` (``name`` or ``name:param``) for the next ``count`` calls of its endpoint."""
        self._faults.push(fault, token=token, count=count, params=params)

    def take_fault(self, endpoint: str, token: str | None, names: frozenset[str] | None = None) -> Fault | None:
        return self._faults.take(endpoint, token, names)

    def clear(self) -> None:
        self.requests.clear()
        self.videos.clear()
        self.mgw.clear()
        self.imagine.clear()
        self.mgw_refusals.clear()
        self._faults.clear()

    # ---------------------------------------------------------------- records

    def record(self, request: web.Request, raw: bytes, token: str | None) -> None:
        truncated = len(raw) > MAX_RECORDED_BODY
        body: Any = None
        if raw:
            with contextlib.suppress(msgspec.DecodeError):
                body = decode_json(raw)
        if truncated:
            body, raw = shrink(body), raw[:MAX_RECORDED_BODY]
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

    async def hold_socket(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        record: MgwRecord | ImagineRecord,
        run: Callable[[], Awaitable[None]],
    ) -> web.WebSocketResponse:
        """Accept a WebSocket and run its session: tracked so ``stop()`` can close it, its record marked
        closed when it ends."""
        await ws.prepare(request)
        self.sockets.add(ws)
        try:
            await run()
        finally:
            self.sockets.discard(ws)
            record.closed = True
        return ws

    def record_mgw(self, request: web.Request, token: str | None, uid: str) -> MgwRecord:
        record = MgwRecord(token=token, uid=uid, headers=headers_dict(request), time=time.time())
        self.mgw.append(record)
        if len(self.mgw) > MAX_MGW_SESSIONS:
            del self.mgw[: len(self.mgw) - MAX_MGW_SESSIONS]
        return record

    def mgw_sessions(self, token: str | None = None) -> list[MgwRecord]:
        """Recorded mgw connections (refused handshakes included), optionally of one token."""
        return [r for r in self.mgw if token is None or r.token == token]

    def record_imagine(self, request: web.Request, token: str | None) -> ImagineRecord:
        record = ImagineRecord(token=token, headers=headers_dict(request), time=time.time())
        self.imagine.append(record)
        if len(self.imagine) > MAX_MGW_SESSIONS:
            del self.imagine[: len(self.imagine) - MAX_MGW_SESSIONS]
        return record

    def imagine_sessions(self, token: str | None = None) -> list[ImagineRecord]:
        """Recorded Imagine connections (refused handshakes included), optionally of one token."""
        return [r for r in self.imagine if token is None or r.token == token]

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

    def add_video(self, record: VideoRecord) -> None:
        self.videos.append(record)
        if len(self.videos) > MAX_VIDEOS:
            del self.videos[: len(self.videos) - MAX_VIDEOS]

    def delivered_videos(self, token: str | None = None) -> list[VideoRecord]:
        """Videos whose answer reached the client in full, optionally of one token."""
        return [v for v in self.videos if v.delivered and (token is None or v.token == token)]

    def new_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def new_hex(self) -> str:
        return f"{self._rng.getrandbits(128):032x}"


STATE_KEY = web.AppKey("fake_grok_state", FakeState)


def state_of(request: web.Request) -> FakeState:
    return request.app[STATE_KEY]
