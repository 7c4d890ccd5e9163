"""The statsig signer: the page meta it signs with, the request it is sent, and its cache."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from grok2api.grok.statsig import StatsigError, StatsigSigner, sign_body, site_verification
from grok2api.testing.fake_services import FakeSigner


def test_the_meta_is_read_from_the_home_page() -> None:
    page = '<head><meta charset="utf-8"><meta content="c2VlZA&#x3D;&#x3D;" name="grok-site-verification"/></head>'
    assert site_verification(page) == "c2VlZA=="
    assert site_verification("<meta name='grok-site-verification' content='abc'>") == "abc"
    assert site_verification("<html><head><title>Just a moment...</title></head></html>") == ""


def test_the_body_is_what_signers_expect() -> None:
    assert sign_body("post", "/rest/rate-limits", "m") == {
        "method": "POST",
        "path": "/rest/rate-limits",
        "environment": {"metaContent": "m"},
    }


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_values_are_cached_per_egress_method_and_path(session: aiohttp.ClientSession) -> None:
    server = FakeSigner()
    await server.start()
    pages: list[str] = []

    async def home() -> str:
        pages.append("read")
        return '<meta name="grok-site-verification" content="m1">'

    try:
        signer = StatsigSigner(lambda: session)
        url = f"{server.url}/sign"
        first = await signer.value(url, "direct", "POST", "/rest/modes", home)
        assert await signer.value(url, "direct", "POST", "/rest/modes", home) == first
        await signer.value(url, "direct", "POST", "/rest/rate-limits", home)
        await signer.value(url, "p-1", "POST", "/rest/modes", home)
        assert [(c["path"]) for c in server.calls] == ["/rest/modes", "/rest/rate-limits", "/rest/modes"]
        assert pages == ["read", "read"]  # once per egress
        signer.drop("direct", "POST", "/rest/modes")
        await signer.value(url, "direct", "POST", "/rest/modes", home)
        assert len(server.calls) == 4 and pages == ["read", "read", "read"]  # the page is read again too
    finally:
        await server.stop()


async def test_a_page_without_the_meta_or_a_broken_signer_is_an_error(session: aiohttp.ClientSession) -> None:
    signer = StatsigSigner(lambda: session)

    async def challenge_page() -> str:
        return "<title>Just a moment...</title>"

    async def good_page() -> str:
        return '<meta name="grok-site-verification" content="m1">'

    with pytest.raises(StatsigError, match="no grok-site-verification"):
        await signer.value("http://127.0.0.1:9/sign", "direct", "GET", "/", challenge_page)
    with pytest.raises(StatsigError, match="could not reach the statsig signer"):
        await signer.value("http://127.0.0.1:9/sign", "direct", "GET", "/", good_page)
