"""The egress part of the storage contract, on every backend: what workers and replicas share about each egress."""

from __future__ import annotations

from grok2api.store.base import EgressState, Store

from harness import StoreFactory


async def test_no_egress_is_known_at_first(store: Store) -> None:
    assert await store.list_egresses() == []


async def test_a_clearance_is_stored_and_clears_the_mark(store: Store) -> None:
    await store.mark_egress("p-1", 100.0, "a Cloudflare challenge on GET /rest/modes (HTTP 403)")
    [marked] = await store.list_egresses()
    assert (marked.key, marked.challenged_at, marked.cookies) == ("p-1", 100.0, {})
    assert marked.evidence.startswith("a Cloudflare challenge")

    await store.save_egress_clearance("p-1", {"cf_clearance": "c1", "__cf_bm": "b1"}, "UA/1", "flaresolverr", 200.0)
    [cleared] = await store.list_egresses()
    assert cleared == EgressState(
        key="p-1",
        cookies={"cf_clearance": "c1", "__cf_bm": "b1"},
        user_agent="UA/1",
        clearance_source="flaresolverr",
        clearance_at=200.0,
        challenged_at=None,
        evidence="",
        updated_at=200.0,
    )


async def test_a_mark_leaves_the_clearance_alone(store: Store) -> None:
    await store.save_egress_clearance("direct", {"cf_clearance": "c1"}, "UA/1", "operator", 10.0)
    await store.mark_egress("direct", 20.0, "an anti-bot 403 on POST /rest/rate-limits (HTTP 403)")
    [state] = await store.list_egresses()
    assert (state.cookies, state.user_agent, state.clearance_source, state.clearance_at) == (
        {"cf_clearance": "c1"},
        "UA/1",
        "operator",
        10.0,
    )
    assert state.challenged_at == 20.0 and "anti-bot" in state.evidence

    await store.mark_egress("direct", None, "ignored")
    [state] = await store.list_egresses()
    assert (state.challenged_at, state.evidence, state.cookies) == (None, "", {"cf_clearance": "c1"})


async def test_an_empty_clearance_forgets_it(store: Store) -> None:
    await store.save_egress_clearance("p-2", {"cf_clearance": "c1"}, "UA/1", "operator", 10.0)
    await store.save_egress_clearance("p-2", {}, "", "operator", 11.0)
    [state] = await store.list_egresses()
    assert (state.cookies, state.user_agent, state.clearance_source, state.clearance_at) == ({}, "", "", None)


async def test_egresses_are_listed_in_key_order(store: Store) -> None:
    for key in ("p-b", "direct", "p-a"):
        await store.mark_egress(key, 1.0, "seen")
    assert [e.key for e in await store.list_egresses()] == ["direct", "p-a", "p-b"]


async def test_another_instance_sees_the_same_egresses(store: Store, store_factory: StoreFactory) -> None:
    await store.save_egress_clearance("p-1", {"cf_clearance": "shared"}, "UA/2", "operator", 5.0)
    other = await store_factory(store.kind, fresh=False)
    [state] = await other.list_egresses()
    assert state.cookies == {"cf_clearance": "shared"} and state.user_agent == "UA/2"


async def test_cookies_grok_com_set_are_merged_and_leave_the_rest_alone(store: Store) -> None:
    await store.save_egress_clearance("p-1", {"cf_clearance": "c1", "__cf_bm": "b1"}, "UA/1", "operator", 10.0)
    await store.mark_egress("p-1", 20.0, "an anti-bot 403 on POST /rest/rate-limits (HTTP 403)")
    await store.merge_egress_cookies("p-1", {"__cf_bm": "b2", "_cfuvid": "u1"}, 30.0)
    [state] = await store.list_egresses()
    assert state.cookies == {"cf_clearance": "c1", "__cf_bm": "b2", "_cfuvid": "u1"}
    assert (state.user_agent, state.clearance_source, state.clearance_at) == ("UA/1", "operator", 10.0)
    assert (state.challenged_at, state.updated_at) == (20.0, 30.0) and "anti-bot" in state.evidence

    await store.merge_egress_cookies("p-1", {"cf_clearance": 'c"2\\'}, 40.0)  # a value JSON must escape
    [state] = await store.list_egresses()
    assert state.cookies == {"cf_clearance": 'c"2\\', "__cf_bm": "b2", "_cfuvid": "u1"}


async def test_cookies_set_on_an_unknown_egress_create_it(store: Store) -> None:
    await store.merge_egress_cookies("direct", {"__cf_bm": "b1"}, 5.0)
    await store.merge_egress_cookies("direct", {}, 6.0)  # nothing to set: nothing changes
    assert await store.list_egresses() == [EgressState(key="direct", cookies={"__cf_bm": "b1"}, updated_at=5.0)]
