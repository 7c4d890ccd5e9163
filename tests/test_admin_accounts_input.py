from __future__ import annotations

import json
import time

from grok2api.admin.accounts_input import MAX_LINES, parse_input
from grok2api.admin.accounts_ops import MAX_NOTE_LENGTH, MAX_TAG_LENGTH, MAX_TAGS


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


def test_unusable_fields_in_token_json_are_dropped_not_raised() -> None:
    for text in (
        '{"ssoNormal": {"t-1": {"tags": 5}}}',
        '{"ssoNormal": {"t-1": {"createdTime": 1' + "0" * 400 + "}}}",
    ):
        out = parse_input([text], "basic")  # must not raise (a 500 in the page and the API)
        assert [(a.token, a.tags, a.created_at) for a in out.accounts] == [("t-1", [], None)], text[:40]


def test_malformed_token_json_is_rejected_not_raised() -> None:
    for text in (
        "[" * 100_000,
        "[" * 100_000 + "]" * 100_000,
        "{" * 100_000,
    ):
        out = parse_input([text], "basic")  # must not raise (a 500 in the page and the API)
        assert out.accounts == [] and out.rejected, text[:40]


def test_imported_records_get_the_same_limits_as_the_edit_form() -> None:
    doc = {
        "ssoNormal": {
            "t-1": {"tags": [f"tag-{i}-" + "x" * 100 for i in range(100)], "note": "n" * 100_000},
            "t-2": {"createdTime": 1e300},
            "t-3": {"createdTime": -5},
        }
    }
    out = {a.token: a for a in parse_input([json.dumps(doc)], "basic").accounts}
    assert out["t-1"].tags is not None and out["t-1"].note is not None  # for the type checker: len(None) fails too
    assert len(out["t-1"].tags) <= MAX_TAGS and all(len(t) <= MAX_TAG_LENGTH for t in out["t-1"].tags)
    assert len(out["t-1"].note) <= MAX_NOTE_LENGTH
    assert out["t-2"].created_at is None and out["t-3"].created_at is None  # exports would overflow


def test_huge_line_counts_are_cut_off_quickly() -> None:
    started = time.monotonic()
    out = parse_input(["!\n" * 2_000_000, "ok-token"], "basic")
    assert time.monotonic() - started < 10
    assert len(out.rejected) <= MAX_LINES + 1
    assert any("lines" in r.reason for r in out.rejected)
    many = parse_input([json.dumps([f"tok-{i}" for i in range(MAX_LINES + 50)])], "basic")
    assert len(many.accounts) == MAX_LINES and "lines" in many.rejected[-1].reason
