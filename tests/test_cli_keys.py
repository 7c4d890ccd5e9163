"""``grok2api keys`` works on the same store as a running gateway, which picks its changes up within seconds."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp

from grok2api.testing.fake_grok import FakeGrok

from harness import LiveGateway


async def _cli(data: Path, *args: str, ok: bool = True) -> tuple[str, str]:
    env = {"GROK2API_DATA_DIR": str(data), "STORAGE_MODE": "file", "PATH": ""}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "grok2api",
        "keys",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert (proc.returncode == 0) is ok, (proc.returncode, err.decode())
    return out.decode(), err.decode()


async def _status(gateway: LiveGateway, secret: str, model: str = "grok-3-fast") -> int:
    chat = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {secret}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.url}/v1/chat/completions", json=chat, headers=headers) as resp,
    ):
        return resp.status


async def _eventually_status(gateway: LiveGateway, secret: str, wanted: int, model: str = "grok-3-fast") -> None:
    """The gateway reloads its keys every few seconds: wait (bounded) until the key is in the state wanted."""
    deadline = time.monotonic() + 10
    while await _status(gateway, secret, model) != wanted:
        assert time.monotonic() < deadline, f"the gateway never answered {wanted}"
        await asyncio.sleep(0.2)


async def test_keys_add_list_and_revoke_reach_a_running_gateway(tmp_path: Path, fake: FakeGrok) -> None:
    data = tmp_path / "data"
    async with LiveGateway(data, fake.base_url, fake.assets_url) as gateway:
        await gateway.add_accounts("tok1")
        out, err = await _cli(
            data, "add", "ci bot", "--model", "grok-3-fast,grok-auto", "--rpm", "30", "--expires", "2099-01-31"
        )
        secret = out.strip()
        assert secret.startswith("sk-g2a-") and "\n" not in secret  # alone on stdout, for scripts
        assert "shown only this once" in err
        # Until the gateway knows a key it is open to any bearer; then the key's allowlist applies.
        await _eventually_status(gateway, secret, 403, "grok-4-heavy")
        assert await _status(gateway, secret) == 200

        listed, _ = await _cli(data, "list")
        assert secret not in listed and secret[:12] in listed
        assert "'ci bot'" in listed and "grok-3-fast,grok-auto" in listed and "30 rpm" in listed
        assert "expires 2099-01-31T00:00Z" in listed and "1 key(s)" in listed
        (record,) = json.loads((await _cli(data, "list", "--json"))[0])
        assert (record["name"], record["rpm"], record["status"]) == ("ci bot", 30, "active")
        assert record["models"] == ["grok-3-fast", "grok-auto"] and "key" not in record

        out, _ = await _cli(data, "revoke", record["id"])
        assert f"revoked key {record['id']}" in out
        await _eventually_status(gateway, secret, 401)
        (record,) = json.loads((await _cli(data, "list", "--json"))[0])
        assert record["status"] == "revoked"


async def test_keys_cli_refuses_bad_input_with_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for args, expected in (
        (("add", " "), "name:"),
        (("add", "bot", "--model", "gpt-9", "--expires", "tomorrow"), "models: Unknown model(s): gpt-9; expires_at:"),
        (("revoke", "no-such-key"), "no key with the id 'no-such-key'"),
    ):
        out, err = await _cli(data, *args, ok=False)
        assert err.startswith("error: ") and expected in err, (args, err)
        assert "Traceback" not in err and out == ""
    # Nothing was stored; unix seconds are taken as well.
    out, _ = await _cli(data, "add", "later", "--expires", "4073457600")
    (record,) = json.loads((await _cli(data, "list", "--json"))[0])
    assert record["expires_at"] == 4073457600.0 and out.strip().startswith("sk-g2a-")
