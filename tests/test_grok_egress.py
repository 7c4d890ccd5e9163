"""Egresses as data: keys and labels, rendezvous stickiness, pasted clearances, and what a call sends."""

from __future__ import annotations

import pytest

from grok2api.grok.egress import (
    Egress,
    egress_key,
    parse_clearance,
    pick,
    proxy_label,
    set_cookies,
    with_cookies,
    with_user_agent,
)


def _egress(name: str, challenged_at: float | None = None) -> Egress:
    return Egress(key=name, proxy=f"http://{name}:8080", label=name, challenged_at=challenged_at)


def test_keys_and_labels_never_show_credentials() -> None:
    secret = "http://user:hunter2@proxy.example:3128"
    assert egress_key(secret).startswith("p-") and "hunter2" not in egress_key(secret)
    assert egress_key(secret) != egress_key("http://user:other@proxy.example:3128")  # another login, another IP
    assert proxy_label(secret) == "http://proxy.example:3128"
    assert egress_key("") == egress_key("direct") == proxy_label("") == "direct"


def test_an_account_sticks_to_one_egress_and_the_accounts_spread() -> None:
    egresses = [_egress(n) for n in ("a", "b", "c")]
    homes = {t: pick(f"tok-{t}", egresses, 600, now=1000).key for t in range(60)}
    assert homes == {t: pick(f"tok-{t}", list(reversed(egresses)), 600, now=1000).key for t in range(60)}
    assert set(homes.values()) == {"a", "b", "c"}


def test_removing_an_egress_moves_only_its_accounts() -> None:
    egresses = [_egress(n) for n in ("a", "b", "c")]
    before = {t: pick(f"tok-{t}", egresses, 600, now=1000).key for t in range(60)}
    after = {t: pick(f"tok-{t}", egresses[:2], 600, now=1000).key for t in range(60)}
    assert all(after[t] == before[t] for t in before if before[t] != "c")


def test_a_challenged_egress_is_avoided_until_its_retry_time() -> None:
    egresses = [_egress("a", challenged_at=1000.0), _egress("b")]
    tokens = [f"tok-{t}" for t in range(40)]
    assert {pick(t, egresses, 600, now=1100).key for t in tokens} == {"b"}
    assert {pick(t, egresses, 600, now=1700).key for t in tokens} == {"a", "b"}  # worth trying again
    everyone_down = [_egress("a", 1000.0), _egress("b", 1000.0)]
    assert {pick(t, everyone_down, 600, now=1100).key for t in tokens} == {"a", "b"}
    with pytest.raises(ValueError):
        pick("tok", [], 600)


@pytest.mark.parametrize(
    ("pasted", "cookies"),
    [
        ("abc.def-123", {"cf_clearance": "abc.def-123"}),
        ("cf_clearance=abc", {"cf_clearance": "abc"}),
        (
            "Cookie: sso=secret; cf_clearance=abc; __cf_bm=bm; _cfuvid=u; theme=dark",
            {
                "cf_clearance": "abc",
                "__cf_bm": "bm",
                "_cfuvid": "u",
            },
        ),
        ("cf_chl_rc_m=1; cf_clearance=x", {"cf_chl_rc_m": "1", "cf_clearance": "x"}),
    ],
)
def test_a_pasted_clearance_keeps_only_cloudflare_cookies(pasted: str, cookies: dict[str, str]) -> None:
    assert parse_clearance(pasted) == cookies


@pytest.mark.parametrize("pasted", ["", "   ", "sso=tok; theme=dark", "two words"])
def test_a_paste_without_a_clearance_is_refused(pasted: str) -> None:
    with pytest.raises(ValueError):
        parse_clearance(pasted)


def test_the_egress_cookies_replace_any_cloudflare_cookie_of_the_call() -> None:
    header = "sso-rw=tok;sso=tok;cf_clearance=old"
    assert with_cookies(header, {"cf_clearance": "new", "__cf_bm": "b"}) == (
        "sso-rw=tok; sso=tok; cf_clearance=new; __cf_bm=b"
    )
    assert with_cookies(header, {}) == header
    assert with_cookies("", {"cf_clearance": "c"}) == "cf_clearance=c"
    # Only a rotated __cf_bm of its own: the cf_clearance the call carried (the setting's) still goes out.
    assert with_cookies(header, {"__cf_bm": "b"}) == "sso-rw=tok; sso=tok; cf_clearance=old; __cf_bm=b"


def test_only_the_cloudflare_cookies_an_answer_sets_are_kept() -> None:
    headers = [
        "__cf_bm=bm1; path=/; expires=Tue, 15 Dec 2026 10:30:00 GMT; domain=.grok.com; HttpOnly; Secure; SameSite=None",
        "cf_clearance=cc1; Path=/; Max-Age=31536000; Domain=.grok.com; HttpOnly; Secure",
        '_cfuvid="uv1"; path=/; domain=.grok.com; HttpOnly; Secure',
        "sso=account-secret; Path=/; Domain=.grok.com",
        "sso-rw=account-secret; Path=/",
        "cf_chl_rc_m=; Max-Age=0; Path=/",  # being deleted
        "__cflb=0H28v; Max-Age=0",  # being deleted
        "no-equals-sign",
    ]
    assert set_cookies(headers) == {"__cf_bm": "bm1", "cf_clearance": "cc1", "_cfuvid": "uv1"}
    assert set_cookies([]) == {}


def test_the_user_agent_of_a_clearance_brings_its_sec_ch_ua() -> None:
    headers = {"User-Agent": "Chrome/146", "Sec-Ch-Ua": '"Google Chrome";v="146"', "Accept": "*/*"}
    with_user_agent(headers, "Mozilla/5.0 (X11) AppleWebKit/537.36 Chrome/139.0.0.0 Safari/537.36")
    assert headers["User-Agent"].endswith("Chrome/139.0.0.0 Safari/537.36")
    assert headers["Sec-Ch-Ua"].count('v="139"') == 2
    firefox = {"User-Agent": "x", "Sec-Ch-Ua": "y"}
    with_user_agent(firefox, "Mozilla/5.0 (X11; rv:140.0) Gecko/20100101 Firefox/140.0")
    assert firefox == {"User-Agent": "Mozilla/5.0 (X11; rv:140.0) Gecko/20100101 Firefox/140.0"}
    untouched = {"User-Agent": "mine"}
    with_user_agent(untouched, "")
    assert untouched == {"User-Agent": "mine"}
