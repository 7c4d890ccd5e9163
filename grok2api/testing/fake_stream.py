"""Writing a script to the wire: NDJSON (or SSE) lines, one write per line, with the timing faults applied."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from .fake_http import encode_json
from .fake_script import Script, Step


async def play(
    request: web.Request, script: Script, framing: str, token_delay: float, first_delay: float
) -> web.StreamResponse:
    """Send the script: headers at once, then one write per line (each write reaches the socket)."""
    ctype = "text/event-stream" if framing == "sse" else "application/json"
    response = web.StreamResponse(status=200, headers={"Content-Type": ctype, "Cache-Control": "no-store"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    if first_delay > 0:
        await asyncio.sleep(first_delay)
    with contextlib.suppress(ConnectionError):
        if not await _play_steps(request, response, script.steps, framing, token_delay):
            return response
        if framing == "sse":
            await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        script.delivered = True
    return response


async def _play_steps(
    request: web.Request, response: web.StreamResponse, steps: list[Step], framing: str, token_delay: float
) -> bool:
    """Write the steps; False when the connection was deliberately cut."""
    trickle = 0.0
    seen_token = False
    for step in steps:
        if step.kind == "sleep":
            await asyncio.sleep(step.seconds)
            continue
        if step.kind == "trickle":
            trickle = step.seconds
            continue
        if step.kind == "abort":
            if request.transport is not None:
                request.transport.abort()
            return False
        if step.token:
            if seen_token and token_delay > 0:
                await asyncio.sleep(token_delay)
            seen_token = True
        data = _encode_step(step, framing)
        if trickle > 0:
            await _trickle(response, data, trickle)
            trickle = 0.0
        else:
            await response.write(data)
    return True


def _encode_step(step: Step, framing: str) -> bytes:
    if step.kind == "verbatim":
        return step.raw
    payload = encode_json(step.obj) if step.kind == "obj" else step.raw
    return b"data: " + payload + b"\n\n" if framing == "sse" else payload + b"\n"


async def _trickle(response: web.StreamResponse, data: bytes, per_byte: float, limit: int = 10) -> None:
    for index in range(min(limit, len(data))):
        await response.write(data[index : index + 1])
        await asyncio.sleep(per_byte)
    if len(data) > limit:
        await response.write(data[limit:])
