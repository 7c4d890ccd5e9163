"""FlareSolverr's command and answer (the round trip through a proxy is in test_egresses)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from grok2api.grok.clearance import ClearanceError, endpoint, parse_solution, proxy_spec, solve, solve_command


def test_the_endpoint_is_v1_whether_named_or_not() -> None:
    assert (
        endpoint("http://flaresolverr:8191")
        == endpoint("http://flaresolverr:8191/v1/")
        == ("http://flaresolverr:8191/v1")
    )


def test_the_proxy_goes_without_credentials_in_its_url() -> None:
    assert proxy_spec("http://u%40x:p%3Aw@10.0.0.5:3128") == {
        "url": "http://10.0.0.5:3128",
        "username": "u@x",
        "password": "p:w",
    }
    assert proxy_spec("socks5h://proxy:1080") == {"url": "socks5://proxy:1080"}
    assert "proxy" not in solve_command("https://grok.com/", "")
    assert solve_command("https://grok.com/", "http://p:1")["cmd"] == "request.get"


def _answer(cookies: list[dict[str, Any]], user_agent: Any = "UA/1", status: str = "ok") -> dict[str, Any]:
    return {"status": status, "message": "", "solution": {"cookies": cookies, "userAgent": user_agent}}


def test_only_cloudflare_cookies_are_kept() -> None:
    found = parse_solution(
        _answer(
            [{"name": "cf_clearance", "value": "c"}, {"name": "__cf_bm", "value": "b"}, {"name": "x", "value": "1"}]
        )
    )
    assert (found.cookies, found.user_agent) == ({"cf_clearance": "c", "__cf_bm": "b"}, "UA/1")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (_answer([], status="error") | {"message": "Timeout after 60.0 seconds."}, "Timeout after 60.0 seconds"),
        (_answer([{"name": "__cf_bm", "value": "b"}]), "without a cf_clearance"),
        (_answer([{"name": "cf_clearance", "value": "c"}], user_agent=None), "User-Agent"),
        ([1, 2], "JSON object"),
    ],
)
def test_a_failed_solve_says_why(data: Any, words: str) -> None:
    with pytest.raises(ClearanceError, match=words):
        parse_solution(data)


async def test_an_unreachable_flaresolverr_is_a_clear_error() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ClearanceError, match="could not reach FlareSolverr"):
            await solve(session, "http://127.0.0.1:9", "https://grok.com/", "")
