"""The doctor's egresses: one per configured egress, and the settings bound to it."""

from __future__ import annotations

import msgspec

from grok2api.diagnose.targets import DEFAULT_EGRESS, proxy_host, settings_for, targets
from grok2api.egresses import build_egresses
from grok2api.grok.headers import user_agent
from grok2api.settings import RuntimeSettings


def test_one_target_from_the_current_settings() -> None:
    settings = RuntimeSettings(
        proxy_url="http://u:p@proxy.example:3128",
        cf_clearance="cf-1",
        upstream_transport="curl_cffi",
        browser_profile="chrome146",
    )
    [target] = targets(settings)
    assert target.name == "http://proxy.example:3128"  # the egress's label: no credentials
    assert (target.transport, target.profile, target.proxy_url) == ("curl_cffi", "chrome146", settings.proxy_url)
    assert dict(target.cookies) == {"cf_clearance": "cf-1"}
    assert target.user_agent == user_agent(settings) and "Chrome/146" in target.user_agent
    assert "Chrome 146" in target.fingerprint()
    assert target.describe() == "curl_cffi, through the proxy proxy.example:3128"  # no credentials


def test_aiohttp_presents_pythons_fingerprint_and_no_clearance_means_no_cookie() -> None:
    [target] = targets(RuntimeSettings(upstream_transport="aiohttp"))
    assert target.name == DEFAULT_EGRESS
    assert "Python's OpenSSL" in target.fingerprint() and target.describe() == "aiohttp, direct"
    assert dict(target.cookies) == {}


def test_settings_for_binds_the_egress_and_keeps_the_chat_temporary() -> None:
    base = RuntimeSettings(temporary=False, proxy_url="http://a.example:1", cf_clearance="old")
    [target] = targets(RuntimeSettings(proxy_url="socks5://b.example:1080", cf_clearance="new"))
    bound = settings_for(target, base)
    assert (bound.proxy_url, bound.cf_clearance) == ("socks5h://b.example:1080", "new")
    assert bound.temporary is True and base.temporary is False
    assert bound.upstream_transport == target.transport


def test_proxy_host_never_shows_credentials() -> None:
    assert proxy_host("http://user:secret@10.0.0.1:8080") == "10.0.0.1:8080"
    assert proxy_host("socks5h://proxy.example") == "proxy.example"


def test_one_target_per_egress_with_its_stored_cookies_and_user_agent() -> None:
    settings = RuntimeSettings(
        proxy_urls="http://u:p@one.example:3128, socks5://two.example:1080", cf_clearance="cf-set"
    )
    one, two = build_egresses(settings.proxy_url_list(), {})
    one = msgspec.structs.replace(one, cookies={"cf_clearance": "cf-one", "__cf_bm": "bm"}, user_agent="UA-one")
    first, second = targets(settings, [one, two])
    assert (first.name, first.proxy_url, first.egress) == ("http://one.example:3128", one.proxy, one)
    assert dict(first.cookies) == {"cf_clearance": "cf-one", "__cf_bm": "bm"} and first.user_agent == "UA-one"
    assert second.name == "socks5h://two.example:1080" or second.name.endswith("two.example:1080")
    assert dict(second.cookies) == {"cf_clearance": "cf-set"}  # the pasted setting where the egress has none
    assert second.user_agent == user_agent(settings)
    assert settings_for(first, settings).cf_clearance == "cf-one"
