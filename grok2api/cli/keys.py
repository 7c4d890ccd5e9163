"""``grok2api keys …``: client API keys in the same store a running gateway uses (it picks them up within a few
seconds). A new key's secret is printed once, alone on stdout, so a script can capture it."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from ..admin import keys_ops
from ..store.base import ClientKey, Store


def _models(values: list[str] | None) -> list[str]:
    """``--model a --model b`` or ``--model a,b``."""
    return [m.strip() for value in values or [] for m in value.split(",") if m.strip()]


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%MZ")


def _line(key: ClientKey) -> str:
    models = ",".join(key.models) or "all models"
    rpm = f"{key.rpm} rpm" if key.rpm else "no rpm limit"
    return (
        f"{key.id}  {key.prefix}…  {keys_ops.status(key):<7}  {key.name!r}  {models}  {rpm}  "
        f"expires {_when(key.expires_at)}  {key.requests} request(s)"
    )


async def run(args: argparse.Namespace, store: Store) -> None:
    if args.action == "add":
        body = {"name": args.name, "models": _models(args.model), "rpm": args.rpm, "expires_at": args.expires}
        try:
            req = keys_ops.parse_api(body)
        except keys_ops.KeyFormError as exc:
            raise ValueError("; ".join(f"{field}: {text.rstrip('.')}" for field, text in exc.errors.items())) from None
        key, secret = keys_ops.new_client_key(req)
        await store.put_client_key(key)
        print(f"created key {key.id} ({key.name!r}); the secret below is shown only this once", file=sys.stderr)
        print(secret)
    elif args.action == "list":
        keys = await store.list_client_keys()
        if args.json:
            json.dump([keys_ops.key_record(k) for k in keys], sys.stdout, indent=2)
            print()
            return
        for key in keys:
            print(_line(key))
        print(f"{len(keys)} key(s)")
    elif args.action == "revoke":
        if not await store.revoke_client_key(args.id):
            raise ValueError(f"no key with the id {args.id!r} (grok2api keys list shows them)")
        print(f"revoked key {args.id}")
