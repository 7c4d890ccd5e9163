"""The catalogue: modes with public ids, earlier ids as aliases, modes grok.com adds or withdraws."""

from __future__ import annotations

import pytest

from grok2api.grok.catalog import ALIASES, MODELS, Catalog, ModeEntry


@pytest.mark.parametrize(
    ("model_id", "mode"),
    [
        ("grok-fast", "fast"),
        ("grok-auto", "auto"),
        ("grok-expert", "expert"),
        ("grok-heavy", "heavy"),
        ("grok-3-fast", "fast"),
        ("grok-4.1", "fast"),
        ("grok-4-fast", "auto"),
        ("grok-4.1-thinking", "auto"),
        ("grok-4-fast-expert", "expert"),
        ("grok-4-expert", "expert"),
        ("grok-4-heavy", "heavy"),
    ],
)
def test_every_id_names_a_mode(model_id: str, mode: str) -> None:
    spec = Catalog().find(model_id)
    assert spec is not None and spec.mode == mode and spec.id == model_id


def test_aliases_say_what_they_stand_for_and_keep_the_target_tier() -> None:
    for alias, target in ALIASES.items():
        spec, canonical = MODELS[alias], MODELS[target]
        assert spec.alias_of == target and canonical.alias_of is None
        assert (spec.min_tier, spec.reasoning) == (canonical.min_tier, canonical.reasoning)


def test_default_tiers() -> None:
    assert [MODELS[f"grok-{m}"].min_tier for m in ("fast", "auto", "expert", "heavy")] == [
        "basic",
        "super",
        "super",
        "heavy",
    ]


def test_a_mode_grok_com_adds_is_usable_at_once_and_one_it_withdraws_is_hidden() -> None:
    catalog = Catalog()
    assert catalog.find("grok-420-computer-use-sa") is None
    new = catalog.update(
        [
            ModeEntry("fast"),
            ModeEntry("auto"),
            ModeEntry("grok-420-computer-use-sa", "Grok 4.3 beta", "Computer use"),
            ModeEntry("heavy", available=False),
        ]
    )
    assert new == ["grok-420-computer-use-sa"]
    added = catalog.find("grok-420-computer-use-sa")
    assert added is not None and added.mode == "grok-420-computer-use-sa" and added.display_name == "Grok 4.3 beta"
    assert catalog.find("grok-heavy") is None and catalog.find("grok-4-heavy") is None
    assert "heavy" not in catalog.modes() and "grok-420-computer-use-sa" in catalog.modes()
    assert [m.id for m in catalog.models()][-1] == "grok-420-computer-use-sa"
    catalog.update([ModeEntry("fast"), ModeEntry("heavy")])  # back again, the beta gone
    assert catalog.find("grok-heavy") is not None and catalog.find("grok-420-computer-use-sa") is None
