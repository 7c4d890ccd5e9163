from __future__ import annotations

from grok2api.admin.settings_meta import (
    FIELDS_BY_GROUP,
    GROUP_OF,
    MASK,
    changes_from_form,
    describe,
    display,
    humanize,
    masked,
)
from grok2api.settings import SECRET_SETTINGS, SETTING_NAMES, RuntimeSettings


def test_every_setting_is_in_exactly_one_group_with_help() -> None:
    names = [f.name for fields in FIELDS_BY_GROUP.values() for f in fields]
    assert sorted(names) == sorted(SETTING_NAMES) and len(names) == len(set(names))
    assert all(len(f.help) > 20 for fields in FIELDS_BY_GROUP.values() for f in fields)
    assert {GROUP_OF["proxy_url"], GROUP_OF["stream_chunk_timeout"], GROUP_OF["image_mode"]} == {
        "proxy",
        "timeouts",
        "media",
    }


def test_input_kinds() -> None:
    assert describe("api_key", "").kind == "secret"
    assert describe("show_thinking", "").kind == "bool"
    choice = describe("log_level", "")
    assert choice.kind == "choice" and choice.choices == ("DEBUG", "INFO", "WARNING", "ERROR")
    number = describe("max_attempts", "")
    assert (number.kind, number.low, number.high, number.step) == ("number", 1, 10, "1")
    assert describe("stream_chunk_timeout", "").step == "any"
    assert describe("base_url", "").kind == "text"


def test_masked_hides_every_set_secret() -> None:
    values = masked(RuntimeSettings(api_key="k", cf_clearance="c", proxy_url="http://u:p@h"))
    assert all(values[name] == MASK for name in ("api_key", "cf_clearance", "proxy_url"))
    assert values["cache_proxy_url"] == "" and values["log_level"] == "INFO"
    assert SECRET_SETTINGS <= set(values)


def test_changes_from_form_sends_only_real_changes() -> None:
    current = RuntimeSettings(api_key="old", stream_chunk_timeout=120.0)
    fields = FIELDS_BY_GROUP["global"] + FIELDS_BY_GROUP["timeouts"] + FIELDS_BY_GROUP["grok"]
    form = {
        "api_key": "",
        "log_level": "INFO",
        "stream_chunk_timeout": "120",
        "stream_total_timeout": "30",
        "show_thinking": "true",
        "filtered_tags": "x",
        "upstream_url": "http://elsewhere",
    }
    assert changes_from_form(fields, form, current, locked={"upstream_url"}) == {
        "stream_total_timeout": "30",
        "filtered_tags": "x",
    }
    assert changes_from_form(fields, {"api_key": MASK}, current, locked=()) == {}
    assert changes_from_form(fields, {"api_key": "new"}, current, locked=()) == {"api_key": "new"}
    assert changes_from_form(fields, {"clear_api_key": "1", "api_key": "ignored"}, current, locked=()) == {
        "api_key": ""
    }
    assert display(describe("stream_chunk_timeout", ""), 2.5) == "2.5"


def test_humanize() -> None:
    assert humanize("Expected `float`, got `str`") == "Expected a number, got text"
    assert humanize("Expected `int` >= 1") == "Expected a whole number >= 1"
