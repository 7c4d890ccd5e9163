"""Running the doctor: every step for one egress (``run_target``), or for all of them (``run``).

Steps that cannot tell anything once an earlier one failed are reported as not run, with the reason: nothing
past a DNS, TCP or TLS failure; no account step for an account that is logged out or blocked. Everything else
runs even after a failure (Cloudflare may challenge the home page and still let the API through)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from ..grok.client import GrokClient
from ..grok.egress import Egress
from ..settings import RuntimeSettings
from . import network, probes
from .probes import Probe, Timeouts
from .report import Report, Step, Verdict, mask
from .targets import Target, open_transport, settings_for, targets
from .verdicts import failing, skipped

ACCOUNT_STEPS = ("auth_session", "modes", "rate_limits", "chat_turn", "asset_download")
_DEAD_ACCOUNT = frozenset({Verdict.LOGGED_OUT, Verdict.BLOCKED})


@dataclass(frozen=True)
class DoctorAccount:
    """The account the doctor uses: its token and, when the store knows it, its grok.com user id (so the chat
    turn can still run when only the session step fails)."""

    token: str
    user_id: str = ""


@dataclass(frozen=True)
class Options:
    timeouts: Timeouts = Timeouts()
    resolve: network.Resolver = network.system_resolver


def _rest_skipped(steps: list[Step], names: tuple[str, ...], reason: str) -> list[Step]:
    return steps + [skipped(name, reason) for name in names]


async def run_target(
    target: Target, account: DoctorAccount | None, settings: RuntimeSettings, options: Options = Options()
) -> Report:
    """Every step, in order, for one egress with one account (None: only the steps that need no account)."""
    bound = settings_for(target, settings)
    report = Report(
        egress=target.name,
        transport=f"{target.describe()}; {target.fingerprint()}",
        account=mask(account.token) if account else "",
        at=time.time(),
        steps=[],
    )
    hop = network.first_hop(target, bound.upstream_url)
    checks: tuple[tuple[str, Callable[[], Awaitable[Step]]], ...] = (
        ("dns", lambda: network.dns_step(hop, target, options.resolve)),
        ("tcp", lambda: network.tcp_step(hop, target)),
        ("tls", lambda: network.tls_step(target, bound.upstream_url)),
    )
    for index, (_, check) in enumerate(checks):
        step = await check()
        report.steps.append(step)
        if not step.ok:
            rest = tuple(name for name, _ in checks[index + 1 :]) + ("home_page", *ACCOUNT_STEPS)
            report.steps = _rest_skipped(report.steps, rest, f"the {step.title} step failed")
            return report
    transport = open_transport(target, bound)
    try:
        client = GrokClient(transport)
        report.steps.append(await probes.home_page(Probe(target, bound, client, "", options.timeouts)))
        report.steps += await _account_steps(target, account, bound, client, options)
    finally:
        await transport.close()
    return report


async def _account_steps(
    target: Target, account: DoctorAccount | None, settings: RuntimeSettings, client: GrokClient, options: Options
) -> list[Step]:
    if account is None:
        verdict = "no account to check with: the pool has no active account"
        first = failing("auth_session", Verdict.NO_ACCOUNT, verdict, target)
        return _rest_skipped([first], ACCOUNT_STEPS[1:], "no account")
    probe = Probe(target, settings, client, account.token, options.timeouts)
    session = await probes.auth_session(probe)
    if session.code in _DEAD_ACCOUNT:
        return _rest_skipped([session], ACCOUNT_STEPS[1:], f"the account is {session.code.replace('_', ' ')}")
    probe.user_id = probe.user_id or account.user_id
    steps = [session]
    for step in (probes.modes, probes.rate_limits, probes.chat_turn, probes.asset_download):
        steps.append(await step(probe))
    return steps


async def run(
    settings: RuntimeSettings,
    account: DoctorAccount | None,
    options: Options = Options(),
    egress: str | None = None,
    egresses: Sequence[Egress] | None = None,
) -> list[Report]:
    """The doctor on every egress (or only the one named ``egress``), one after the other; ``egresses`` as the
    gateway knows them (see ``targets``)."""
    chosen = [t for t in targets(settings, egresses) if egress in (None, t.name)]
    return [await run_target(t, account, settings, options) for t in chosen]


async def chat_check(
    target: Target, account: DoctorAccount, settings: RuntimeSettings, timeouts: Timeouts = Timeouts()
) -> Step:
    """Only the chat turn (the canary's check): the session step first when the user id is not known, and its
    failure instead when it fails."""
    bound = settings_for(target, settings)
    transport = open_transport(target, bound)
    try:
        probe = Probe(target, bound, GrokClient(transport), account.token, timeouts, user_id=account.user_id)
        if not probe.user_id:
            session = await probes.auth_session(probe)
            if not session.ok:
                return session
        return await probes.chat_turn(probe)
    finally:
        await transport.close()
