"""The account pool: failure classification (session check, WebSocket handshake, in-band errors), failover,
per-mode usage limits and their reset, cooling, tier routing per mode, spread."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import openai
import pytest

from grok2api.after_response import drain
from grok2api.store.base import Account, AccountPatch, AccountState, ModeQuota
from grok2api.testing.fake_grok import FakeGrok, MgwRecord

from harness import LiveGateway

# ---- behaviour against the fake ----------------------------------------------------------------


async def _account(gateway: LiveGateway, token: str) -> Account:
    await drain()  # what the last responses settled after their last byte
    acc = await gateway.services.store.get_account(token)
    assert acc is not None
    return acc


def _ask(content: str = "hello") -> list[Any]:
    return [{"role": "user", "content": content}]


def _answered(fake: FakeGrok, token: str | None = None, mode: str | None = None) -> list[MgwRecord]:
    """The chat sockets grok.com let through (and answered), optionally of one account and mode."""
    return [
        r for r in fake.mgw_sessions(token) if r.refused is None and r.responses and (mode is None or r.mode == mode)
    ]


def test_the_best_account_is_an_idle_one_of_the_lowest_tier_else_the_least_busy() -> None:
    from grok2api.grok.catalog import MODELS

    accounts = [Account(id=i, token=f"t{i}", tier="basic" if i < 8 else "super") for i in range(40)]
    pool = _pool_with(accounts)
    fast = MODELS["grok-3-fast"]
    for i in range(8):
        pool._in_flight[i] = 1 if i < 6 else 0  # two idle basic accounts among busy ones
    picks = Counter(pool.best(fast, set()).id for _ in range(400))
    assert set(picks) == {6, 7} and min(picks.values()) > 100  # only idle ones, each about as often
    # Excluded, inactive, spent or at the cap: never picked; then the least busy of the tier.
    accounts[6].state = AccountState.COOLING
    accounts[7].quotas["fast"] = ModeQuota(remaining=0, reset_at=time.time() + 60)
    pool._in_flight[3] = 0
    assert {pool.best(fast, set()).id for _ in range(50)} == {3}
    assert {pool.best(fast, {3}).id for _ in range(100)} == {0, 1, 2, 4, 5}  # all busy once: ties at random
    pool.settings().account_max_concurrency = 1
    assert pool.best(fast, {3}).tier == "super"  # the basic tier is full: the next tier serves
    for acc in accounts[8:]:
        acc.state = AccountState.DISABLED
    assert pool.best(fast, {3}) is None
    assert pool.best(fast, set()).id == 3


async def _eventually(check: Callable[[], Awaitable[bool]], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _window(gateway: LiveGateway, token: str, mode: str) -> ModeQuota | None:
    return (await _account(gateway, token)).quotas.get(mode)


async def test_signed_out_session_makes_the_account_invalid_at_once(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("invalid-one", "healthy-one")
    sent = 0
    # Ties are broken at random: run until the bad account was picked once.
    while sent < 40 and (await _account(gateway, "invalid-one")).state != AccountState.INVALID:
        reply = await client.chat.completions.create(model="grok-3-fast", messages=_ask())
        assert reply.choices[0].message.content
        sent += 1
    bad = await _account(gateway, "invalid-one")
    good = await _account(gateway, "healthy-one")
    # /api/auth/session said "unauthenticated": grok.com's own word, so no three strikes are needed.
    assert bad.state == AccountState.INVALID
    assert "invalid credentials" in bad.state_reason and "session check" in bad.state_reason
    assert bad.requests_failed == 1 and bad.user_id == ""
    assert fake.mgw_sessions("invalid-one") == []  # no chat socket was opened for it
    assert good.state == AccountState.ACTIVE and good.requests_ok == sent
    assert good.user_id == fake.user_id("healthy-one")  # resolved once, kept with the account
    assert len(fake.mgw_sessions("healthy-one")) == sent
    for _ in range(5):  # once invalid it is never tried again
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert (await _account(gateway, "invalid-one")).requests_failed == 1


async def test_blocked_session_makes_the_account_blocked(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("blocked-acc", "tok-ok")
    sent = 0
    while sent < 40 and (await _account(gateway, "blocked-acc")).state != AccountState.BLOCKED:
        reply = await client.chat.completions.create(model="grok-3-fast", messages=_ask())
        assert reply.choices[0].message.content  # failed over to the healthy account
        sent += 1
    blocked = await _account(gateway, "blocked-acc")
    assert blocked.state == AccountState.BLOCKED
    assert "blocked" in blocked.state_reason and "session check" in blocked.state_reason
    assert blocked.requests_failed == 1 and fake.mgw_sessions("blocked-acc") == []
    assert (await _account(gateway, "tok-ok")).requests_ok == sent


async def test_session_check_rate_limited_cools_the_account_not_a_mode(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok-busy")
    fake.push_fault("auth-429", token="tok-busy", retry_after=30)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert info.value.status_code == 429
    acc = await _account(gateway, "tok-busy")
    # Not a chat of any mode: like an operator's live check, the whole account rests for the Retry-After.
    assert acc.state == AccountState.COOLING and "429" in acc.state_reason and "session check" in acc.state_reason
    assert acc.cooldown_until is not None and abs(acc.cooldown_until - (time.time() + 30)) < 5
    assert acc.quotas.get("fast") is None and fake.mgw_sessions("tok-busy") == []


async def test_session_check_asks_once_per_account(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok-once")
    for _ in range(4):
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    asked = [r for r in fake.requests if r.path == "/api/auth/session"]
    assert len(asked) == 1
    uid = fake.user_id("tok-once")
    assert [r.uid for r in fake.mgw_sessions("tok-once")] == [uid] * 4


async def test_credential_failures_on_the_socket_count_towards_invalid(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok-creds")
    await client.chat.completions.create(model="grok-3-fast", messages=_ask())  # resolves the user id
    fake.push_fault("mgw-401", token="tok-creds", count=2)
    for _ in range(2):
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model="grok-3-fast", messages=_ask())
        assert info.value.status_code == 502
    acc = await _account(gateway, "tok-creds")
    assert acc.state == AccountState.ACTIVE and acc.failure_count == 2 and "credentials" in acc.last_failure
    await client.chat.completions.create(model="grok-3-fast", messages=_ask())  # a success resets the count
    assert (await _account(gateway, "tok-creds")).failure_count == 0
    fake.push_fault("mgw-401", token="tok-creds", count=3)
    for _ in range(3):
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    acc = await _account(gateway, "tok-creds")
    assert acc.state == AccountState.INVALID and "invalid credentials" in acc.state_reason
    assert [r.refused for r in fake.mgw_sessions("tok-creds")].count(401) == 5


@pytest.mark.parametrize(
    ("fault", "fix"),
    [("403-cf", "cf_clearance"), ("mgw-403-cf", "cf_clearance"), ("mgw-403-antibot", "anti-bot")],
)
async def test_egress_refusal_of_the_handshake_penalises_no_account(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, fault: str, fix: str
) -> None:
    await gateway.add_accounts("tok-a", "tok-b")
    fake.push_fault(fault, count=5)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert info.value.status_code == 502
    body = info.value.response.json()["error"]
    assert body["code"] == "egress_blocked" and fix in body["message"]
    # Not retried on other accounts: it would fail the same way.
    assert [r.refused for r in fake.mgw_sessions()] == [403]
    for token in ("tok-a", "tok-b"):
        acc = await _account(gateway, token)
        assert acc.state == AccountState.ACTIVE and acc.failure_count == 0 and acc.requests_failed == 0
        assert acc.quotas.get("fast") is None or acc.quotas["fast"].remaining != 0  # the query went back


async def test_blocked_handshake_blocks_the_account_though_it_is_a_403_code_7(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("tok-banned", "tok-fine")
    for token in ("tok-banned", "tok-fine"):
        fake.user_id(token)  # known to grok.com from the start
    fake.push_fault("mgw-403-blocked", token="tok-banned", count=5)
    sent = 0
    while sent < 40 and (await _account(gateway, "tok-banned")).state != AccountState.BLOCKED:
        reply = await client.chat.completions.create(model="grok-3-fast", messages=_ask())
        assert reply.choices[0].message.content
        sent += 1
    banned = await _account(gateway, "tok-banned")
    # The body says blocked-user: checked before the anti-bot rule that would blame the egress.
    assert banned.state == AccountState.BLOCKED and "blocked-user" in banned.state_reason
    assert [r.refused for r in fake.mgw_sessions("tok-banned")] == [403]
    assert (await _account(gateway, "tok-fine")).state == AccountState.ACTIVE


RESET = 5.0  # seconds until the emptied fast window resets in the usage-limit test (room for a loaded machine)


@pytest.mark.parametrize("limit", ["handshake-429", "usage-limit-event"])
async def test_usage_limit_empties_one_mode_until_its_window_resets(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok, limit: str
) -> None:
    await gateway.settings(default_cooldown_seconds=RESET)  # the usage-limit event names no wait
    upstream = fake.add_account("super-cool", tier="super")
    fake.add_account("super-spare", tier="super", quotas={"auto": 0})  # no auto, once that is learned
    await gateway.add_accounts("super-cool", "super-spare", tier="super")
    if limit == "handshake-429":
        fake.push_fault("429", token="super-cool", retry_after=RESET)
    else:  # grok.com's own fast window is empty until it resets: its chat answers with a usage-limit error
        window = upstream.window("fast")
        window.remaining = 0
        window.started = time.time() - window.window_seconds + RESET
    # Whichever account is tried first, every request succeeds; run until super-cool took its limit.
    for _ in range(20):
        reply = await client.chat.completions.create(model="grok-3-fast", messages=_ask())
        assert reply.choices[0].message.content
        fast = await _window(gateway, "super-cool", "fast")
        if fast is not None and fast.remaining == 0:
            break
    empty_upstream = upstream.window("fast").remaining == 0  # only with the usage-limit event
    upstream_reset = time.time() + (upstream.seconds_left("fast") if empty_upstream else 0)
    assert upstream_reset <= time.time() + RESET + 1
    cool = await _account(gateway, "super-cool")
    fast = cool.quotas["fast"]
    assert fast.remaining == 0 and fast.reset_at is not None
    assert time.time() < fast.reset_at <= time.time() + RESET + 0.5
    # Only that window: the account itself stays active, with the limit as its last failure.
    assert cool.state == AccountState.ACTIVE and cool.cooldown_until is None
    assert "fast resumes in" in cool.last_failure and cool.failure_count == 0
    # While the fast window is empty it gets no fast chat...
    sessions_before = len(fake.mgw_sessions("super-cool"))
    for _ in range(5):
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert len(fake.mgw_sessions("super-cool")) == sessions_before
    assert len(_answered(fake, "super-spare", "fast")) >= 5

    # ...but still serves another mode (the spare's first chat learned that it has no auto queries).
    async def spare_learned() -> bool:
        auto = await _window(gateway, "super-spare", "auto")
        return auto is not None and auto.total == 0

    await _eventually(spare_learned)
    reply = await client.chat.completions.create(model="grok-auto", messages=_ask())
    assert reply.choices[0].message.content
    assert len(_answered(fake, "super-cool", "auto")) == 1
    # Once the window has reset, fast comes back to it (the spare is switched off to prove it).
    await asyncio.sleep(max(fast.reset_at, upstream_reset) - time.time() + 0.1)
    await gateway.services.store.update_account("super-spare", AccountPatch(state=AccountState.DISABLED))
    await gateway.services.reload(force=True)
    reply = await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert reply.choices[0].message.content
    assert len(_answered(fake, "super-cool", "fast")) == 1
    after = await _account(gateway, "super-cool")
    assert after.state == AccountState.ACTIVE and after.requests_ok == 2


async def test_tier_routing_per_mode(gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok) -> None:
    async def refused(model: str, tier: str) -> None:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(model=model, messages=_ask())
        assert info.value.status_code == 503, model
        assert f"needs a {tier} account" in info.value.response.json()["error"]["message"]

    async def served_by(model: str, mode: str) -> str:
        before = {r.session_id for r in fake.mgw_sessions()}
        reply = await client.chat.completions.create(model=model, messages=_ask())
        assert reply.choices[0].message.content
        (new,) = [r for r in fake.mgw_sessions() if r.session_id not in before]
        assert new.mode == mode
        return str(new.token)

    await gateway.add_accounts("basic-1")
    # Before its windows are learned, a basic account gets the fast mode only.
    await refused("grok-auto", "super")
    await refused("grok-4.1-thinking", "super")  # an alias of auto
    await refused("grok-expert", "super")
    await refused("grok-heavy", "heavy")
    assert {r.mode for r in fake.mgw_sessions()} == set()
    assert await served_by("grok-fast", "fast") == "basic-1"

    # That first chat learned every base window; grok.com gives this basic account 20 auto queries.
    async def learned() -> bool:
        quotas = (await _account(gateway, "basic-1")).quotas
        return all(m in quotas and quotas[m].total is not None for m in ("fast", "auto", "expert", "heavy"))

    await _eventually(learned)
    basic = await _account(gateway, "basic-1")
    assert {m: w.total for m, w in basic.quotas.items()} == {"fast": 30, "auto": 20, "expert": 0, "heavy": 0}
    assert basic.tier == "basic"
    assert await served_by("grok-auto", "auto") == "basic-1"
    await refused("grok-expert", "super")  # its expert total is 0
    await refused("grok-4-heavy", "heavy")

    await gateway.add_accounts("super-1", tier="super")
    for _ in range(3):
        assert await served_by("grok-expert", "expert") == "super-1"
    await refused("grok-heavy", "heavy")

    await gateway.add_accounts("heavy-1", tier="heavy")
    for _ in range(3):
        assert await served_by("grok-4-heavy", "heavy") == "heavy-1"
    # Every other mode goes to the lowest tier that serves it: heavy accounts are kept for heavy.
    for _ in range(3):
        assert await served_by("grok-3-fast", "fast") == "basic-1"
        assert await served_by("grok-auto", "auto") == "basic-1"
        assert await served_by("grok-expert", "expert") == "super-1"


async def test_burst_spreads_over_the_pool(gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok) -> None:
    tokens = [f"spread-{i}" for i in range(5)]
    await gateway.add_accounts(*tokens)
    burst = [
        client.chat.completions.create(model="grok-3-fast", messages=_ask("[[tokens:5]] [[fault:slow-tokens:0.02]]"))
        for _ in range(50)
    ]
    replies = await asyncio.gather(*burst)
    assert all(r.choices[0].message.content for r in replies)
    counts = Counter(r.token for r in _answered(fake))
    assert sum(counts.values()) == 50
    assert set(counts) == set(tokens)
    assert max(counts.values()) <= 20  # least-busy first: no account takes the whole burst


async def test_disabled_account_is_never_chosen(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("on-1", "off-1")
    await gateway.services.store.update_account("off-1", AccountPatch(state=AccountState.DISABLED))
    await gateway.services.reload(force=True)
    for _ in range(5):
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert fake.mgw_sessions("off-1") == []
    assert len(_answered(fake, "on-1")) == 5


async def test_pool_exhausted_is_429_with_retry_after(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    fake.add_account("tiny-1", quota=1)
    await gateway.add_accounts("tiny-1")
    await gateway.services.store.update_account("tiny-1", AccountPatch(quotas={"fast": ModeQuota(remaining=1)}))
    await gateway.services.reload(force=True)
    await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert info.value.status_code == 429
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert len(fake.mgw_sessions("tiny-1")) == 1  # the empty window was never sent upstream

    # The background reconciliation learns grok.com's window: empty, and when it resets.
    async def learned() -> bool:
        window = await _window(gateway, "tiny-1", "fast")
        return window is not None and window.total == 1 and window.reset_at is not None

    await _eventually(learned)
    acc = await _account(gateway, "tiny-1")
    left = fake.account("tiny-1").seconds_left("fast")
    assert acc.remaining == 0 and acc.state == AccountState.ACTIVE  # the account is fine; its fast window is not
    assert acc.window_reset_at is not None and abs(acc.window_reset_at - (time.time() + left)) < 5
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert info.value.status_code == 429
    assert abs(int(info.value.response.headers["retry-after"]) - left) <= 5  # until the window resets
    # Another mode of the same account still answers.
    reply = await client.chat.completions.create(model="grok-auto", messages=_ask())
    assert reply.choices[0].message.content and len(_answered(fake, "tiny-1", "auto")) == 1


async def test_server_errors_fail_over_within_max_attempts(
    gateway: LiveGateway, client: openai.AsyncOpenAI, fake: FakeGrok
) -> None:
    await gateway.add_accounts("srv-1", "srv-2", "srv-3", "srv-4")
    fake.push_fault("500", count=2)
    reply = await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert reply.choices[0].message.content
    assert [r.refused for r in fake.mgw_sessions()] == [500, 500, None]
    (served,) = _answered(fake)

    async def learned() -> bool:  # the success's background reconciliation
        window = await _window(gateway, str(served.token), "fast")
        return window is not None and window.remaining is not None

    await _eventually(learned)
    fake.push_fault("mgw-503", count=10)
    with pytest.raises(openai.APIStatusError) as info:
        await client.chat.completions.create(model="grok-3-fast", messages=_ask())
    assert info.value.status_code == 502
    assert [r.refused for r in fake.mgw_sessions()][3:] == [503] * 3  # max_attempts (3) more
    accounts = await gateway.services.store.list_accounts()
    assert all(a.state == AccountState.ACTIVE for a in accounts)  # 5xx is not the accounts' fault
    assert sum(a.requests_failed for a in accounts) == 5
    assert all(a.failure_count == 0 for a in accounts)
    # A refused handshake was never counted by grok.com: every reserved query went back.
    windows = {a.token: a.remaining for a in accounts}
    assert windows == {t: 29 if t == served.token else None for t in windows}
    assert fake.account(str(served.token)).window("fast").remaining == 29


# ---- selection over a large pool (no I/O) --------------------------------------------------------


def _pool_with(accounts: list[Account]) -> Any:
    from grok2api.pool import Pool
    from grok2api.settings import RuntimeSettings

    settings = RuntimeSettings()
    pool = Pool(None, lambda: settings)  # type: ignore[arg-type]
    pool._snapshot = {a.id: a for a in accounts}
    pool._tiers = {tier: [a.id for a in accounts if a.tier == tier] for tier in ("basic", "super", "heavy")}
    return pool


def test_selection_is_bounded_spread_and_tier_ordered() -> None:
    from grok2api.grok.catalog import MODELS
    from grok2api.pool import SCAN_TARGET, has_room

    tiers = ("super", "heavy", "basic", "basic")
    windows = {"fast": 5, "auto": 5, "expert": 5, "heavy": 5}
    accounts = [
        Account(id=i, token=f"t{i}", tier=tiers[i % 4], quotas={m: ModeQuota(remaining=n) for m, n in windows.items()})
        for i in range(4000)
    ]
    accounts[2].state = AccountState.COOLING
    accounts[3].quotas["fast"].remaining = 0
    pool = _pool_with(accounts)
    fast, auto, heavy = MODELS["grok-3-fast"], MODELS["grok-auto"], MODELS["grok-4-heavy"]
    firsts: Counter[int] = Counter()
    for _ in range(400):
        picks = pool.candidates(fast, set())
        assert len(picks) == SCAN_TARGET
        assert all(p.tier == "basic" and p.state == AccountState.ACTIVE and (p.remaining or 0) >= 1 for p in picks)
        assert accounts[2] not in picks and accounts[3] not in picks
        firsts[picks[0].id] += 1
    assert len(firsts) > 300  # bursts land all over the pool, not on one "best" account
    # Least busy first among those seen.
    busy_id = pool.candidates(fast, set())[0].id
    pool._in_flight[busy_id] = 5
    assert all(p.id != busy_id for p in pool.candidates(fast, {busy_id}))
    # Auto: super accounts first (basic ones need a learned window); heavy: heavy accounts only.
    assert {p.tier for p in pool.candidates(auto, set())} == {"super"}
    assert {p.tier for p in pool.candidates(heavy, set())} == {"heavy"}
    # A learned window decides over the tier: a basic account with auto queries serves auto first...
    accounts[3].quotas["auto"].total = 20
    assert accounts[3] in pool.candidates(auto, set())
    assert pool.candidates(auto, set())[0].tier == "basic"
    # ...and a heavy account whose heavy total is 0 does not serve heavy.
    accounts[1].quotas["heavy"].total = 0
    assert all(p.id != 1 for _ in range(50) for p in pool.candidates(heavy, set()))
    # An empty window is skipped until its reset time has passed.
    accounts[3].quotas["fast"].reset_at = time.time() + 60
    assert not has_room(accounts[3].quotas["fast"], time.time())
    accounts[3].quotas["fast"].reset_at = time.time() - 1
    assert has_room(accounts[3].quotas["fast"], time.time())
    assert has_room(None, time.time()) and has_room(ModeQuota(total=30), time.time())  # unknown: may be tried
    # When no basic account is usable, super accounts serve the fast mode too; heavy ones last.
    for acc in accounts:
        if acc.tier == "basic":
            acc.state = AccountState.DISABLED
    assert {p.tier for p in pool.candidates(fast, set())} == {"super"}
    for acc in accounts:
        if acc.tier == "super":
            acc.state = AccountState.DISABLED
    assert {p.tier for p in pool.candidates(fast, set())} == {"heavy"}


class _RecordingStore:
    """The two hot calls of a lease, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def reserve(self, account_id: int, mode: str) -> bool:
        self.calls.append(("reserve", account_id, mode))
        return True

    async def settle(self, account_id: int, s: Any) -> None:
        self.calls.append(("settle", account_id, s.refund, s.ok))


def _held_pool() -> tuple[Any, _RecordingStore]:
    store = _RecordingStore()
    pool = _pool_with([Account(id=1, token="t1", tier="basic")])
    pool.store = store
    pool._loaded_at = time.monotonic()
    return pool, store


async def test_a_held_lease_takes_its_query_once_begun_and_only_once() -> None:
    from grok2api.grok.catalog import MODELS

    pool, store = _held_pool()
    lease = await pool.hold(MODELS["grok-3-fast"], set())
    await asyncio.sleep(0.01)
    assert store.calls == [] and pool.in_flight(1) == 1  # held: counted in flight, nothing asked of the store yet
    lease.begin()
    lease.begin()
    assert await lease.reserved() is True
    await lease.succeed()
    assert store.calls == [("reserve", 1, "fast"), ("settle", 1, 0, True)] and pool.in_flight(1) == 0


async def test_a_held_lease_that_fails_before_its_query_was_asked_for_gives_nothing_back() -> None:
    from grok2api.grok.catalog import MODELS
    from grok2api.grok.failures import Failure, FailureKind

    pool, store = _held_pool()
    fast = MODELS["grok-3-fast"]
    never_asked = await pool.hold(fast, set())
    await never_asked.fail(Failure(FailureKind.SERVER, "the socket did not open"))
    assert store.calls == [("settle", 1, 0, False)] and pool.in_flight(1) == 0  # nothing taken, nothing refunded
    store.calls.clear()
    asked = await pool.hold(fast, set())
    asked.begin()
    await asked.fail(Failure(FailureKind.SERVER, "grok.com failed before answering"))
    assert store.calls == [("reserve", 1, "fast"), ("settle", 1, 1, False)] and pool.in_flight(1) == 0
