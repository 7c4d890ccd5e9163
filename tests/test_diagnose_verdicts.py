"""Verdicts and fixes: the meaning comes from the gateway's classifier, the fix from the egress it happened on."""

from __future__ import annotations

from grok2api.diagnose.report import Verdict
from grok2api.diagnose.targets import Target
from grok2api.diagnose.verdicts import explain, explain_event, fix_for
from grok2api.grok.errors import UploadRejected, UpstreamConnectionError, UpstreamHTTPError
from grok2api.grok.events import ErrorEvent

AIOHTTP = Target("default", "aiohttp", "chrome146", "UA")
CURL_PROXIED = Target("e2", "curl_cffi", "chrome151", "UA", proxy_url="http://p.example:1")
CF_PAGE = "<!DOCTYPE html><html><head><title>Just a moment...</title></head></html>"


def test_cloudflare_and_grok_anti_bot_are_told_apart() -> None:
    challenged = UpstreamHTTPError(403, CF_PAGE, "text/html", headers={"cf-mitigated": "challenge"})
    anti_bot = UpstreamHTTPError(403, '{"error":{"code":7,"message":"Request rejected by anti-bot rules."}}')
    assert explain(challenged)[0] is Verdict.CLOUDFLARE and "cf-mitigated" in explain(challenged)[1]
    assert explain(anti_bot)[0] is Verdict.ANTI_BOT and "anti-bot rules" in explain(anti_bot)[1]
    # Blocked wins over both, as in the pool: a retry past the checks would lose it.
    blocked = UpstreamHTTPError(403, "User is blocked [WKE=unauthorized:blocked-user]")
    assert explain(blocked)[0] is Verdict.BLOCKED


def test_the_cloudflare_fix_follows_the_egress() -> None:
    direct = fix_for(Verdict.CLOUDFLARE, AIOHTTP)
    assert "Chrome 146 from this machine's IP" in direct and "upstream_transport to curl_cffi" in direct
    proxied = fix_for(Verdict.CLOUDFLARE, CURL_PROXIED)
    assert "Chrome 151 through the proxy" in proxied and "curl_cffi" not in proxied
    assert "proxy_url" in fix_for(Verdict.TCP_FAILED, CURL_PROXIED)
    assert "assets_url" in fix_for(Verdict.NOT_FOUND, AIOHTTP, "asset_download")
    assert "upstream_url" in fix_for(Verdict.NOT_FOUND, AIOHTTP, "modes")
    assert fix_for(Verdict.OK, AIOHTTP) == ""


def test_other_failures() -> None:
    assert explain(UpstreamHTTPError(401, "{}"))[0] is Verdict.LOGGED_OUT
    assert explain(UpstreamHTTPError(429, "{}", retry_after=30))[1].endswith("resets in 30 s)")
    assert explain(UpstreamHTTPError(502, "<html>Bad Gateway</html>"))[0] is Verdict.SERVER_ERROR
    assert explain(UpstreamHTTPError(200, "no userId"))[0] is Verdict.CHANGED
    assert explain(UpstreamHTTPError(404, "Not Found"))[0] is Verdict.NOT_FOUND
    assert explain(UpstreamHTTPError(400, "Invalid request. Please update your client"))[0] is Verdict.REJECTED
    assert explain(UpstreamConnectionError("could not connect to grok.com")) == (
        Verdict.CONNECTION_FAILED,
        "could not connect to grok.com",
    )
    assert explain(TimeoutError())[0] is Verdict.TIMEOUT
    assert explain(UploadRejected("Image dimensions are insufficient"))[0] is Verdict.REJECTED


def test_errors_inside_the_chat() -> None:
    assert explain_event(ErrorEvent("blocked", anti_bot=True))[0] is Verdict.ANTI_BOT
    assert explain_event(ErrorEvent("usage limit", code=8, rate_limited=True))[0] is Verdict.RATE_LIMITED
    verdict, text = explain_event(ErrorEvent("grok.com answered without text"))
    assert verdict is Verdict.ANSWER_FAILED and "without text" in text
