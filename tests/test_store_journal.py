"""The settlement journal: bounded, replayed in order once the store answers, saved across a restart; and end to
end, an answer whose bookkeeping fails still reaches the client whole, and its settlement lands later."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import msgspec
import pytest

from grok2api.after_response import drain
from grok2api.store import make_store
from grok2api.store.base import Settlement, Store, StoreUnavailable
from grok2api.store.journal import Journal
from grok2api.testing.fake_grok import FakeGrok

from harness import FlakyStore, LiveGateway, sse_frames


class Recorder:
    """A store whose settle records its calls, or fails like an outage while ``down``."""

    def __init__(self) -> None:
        self.settled: list[tuple[int, Settlement]] = []
        self.down = False
        self.broken_for: set[int] = set()

    async def settle(self, account_id: int, settlement: Settlement) -> None:
        if self.down:
            raise StoreUnavailable("down")
        if account_id in self.broken_for:
            raise ValueError("this one can never be applied")
        self.settled.append((account_id, settlement))


def _store(recorder: Recorder) -> Store:
    return recorder  # type: ignore[return-value]


async def test_replay_applies_in_order_and_stops_at_the_next_outage() -> None:
    journal, store = Journal(), Recorder()
    for i in range(5):
        journal.add(i, Settlement(mode="fast", ok=True))
    store.down = True
    assert await journal.replay(_store(store)) == 0 and len(journal) == 5
    store.down = False
    store.broken_for = {2}  # an entry the store refuses for good is dropped, the rest still go
    assert await journal.replay(_store(store)) == 5
    assert [a for a, _ in store.settled] == [0, 1, 3, 4] and len(journal) == 0


async def test_the_journal_is_bounded_and_keeps_the_newest() -> None:
    journal, store = Journal(limit=3), Recorder()
    for i in range(10):
        journal.add(i, Settlement(ok=True))
    assert len(journal) == 3 and journal.dropped == 7
    await journal.replay(_store(store))
    assert [a for a, _ in store.settled] == [7, 8, 9]


async def test_what_is_left_is_saved_and_taken_over_once(tmp_path: Path) -> None:
    journal = Journal()
    journal.add(7, Settlement(mode="fast", refund=1, failure="grok.com failed"))
    journal.add(8, Settlement(mode="fast", ok=True))
    assert journal.save(tmp_path) is not None and len(journal) == 0
    assert Journal().save(tmp_path) is None  # nothing to save: no file
    first, second = Journal(), Journal()
    assert first.load(tmp_path) == 2
    assert second.load(tmp_path) == 0  # the file was taken already
    store = Recorder()
    await first.replay(_store(store))
    assert store.settled == [
        (7, Settlement(mode="fast", refund=1, failure="grok.com failed")),
        (8, Settlement(mode="fast", ok=True)),
    ]
    assert list(tmp_path.iterdir()) == []


# ---- end to end ------------------------------------------------------------------------------------

CHAT = {"model": "grok-3-fast", "messages": [{"role": "user", "content": "[[tokens:5]] hello"}]}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "non-stream"])
async def test_an_answer_survives_a_store_that_cannot_settle_and_its_settlement_lands_later(
    tmp_path: Path, fake: FakeGrok, stream: bool
) -> None:
    flaky = FlakyStore(make_store("file", "", tmp_path / "data"))
    async with LiveGateway(tmp_path / "data", fake.base_url, fake.assets_url, store=flaky) as gw:
        await gw.add_accounts("tok-journal")
        flaky.failing = {"settle"}  # the store goes away once the answer was reserved
        async with (
            aiohttp.ClientSession() as http,
            http.post(gw.url + "/v1/chat/completions", json={**CHAT, "stream": stream}) as resp,
        ):
            assert resp.status == 200, await resp.text()
            raw = await resp.read()
        if stream:
            frames = sse_frames(raw)
            assert frames[-1] == "[DONE]"
            chunks = [msgspec.json.decode(f) for f in frames[:-1]]
            assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
            text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        else:
            choice = msgspec.json.decode(raw)["choices"][0]
            assert choice["finish_reason"] == "stop"
            text = choice["message"]["content"]
        assert len(text.split()) >= 5  # the whole answer
        await drain()  # the settlement runs after the last byte
        assert flaky.failures >= 1 and len(gw.services.journal) == 1
        stored = await flaky.inner.get_account("tok-journal")
        assert stored is not None and stored.requests_ok == 0  # not settled yet

        flaky.failing = set()  # the store is back: the journal is applied without any request
        for _ in range(50):
            stored = await flaky.inner.get_account("tok-journal")
            if stored is not None and stored.requests_ok == 1:
                break
            await asyncio.sleep(0.1)
        assert stored is not None and stored.requests_ok == 1 and stored.last_used_at is not None
        assert len(gw.services.journal) == 0


async def test_settlements_the_store_never_took_wait_for_the_next_start(tmp_path: Path, fake: FakeGrok) -> None:
    data = tmp_path / "data"
    flaky = FlakyStore(make_store("file", "", data))
    async with LiveGateway(data, fake.base_url, fake.assets_url, store=flaky) as gw:
        await gw.add_accounts("tok-restart")
        flaky.failing = {"settle"}
        async with aiohttp.ClientSession() as http, http.post(gw.url + "/v1/chat/completions", json=CHAT) as resp:
            assert resp.status == 200
    assert list((data / "journal").glob("settlements-*.json"))  # saved at shutdown

    async with LiveGateway(data, fake.base_url, fake.assets_url) as again:
        for _ in range(50):
            stored = await again.services.store.get_account("tok-restart")
            if stored is not None and stored.requests_ok == 1:
                break
            await asyncio.sleep(0.1)
        assert stored is not None and stored.requests_ok == 1
    assert not list((data / "journal").glob("*.json"))
