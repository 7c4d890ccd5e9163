"""A fake grok.com: the private web API of late 2026, served by a real aiohttp server for tests and benchmarks.

Endpoints, by family module (listed once in ``FAMILIES``):

- ``fake_auth``: ``GET /api/auth/session`` → ``{"status":"authenticated","session":{"userId",…}}`` (one userId per
  token), ``{"status":"unauthenticated"}`` for a missing, unknown (with ``accept_unknown=False``) or invalid token,
  ``{"status":"blocked"}`` for a blocked account.
- ``fake_mgw``: ``GET /ws/mgw/?uid=<userId>``, the WebSocket chat. The handshake wants the sso cookie, an
  ``x-userid`` cookie equal to the uid, and an Origin of grok.com or of the fake; refusals are grok.com's HTTP
  answers, and a plain GET of the same URL returns the last refusal's body. Then ``session.create`` (``model`` =
  mode, ``x_grok`` flags) → ``session.created`` + ``conversation.attached``; ``conversation.item.create`` +
  ``response.create`` → ``response.created``, text as ``response.chunk`` (with ``x_grok.use_chunk``) or as the
  ``response.output_text.delta`` family (without; tool cards then come as ``response.grok.output`` and results
  also as ``response.search.result``), ``response.grok.output`` cards, ``response.done``, lifecycle events and
  trailing chunks with empty ids; ``ping`` → ``pong``. ``FakeGrok.mgw_sessions()`` records it all.
- ``fake_chat``: ``POST /rest/app-chat/conversations/new`` (streamed NDJSON or SSE) with the ``modeId`` body; a
  body naming ``modelName``/``modelMode`` gets 400 "Invalid request. Please update your client", except Imagine
  media bodies (``mediaGenInput``); the 2025 video body (``toolOverrides.videoGen``) gets that 400 too. The
  ``imagine-image-edit`` body goes to ``fake_imagine_edit`` (edited images as ``streamingImageGenerationResponse``
  frames).
  ``fake_video``: the ``imagine-video-gen`` body (``textToVideo``, or ``imageToVideo`` naming an upload), more than
  6 s on a basic account → 429; videos cost no chat query, and ``FakeGrok.videos`` records each generation.
- ``fake_imagine``: ``GET /ws/imagine/listen``, the Imagine WebSocket (reset, then ``input_text`` with
  ``num_generations``; previews, finals as ``blob`` or ``url``, per-image moderation, ``error`` frames).
  ``FakeGrok.imagine_sessions()`` (and ``GET /__fake/imagine``) records it.
- ``fake_limits``: ``POST /rest/modes`` (fast, auto, expert, heavy and modes added with ``add_mode``) and
  ``POST /rest/rate-limits {"modelName": <mode>}`` (one window per mode and tier; 7200 s windows).
- ``fake_imagine_quota``: ``POST /rest/media/imagine/quota_info`` (image, imagePro, imageEdit, video, video720p
  windows per tier; ``charge_imagine`` takes a query).
- ``fake_media``: ``POST /rest/app-chat/upload-file`` (the legacy upload), ``GET /assets/<path>``.
- ``fake_upload``: ``POST /http/upload-file-v2/direct`` (multipart; ``terminalError`` for images under 64×64).
- ``fake_home``: ``GET /``, the home page (an app shell; Cloudflare's challenge or grok.com's anti-bot 403 on
  demand).
- ``fake_control``: endpoints under ``/__fake/`` for a fake running in another process.
- ``fake_home``: ``GET /`` (the home page with its ``grok-site-verification`` meta) and the challenge-solving page of
  the fake's Cloudflare (``fake_cloudflare``): ``FakeGrok.cloudflare.challenge(address)`` challenges the egress whose
  requests come from that address until it presents a clearance issued to it (same address, same User-Agent, a
  Sec-Ch-Ua of the same Chrome); ``signed_statsig`` wants the signer stand-in's value over ``site_verification``;
  ``cloudflare.bot_management`` sets a rotating ``__cf_bm`` per egress on the answers.

Every request costs one query of its mode's window (tiers basic, super, heavy; see ``fake_modes``). A mode the
tier does not get is refused (REST 403; mgw ``error`` event), an empty window too (REST 429; mgw usage-limit
``error`` event).

Scenarios are chosen by magic markers in the chat message (REST ``message``, mgw text chunks):

- ``[[think]]`` ``[[search]]`` ``[[cite]]`` ``[[artifact]]`` ``[[header]]``: thinking, web (and, over mgw, X)
  search, inline citation, artifact and step-header frames. Over mgw the modes other than ``fast`` always think
  (auto on ``…ANALYSIS``, expert on ``…REASONING`` plus a ``…NOTETAKER_SUMMARY`` line, heavy on ``…THINKING``),
  ``[[cite]]`` is a ``render_citation`` chunk and ``[[cite-card]]`` a ``<grok:render>`` tag with its
  ``card_attachment``; ``[[card-json]]`` wraps card attachments in a ``jsonData`` string; ``[[packed]]`` packs
  two events per frame; ``[[echo]]`` answers with the JSON of the input chunks that arrived.
- ``[[draw]]`` (or "draw" / "画" while image generation is on), ``[[draw-moderated]]``: images.
- video (``mediaGenInput.textToVideo`` or ``.imageToVideo``), ``[[video-moderated]]``, ``[[video-in-attachments]]``;
  mid-stream faults strike at 25 %.
- ``[[emoji]]`` ``[[list-token]]`` ``[[dict-token]]`` ``[[empty-token]]`` ``[[late-think]]`` ``[[unclosed-think]]``
  ``[[no-model]]``: content edge cases; ``[[tokens:N]]`` answers with exactly N tokens; ``[[sse]]`` SSE framing.
- ``[[fault:NAME]]`` / ``[[fault:NAME:PARAM]]``: one of ``CHAT_FAULTS`` (over mgw also ``MGW_FAULTS``).

Faults queued with ``FakeGrok.push_fault`` win over a marker. A fault name's prefix picks its endpoint:
``upload-`` E2, ``uploadv2-`` upload v2, ``post-`` E3, ``limits-`` rate limits, ``modes-`` modes, ``auth-`` the
session, ``home-`` the home page, ``asset-`` assets, ``mgw-`` the WebSocket, ``imagine-`` the Imagine WebSocket;
anything else is a chat fault, taken by whichever chat comes next, REST or mgw.

Over mgw, the handshake takes ``401 403-blocked 403-antibot 403-cf 429 500 502 503``; once a response was asked
for: ``antibot`` (``error`` event ``anti_bot``; the REST ``inband-7``, an anti-bot error line, maps onto it),
``usage`` (usage-limit ``error`` event mid-answer), ``inband-8``/``inband-13`` (other ``error`` events mid-answer),
``stream-error`` (``response.grok.output`` ``stream_error``), ``failed`` (``response.done`` with status failed),
``session-ended`` (``session.ended`` before ``response.done``, then a close), ``empty`` (a completed answer without
text), ``close`` (the connection cut), ``unknown`` (unknown event, chunk and channel types beside a normal answer),
``malformed``, ``blank``, ``multi-json``, ``long-line`` and the timing faults. REST-only chat faults map onto these
(``MGW_FROM_CHAT``).

Timing faults take seconds as their parameter: ``stall-first:S`` (before the first line, after the headers; over
mgw before ``response.created``), ``stall-mid:S`` (after two answer tokens), ``slow-tokens:S`` (between tokens); S
defaults to 1 s (0.1 s for ``slow-tokens``), so pass e.g. ``stall-first:35`` to trip a 30 s first-response
timeout. ``trickle[:S]`` writes the first 10 bytes of one line a byte at a time, S seconds apart (default 1 s, like
a 1 byte/s link), then carries on at full speed. ``*-slow:S`` on the other endpoints defaults to 35 s.

The families share one ``FakeState`` (``fake_state``) behind the ``fake_edge`` middleware. This module assembles
the app and server and re-exports what tests import.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

from aiohttp import web

from . import (
    fake_auth,
    fake_chat,
    fake_control,
    fake_home,
    fake_imagine,
    fake_imagine_quota,
    fake_limits,
    fake_media,
    fake_mgw,
    fake_upload,
)
from .fake_accounts import FakeAccount
from .fake_answer import SEARCH_RESULTS
from .fake_auth import SESSION_PATH
from .fake_chat import CHAT_PATH
from .fake_chat_request import ERR_OUTDATED_CLIENT, MARKERS
from .fake_control import CONTROL_PREFIX
from .fake_edge import edge, on_prepare, statsig_valid
from .fake_faults import CHAT_FAULTS, MGW_FAULTS, fault_endpoint
from .fake_home import HOME_PATH
from .fake_http import parse_cookies
from .fake_imagine import IMAGINE_PATH
from .fake_limits import LIMITS_PATH, MODES_PATH, rate_limits
from .fake_media import ASSETS_PREFIX, POST_PATH, TINY_JPEG, TINY_MP4, UPLOAD_PATH
from .fake_mgw import MGW_PATH
from .fake_mgw_answer import UNKNOWN_CHANNEL, UNKNOWN_CHUNK, UNKNOWN_EVENT, X_POST
from .fake_records import ImagineRecord, MgwRecord, RecordedRequest
from .fake_state import STATE_KEY, FakeState
from .fake_upload import UPLOAD_V2_PATH

# What tests, the CLI and the benchmark import from here; everything else lives in its family's module.
__all__ = [
    "ASSETS_PREFIX",
    "CHAT_FAULTS",
    "CHAT_PATH",
    "CONTROL_PREFIX",
    "ERR_OUTDATED_CLIENT",
    "HOME_PATH",
    "IMAGINE_PATH",
    "LIMITS_PATH",
    "MARKERS",
    "MGW_FAULTS",
    "MGW_PATH",
    "MODES_PATH",
    "POST_PATH",
    "SEARCH_RESULTS",
    "SESSION_PATH",
    "TINY_JPEG",
    "TINY_MP4",
    "UNKNOWN_CHANNEL",
    "UNKNOWN_CHUNK",
    "UNKNOWN_EVENT",
    "UPLOAD_PATH",
    "UPLOAD_V2_PATH",
    "X_POST",
    "FakeAccount",
    "FakeGrok",
    "ImagineRecord",
    "MgwRecord",
    "RecordedRequest",
    "fault_endpoint",
    "main",
    "parse_cookies",
    "rate_limits",
    "serve_forever",
    "statsig_valid",
]

# Every endpoint family is a module with its route table; serving a new family is one more entry here.
FAMILIES: tuple[web.RouteTableDef, ...] = (
    fake_auth.routes,
    fake_mgw.routes,
    fake_chat.routes,
    fake_media.routes,
    fake_upload.routes,
    fake_imagine.routes,
    fake_limits.routes,
    fake_imagine_quota.routes,
    fake_control.routes,
    fake_home.routes,
)


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
            # Open sockets would hold the shutdown up to its timeout.
            for ws in list(self.sockets):
                await ws.close(code=1001, message=b"server shutting down")
            await runner.cleanup()

    async def __aenter__(self) -> FakeGrok:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[edge], client_max_size=64 * 1024 * 1024)
        app[STATE_KEY] = self
        app.on_response_prepare.append(on_prepare)
        for family in FAMILIES:
            app.add_routes(family)
        return app

    def chat_calls(self, token: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == CHAT_PATH and (token is None or r.token == token)]

    def mgw_url(self, uid: str) -> str:
        """The WebSocket URL of the mgw chat for a userId (from ``/api/auth/session``)."""
        return f"ws://{self.host}:{self.port}{MGW_PATH}?uid={uid}"


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
