from __future__ import annotations

import json

from grok2api.admin.token_input import parse_input


def test_lines_cookies_comments_and_rejections() -> None:
    text = "\n".join(
        [
            "plain-token",
            "sso=cookie-token",
            "sso-rw=rw-token; sso=both-token; other=x",
            "# a comment",
            "",
            "other=1; nothing=2",
            "has spaces in it",
            "plain-token",
            "x" * 3000,
        ]
    )
    out = parse_input([text], "super")
    assert [(a.token, a.tier) for a in out.accounts] == [
        ("plain-token", "super"),
        ("cookie-token", "super"),
        ("both-token", "super"),
    ]
    assert [r.reason for r in out.rejected] == [
        "no sso value found on this line",
        "contains characters an SSO cookie cannot have",
        "duplicate in this input",
        "longer than 2048 characters",
    ]
    assert all(len(r.token) < 40 for r in out.rejected)  # rejected tokens are masked, not echoed


def test_reference_token_json_keeps_tier_tags_note_and_status() -> None:
    doc = {
        "ssoNormal": {"n1": {"tags": ["a"], "note": "hi", "createdTime": 1_700_000_000_000}},
        "ssoSuper": {"s1": {"status": "expired"}},
    }
    out = parse_input(["\ufeff" + json.dumps(doc)], "basic")
    by_token = {a.token: a for a in out.accounts}
    assert (by_token["n1"].tier, by_token["n1"].tags, by_token["n1"].note) == ("basic", ["a"], "hi")
    assert by_token["n1"].created_at == 1_700_000_000
    assert (by_token["s1"].tier, by_token["s1"].state) == ("super", "invalid")


def test_json_list_bad_json_and_sources_share_duplicates() -> None:
    out = parse_input(['["a-1", "sso=a-2", 5]', "a-1\nb-1"], "basic")
    assert [a.token for a in out.accounts] == ["a-1", "a-2", "b-1"]
    assert [r.reason for r in out.rejected] == ["no sso value found on this line", "duplicate in this input"]
    broken = parse_input(['{"ssoNormal": ', '{"something": {}}'], "basic")
    assert broken.accounts == []
    assert broken.rejected[0].reason.startswith("not valid JSON")
    assert "token.json" in broken.rejected[1].reason
    assert parse_input(["", "   "], "basic").accounts == []
