"""The doctor against the fake grok.com: every step green on a healthy fake, and one case per verdict, each caused
the way grok.com (or the network) causes it, with the verdict and the fix an operator would read."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from grok2api.diagnose import targets as targets_module
from grok2api.diagnose.doctor import ACCOUNT_STEPS, DoctorAccount, Options, run
from grok2api.diagnose.probes import Timeouts
from grok2api.diagnose.report import STEP_TITLES, Report, Verdict, public_json
from grok2api.grok.unknown_shapes import UNKNOWN_SHAPES
from grok2api.settings import RuntimeSettings
from grok2api.testing.fake_grok import FakeGrok

ACCOUNT = DoctorAccount("tok-doctor-basic-1")
ALL_STEPS = list(STEP_TITLES)


def settings_of(fake: FakeGrok, **changes: object) -> RuntimeSettings:
    values: dict[str, object] = {
        "upstream_url": fake.base_url,
        "assets_url": fake.assets_url,
        "upstream_transport": "aiohttp",
    }
    values.update(changes)
    return RuntimeSettings(**values)  # type: ignore[arg-type]


async def doctor(
    settings: RuntimeSettings, account: DoctorAccount | None = ACCOUNT, options: Options = Options()
) -> Report:
    reports = await run(settings, account, options)
    assert len(reports) == 1  # one egress today
    return reports[0]


def codes(report: Report) -> dict[str, str]:
    return {s.name: s.code for s in report.steps}


@pytest.mark.parametrize("transport", ["aiohttp", "curl_cffi"])
async def test_every_step_is_green_against_a_healthy_fake(fake: FakeGrok, transport: str) -> None:
    report = await doctor(settings_of(fake, upstream_transport=transport))
    assert [s.name for s in report.steps] == ALL_STEPS
    assert all(s.ok and s.code == Verdict.OK and not s.fix for s in report.steps), report.steps
    assert report.ok and public_json([report])["ok"] is True
    tls = report.step("tls")
    assert tls is not None and tls.verdict.startswith("not used (plain HTTP)")
    assert ("Chrome 146" if transport == "curl_cffi" else "Python's OpenSSL") in tls.verdict
    chat = report.step("chat_turn")
    assert chat is not None and "mode fast" in chat.verdict and "“" in chat.verdict
    [session] = fake.mgw_sessions(ACCOUNT.token)
    assert session.mode == "fast" and session.x_grok.get("is_temporary") is True
    home = [r for r in fake.requests if r.path == "/"]
    assert len(home) == 1 and home[0].token is None  # the home page is loaded without the account's cookie
    assert home[0].headers["sec-fetch-mode"] == "navigate" and "Chrome/146" in home[0].headers["user-agent"]


@dataclass(frozen=True)
class Case:
    faults: tuple[str, ...]
    step: str
    code: Verdict
    says: str  # in the verdict
    fix: str  # in the fix


CASES = {
    "home challenged by Cloudflare": Case(
        ("home-403-cf",), "home_page", Verdict.CLOUDFLARE, "Cloudflare", "cf_clearance"
    ),
    "home refused by grok.com's anti-bot": Case(
        ("home-403",), "home_page", Verdict.ANTI_BOT, "anti-bot", "x_statsig_id"
    ),
    "session signed out": Case(
        ("auth-unauthenticated",), "auth_session", Verdict.LOGGED_OUT, "logged out", "sso cookie"
    ),
    "session blocked": Case(("auth-blocked",), "auth_session", Verdict.BLOCKED, "blocked", "remove it"),
    "session in a new shape": Case(
        ("auth-shape",), "auth_session", Verdict.CHANGED, "does not know", "update grok2api"
    ),
    "modes 5xx": Case(("modes-500",), "modes", Verdict.SERVER_ERROR, "HTTP 500", "try again"),
    "rate limits 429": Case(("limits-429:120",), "rate_limits", Verdict.RATE_LIMITED, "resets in 120 s", "resets"),
    "chat handshake challenged": Case(("mgw-403-cf",), "chat_turn", Verdict.CLOUDFLARE, "Cloudflare", "cf_clearance"),
    "chat handshake signed out": Case(("mgw-401",), "chat_turn", Verdict.LOGGED_OUT, "HTTP 401", "sso cookie"),
    "chat anti-bot event": Case(("mgw-antibot",), "chat_turn", Verdict.ANTI_BOT, "anti-bot", "dynamic_statsig"),
    "chat usage limit": Case(("mgw-usage",), "chat_turn", Verdict.RATE_LIMITED, "used up", "another account"),
    "chat answer failed": Case(("mgw-failed",), "chat_turn", Verdict.ANSWER_FAILED, "answer failed", "update"),
    "chat connection cut": Case(("mgw-close",), "chat_turn", Verdict.CONNECTION_FAILED, "closed", "network"),
    "upload refused": Case(("uploadv2-413",), "asset_download", Verdict.REJECTED, "HTTP 413", "update grok2api"),
    "asset 404": Case(("asset-404",), "asset_download", Verdict.NOT_FOUND, "404", "assets_url"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_a_failing_step_has_its_verdict_and_fix(fake: FakeGrok, case: Case) -> None:
    for fault in case.faults:
        fake.push_fault(fault)
    report = await doctor(settings_of(fake))
    step = report.step(case.step)
    assert step is not None and not step.ok
    assert step.code == case.code, step
    assert case.says in step.verdict and case.fix in step.fix, step
    others = [s for s in report.steps if s.name != case.step and s.code != Verdict.SKIPPED]
    assert all(s.ok for s in others), others  # one fault, one failed step
    # Without the session's user id the chat cannot run; every other failure leaves it to work.
    assert report.ok is (case.step not in ("auth_session", "chat_turn"))


async def test_a_dead_account_skips_the_account_steps(fake: FakeGrok) -> None:
    fake.push_fault("auth-blocked")
    report = await doctor(settings_of(fake))
    assert codes(report)["auth_session"] == Verdict.BLOCKED
    skipped = [s for s in report.steps if s.code == Verdict.SKIPPED]
    assert [s.name for s in skipped] == list(ACCOUNT_STEPS[1:])
    assert all(s.verdict == "not run: the account is blocked" and not s.ok for s in skipped)
    assert not report.ok and fake.mgw_sessions() == []


async def test_a_step_that_does_not_answer_in_time(fake: FakeGrok) -> None:
    fake.push_fault("modes-slow:5")
    report = await doctor(settings_of(fake), options=Options(timeouts=Timeouts(step=0.5)))
    modes = report.step("modes")
    assert modes is not None and modes.code == Verdict.TIMEOUT and "no answer in time" in modes.verdict
    assert report.ok  # the other steps were not held up


async def test_a_known_user_id_lets_the_chat_run_when_the_session_step_fails(fake: FakeGrok) -> None:
    user_id = fake.user_id(ACCOUNT.token)
    fake.push_fault("auth-500")
    report = await doctor(settings_of(fake), DoctorAccount(ACCOUNT.token, user_id))
    assert codes(report)["auth_session"] == Verdict.SERVER_ERROR
    assert codes(report)["chat_turn"] == Verdict.OK and report.ok


async def test_without_an_account_only_the_egress_is_checked(fake: FakeGrok) -> None:
    report = await doctor(settings_of(fake), account=None)
    session = report.step("auth_session")
    assert session is not None and session.code == Verdict.NO_ACCOUNT and "grok2api accounts add" in session.fix
    assert codes(report)["home_page"] == Verdict.OK
    assert [codes(report)[n] for n in ACCOUNT_STEPS[1:]] == [Verdict.SKIPPED] * 4
    assert not report.ok and public_json([report])["ok"] is False


async def test_a_name_that_does_not_resolve_skips_everything_after_it(fake: FakeGrok) -> None:
    async def nowhere(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    report = await doctor(settings_of(fake), options=Options(resolve=nowhere))
    dns = report.step("dns")
    assert dns is not None and dns.code == Verdict.DNS_FAILED
    assert "does not resolve (Name or service not known)" in dns.verdict and "DNS" in dns.fix
    assert [s.code for s in report.steps[1:]] == [Verdict.SKIPPED] * (len(ALL_STEPS) - 1)
    assert all(s.verdict == "not run: the DNS step failed" for s in report.steps[1:])
    assert fake.requests == []


async def _closed_port() -> int:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()
    return port


async def test_nothing_listening_is_a_tcp_failure(fake: FakeGrok) -> None:
    port = await _closed_port()
    report = await doctor(settings_of(fake, upstream_url=f"http://127.0.0.1:{port}"))
    tcp = report.step("tcp")
    assert tcp is not None and tcp.code == Verdict.TCP_FAILED and "refused" in tcp.verdict
    assert "firewall" in tcp.fix
    assert codes(report)["chat_turn"] == Verdict.SKIPPED


async def test_a_dead_proxy_is_named_as_the_proxy(fake: FakeGrok) -> None:
    port = await _closed_port()
    report = await doctor(settings_of(fake, proxy_url=f"http://user:secret@127.0.0.1:{port}"))
    dns, tcp = report.step("dns"), report.step("tcp")
    assert dns is not None and "the proxy's host 127.0.0.1" in dns.verdict
    assert tcp is not None and tcp.code == Verdict.TCP_FAILED
    assert f"the proxy 127.0.0.1:{port}" in tcp.verdict and "proxy runs" in tcp.fix
    assert "secret" not in str(report)  # the proxy's credentials never show


async def test_a_peer_that_does_not_speak_tls_fails_the_handshake(fake: FakeGrok) -> None:
    https = fake.base_url.replace("http://", "https://")
    report = await doctor(settings_of(fake, upstream_url=https, assets_url=f"{https}/assets"))
    tls = report.step("tls")
    assert tls is not None and tls.code == Verdict.TLS_FAILED and "TLS handshake with 127.0.0.1 failed" in tls.verdict
    assert "intercepts TLS" in tls.fix
    assert codes(report)["home_page"] == Verdict.SKIPPED


@pytest.fixture
async def refusing_proxy() -> AsyncIterator[str]:
    """An HTTP proxy that asks for credentials instead of opening a tunnel."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()).strip():
            pass
        writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_proxy_that_will_not_tunnel_fails_the_tls_step(refusing_proxy: str) -> None:
    settings = RuntimeSettings(upstream_url="https://grok.example", proxy_url=refusing_proxy)
    report = await doctor(settings)
    tls = report.step("tls")
    assert tls is not None and tls.code == Verdict.TLS_FAILED
    assert "would not open a tunnel to grok.example:443 (HTTP 407)" in tls.verdict


async def test_the_handshake_goes_through_the_proxys_tunnel(fake: FakeGrok) -> None:
    """An HTTP proxy that opens the tunnel (to the fake, which speaks no TLS): the handshake is tried inside it."""
    heads: list[bytes] = []

    async def tunnel(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", fake.port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        upstream_writer.write(await reader.read(65536))  # the client's TLS hello, which the fake cannot answer
        writer.write(await upstream_reader.read(65536))
        await writer.drain()
        for w in (writer, upstream_writer):
            w.close()

    server = await asyncio.start_server(tunnel, "127.0.0.1", 0)
    proxy = f"http://user:pa%40ss@127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        https = fake.base_url.replace("http://", "https://")
        report = await doctor(settings_of(fake, upstream_url=https, assets_url=f"{https}/assets", proxy_url=proxy))
    finally:
        server.close()
        await server.wait_closed()
    tls = report.step("tls")
    assert tls is not None and tls.code == Verdict.TLS_FAILED and "TLS handshake with 127.0.0.1 failed" in tls.verdict
    [head] = heads
    assert head.startswith(f"CONNECT 127.0.0.1:{fake.port} HTTP/1.1\r\n".encode())
    assert b"Proxy-Authorization: Basic dXNlcjpwYUBzcw==" in head  # user:pa@ss


async def test_curl_cffi_chosen_but_missing(fake: FakeGrok, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets_module, "available", lambda: False)
    report = await doctor(settings_of(fake, upstream_transport="curl_cffi"))
    tls = report.step("tls")
    assert tls is not None and tls.code == Verdict.TRANSPORT_MISSING and "pip install" in tls.fix
    assert codes(report)["chat_turn"] == Verdict.SKIPPED


async def test_a_fake_that_challenges_names_cloudflare_until_the_clearance_is_set(fake: FakeGrok) -> None:
    fake.require_cf_clearance = "clear-1"
    report = await doctor(settings_of(fake))
    home, chat = report.step("home_page"), report.step("chat_turn")
    assert home is not None and home.code == Verdict.CLOUDFLARE and "cf-mitigated: challenge" in home.verdict
    assert "Chrome 146" in home.fix and "upstream_transport to curl_cffi" in home.fix
    assert chat is not None and not chat.ok and not report.ok
    assert (await doctor(settings_of(fake, cf_clearance="clear-1"))).ok


async def test_shapes_the_parser_does_not_know_are_named(fake: FakeGrok, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(UNKNOWN_SHAPES, "counts", Counter())
    fake.push_fault("mgw-unknown")
    report = await doctor(settings_of(fake))
    chat = report.step("chat_turn")
    assert chat is not None and chat.ok and "shapes the parser does not know" in chat.verdict


STANDALONE = {
    Verdict.OK,
    Verdict.SKIPPED,
    Verdict.DNS_FAILED,
    Verdict.TCP_FAILED,
    Verdict.TLS_FAILED,
    Verdict.TRANSPORT_MISSING,
    Verdict.TIMEOUT,
    Verdict.NO_ACCOUNT,
}


def test_every_verdict_has_a_case() -> None:
    assert {c.code for c in CASES.values()} | STANDALONE == set(Verdict)
