"""The ``grok2api`` command line: serve, migrate, accounts, keys, doctor, fake-upstream, bench."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .config import BootConfig
from .store.base import Tier

if TYPE_CHECKING:
    from .store.base import Store

T = TypeVar("T")


def _serve(args: argparse.Namespace) -> None:
    from .serve import serve

    boot = BootConfig.from_env()
    bind = args.bind or f"{boot.host}:{boot.port}"
    sys.exit(serve(boot, bind, args.workers or boot.workers))


async def _with_store(fn: Callable[[Store], Awaitable[T]]) -> T:
    from .store import make_store

    boot = BootConfig.from_env()
    boot.data_dir.mkdir(parents=True, exist_ok=True)
    store = make_store(boot.storage_mode, boot.database_url, boot.data_dir)
    await store.open()
    try:
        return await fn(store)
    finally:
        await store.close()


def _migrate(args: argparse.Namespace) -> None:
    async def run(store: Store) -> None:
        print(f"schema is up to date ({store.kind})")

    asyncio.run(_with_store(run))


def _accounts(args: argparse.Namespace) -> None:
    from .cli import accounts

    asyncio.run(_with_store(lambda store: accounts.run(args, store)))


def _doctor(args: argparse.Namespace) -> None:
    from .cli import doctor

    sys.exit(asyncio.run(_with_store(lambda store: doctor.main(args, store))))


def _keys(args: argparse.Namespace) -> None:
    from .cli import keys

    asyncio.run(_with_store(lambda store: keys.run(args, store)))


def _fake(args: argparse.Namespace) -> None:
    from .logs import setup_logging
    from .testing import fake_grok

    setup_logging(BootConfig.from_env().log_format)
    asyncio.run(fake_grok.serve_forever(args.host, args.port, token_delay=args.token_delay))


def _bench(args: argparse.Namespace) -> None:
    from .cli import bench

    bench.run_from(args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="grok2api", description="OpenAI-compatible gateway for Grok web accounts")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the gateway (hypercorn)")
    p.add_argument("--bind", help="HOST:PORT (default GROK2API_HOST:GROK2API_PORT)")
    p.add_argument("--workers", type=int, help="worker processes (default GROK2API_WORKERS, else one per usable CPU)")
    p.set_defaults(func=_serve)
    p = sub.add_parser("migrate", help="bring the database schema up to date")
    p.set_defaults(func=_migrate)
    p = sub.add_parser("accounts", help="manage Grok accounts in the store")
    acc = p.add_subparsers(dest="action", required=True)
    a = acc.add_parser("add", help="add SSO tokens (bare value or sso=...)")
    tier = a.add_mutually_exclusive_group()
    tier.add_argument("--tier", choices=[t.value for t in Tier], help="the tokens' tier (default basic)")
    tier.add_argument("--super", dest="tier", action="store_const", const=Tier.SUPER.value, help="same as --tier super")
    a.add_argument("tokens", nargs="+")
    a = acc.add_parser("remove", help="remove accounts")
    a.add_argument("tokens", nargs="+")
    a = acc.add_parser("list", help="list accounts")
    a.add_argument("--json", action="store_true")
    a = acc.add_parser("import", help="import a token file (one per line) or the reference's token.json")
    a.add_argument("file", type=Path)
    a.add_argument("--settings", type=Path, help="the reference's setting.toml to import too")
    a.add_argument("--super", action="store_true", help="plain-text tokens are super-tier")
    a = acc.add_parser("refresh", help="check accounts' quota live (all when no token is given)")
    a.add_argument("tokens", nargs="*")
    p.set_defaults(func=_accounts)
    p = sub.add_parser("doctor", help="check every step to grok.com and say what to fix (exit 0: a chat worked)")
    p.add_argument("--account", metavar="TOKEN", help="the account to check with (default: the first active one)")
    p.add_argument("--json", action="store_true", help='print {"ok", "steps": [{"name", "ok", "verdict", "fix"}]}')
    p.set_defaults(func=_doctor)
    p = sub.add_parser("keys", help="manage client API keys in the store")
    keys = p.add_subparsers(dest="action", required=True)
    k = keys.add_parser("add", help="create a key; its secret is printed once")
    k.add_argument("name", help="who or what uses the key")
    k.add_argument("--model", action="append", help="allow only this model (repeat, or a,b); default all models")
    k.add_argument("--rpm", type=int, default=0, help="requests per minute (default 0 = no limit)")
    k.add_argument("--expires", help="when it stops working: ISO 8601 (2030-01-31, 2030-01-31T12:00Z) or unix seconds")
    k = keys.add_parser("list", help="list keys (never their secrets)")
    k.add_argument("--json", action="store_true")
    k = keys.add_parser("revoke", help="revoke a key by its id")
    k.add_argument("id")
    p.set_defaults(func=_keys)
    p = sub.add_parser("fake-upstream", help="run the fake grok.com for demos and tests")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--token-delay", type=float, default=0.0)
    p.set_defaults(func=_fake)
    p = sub.add_parser("bench", help="benchmark the gateway against the fake grok.com on loopback")
    from .cli.bench import add_arguments

    add_arguments(p)
    p.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The reader went away (e.g. `grok2api accounts list | head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
