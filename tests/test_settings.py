"""Runtime settings: defaults, environment overrides, normalisation and validation errors."""

from __future__ import annotations

import logging

import msgspec
import pytest

from grok2api.settings import (
    DEFAULT_STATSIG,
    SETTING_NAMES,
    RuntimeSettings,
    SettingsError,
    as_dict,
    build,
    env_overrides,
    validate_update,
)


def test_defaults() -> None:
    s = build({}, {})
    assert s == RuntimeSettings()
    assert (s.api_key, s.show_thinking, s.think_format) == ("", True, "reasoning_content")
    assert s.filtered_tag_list() == ["xaiartifact", "xai:tool_usage_card", "grok:render"]
    assert s.x_statsig_id == DEFAULT_STATSIG
    assert set(as_dict(s)) == set(SETTING_NAMES)


def test_env_overrides_are_parsed_for_the_field_type() -> None:
    environ = {
        "GROK2API_SHOW_THINKING": "false",
        "GROK2API_STREAM_CHUNK_TIMEOUT": " 2.5 ",
        "GROK2API_MAX_ATTEMPTS": "5",
        "GROK2API_THINK_FORMAT": "think_tags",
        "GROK2API_API_KEY": "sk-env",
        "GROK2API_HOST": "0.0.0.0",  # a boot setting, not a runtime one
        "SHOW_THINKING": "true",  # no prefix: not ours
    }
    overrides = env_overrides(environ)
    assert overrides == {
        "show_thinking": False,
        "stream_chunk_timeout": 2.5,
        "max_attempts": 5,
        "think_format": "think_tags",
        "api_key": "sk-env",
    }
    assert env_overrides({}) == {}


def test_environment_wins_over_the_stored_value() -> None:
    stored = {"show_thinking": True, "api_key": "stored", "temporary": False, "retired_setting": 1}
    s = build(stored, env_overrides({"GROK2API_SHOW_THINKING": "0", "GROK2API_API_KEY": "env"}))
    assert (s.show_thinking, s.api_key, s.temporary) == (False, "env", False)


def test_an_invalid_value_falls_back_to_the_default_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="grok2api.settings")
    overrides = env_overrides({"GROK2API_STREAM_CHUNK_TIMEOUT": "soon", "GROK2API_SHOW_THINKING": "0"})
    s = build({"max_attempts": 99, "api_key": "sk-secret", "proxy_url": 12345}, overrides)
    assert s.stream_chunk_timeout == RuntimeSettings().stream_chunk_timeout
    assert s.max_attempts == RuntimeSettings().max_attempts
    assert s.proxy_url == ""
    assert s.show_thinking is False  # the valid values survive
    assert s.api_key == "sk-secret"
    text = caplog.text
    assert "GROK2API_STREAM_CHUNK_TIMEOUT" in text and "max_attempts" in text and "proxy_url" in text
    assert "12345" not in text and "soon" not in text  # values are never logged


def test_values_are_normalised() -> None:
    s = build(
        {
            "proxy_url": "socks5://127.0.0.1:1080",
            "cf_clearance": "cf_clearance=abc",
            "upstream_url": "http://127.0.0.1:9/",
            "assets_url": "http://127.0.0.1:9/assets//",
            "base_url": "https://gw.example/",
            "filtered_tags": " XaiArtifact , ,Grok:Render ",
        },
        {},
    )
    assert s.proxy_url == "socks5h://127.0.0.1:1080"
    assert s.cf_clearance == "abc"
    assert (s.upstream_url, s.assets_url, s.base_url) == (
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/assets",
        "https://gw.example",
    )
    assert s.filtered_tag_list() == ["xaiartifact", "grok:render"]


def test_unknown_fields_are_rejected_by_the_struct() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"no_such_setting": 1}, RuntimeSettings)


def test_validate_update_coerces_form_strings() -> None:
    current = RuntimeSettings()
    values = validate_update(
        current, {"show_thinking": "false", "stream_first_response_timeout": "0.5", "think_format": "think_tags"}
    )
    assert values == {"show_thinking": False, "stream_first_response_timeout": 0.5, "think_format": "think_tags"}


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"no_such_setting": 1}, "no_such_setting", "unknown setting"),
        ({"stream_chunk_timeout": -1}, "stream_chunk_timeout", ">= 0"),
        ({"stream_total_timeout": "forever"}, "stream_total_timeout", "Expected `float`"),
        ({"max_attempts": 0}, "max_attempts", ">= 1"),
        ({"think_format": "xml"}, "think_format", "Invalid enum value"),
        ({"image_mode": "gif"}, "image_mode", "Invalid enum value"),
        ({"show_thinking": "maybe"}, "show_thinking", "Expected `bool`"),
        ({"x_statsig_id": ""}, "x_statsig_id", "x_statsig_id cannot be empty"),
    ],
)
def test_validate_update_reports_each_bad_field(changes: dict[str, object], field: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as info:
        validate_update(RuntimeSettings(), changes)
    assert set(info.value.errors) == {field}
    assert fragment in info.value.errors[field]
    assert field in str(info.value)


def test_validate_update_collects_all_errors_and_keeps_nothing() -> None:
    with pytest.raises(SettingsError) as info:
        validate_update(RuntimeSettings(), {"max_attempts": 50, "log_level": "LOUD", "api_key": "fine"})
    assert set(info.value.errors) == {"max_attempts", "log_level"}


def test_empty_statsig_is_fine_with_dynamic_statsig() -> None:
    current = RuntimeSettings(dynamic_statsig=True)
    assert validate_update(current, {"x_statsig_id": ""}) == {"x_statsig_id": ""}
    assert validate_update(RuntimeSettings(), {"dynamic_statsig": True, "x_statsig_id": ""}) == {
        "dynamic_statsig": True,
        "x_statsig_id": "",
    }
    # switching dynamic_statsig off while the stored id is empty breaks a rule between fields
    with pytest.raises(SettingsError) as info:
        validate_update(RuntimeSettings(dynamic_statsig=True, x_statsig_id=""), {"dynamic_statsig": False})
    assert set(info.value.errors) == {"dynamic_statsig"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"base_url": "javascript:alert(1)"}, "base_url"),
        ({"base_url": '"><script>alert(1)</script>'}, "base_url"),
        ({"upstream_url": ""}, "upstream_url"),
        ({"assets_url": "ftp://assets.example"}, "assets_url"),
        ({"proxy_url": "ftp://proxy:21"}, "proxy_url"),
    ],
)
def test_urls_must_be_http_or_a_proxy_scheme(changes: dict[str, str], field: str) -> None:
    with pytest.raises(SettingsError) as info:
        validate_update(RuntimeSettings(), changes)
    assert field in info.value.errors


def test_url_settings_accept_real_urls() -> None:
    ok = validate_update(RuntimeSettings(), {"base_url": "https://gw.example.com", "proxy_url": "socks5://u:p@h:1080"})
    assert RuntimeSettings(**ok).proxy_url == "socks5h://u:p@h:1080"


def test_the_egresses_come_from_proxy_urls_and_the_older_proxy_url() -> None:
    assert RuntimeSettings().proxy_url_list() == ["direct"]
    assert RuntimeSettings(proxy_url="socks5://p:1").proxy_url_list() == ["socks5h://p:1"]
    both = RuntimeSettings(proxy_urls="http://a:1, socks5://b:2\ndirect  http://a:1", proxy_url="http://c:3")
    assert both.proxy_url_list() == ["http://a:1", "socks5h://b:2", "direct", "http://c:3"]


def test_a_bad_egress_is_refused_without_showing_its_password() -> None:
    with pytest.raises(ValueError) as bad:
        RuntimeSettings(proxy_urls="http://a:1,ftp://user:hunter2@b:2")
    assert "proxy_urls" in str(bad.value) and "hunter2" not in str(bad.value)
    with pytest.raises(ValueError, match="flaresolverr_url"):
        RuntimeSettings(flaresolverr_url="flaresolverr:8191")
    assert RuntimeSettings(statsig_signer_url=" http://signer:8080/sign/ ").statsig_signer_url == (
        "http://signer:8080/sign"
    )
