"""The doctor's egresses: today one, made from the settings, and the settings bound to it."""

from __future__ import annotations

from grok2api.diagnose.targets import DEFAULT_EGRESS, proxy_host, settings_for, targets
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
    assert target.name == DEFAULT_EGRESS
    assert (target.transport, target.profile, target.proxy_url) == ("curl_cffi", "chrome146", settings.proxy_url)
    assert dict(target.cookies) == {"cf_clearance": "cf-1"}
    assert target.user_agent == user_agent(settings) and "Chrome/146" in target.user_agent
    assert "Chrome 146" in target.fingerprint()
    assert target.describe() == "curl_cffi, through the proxy proxy.example:3128"  # no credentials


def test_aiohttp_presents_pythons_fingerprint_and_no_clearance_means_no_cookie() -> None:
    [target] = targets(RuntimeSettings(upstream_transport="aiohttp"))
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
