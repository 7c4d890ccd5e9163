"""``grok2api accounts …``: the same store a running gateway uses (it notices within a second)."""

from __future__ import annotations

import argparse
import json
import sys

from ..compat.reference_import import parse_settings_toml
from ..grok.headers import normalize_token
from ..store.base import NewAccount, Store, Tier


def _row(acc: object) -> dict[str, object]:
    from ..store.base import Account

    assert isinstance(acc, Account)
    return {
        "token": acc.token,
        "type": acc.tier,
        "status": acc.state,
        "remaining": acc.remaining,
        "heavy_remaining": acc.heavy_remaining,
        "last_failure": acc.last_failure or None,
        "state_reason": acc.state_reason or None,
        "tags": acc.tags,
        "note": acc.note,
    }


async def run(args: argparse.Namespace, store: Store) -> None:
    if args.action == "add":
        tier = args.tier or Tier.BASIC
        items = [NewAccount(token=normalize_token(t), tier=tier) for t in args.tokens]
        items = [i for i in items if i.token]
        result = await store.add_accounts(items)
        print(f"added {result.added}, updated {result.updated}")
    elif args.action == "remove":
        removed = await store.remove_accounts([normalize_token(t) for t in args.tokens])
        print(f"removed {removed}")
    elif args.action == "list":
        accounts = await store.list_accounts()
        if args.json:
            json.dump([_row(a) for a in accounts], sys.stdout, indent=2)
            print()
            return
        for a in accounts:
            masked = a.token[:8] + "…" + a.token[-4:] if len(a.token) > 16 else a.token
            left = "?" if a.remaining is None else str(a.remaining)
            reason = f"  ({a.state_reason})" if a.state_reason else ""
            print(f"{a.id:>5}  {masked:<16} {a.tier:<5} {a.state:<8} remaining={left}{reason}")
        print(f"{len(accounts)} account(s)")
    elif args.action == "import":
        from ..admin.accounts_input import parse_input

        text = args.file.read_text("utf-8", errors="replace")
        parsed = parse_input([text], Tier.SUPER if args.super else Tier.BASIC)
        result = await store.add_accounts(parsed.accounts)
        print(
            f"imported {len(parsed.accounts)} token(s): added {result.added}, updated {result.updated}, "
            f"rejected {len(parsed.rejected)}"
        )
        for bad in parsed.rejected[:20]:
            print(f"  rejected {bad.token[:16]}: {bad.reason}", file=sys.stderr)
        if args.settings:
            values = parse_settings_toml(args.settings.read_text("utf-8"))
            await store.save_settings(values)
            print(f"imported {len(values)} setting(s)")
    elif args.action == "refresh":
        await _refresh(args, store)


async def _refresh(args: argparse.Namespace, store: Store) -> None:
    from ..config import BootConfig
    from ..services import Services

    svc = Services(BootConfig.from_env(), store=store)
    await svc.reload(force=True)
    wanted = {normalize_token(t) for t in args.tokens}
    try:
        for acc in svc.pool.accounts():
            if wanted and acc.token not in wanted:
                continue
            result = await svc.quota.refresh(acc)
            print(f"{acc.id:>5} {acc.token[:8]}…  {'ok' if result.ok else 'failed'}: {result.message}")
    finally:
        await svc.http.close()
