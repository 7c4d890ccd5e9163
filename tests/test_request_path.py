"""The path of one streaming chat through the package, measured with a profiler hook: which modules run, and
that each is either a station a reader follows in order or a helper a station calls for values.

A module that joins the path must be placed in one of the two lists on purpose (and the README's architecture
section, which quotes these figures, updated with it)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import openai

import grok2api
from grok2api.serving import http_server

from harness import LiveGateway

PACKAGE = Path(grok2api.__file__).parent

# In the order a request meets them: in through the edge, down to grok.com, back through the renderer.
STATIONS = (
    "http1.py",  # the HTTP/1.1 server (the built-in one; hypercorn, when it serves, is outside the package)
    "edge_layer.py",  # the one ASGI layer: request id, traffic, body deadline, CORS, access line
    "router.py",  # the route, by its fixed path
    "edge.py",  # the HTTP edge: body, auth, errors, the stream's end
    "openai/chat.py",  # the endpoint
    "openai/chat_request.py",  # the request as a neutral Conversation
    "conversation/run.py",  # the run: prompt, images, repair turns
    "gateway.py",  # attempts and failover
    "pool.py",  # which account, its reservation and settlement
    "store/sql.py",  # the reservation's and settlement's round trips
    "grok/chat.py",  # the turn prepared for its account
    "grok/mgw.py",  # the chat WebSocket
    "grok/browser.py",  # the transport (curl_cffi, the default where installed)
    "grok/mgw_events.py",  # frames read as events
    "conversation/answer.py",  # events read as answer deltas
    "openai/render.py",  # answer deltas as chat chunks
    "sse.py",  # the chunks written to the client
)

# Called by a station for values or a small service; none sends the request further on.
HELPERS = frozenset(
    {
        "traffic.py",  # request bookkeeping the edge layer calls (drain, body timeout)
        "after_response.py",  # settlement and the socket's close, once the response is sent
        "write_batching.py",  # a stream's first frame sent at once
        "logs.py",  # the request id in log lines
        "ids.py",  # uuid-shaped message and completion ids
        "metrics.py",
        "settings.py",
        "services.py",
        "client_keys.py",
        "quota.py",  # the pool asks it for an account's true quota while that is unknown
        "egresses.py",  # which egress the account goes out through
        "grok/egress.py",
        "grok/egress_transport.py",  # the egress's cookies and User-Agent on the transport's calls
        "grok/transport.py",  # the transport interface; closing a socket whatever happens
        "grok/headers.py",
        "grok/catalog.py",
        "grok/client.py",
        "grok/citations.py",
        "grok/markup.py",
        "grok/events.py",  # the event types
        "conversation/events.py",  # the answer's event types
        "conversation/limits.py",  # stop sequences and max_tokens
        "conversation/prompt.py",  # the conversation as one message
        "conversation/emulation.py",  # tool-call emulation (idle without tools)
        "conversation/envelope.py",
        "openai/schemas.py",
        "store/base.py",
        "store/guard.py",  # every store call under a timeout
        "store/sql_statements.py",
    }
)


@contextmanager
def modules_run() -> Iterator[set[str]]:
    seen: set[str] = set()
    root = str(PACKAGE) + "/"

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        name = frame.f_code.co_filename
        if event == "call" and name.startswith(root) and "/testing/" not in name:
            seen.add(name[len(root) :])

    sys.setprofile(hook)
    threading.setprofile(hook)
    try:
        yield seen
    finally:
        sys.setprofile(None)
        threading.setprofile(None)


async def test_one_streaming_chat_runs_only_stations_and_their_helpers(
    gateway: LiveGateway, client: openai.AsyncOpenAI
) -> None:
    await gateway.add_accounts("tok-path")
    ask: list[Any] = [{"role": "user", "content": "hi"}]

    async def one() -> str:
        stream = await client.chat.completions.create(model="grok-3-fast", messages=ask, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert await one()  # warm-up: identity, modes, connections
    with modules_run() as seen:
        assert await one()
    stations = set(STATIONS) - ({"http1.py"} if http_server(gateway.boot.http_server) == "hypercorn" else set())
    assert stations <= seen, "a station the request no longer passes: update the lists and the README"
    assert seen <= stations | HELPERS, f"new on the path, place them: {sorted(seen - set(STATIONS) - HELPERS)}"
