"""Stored responses (the Responses API's ``store``), run against every backend (see the ``store`` fixture)."""

from __future__ import annotations

import time

from grok2api.store.base import Store

from harness import StoreFactory

BODY = '{"response": {"id": "resp_1", "output_text": "ünïcödé ✓"}}'.encode()


async def test_a_response_round_trips_for_its_own_key_only(store: Store) -> None:
    later = time.time() + 3600
    await store.put_response("resp_1", "key-a", BODY, later)
    await store.put_response("resp_2", "", b"{}", later)
    assert await store.get_response("resp_1", "key-a") == BODY
    assert await store.get_response("resp_2", "") == b"{}"
    # Another key (or the shared key, "") never sees it, and cannot delete it.
    assert await store.get_response("resp_1", "key-b") is None
    assert await store.get_response("resp_1", "") is None
    assert await store.get_response("resp_2", "key-a") is None
    assert await store.delete_response("resp_1", "key-b") is False
    assert await store.get_response("resp_1", "key-a") == BODY
    assert await store.get_response("resp_missing", "key-a") is None


async def test_putting_the_same_id_again_replaces_it(store: Store) -> None:
    later = time.time() + 3600
    await store.put_response("resp_1", "key-a", b"first", later)
    await store.put_response("resp_1", "key-a", b"second", later)
    assert await store.get_response("resp_1", "key-a") == b"second"


async def test_a_large_body_is_kept_whole(store: Store) -> None:
    body = ('{"text": "' + "x" * (3 * 1024 * 1024) + '"}').encode()  # past MySQL's TEXT and MEDIUMTEXT sizes
    await store.put_response("resp_big", "key-a", body, time.time() + 60)
    assert await store.get_response("resp_big", "key-a") == body


async def test_delete(store: Store) -> None:
    await store.put_response("resp_1", "key-a", BODY, time.time() + 3600)
    assert await store.delete_response("resp_1", "key-a") is True
    assert await store.get_response("resp_1", "key-a") is None
    assert await store.delete_response("resp_1", "key-a") is False


async def test_an_expired_response_is_gone(store: Store) -> None:
    at = time.time()
    await store.put_response("resp_old", "key-a", BODY, at - 1)
    await store.put_response("resp_new", "key-a", BODY, at + 3600)
    assert await store.get_response("resp_old", "key-a") is None
    assert await store.delete_response("resp_old", "key-a") is False
    purged = await store.purge_responses(time.time())
    assert purged == (0 if store.kind == "redis" else 1)  # Redis let it expire by itself
    assert await store.get_response("resp_new", "key-a") == BODY
    assert await store.purge_responses(time.time()) == 0


async def test_another_instance_reads_what_one_stored(store: Store, store_factory: StoreFactory) -> None:
    await store.put_response("resp_1", "key-a", BODY, time.time() + 3600)
    other = await store_factory(store.kind, fresh=False)
    assert await other.get_response("resp_1", "key-a") == BODY
    assert await other.delete_response("resp_1", "key-a") is True
    assert await store.get_response("resp_1", "key-a") is None
