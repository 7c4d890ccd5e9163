"""A fake grok.com: the private web API served by a real aiohttp server for tests and benchmarks.

Endpoints: E1 ``POST /rest/app-chat/conversations/new`` (streamed NDJSON or SSE), E2 ``POST
/rest/app-chat/upload-file``, E3 ``POST /rest/media/post/create``, E4 ``POST /rest/rate-limits`` and E5
``GET /assets/<path>``, plus control endpoints under ``/__fake/`` for a fake running in another process.

Scenarios are chosen by magic markers in the chat ``message``:

- ``[[think]]`` ``[[search]]`` ``[[cite]]`` ``[[artifact]]`` ``[[header]]``: thinking, web search, inline citation,
  artifact and step-header frames.
- ``[[draw]]`` (or "draw" / "画" when ``enableImageGeneration`` is not false), ``[[draw-moderated]]``: images.
- video (``toolOverrides.videoGen`` or ``mediaGenInput.textToVideo``), ``[[video-moderated]]``,
  ``[[video-in-attachments]]``.
- ``[[emoji]]`` ``[[list-token]]`` ``[[dict-token]]`` ``[[empty-token]]`` ``[[late-think]]`` ``[[unclosed-think]]``
  ``[[no-model]]``: content edge cases; ``[[tokens:N]]`` answers with exactly N tokens; ``[[sse]]`` SSE framing.
- ``[[fault:NAME]]`` / ``[[fault:NAME:PARAM]]``: one of ``CHAT_FAULTS``.

Faults queued with ``FakeGrok.push_fault`` win over a marker. A fault name's prefix picks its endpoint:
``upload-`` E2, ``post-`` E3, ``limits-`` E4, ``asset-`` E5, anything else E1.

Timing faults take seconds as their parameter: ``stall-first:S`` (before the first line, after the headers),
``stall-mid:S`` (after two answer tokens), ``slow-tokens:S`` (between tokens); S defaults to 1 s (0.1 s for
``slow-tokens``), so pass e.g. ``stall-first:35`` to trip a 30 s first-response timeout. ``trickle[:S]`` writes
the first 10 bytes of one line a byte at a time, S seconds apart (default 1 s, like a 1 byte/s link), then carries
on at full speed, so that a test need not wait for the whole stream. ``*-slow:S`` on the other endpoints
defaults to 35 s.

Each endpoint family is a module with an aiohttp route table (``fake_chat``, ``fake_media``, ``fake_limits``,
``fake_control``), listed once in ``FAMILIES``; they share one ``FakeState`` (``fake_state``) behind the ``fake_edge``
middleware. This module assembles the app and server and re-exports what tests import.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

from aiohttp import web

from . import fake_chat, fake_control, fake_limits, fake_media
from .fake_answer import SEARCH_RESULTS
from .fake_chat import CHAT_PATH
from .fake_chat_request import MARKERS
from .fake_control import CONTROL_PREFIX
from .fake_edge import edge, statsig_valid
from .fake_faults import CHAT_FAULTS, fault_endpoint
from .fake_http import parse_cookies
from .fake_limits import LIMITS_PATH, rate_limits
from .fake_media import ASSETS_PREFIX, POST_PATH, TINY_JPEG, TINY_MP4, UPLOAD_PATH
from .fake_state import STATE_KEY, FakeAccount, FakeState, RecordedRequest

# What tests, the CLI and the benchmark import from here; everything else lives in its family's module.
__all__ = [
    "ASSETS_PREFIX",
    "CHAT_FAULTS",
    "CHAT_PATH",
    "CONTROL_PREFIX",
    "LIMITS_PATH",
    "MARKERS",
    "POST_PATH",
    "SEARCH_RESULTS",
    "TINY_JPEG",
    "TINY_MP4",
    "UPLOAD_PATH",
    "FakeAccount",
    "FakeGrok",
    "RecordedRequest",
    "fault_endpoint",
    "main",
    "parse_cookies",
    "rate_limits",
    "serve_forever",
    "statsig_valid",
]

# Every endpoint family is a module with its route table; serving a new family is one more entry here.
FAMILIES: tuple[web.RouteTableDef, ...] = (fake_chat.routes, fake_media.routes, fake_limits.routes, fake_control.routes)


class FakeGrok(FakeState):
    """A fake grok.com on a real socket. ``start()`` it, point the gateway at ``base_url``/``assets_url``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_delay: float = 0.0,
        first_line_delay: float = 0.0,
        accept_unknown: bool = True,
        seed: int = 1,
        framing: str = "ndjson",
    ) -> None:
        super().__init__(
            token_delay=token_delay,
            first_line_delay=first_line_delay,
            accept_unknown=accept_unknown,
            seed=seed,
            framing=framing,
        )
        self.host = host
        self.port = port
        self.base_url = f"http://{host}:{port}" if port else ""
        self.assets_url = f"{self.base_url}/assets" if port else ""
        self._runner: web.AppRunner | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> str:
        # Cancel handlers when the client goes away, so stalled streams do not hold stop() up.
        runner = web.AppRunner(
            self._build_app(), handle_signals=False, access_log=None, shutdown_timeout=1.0, handler_cancellation=True
        )
        await runner.setup()
        await web.TCPSite(runner, self.host, self.port).start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.base_url = f"http://{self.host}:{self.port}"
        self.assets_url = f"{self.base_url}/assets"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeGrok:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[edge], client_max_size=64 * 1024 * 1024)
        app[STATE_KEY] = self
        for family in FAMILIES:
            app.add_routes(family)
        return app

    def chat_calls(self, token: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == CHAT_PATH and (token is None or r.token == token)]


# --------------------------------------------------------------------------------------------------- CLI

_ATTRIBUTE_OPTIONS = ("require_cf_clearance", "strict_statsig", "max_concurrency_per_account")


async def serve_forever(host: str, port: int, **kwargs: Any) -> None:
    """Run a fake until cancelled. ``kwargs`` are constructor arguments or settable attributes."""
    attributes = {key: kwargs.pop(key) for key in _ATTRIBUTE_OPTIONS if key in kwargs}
    fake = FakeGrok(host=host, port=port, **kwargs)
    for key, value in attributes.items():
        setattr(fake, key, value)
    url = await fake.start()
    print(f"fake grok.com listening on {url} (assets {fake.assets_url})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m grok2api.testing.fake_grok", description="Run a fake grok.com")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between answer tokens")
    parser.add_argument("--first-line-delay", type=float, default=0.0, help="seconds before the first line")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--framing", choices=("ndjson", "sse"), default="ndjson")
    parser.add_argument("--reject-unknown", action="store_true", help="401 for tokens not added via /__fake/accounts")
    parser.add_argument("--require-cf-clearance", default=None, metavar="VALUE")
    parser.add_argument("--strict-statsig", action="store_true")
    parser.add_argument("--max-concurrency", type=int, default=0, help="per-account stream cap (0 = off)")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {
        "token_delay": args.token_delay,
        "first_line_delay": args.first_line_delay,
        "seed": args.seed,
        "framing": args.framing,
        "accept_unknown": not args.reject_unknown,
        "require_cf_clearance": args.require_cf_clearance,
        "strict_statsig": args.strict_statsig,
        "max_concurrency_per_account": args.max_concurrency,
    }
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(args.host, args.port, **options))


if __name__ == "__main__":
    main()
