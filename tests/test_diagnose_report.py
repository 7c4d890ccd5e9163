"""The doctor's report: the ``--json`` shape, the bottom line, and masked accounts."""

from __future__ import annotations

from grok2api.diagnose.report import Report, Step, Verdict, mask, public_json


def report(egress: str, chat_ok: bool) -> Report:
    steps = [
        Step(name="dns", ok=True, verdict="grok.com resolves to 1.2.3.4"),
        Step(
            name="chat_turn", ok=chat_ok, verdict="…", fix="" if chat_ok else "do this", code="ok" if chat_ok else "x"
        ),
    ]
    return Report(egress=egress, transport="aiohttp", account="tok…1234", at=0.0, steps=steps)


def test_json_is_ok_and_the_steps_with_exactly_their_four_fields() -> None:
    out = public_json([report("default", True)])
    assert out["ok"] is True
    assert out["steps"][0] == {"name": "dns", "ok": True, "verdict": "grok.com resolves to 1.2.3.4", "fix": ""}
    assert all(set(s) == {"name", "ok", "verdict", "fix"} for s in out["steps"])


def test_ok_needs_a_chat_turn_on_every_egress() -> None:
    assert public_json([report("default", False)])["ok"] is False
    assert public_json([])["ok"] is False  # nothing checked is not a success
    both = public_json([report("a", True), report("b", False)])
    assert both["ok"] is False
    assert [s["egress"] for s in both["steps"]] == ["a", "a", "b", "b"]  # several egresses: each step names its own


def test_a_report_without_a_chat_step_is_not_ok_and_finds_its_first_failure() -> None:
    failed = Step(name="tcp", ok=False, verdict="refused", code=Verdict.TCP_FAILED)
    skipped = Step(name="tls", ok=False, verdict="not run", code=Verdict.SKIPPED)
    r = Report(egress="e", transport="t", account="", at=0.0, steps=[skipped, failed])
    assert not r.ok and r.first_failure() is failed and r.step("tls") is skipped


def test_long_texts_are_cut_and_tokens_masked() -> None:
    step = Step(name="x", ok=False, verdict="v" * 5000, fix="f" * 5000)
    assert len(step.verdict) == 600 and len(step.fix) == 600
    assert mask("abcdefghijklmnopqrstuvwxyz") == "abcdef…wxyz"
    assert "ghij" not in mask("abcdefghijklmnopqrstuvwxyz")
    assert mask("short") == "sho…" and mask("") == ""
