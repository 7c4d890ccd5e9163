"""Egresses end to end against the fake grok.com and its Cloudflare, on both transports: calls and WebSockets go
out through local HTTP and SOCKS5 proxies, a challenged egress gets a clearance from the FlareSolverr stand-in
and the call is retried once, accounts stick to their egress, statsig values come from the signer stand-in, an
anti-bot refusal inside an answer marks the egress, and the Cloudflare cookies grok.com sets are kept per egress."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from typing import Any

import pytest
from local_proxy import LocalProxy, local_proxy

from grok2api.egresses import Egresses, UnknownEgress
from grok2api.grok.chat import mode_chat_payload
from grok2api.grok.client import GrokClient
from grok2api.grok.egress import egress_key
from grok2api.grok.errors import UpstreamHTTPError
from grok2api.grok.events import ErrorEvent, Event, Text
from grok2api.grok.failures import FailureKind, classify, classify_event
from grok2api.grok.headers import user_agent
from grok2api.grok.imagine import ImagineRequest
from grok2api.grok.mgw import stream_mgw
from grok2api.grok.transport import Transport
from grok2api.settings import RuntimeSettings
from grok2api.store import make_store
from grok2api.store.base import Store
from grok2api.testing.fake_cloudflare import signed_value
from grok2api.testing.fake_grok import CHAT_PATH, LIMITS_PATH, FakeGrok
from grok2api.testing.fake_services import FLARESOLVERR_UA, FakeFlareSolverr, FakeSigner


class Setup:
    """An ``Egresses`` over a SQLite store and the test's transport, with settings the test may change."""

    def __init__(self, store: Store, transport: Transport, fake: FakeGrok) -> None:
        self.store = store
        self.fake = fake
        self.transport = transport
        self.settings = RuntimeSettings(upstream_url=fake.base_url, assets_url=fake.assets_url)
        self.egresses = Egresses(store, lambda: self.settings, transport)
        self.client = GrokClient(transport, router=self.egresses.transport_for)

    def use(self, egresses: Egresses) -> None:
        """Go through ``egresses`` (built with other arguments) from now on."""
        self.egresses = egresses
        self.client = GrokClient(self.transport, router=egresses.transport_for)

    def configure(self, **changes: Any) -> None:
        values = {**{f: getattr(self.settings, f) for f in self.settings.__struct_fields__}, **changes}
        self.settings = RuntimeSettings(**values)

    async def chat(self, token: str) -> str:
        """One mgw chat turn for ``token``; its answer text."""
        user_id = await self.client.auth_session(token, self.settings)
        sockets = self.client.sockets_for(token)
        text = ""
        async for batch in stream_mgw(sockets, token, user_id, "fast", "hello", (), self.settings):
            text += "".join(e.text for e in batch if isinstance(e, Text))
            assert not [e for e in batch if isinstance(e, ErrorEvent)]
        return text

    async def events(self, source: AsyncIterator[list[Event]]) -> list[Event]:
        return [event async for batch in source for event in batch]

    def token_on(self, key: str) -> str:
        """An account whose calls go out through the egress ``key`` (while every egress is healthy)."""
        return next(t for t in (f"tok-{n}" for n in range(64)) if self.egresses.for_token(t).key == key)


@pytest.fixture
async def setup(tmp_path: Any, transport: Transport, fake: FakeGrok) -> AsyncIterator[Setup]:
    store = make_store("sqlite", "", tmp_path)
    await store.open()
    try:
        yield Setup(store, transport, fake)
    finally:
        await store.close()


@pytest.fixture
async def flaresolverr() -> AsyncIterator[FakeFlareSolverr]:
    server = FakeFlareSolverr()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def signer() -> AsyncIterator[FakeSigner]:
    server = FakeSigner()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _limits_calls(fake: FakeGrok) -> list[Any]:
    return [r for r in fake.requests if r.path == LIMITS_PATH]


@pytest.mark.parametrize("scheme", ["http", "socks5"])
async def test_calls_and_websockets_go_out_through_the_proxy(setup: Setup, scheme: str) -> None:
    setup.fake.cloudflare.challenge("127.0.0.1")  # anything that came without the proxy would be refused
    async with local_proxy(scheme, "127.0.0.2") as proxy:
        setup.configure(proxy_urls=proxy.url)
        await setup.egresses.load()
        info = await setup.client.rate_limits("tok-1", "fast", setup.settings)
        assert info.remaining is not None
        assert await setup.chat("tok-1")
    # The rate limits, the session call and the WebSocket all came through the proxy.
    assert proxy.connections >= 1 and set(proxy.targets) == {f"127.0.0.1:{setup.fake.port}"}
    assert setup.fake.cloudflare.challenges == []
    assert setup.fake.mgw_sessions() and setup.fake.mgw_sessions()[-1].token == "tok-1"


async def test_the_old_proxy_url_setting_is_still_an_egress(setup: Setup) -> None:
    async with local_proxy("http", "127.0.0.2") as proxy:
        setup.configure(proxy_url=proxy.url)
        await setup.egresses.load()
        assert [e.proxy for e in setup.egresses.all()] == [proxy.url]
        await setup.client.rate_limits("tok-1", "fast", setup.settings)
    assert proxy.connections == 1


async def test_a_challenge_is_solved_by_flaresolverr_and_the_call_retried_once(
    setup: Setup, flaresolverr: FakeFlareSolverr
) -> None:
    async with local_proxy("http", "127.0.0.2") as proxy:
        setup.configure(proxy_urls=proxy.url, flaresolverr_url=flaresolverr.url)
        await setup.egresses.load()
        setup.fake.cloudflare.challenge("127.0.0.2")
        info = await setup.client.rate_limits("tok-1", "fast", setup.settings)
        assert info.remaining is not None
        # FlareSolverr was sent through the egress's own proxy.
        [command] = flaresolverr.commands
        assert command["cmd"] == "request.get" and command["proxy"] == {"url": proxy.url}
        # The clearance and FlareSolverr's User-Agent belong to the egress now, for every worker.
        [state] = await setup.store.list_egresses()
        assert state.key == egress_key(proxy.url) and state.clearance_source == "flaresolverr"
        assert set(state.cookies) == {"cf_clearance", "__cf_bm"} and state.user_agent == FLARESOLVERR_UA
        assert state.challenged_at is None
        # The retry carried them; the next call goes straight through.
        first, retry = _limits_calls(setup.fake)
        assert "cf_clearance" not in first.headers.get("cookie", "")
        assert (
            retry.headers["user-agent"] == FLARESOLVERR_UA and state.cookies["cf_clearance"] in retry.headers["cookie"]
        )
        assert retry.headers["cookie"].startswith("sso-rw=tok-1")  # the account's own cookie stays
        assert await setup.chat("tok-1")
    assert len(setup.fake.cloudflare.challenges) == 1 and len(flaresolverr.commands) == 1


async def test_a_challenged_websocket_is_retried_with_the_new_clearance(
    setup: Setup, flaresolverr: FakeFlareSolverr
) -> None:
    async with local_proxy("http", "127.0.0.3") as proxy:
        setup.configure(proxy_urls=proxy.url, flaresolverr_url=flaresolverr.url)
        await setup.egresses.load()
        user_id = await setup.client.auth_session("tok-1", setup.settings)
        setup.fake.cloudflare.challenge("127.0.0.3")
        sockets = setup.client.sockets_for("tok-1")
        batches = [b async for b in stream_mgw(sockets, "tok-1", user_id, "fast", "hi", (), setup.settings)]
    assert any(isinstance(e, Text) for b in batches for e in b)
    # The handshake (and the plain GET that reads its refusal) were challenged; the retry went through.
    assert {path for _, path in setup.fake.cloudflare.challenges} == {"/ws/mgw/"}
    assert len(flaresolverr.commands) == 1


async def test_without_flaresolverr_the_egress_is_marked_not_the_account(setup: Setup) -> None:
    async with local_proxy("http", "127.0.0.2") as proxy:
        setup.configure(proxy_urls=proxy.url)
        await setup.egresses.load()
        setup.fake.cloudflare.challenge("127.0.0.2")
        with pytest.raises(UpstreamHTTPError) as refused:
            await setup.client.rate_limits("tok-1", "fast", setup.settings)
        assert classify(refused.value).kind == FailureKind.EGRESS
        [state] = await setup.store.list_egresses()
        assert state.challenged_at is not None
        assert state.evidence.startswith("a Cloudflare challenge on POST /rest/rate-limits (HTTP 403")
        assert "cf-mitigated: challenge" in state.evidence

        # The operator pastes a clearance made from that egress with its browser's User-Agent: it goes through.
        browser_ua = "Mozilla/5.0 (Macintosh) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36"
        clearance = setup.fake.cloudflare.issue("127.0.0.2", browser_ua)
        key = egress_key(proxy.url)
        await setup.egresses.set_clearance(key, {"cf_clearance": clearance}, browser_ua, source="operator")
        assert (await setup.client.rate_limits("tok-1", "fast", setup.settings)).remaining is not None
        assert _limits_calls(setup.fake)[-1].headers["sec-ch-ua"].count('v="142"') == 2


async def test_a_clearance_with_another_user_agent_is_refused(setup: Setup) -> None:
    setup.fake.cloudflare.challenge("127.0.0.1")
    await setup.egresses.load()
    issued = setup.fake.cloudflare.issue("127.0.0.1", "Mozilla/5.0 Chrome/140.0.0.0")
    # Pasted without the User-Agent it was made with: the gateway sends its own, and Cloudflare says no.
    await setup.egresses.set_clearance("direct", {"cf_clearance": issued}, "", source="operator")
    with pytest.raises(UpstreamHTTPError):
        await setup.client.rate_limits("tok-1", "fast", setup.settings)
    assert setup.fake.cloudflare.refusals == ["a clearance presented with another User-Agent"]
    assert _limits_calls(setup.fake)[-1].headers["user-agent"] == user_agent(setup.settings)


async def test_a_clearance_from_another_egress_is_refused(setup: Setup) -> None:
    async with local_proxy("http", "127.0.0.2") as proxy:
        setup.configure(proxy_urls=proxy.url)
        await setup.egresses.load()
        setup.fake.cloudflare.challenge("127.0.0.2")
        made_elsewhere = setup.fake.cloudflare.issue("127.0.0.1", user_agent(setup.settings))
        await setup.egresses.set_clearance(
            egress_key(proxy.url), {"cf_clearance": made_elsewhere}, "", source="operator"
        )
        with pytest.raises(UpstreamHTTPError):
            await setup.client.rate_limits("tok-1", "fast", setup.settings)
    assert setup.fake.cloudflare.refusals == ["a clearance issued to 127.0.0.1, presented from 127.0.0.2"]


async def test_a_failed_solve_leaves_the_egress_marked(setup: Setup, flaresolverr: FakeFlareSolverr) -> None:
    flaresolverr.fail = "Error solving the challenge. Timeout after 60.0 seconds."
    setup.configure(flaresolverr_url=flaresolverr.url)
    await setup.egresses.load()
    setup.fake.cloudflare.challenge("127.0.0.1")
    for _ in range(2):
        with pytest.raises(UpstreamHTTPError):
            await setup.client.rate_limits("tok-1", "fast", setup.settings)
    assert len(flaresolverr.commands) == 1  # a failed solve is not asked again straight away
    [state] = await setup.store.list_egresses()
    assert state.challenged_at is not None and state.cookies == {}


async def test_accounts_stick_to_their_egress_and_move_only_while_it_is_unhealthy(setup: Setup) -> None:
    async with AsyncExitStack() as stack:
        proxies: list[LocalProxy] = [
            await stack.enter_async_context(local_proxy("http", f"127.0.0.{n}")) for n in (2, 3)
        ]
        setup.configure(proxy_urls=",".join(p.url for p in proxies))
        await setup.egresses.load()
        tokens = [f"tok-{n}" for n in range(24)]
        home = {t: setup.egresses.for_token(t).key for t in tokens}
        assert len(set(home.values())) == 2  # both egresses serve accounts
        for token in tokens[:6]:
            await setup.client.rate_limits(token, "fast", setup.settings)
            await setup.client.rate_limits(token, "fast", setup.settings)
        # Each account's calls all came through its own egress's proxy.
        by_key = {egress_key(p.url): p for p in proxies}
        for key, proxy in by_key.items():
            assert proxy.connections >= 1 if key in {home[t] for t in tokens[:6]} else proxy.connections == 0

        # One egress is challenged: its accounts move to the other; the others stay where they were.
        challenged = egress_key(proxies[0].url)
        await setup.egresses.refused(challenged, "a Cloudflare challenge on GET / (HTTP 403)")
        now = {t: setup.egresses.for_token(t).key for t in tokens}
        assert all(key != challenged for key in now.values())
        assert all(now[t] == home[t] for t in tokens if home[t] != challenged)

        # Once it has recovered, every account is back home.
        await setup.egresses.recovered(challenged)
        assert {t: setup.egresses.for_token(t).key for t in tokens} == home


async def test_workers_share_what_one_of_them_learned(setup: Setup, transport: Transport) -> None:
    other = Egresses(setup.store, lambda: setup.settings, transport)
    await setup.egresses.load()
    await other.load()
    await setup.egresses.refused("direct", "a Cloudflare challenge on GET / (HTTP 403)")
    assert other.get("direct").challenged_at is None
    await other.load()
    assert other.get("direct").challenged_at is not None and "challenge" in other.get("direct").evidence
    await setup.egresses.set_clearance("direct", {"cf_clearance": "c1"}, "UA/1", source="operator")
    await other.load()
    assert other.get("direct").cookies == {"cf_clearance": "c1"} and other.get("direct").challenged_at is None


async def test_unknown_egress_keys_are_refused(setup: Setup) -> None:
    await setup.egresses.load()
    with pytest.raises(UnknownEgress):
        setup.egresses.transport("p-nope")
    with pytest.raises(UnknownEgress):
        await setup.egresses.set_clearance("p-nope", {"cf_clearance": "x"}, "", source="operator")


async def test_a_client_bound_to_one_egress_uses_it_for_every_account(setup: Setup) -> None:
    async with AsyncExitStack() as stack:
        proxies = [await stack.enter_async_context(local_proxy("http", f"127.0.0.{n}")) for n in (2, 3)]
        setup.configure(proxy_urls=" ".join(p.url for p in proxies))
        await setup.egresses.load()
        bound = setup.egresses.client(egress_key(proxies[1].url))
        for n in range(4):
            await bound.rate_limits(f"tok-{n}", "fast", setup.settings)
    assert (proxies[0].connections, proxies[1].connections > 0) == (0, True)


async def test_statsig_is_signed_cached_and_signed_again_after_an_anti_bot_403(
    setup: Setup, signer: FakeSigner
) -> None:
    setup.fake.signed_statsig = True
    setup.configure(statsig_signer_url=f"{signer.url}/sign")
    await setup.egresses.load()
    for _ in range(2):
        await setup.client.rate_limits("tok-1", "fast", setup.settings)
    assert [c["path"] for c in signer.calls] == ["/rest/rate-limits"]  # cached per method and path
    assert signer.calls[0] == {
        "method": "POST",
        "path": "/rest/rate-limits",
        "environment": {"metaContent": setup.fake.site_verification},
    }
    expected = signed_value("POST", "/rest/rate-limits", setup.fake.site_verification)
    assert all(c.headers["x-statsig-id"] == expected for c in _limits_calls(setup.fake))

    # A new build of the site: the cached value gets the anti-bot 403, is dropped, and the call signed again.
    setup.fake.site_verification = "bmV3LWJ1aWxk"
    assert (await setup.client.rate_limits("tok-1", "fast", setup.settings)).remaining is not None
    assert [c["environment"]["metaContent"] for c in signer.calls][-1] == "bmV3LWJ1aWxk"
    statuses = [c.headers["x-statsig-id"] for c in _limits_calls(setup.fake)[-2:]]
    assert statuses[1] == signed_value("POST", "/rest/rate-limits", "bmV3LWJ1aWxk") != statuses[0]
    assert all(e.challenged_at is None for e in await setup.store.list_egresses())  # the retry fixed it: no mark


async def test_without_a_signer_the_fixed_statsig_goes_out_and_a_persistent_anti_bot_marks_the_egress(
    setup: Setup,
) -> None:
    setup.fake.signed_statsig = True
    await setup.egresses.load()
    with pytest.raises(UpstreamHTTPError) as refused:
        await setup.client.rate_limits("tok-1", "fast", setup.settings)
    assert refused.value.status == 403 and classify(refused.value).kind == FailureKind.EGRESS
    assert _limits_calls(setup.fake)[-1].headers["x-statsig-id"] == setup.settings.x_statsig_id
    [state] = await setup.store.list_egresses()
    assert state.evidence.startswith("an anti-bot 403 on POST /rest/rate-limits")


async def test_an_unreachable_signer_falls_back_to_the_fixed_value(setup: Setup) -> None:
    setup.configure(statsig_signer_url="http://127.0.0.1:9/sign")
    await setup.egresses.load()
    await setup.client.rate_limits("tok-1", "fast", setup.settings)
    assert _limits_calls(setup.fake)[-1].headers["x-statsig-id"] == setup.settings.x_statsig_id


async def test_an_unreachable_proxy_marks_its_egress(setup: Setup) -> None:
    setup.configure(proxy_urls="http://127.0.0.1:9")
    await setup.egresses.load()
    with pytest.raises(Exception) as failed:
        await setup.client.rate_limits("tok-1", "fast", setup.settings)
    assert classify(failed.value).kind == FailureKind.SERVER
    [state] = await setup.store.list_egresses()
    assert state.evidence == "the proxy could not be reached"


# -------------------------------------------------------------------------------- refusals inside an answer


async def _two_egresses(setup: Setup, stack: AsyncExitStack) -> list[LocalProxy]:
    proxies = [await stack.enter_async_context(local_proxy("http", f"127.0.0.{n}")) for n in (2, 3)]
    setup.configure(proxy_urls=",".join(p.url for p in proxies))
    await setup.egresses.load()
    return proxies


def _marked(states: Sequence[Any]) -> dict[str, str]:
    return {s.key: s.evidence for s in states if s.challenged_at is not None}


async def test_an_anti_bot_event_on_the_chat_websocket_marks_the_egress_and_the_account_moves(setup: Setup) -> None:
    async with AsyncExitStack() as stack:
        proxies = await _two_egresses(setup, stack)
        refused, other = egress_key(proxies[0].url), egress_key(proxies[1].url)
        token = setup.token_on(refused)
        user_id = await setup.client.auth_session(token, setup.settings)
        setup.fake.push_fault("mgw-antibot")
        sockets = setup.client.sockets_for(token)
        events = await setup.events(stream_mgw(sockets, token, user_id, "fast", "hi", (), setup.settings))
        [error] = [e for e in events if isinstance(e, ErrorEvent)]
        assert classify_event(error).kind == FailureKind.EGRESS
        # The egress is marked in the store, for every worker; the other one is not.
        marked = _marked(await setup.store.list_egresses())
        assert list(marked) == [refused]
        assert marked[refused].startswith("an anti-bot error event on the chat WebSocket (GET /ws/mgw/: ")
        assert "Request rejected by anti-bot rules." in marked[refused]
        # The account goes out through the other egress now, and its next chat goes through.
        assert setup.egresses.for_token(token).key == other
        before = proxies[1].connections
        assert await setup.chat(token)
        assert proxies[1].connections > before


async def test_an_anti_bot_error_line_in_a_rest_answer_marks_the_egress_and_drops_its_statsig(
    setup: Setup, signer: FakeSigner
) -> None:
    setup.configure(statsig_signer_url=f"{signer.url}/sign")
    await setup.egresses.load()
    payload = mode_chat_payload("fast", "hi [[fault:inband-7]]", [], setup.settings)
    events = await setup.events(setup.client.stream_chat("tok-1", payload, setup.settings))
    [error] = [e for e in events if isinstance(e, ErrorEvent)]
    assert error.code == 7 and classify_event(error).kind == FailureKind.EGRESS
    [state] = await setup.store.list_egresses()
    assert state.key == "direct" and state.challenged_at is not None
    assert state.evidence.startswith(f"an anti-bot error (code 7) in the streamed answer (POST {CHAT_PATH}: ")
    # The signed value that was refused is not used again: the next chat is signed afresh.
    calls = [c for c in signer.calls if c["path"] == CHAT_PATH]
    events = await setup.events(setup.client.stream_chat("tok-1", payload | {"message": "again"}, setup.settings))
    assert not [e for e in events if isinstance(e, ErrorEvent)]
    assert len([c for c in signer.calls if c["path"] == CHAT_PATH]) == len(calls) + 1
    # That chat went through: the mark is cleared.
    assert [s.challenged_at for s in await setup.store.list_egresses()] == [None]


async def test_an_anti_bot_event_on_the_imagine_websocket_marks_the_egress(setup: Setup) -> None:
    await setup.egresses.load()
    setup.fake.push_fault("imagine-antibot")
    request = ImagineRequest("a red fox")
    events = await setup.events(request.stream(setup.client, "tok-1", "user-1", setup.settings))
    assert [classify_event(e).kind for e in events if isinstance(e, ErrorEvent)] == [FailureKind.EGRESS]
    [state] = await setup.store.list_egresses()
    assert state.evidence.startswith("an anti-bot error event on the Imagine WebSocket (GET /ws/imagine/listen: ")


async def test_other_errors_inside_an_answer_leave_the_egress_alone(setup: Setup) -> None:
    await setup.egresses.load()
    setup.fake.push_fault("mgw-usage")
    user_id = await setup.client.auth_session("tok-1", setup.settings)
    sockets = setup.client.sockets_for("tok-1")
    events = await setup.events(stream_mgw(sockets, "tok-1", user_id, "fast", "hi", (), setup.settings))
    assert [classify_event(e).kind for e in events if isinstance(e, ErrorEvent)] == [FailureKind.RATE_LIMITED]
    payload = mode_chat_payload("fast", "hi [[fault:inband-13]]", [], setup.settings)
    events = await setup.events(setup.client.stream_chat("tok-1", payload, setup.settings))
    assert [classify_event(e).kind for e in events if isinstance(e, ErrorEvent)] == [FailureKind.SERVER]
    assert _marked(await setup.store.list_egresses()) == {}


# ------------------------------------------------------------------------- cookies grok.com sets on answers


def _presented(fake: FakeGrok, source: str) -> list[str]:
    """The ``__cf_bm`` each call from ``source`` presented ("" for none), in order."""
    return [bm for src, _, bm in fake.cloudflare.presented if src == source]


async def test_a_rotated_cf_bm_is_kept_and_sent_back_through_the_same_egress_only(setup: Setup) -> None:
    setup.fake.cloudflare.bot_management = True
    async with AsyncExitStack() as stack:
        proxies = await _two_egresses(setup, stack)
        first, second = (egress_key(p.url) for p in proxies)
        on_first, on_second = setup.token_on(first), setup.token_on(second)
        await setup.client.rate_limits(on_first, "fast", setup.settings)
        issued = setup.fake.cloudflare.bot_cookies["127.0.0.2"]
        assert setup.egresses.get(first).cookies == {"__cf_bm": issued}
        assert setup.egresses.get(second).cookies == {}
        # The next call through that egress carries it (with the account's own cookie); the other egress's calls
        # never do: they get and carry a value of their own.
        await setup.client.rate_limits(on_first, "fast", setup.settings)
        await setup.client.rate_limits(on_second, "fast", setup.settings)
        await setup.client.rate_limits(on_second, "fast", setup.settings)
        assert _presented(setup.fake, "127.0.0.2") == ["", issued]
        own = setup.fake.cloudflare.bot_cookies["127.0.0.3"]
        assert own != issued and _presented(setup.fake, "127.0.0.3") == ["", own]
        assert _limits_calls(setup.fake)[1].headers["cookie"].startswith(f"sso-rw={on_first}")
        # Cloudflare rotates it: the new value replaces the old one.
        setup.fake.cloudflare.rotate("127.0.0.2")
        await setup.client.rate_limits(on_first, "fast", setup.settings)
        await setup.client.rate_limits(on_first, "fast", setup.settings)
        rotated = setup.fake.cloudflare.bot_cookies["127.0.0.2"]
        assert _presented(setup.fake, "127.0.0.2")[-2:] == [issued, rotated]
        await setup.egresses.flush()
    stored = {s.key: s.cookies for s in await setup.store.list_egresses()}
    assert stored == {first: {"__cf_bm": rotated}, second: {"__cf_bm": own}}


async def test_a_burst_of_rotations_is_stored_once_and_unchanged_cookies_never(setup: Setup) -> None:
    writes: list[dict[str, str]] = []
    merge = setup.store.merge_egress_cookies

    async def counted(key: str, cookies: dict[str, str], at: float) -> None:
        writes.append(dict(cookies))
        await merge(key, cookies, at)

    setup.store.merge_egress_cookies = counted  # type: ignore[method-assign]
    setup.use(Egresses(setup.store, lambda: setup.settings, setup.transport, cookie_save_delay=60))
    setup.fake.cloudflare.bot_management = True
    await setup.egresses.load()
    await setup.egresses.set_clearance("direct", {"cf_clearance": "c1"}, "", source="operator")
    for _ in range(3):
        setup.fake.cloudflare.rotate()
        await setup.client.rate_limits("tok-1", "fast", setup.settings)
    last = setup.fake.cloudflare.bot_cookies["127.0.0.1"]
    for _ in range(3):  # the current value is presented: nothing is set, nothing changes
        await setup.client.rate_limits("tok-1", "fast", setup.settings)
    assert writes == []  # still within the burst
    assert setup.egresses.get("direct").cookies == {"cf_clearance": "c1", "__cf_bm": last}  # in use already
    await setup.egresses.flush()
    assert writes == [{"__cf_bm": last}]
    [state] = await setup.store.list_egresses()
    # Only the rotated cookie was written: the operator's clearance and its source stay as they were.
    assert state.cookies == {"cf_clearance": "c1", "__cf_bm": last} and state.clearance_source == "operator"
    await setup.egresses.flush()
    assert len(writes) == 1


async def test_cookies_reach_the_store_by_themselves_and_other_workers(setup: Setup) -> None:
    setup.use(Egresses(setup.store, lambda: setup.settings, setup.transport, cookie_save_delay=0.01))
    other = Egresses(setup.store, lambda: setup.settings, setup.transport)
    setup.fake.cloudflare.bot_management = True
    await setup.egresses.load()
    await setup.client.rate_limits("tok-1", "fast", setup.settings)
    issued = setup.fake.cloudflare.bot_cookies["127.0.0.1"]
    for _ in range(200):  # a bounded wait for the write that ends the burst
        await other.load()
        if other.get("direct").cookies:
            break
        await asyncio.sleep(0.02)
    assert other.get("direct").cookies == {"__cf_bm": issued}
    assert other.get("direct").challenged_at is None and other.get("direct").clearance_source == ""


async def test_the_websocket_handshake_answer_sets_cookies_too(setup: Setup) -> None:
    setup.fake.cloudflare.bot_management = True
    await setup.egresses.load()
    user_id = await setup.client.auth_session("tok-1", setup.settings)
    setup.fake.cloudflare.rotate()  # the next answer, the handshake's, sets a new value
    sockets = setup.client.sockets_for("tok-1")
    await setup.events(stream_mgw(sockets, "tok-1", user_id, "fast", "hi", (), setup.settings))
    rotated = setup.fake.cloudflare.bot_cookies["127.0.0.1"]
    assert setup.egresses.get("direct").cookies == {"__cf_bm": rotated}
    await setup.client.rate_limits("tok-1", "fast", setup.settings)
    assert _presented(setup.fake, "127.0.0.1")[-1] == rotated
    await setup.egresses.flush()


async def test_an_egress_with_only_rotated_cookies_still_sends_the_cf_clearance_setting(setup: Setup) -> None:
    setup.fake.cloudflare.bot_management = True
    setup.configure(cf_clearance="from-the-setting")
    await setup.egresses.load()
    for _ in range(2):
        await setup.client.rate_limits("tok-1", "fast", setup.settings)
    cookie = _limits_calls(setup.fake)[-1].headers["cookie"]
    assert "cf_clearance=from-the-setting" in cookie and "__cf_bm=" in cookie
    await setup.egresses.flush()
