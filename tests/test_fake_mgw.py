"""The fake grok.com's mgw WebSocket chat speaks the late-2026 protocol: session flow, both text families, the
modes' answer styles, search, citations, images, attachments, pings and what it records."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from fake_mgw_client import MgwClient, chunks, handshake_headers, of_type, text_by_channel, types

from grok2api.testing.fake_grok import SEARCH_RESULTS, SESSION_PATH, UPLOAD_PATH, X_POST, FakeGrok

EVENT_ID = re.compile(r"^evt_[0-9a-f]{32}_\d+$")
STATSIG = base64.b64encode(b"x1:TypeError: Cannot read properties of undefined (reading 'childNodes')").decode()

Connect = Callable[..., Awaitable[MgwClient]]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def connect(fake: FakeGrok, http: aiohttp.ClientSession) -> AsyncIterator[Connect]:
    sockets: list[aiohttp.ClientWebSocketResponse] = []

    async def open_socket(token: str = "tok-a") -> MgwClient:
        uid = fake.user_id(token)
        ws = await http.ws_connect(fake.mgw_url(uid), headers=handshake_headers(fake, token))
        sockets.append(ws)
        return MgwClient(ws)

    yield open_socket
    for ws in sockets:
        await ws.close()


# ------------------------------------------------------------------------------------------------ identity


async def test_auth_session(fake: FakeGrok, http: aiohttp.ClientSession) -> None:
    async def session(cookie: str | None) -> dict[str, object]:
        headers = {"Cookie": cookie} if cookie else {}
        async with http.get(fake.base_url + SESSION_PATH, headers=headers) as r:
            assert r.status == 200
            body: dict[str, object] = await r.json()
            return body

    first = await session("sso=tok-a; sso-rw=tok-a")
    assert first["status"] == "authenticated"
    user = first["session"]
    assert isinstance(user, dict) and user["userId"] == fake.user_id("tok-a")
    assert set(user) == {"userId", "email", "organizationId"}
    other = await session("sso-rw=tok-b")
    assert isinstance(other["session"], dict) and other["session"]["userId"] != user["userId"]
    assert await session("sso=tok-a") == first  # stable per token
    assert await session(None) == {"status": "unauthenticated"}
    assert await session("sso=invalid-1") == {"status": "unauthenticated"}
    fake.block("tok-a")
    assert await session("sso=tok-a") == {"status": "blocked"}
    fake.accept_unknown = False
    assert await session("sso=stranger") == {"status": "unauthenticated"}
    fake.push_fault("auth-503")
    async with http.get(fake.base_url + SESSION_PATH, headers={"Cookie": "sso=tok-b"}) as r:
        assert r.status == 503


# ------------------------------------------------------------------------------------------------ the flow


async def test_session_flow_and_envelope(fake: FakeGrok, connect: Connect) -> None:
    client = await connect()
    opening = await client.create("fast")
    assert types(opening) == ["session.created", "conversation.attached"]
    created, attached = opening[0]["event"], opening[1]["event"]
    assert created["client_event_id"] == "evt_init_1" and created["session"]["model"] == "fast"
    assert attached["conversation"] == {"id": client.session_id, "object": "realtime.conversation"}
    assert attached["mode"] == "new"
    events = await client.answer("hi there")
    assert all(e["session_id"] == client.session_id and EVENT_ID.match(e["event"]["event_id"]) for e in events)
    numbers = [int(e["event"]["event_id"].rsplit("_", 1)[1]) for e in opening + events]
    assert numbers == list(range(1, len(numbers) + 1))
    kinds = types(events)
    done = kinds.index("response.done")
    assert kinds[:6] == [
        "conversation.queue.updated",
        "conversation.item.added",
        "response.created",
        "response.output_item.added",
        "response.content_part.added",
        "response.chunk",
    ]
    closing = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
    assert kinds[done - 3 : done] == closing
    assert "response.output_text.delta" not in kinds  # use_chunk: one text family only
    response = of_type(events, "response.created")[0]
    rid = response["response"]["id"]
    assert response["client_event_id"] == "evt_resp_1"
    assert isinstance(response["response"]["x_grok"]["created_at"], float)
    assert of_type(events, "response.done")[0]["response"] == {
        "id": rid,
        "status": "completed",
        "output_modalities": ["text"],
        "usage": {},
    }
    before, after = events[:done], events[done + 1 :]
    assert all(c["response_id"] == c["item_id"] == rid for c in of_type(before, "response.chunk"))
    trailing = of_type(after, "response.chunk")
    assert trailing and all(c["response_id"] == c["item_id"] == "" for c in trailing)
    assert {"follow_up_suggestions", "text"} <= {k for c in trailing for k in c["chunk"] if k != "metadata"}
    answer = text_by_channel(before)
    assert set(answer) == {"CHANNEL_ASSISTANT_RESPONSE"}  # fast answers plainly
    assert answer["CHANNEL_ASSISTANT_RESPONSE"] == "Hello! You said: hi there"
    assert of_type(events, "response.output_text.done")[0]["text"] == "Hello! You said: hi there"
    assert "response.persisted" in types(after) and "conversation.title.updated" not in types(after)  # temporary
    # Lifecycle pairs share a frame.
    assert client.frames[2].count('"session_id"') == 2 and "conversation.item.added" in client.frames[2]
    assert fake.account("tok-a").window("fast").remaining == 29


async def test_second_turn_on_one_socket_and_title(fake: FakeGrok, connect: Connect) -> None:
    client = await connect()
    await client.create("fast", is_temporary=False)
    first = await client.answer("name this chat please")
    assert of_type(first, "conversation.title.updated")[0]["title"] == "name this chat please"
    second = await client.answer("[[tokens:3]]")
    assert text_by_channel(second)["CHANNEL_ASSISTANT_RESPONSE"] == "tok0 tok1 tok2 "
    assert fake.account("tok-a").remaining == 28
    assert len(fake.mgw_sessions("tok-a")[0].responses) == 2


MODE_STYLES = [
    ("fast", "tok-a", "x [[think]]", "CHANNEL_ASSISTANT_REASONING"),
    ("auto", "tok-a", "x", "CHANNEL_ASSISTANT_ANALYSIS"),
    ("expert", "super-a", "x", "CHANNEL_ASSISTANT_REASONING"),
    ("heavy", "heavy-a", "x", "CHANNEL_ASSISTANT_THINKING"),
]


@pytest.mark.parametrize(("mode", "token", "prompt", "channel"), MODE_STYLES)
async def test_modes_think_on_their_channels(
    connect: Connect, mode: str, token: str, prompt: str, channel: str
) -> None:
    client = await connect(token)
    await client.create(mode)
    events = await client.answer(prompt)
    done = types(events).index("response.done")
    texts = text_by_channel(events[:done])
    assert texts["CHANNEL_ASSISTANT_NOTETAKER_HEADER"] == "Thinking about your request"
    assert texts[channel] == "Let me think about this."
    assert texts["CHANNEL_ASSISTANT_RESPONSE"] == "Hello! You said: x"
    assert ("CHANNEL_ASSISTANT_NOTETAKER_SUMMARY" in texts) == (mode == "expert")
    markers = [m["kind"] for m in chunks(events, "phase_marker")]
    assert markers == ["KIND_THINKING_START", "KIND_RESPONSE_START"]
    # The first notetaker line comes before the thinking phase marker.
    kinds = [next(k for k in c["chunk"] if k != "metadata") for c in of_type(events, "response.chunk")]
    assert kinds.index("text") < kinds.index("phase_marker")


async def test_delta_family_without_use_chunk(connect: Connect) -> None:
    client = await connect()
    await client.create("auto", use_chunk=False)
    events = await client.answer("look it up [[search]] [[cite]]")
    assert "response.chunk" not in types(events)
    deltas = of_type(events, "response.output_text.delta")
    thinking = "".join(d["delta"] for d in deltas if d["x_grok"]["is_thinking"])
    answer = "".join(d["delta"] for d in deltas if not d["x_grok"]["is_thinking"])
    assert thinking == "Thinking about your requestLet me think about this."
    assert answer.startswith("Hello!") and '<grok:render card_id="k9"' in answer
    assert of_type(events, "response.output_text.done")[0]["text"] == answer
    outputs = [o["output"] for o in of_type(events, "response.grok.output")]
    card = next(o["card_attachment"] for o in outputs if "card_attachment" in o)
    assert card["id"] == "k9" and card["url"] == SEARCH_RESULTS[0]["url"]
    assert [o for o in outputs if "tool_usage_card" in o] and [o for o in outputs if "tool_result" in o]
    results = [r["result"] for r in of_type(events, "response.search.result")]
    assert [r["url"] for r in results] == [r["url"] for r in SEARCH_RESULTS]


async def test_search_and_citations_as_chunks(connect: Connect) -> None:
    client = await connect()
    await client.create("fast")
    events = await client.answer("rust book [[search]] [[cite]]")
    cards = chunks(events, "tool_usage_card")
    assert cards[0]["web_search"]["args"]["query"] == "rust book" and "x_search" in cards[1]
    results = chunks(events, "tool_result")
    assert [p["url"] for p in results[0]["web_search"]["webpages"]] == [r["url"] for r in SEARCH_RESULTS]
    assert results[1]["x_post"]["posts"] == [X_POST]
    citations = chunks(events, "render_citation")
    kinds = [(c["kind"], c["citation_id"]) for c in citations]
    assert kinds == [("CITATION_KIND_WEB_PAGE", 0), ("CITATION_KIND_X_POST", 1)]
    assert citations[0]["url"] == SEARCH_RESULTS[0]["url"] and citations[1]["url"].startswith("https://x.com/fakegrok/")
    # The card variant: a <grok:render> tag resolved by a card_attachment, here wrapped in a jsonData string.
    events = await client.answer("again [[cite-card]] [[card-json]]")
    card = json.loads(of_type(events, "response.grok.output")[0]["output"]["card_attachment"]["jsonData"])
    assert card["id"] == "k9" and card["url"] == SEARCH_RESULTS[0]["url"]
    assert '<grok:render card_id="k9"' in text_by_channel(events)["CHANNEL_ASSISTANT_RESPONSE"]
    assert not chunks(events, "render_citation")


async def test_draw_cards_and_assets(fake: FakeGrok, connect: Connect, http: aiohttp.ClientSession) -> None:
    client = await connect()
    await client.create("fast", enable_image_generation=True, image_generation_count=3)
    events = await client.answer("draw a cat [[draw-moderated]]")
    images = [o["output"]["card_attachment"]["image_chunk"] for o in of_type(events, "response.grok.output")]
    assert [(i["imageIndex"], i["progress"]) for i in images] == [(i, p) for p in (50, 100) for i in range(3)]
    assert all(i["imageUrl"].startswith("data:image/jpeg;base64,") for i in images if i["progress"] < 100)
    finals = [i for i in images if i["progress"] == 100]
    assert finals[2]["moderated"] is True and "imageUrl" not in finals[2]
    uid = fake.user_id("tok-a")
    for image in finals[:2]:
        assert image["imageUrl"] == f"users/{uid}/generated/{image['imageUuid']}/image.jpg"
        async with http.get(f"{fake.assets_url}/{image['imageUrl']}", headers={"Cookie": "sso=tok-a"}) as r:
            assert r.status == 200 and (await r.read()).startswith(b"\xff\xd8")
    # Words alone draw only while image generation is on.
    plain = await connect()
    await plain.create("fast")
    assert not of_type(await plain.answer("draw a cat"), "response.grok.output")


async def test_file_mentions_and_echo(fake: FakeGrok, connect: Connect, http: aiohttp.ClientSession) -> None:
    upload = {"fileName": "a.png", "fileMimeType": "image/png", "content": base64.b64encode(b"PNG").decode()}
    headers = {"Cookie": "sso=tok-a", "x-statsig-id": STATSIG}
    async with http.post(fake.base_url + UPLOAD_PATH, json=upload, headers=headers) as r:
        file_id = (await r.json())["fileMetadataId"]
    client = await connect()
    await client.create("fast")
    events = await client.answer("what is it [[echo]]", files=(file_id,), file_attachment_ids=[file_id])
    echoed = json.loads(text_by_channel(events)["CHANNEL_ASSISTANT_RESPONSE"])
    assert echoed == [
        {"mention": {"target": {"file_mention": {"file_id": file_id}}}},
        {"text": {"text": "what is it [[echo]]"}},
    ]
    record = fake.mgw_sessions("tok-a")[0]
    assert record.input_chunks == echoed and record.file_attachment_ids == [file_id, file_id]
    await client.ask("and this?", files=("not-mine",))
    errors = [e["error"] for e in of_type(await client.read(), "error")]
    assert errors[0] == {"code": "not_found", "message": "File not-mine not found"}
    assert errors[1]["message"] == "No user message to respond to"  # the refused message is not pending


async def test_client_event_variants_and_mistakes(connect: Connect) -> None:
    client = await connect()
    await client.send({"type": "conversation.item.create", "event_id": "e"}, session=False)
    assert of_type(await client.read(), "error")[0]["error"]["code"] == "conversation_not_found"
    await client.create("fast")
    await client.send({"type": "response.create", "event_id": "evt_resp_0"})
    assert of_type(await client.read(), "error")[0]["error"]["message"] == "No user message to respond to"
    # The item inside response.create, in the Realtime content shape.
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "inline [[tokens:2]]"}]}
    await client.send({"type": "response.create", "event_id": "evt_resp_1", "item": item})
    assert text_by_channel(await client.read())["CHANNEL_ASSISTANT_RESPONSE"] == "tok0 tok1 "
    await client.ws.send_str('{"event":{"type":"ping"')
    assert of_type(await client.read(), "error")[0]["error"]["code"] == "invalid_argument"


async def test_ping_pong_during_an_answer(connect: Connect) -> None:
    client = await connect()
    await client.create("fast")
    await client.ask("[[tokens:8]] [[fault:slow-tokens:0.05]]")
    await client.send({"type": "ping", "event_id": "evt_hb_1"}, session=False)
    # Read to the answer's end, not to the first quiet moment: a busy machine can pause longer than a token's pace.
    events = await client.read(until=lambda envelope: envelope["event"]["type"] == "response.done")
    pong = of_type(events, "pong")
    assert pong and pong[0]["client_event_id"] == "evt_hb_1"
    assert types(events).index("pong") < types(events).index("response.done")
    assert text_by_channel(events)["CHANNEL_ASSISTANT_RESPONSE"] == "".join(f"tok{i} " for i in range(8))


async def test_a_silent_socket_is_let_go_and_one_that_speaks_is_kept(fake: FakeGrok, connect: Connect) -> None:
    fake.mgw_idle_seconds = 0.2
    silent, chatty = await connect(), await connect()
    await chatty.create("fast")
    await chatty.ask("[[tokens:4]] [[fault:slow-tokens:0.1]]")  # the answer (0.4 s) plays past the idle time
    events = await chatty.read(until=lambda envelope: envelope["event"]["type"] == "response.done")
    assert text_by_channel(events)["CHANNEL_ASSISTANT_RESPONSE"] == "".join(f"tok{i} " for i in range(4))
    closing = await asyncio.wait_for(silent.ws.receive(), 2)
    assert closing.type == aiohttp.WSMsgType.CLOSE and closing.extra == "idle"
    quiet, spoke = fake.mgw_sessions()
    assert quiet.idle_closed and not quiet.received and not spoke.idle_closed and spoke.responses


async def test_recorded_session(fake: FakeGrok, connect: Connect) -> None:
    client = await connect("tok-r")
    await client.create("auto", enable_image_generation=False)
    await client.answer("hello")
    await client.ws.close()
    [record] = fake.mgw_sessions("tok-r")
    assert record.uid == fake.user_id("tok-r") and record.mode == "auto" and record.refused is None
    assert record.x_grok["use_chunk"] is True and record.x_grok["enable_image_generation"] is False
    assert record.session_id == client.session_id and record.input_chunks == [{"text": {"text": "hello"}}]
    assert record.headers["origin"] == fake.base_url and "x-userid=" in record.headers["cookie"]
    received = [e["event"]["type"] for e in record.received]
    assert received == ["session.create", "conversation.item.create", "response.create"]
    assert record.sent_types()[:2] == ["session.created", "conversation.attached"]
    assert "response.done" in record.sent_types() and record.sent[0]["session_id"] == client.session_id
    for _ in range(100):
        if record.closed:
            break
        await asyncio.sleep(0.01)
    assert record.closed


async def test_packed_frames_marker(connect: Connect) -> None:
    client = await connect()
    await client.create("fast")
    events = await client.answer("[[tokens:6]] [[packed]]")
    assert text_by_channel(events)["CHANNEL_ASSISTANT_RESPONSE"] == "".join(f"tok{i} " for i in range(6))
    answer_frames = [f for f in client.frames if "tok" in f and '"response.chunk"' in f]
    assert answer_frames and all(f.count('"event_id"') == 2 for f in answer_frames)


async def test_stop_closes_open_sockets(http: aiohttp.ClientSession) -> None:
    fake = FakeGrok()
    await fake.start()
    ws = await http.ws_connect(fake.mgw_url(fake.user_id("tok-a")), headers=handshake_headers(fake, "tok-a"))
    await fake.stop()
    message = await ws.receive(timeout=2)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
