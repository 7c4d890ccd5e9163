"""``grok2api doctor [--account TOKEN] [--json]``: every check of the way to grok.com, step by step, with a
verdict and its fix (the same checks as the admin's Diagnose page, whose last results it updates). The exit code
is 0 only when a chat turn worked."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

from ..config import BootConfig
from ..diagnose import records
from ..diagnose.doctor import DoctorAccount, run
from ..diagnose.report import Report, Verdict, public_json
from ..egresses import build_egresses
from ..grok.headers import normalize_token
from ..settings import build, env_overrides
from ..store.base import AccountState, Store

_WIDTH = 110
_MARKS = {"ok": ("ok", "32"), "fail": ("FAIL", "31"), "skip": ("--", "90")}


async def choose_account(store: Store, token: str | None) -> DoctorAccount | None:
    """The account named on the command line (it need not be in the pool), else the first active one."""
    if token:
        token = normalize_token(token)
        known = await store.get_account(token)
        return DoctorAccount(token, known.user_id if known else "")
    active = [a for a in await store.list_accounts() if a.state == AccountState.ACTIVE]
    first = min(active, key=lambda a: a.id, default=None)
    return DoctorAccount(first.token, first.user_id) if first else None


def _mark(kind: str, color: bool) -> str:
    text, code = _MARKS[kind]
    padded = f"{text:<4}"
    return f"\033[{code}m{padded}\033[0m" if color else padded


def render(reports: list[Report], *, color: bool = False) -> str:
    """The reports as an operator reads them: one line per step, its fix under a failed one."""
    lines: list[str] = []
    for report in reports:
        account = f", account {report.account}" if report.account else ", no account"
        lines.append(f"egress {report.egress}: {report.transport}{account}")
        last_fix = ""
        for step in report.steps:
            kind = "ok" if step.ok else ("skip" if step.code == Verdict.SKIPPED else "fail")
            head = f"  {_mark(kind, color)}  {step.title:<16}"
            indent = " " * (2 + 4 + 2 + 16)
            body = textwrap.wrap(step.verdict, _WIDTH - len(indent)) or [""]
            lines.append(head + body[0])
            lines += [indent + more for more in body[1:]]
            if step.fix and not step.ok:
                fix = "the same as above" if step.fix == last_fix else step.fix
                lines += textwrap.wrap(f"fix: {fix}", _WIDTH, initial_indent=indent, subsequent_indent=indent)
                last_fix = step.fix
        lines.append("")
    worked = public_json(reports)["ok"]
    lines.append("a chat turn worked" if worked else "no chat turn worked: see the first failed step and its fix")
    return "\n".join(lines)


async def main(args: argparse.Namespace, store: Store) -> int:
    boot = BootConfig.from_env()
    settings = build(await store.load_settings(), env_overrides(boot.environ))
    account = await choose_account(store, args.account)
    states = {state.key: state for state in await store.list_egresses()}
    reports = await run(settings, account, egresses=build_egresses(settings.proxy_url_list(), states))
    for report in reports:
        await records.save_report(store, report)  # the Diagnose page shows the last result per egress
    if args.json:
        print(json.dumps(public_json(reports), ensure_ascii=False))
    else:
        print(render(reports, color=sys.stdout.isatty()))
    return 0 if public_json(reports)["ok"] else 1
