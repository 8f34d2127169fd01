"""The plan schema (execscope.plan): validation, TOML round-trip and target matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from execscope.plan import (
    OverheadEstimate,
    Plan,
    PlanError,
    Target,
    dump_plan,
    load_plan,
    loads_plan,
    match_target,
)


def _plan() -> Plan:
    return Plan(
        targets=(
            Target("app", level="timing", min_duration_ms=1.0, reason="default", priority=10),
            Target(
                "app.users:UserService", level="full", stateful=True, reason='quotes " and \\ and\nnewline'
            ),
            Target("app.users:UserService.*", level="args", sample_rate=0.25, priority=70),
            Target("app.users:UserService.get", level="off", reason="hot trivial"),
            Target("app.*.tasks:send_*", level="args", reason="tasks ünïcode"),
        ),
        estimate=OverheadEstimate(4, 1.25, 6.05, "static estimate from placeholder costs"),
        generated_by="test",
    )


def test_dump_then_load_gives_an_equal_plan(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(dump_plan(_plan()), encoding="utf-8")
    assert load_plan(path) == _plan()


def test_dump_is_deterministic_and_independent_of_target_order() -> None:
    reordered = Plan(targets=tuple(reversed(_plan().targets)), estimate=_plan().estimate, generated_by="test")
    assert dump_plan(reordered) == dump_plan(_plan())


def test_targets_are_sorted_by_priority_then_pattern() -> None:
    assert [t.pattern for t in _plan().targets][:2] == ["app.users:UserService.*", "app"]


def _pattern(plan: Plan, module: str, qualname: str) -> str | None:
    found = match_target(plan, module, qualname)
    return found.pattern if found else None


def test_most_specific_pattern_wins() -> None:
    plan = _plan()
    assert _pattern(plan, "app.users", "UserService.get") == "app.users:UserService.get"
    assert _pattern(plan, "app.users", "UserService.update") == "app.users:UserService.*"
    assert _pattern(plan, "app.users", "UserService") == "app.users:UserService"
    assert _pattern(plan, "app.orders", "create") == "app"


def test_matching_respects_dot_boundaries() -> None:
    plan = _plan()
    assert _pattern(plan, "application", "run") is None
    assert _pattern(plan, "app.users", "UserServiceFactory.make") == "app"


def test_globs_match_module_and_qualname_parts() -> None:
    assert _pattern(_plan(), "app.billing.tasks", "send_invoice") == "app.*.tasks:send_*"


def test_a_pattern_with_a_qualname_does_not_match_the_module_itself() -> None:
    plan = Plan(targets=(Target("m:f"),))
    assert match_target(plan, "m", "") is None
    assert match_target(plan, "m", "f.<locals>.g") is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = 2", "version must be 1, got 2"),
        ("targets = []", "missing required field 'version'"),
        ("version = 1\ncolour = 'red'", "unknown field 'colour'"),
        ('version = 1\n[[targets]]\nlevel = "full"', "targets[0]: missing required field 'pattern'"),
        ('version = 1\n[[targets]]\npattern = "app/users.py"', "'app/users.py' is not"),
        ('version = 1\n[[targets]]\npattern = "a"\nlevel = "max"', "level must be one of"),
        (
            'version = 1\n[[targets]]\npattern = "a"\nsample_rate = 1.5',
            "sample_rate must be in [0.0, 1.0], got 1.5",
        ),
        (
            'version = 1\n[[targets]]\npattern = "a"\nsample_rate = true',
            "sample_rate must be a number, got True",
        ),
        ('version = 1\n[[targets]]\npattern = "a"\nmin_duration_ms = -1', "min_duration_ms must be in"),
        (
            'version = 1\n[[targets]]\npattern = "a"\nstateful = "yes"',
            "stateful must be true/false, got 'yes'",
        ),
        ('version = 1\n[[targets]]\npattern = "a"\npriority = 1.5', "priority must be an integer, got 1.5"),
        ('version = 1\n[[targets]]\npattern = "a"\n[[targets]]\npattern = "a"', "'a' appears more than once"),
        ("version = 1\n[estimate]\nbasis = 'x'", "estimate: missing required field"),
        (
            "version = 1\n[estimate]\ninstrumented_targets = 1\nmean_call_cost_us = 1.0\n"
            "max_call_cost_us = 1.0\nbasis = ''",
            "estimate.basis must be a non-empty string",
        ),
        ("version = [", "plan is not valid TOML"),
    ],
)
def test_invalid_plans_raise_plan_error_naming_the_field_and_value(text: str, message: str) -> None:
    with pytest.raises(PlanError) as caught:
        loads_plan(text)
    assert message in str(caught.value)


def test_plan_error_from_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("version = 3\n")
    with pytest.raises(PlanError) as caught:
        load_plan(path)
    assert str(caught.value).endswith("bad.toml: version must be 1, got 3")


def test_plan_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Target("ok", level="loud")  # type: ignore[arg-type]


def test_emitted_toml_escapes_control_characters() -> None:
    plan = Plan(targets=(Target("a", reason="tab\there\x01bell\x7f"),))
    text = dump_plan(plan)
    assert '"tab\\there\\u0001bell\\u007F"' in text
    assert loads_plan(text) == plan
