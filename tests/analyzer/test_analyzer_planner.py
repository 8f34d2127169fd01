"""From analysis to plan: levels, reasons, estimate basis, determinism, JSON, scale."""

from __future__ import annotations

import json
from pathlib import Path

from analyzer_helpers import FIXTURE_NAMES, fixture_path, write_synthetic_project

from execscope.analyzer import Role, analyze_project, build_plan
from execscope.analyzer._costs import COST_PER_CALL_US
from execscope.plan import Plan, dump_plan, loads_plan, match_target


def _plan(fixture: str) -> Plan:
    return build_plan(analyze_project(fixture_path(fixture)))


def _level(plan: Plan, module: str, qualname: str) -> str | None:
    found = match_target(plan, module, qualname)
    return found.level if found else None


def test_stateful_actors_get_full_recording_with_state() -> None:
    plan = _plan("actors")
    account = next(t for t in plan.targets if t.pattern == "actors.bank:Account")
    assert (account.level, account.stateful) == ("full", True)
    assert account.reason.startswith("stateful actor, complexity 2")
    assert _level(plan, "actors.bank", "Account.on_receive") == "full"


def test_request_handlers_and_task_bodies_get_argument_recording() -> None:
    assert _level(_plan("fastapi_app"), "shop.main", "get_item") == "args"
    assert _level(_plan("celery_tasks"), "worker.tasks", "send_email") == "args"


def test_hot_trivial_helpers_are_switched_off() -> None:
    plan = _plan("library")
    square = next(t for t in plan.targets if t.pattern == "mathlib.vectors:square")
    assert square.level == "off"
    assert "hot trivial helper" in square.reason and "2 loop(s)" in square.reason
    assert _level(plan, "mathlib.vectors", "fib") is None  # recursive, not called in a loop


def test_a_trivial_method_that_changes_state_is_not_switched_off() -> None:
    plan = _plan("actors")
    assert _level(plan, "actors.mailbox", "Greeter.handle") == "full"


def test_io_and_messaging_code_gets_timing() -> None:
    plan = _plan("pubsub")
    assert _level(plan, "events.bus", "announce") == "timing"
    db = _plan("db_module")
    target = next(t for t in db.targets if t.pattern == "store.db:raw_count")
    assert target.level == "timing" and "db I/O" in target.reason


def test_code_reached_from_a_request_handler_is_marked_on_the_request_path(tmp_path: Path) -> None:
    (tmp_path / "api.py").write_text(
        "from fastapi import FastAPI\nimport pykka\napp = FastAPI()\n"
        "class Ledger(pykka.ThreadingActor):\n"
        "    def on_receive(self, message):\n        self.last = message\n"
        "    def record(self, x):\n        self.last = x\n"
        "ledger = Ledger()\n"
        "@app.post('/pay')\ndef pay(x: int):\n    ledger.record(x)\n"
    )
    plan = build_plan(analyze_project(tmp_path))
    ledger = next(t for t in plan.targets if t.pattern == "api:Ledger")
    assert ledger.reason == "stateful actor, complexity 1, on the request path"


def test_estimate_states_its_basis_and_uses_the_cost_table() -> None:
    plan = _plan("actors")
    assert plan.estimate is not None
    assert "static estimate" in plan.estimate.basis and "python -m bench autotrace" in plan.estimate.basis
    assert plan.estimate.max_call_cost_us >= COST_PER_CALL_US["full"]
    assert plan.estimate.instrumented_targets == sum(1 for t in plan.targets if t.level != "off")


def test_analysis_and_plan_are_identical_across_runs() -> None:
    for name in FIXTURE_NAMES:
        first, second = analyze_project(fixture_path(name)), analyze_project(fixture_path(name))
        assert first == second
        assert dump_plan(build_plan(first)) == dump_plan(build_plan(second))


def test_generated_plans_survive_a_toml_round_trip() -> None:
    for name in FIXTURE_NAMES:
        plan = _plan(name)
        assert loads_plan(dump_plan(plan)) == plan


def test_analysis_to_dict_is_json_serialisable() -> None:
    data = analyze_project(fixture_path("celery_tasks")).to_dict()
    text = json.dumps(data, sort_keys=True)
    assert '"name": "worker.tasks:send_email"' in text
    assert isinstance(data["recognitions"], list)


def test_a_generated_1000_module_project_is_analysed_completely(tmp_path: Path) -> None:
    root = write_synthetic_project(tmp_path / "big", 1000)
    analysis = analyze_project(root)
    assert len(analysis.modules) == 1001 and analysis.skipped == ()
    expected: tuple[tuple[Role, int], ...] = (("web_entry", 2), ("task", 2), ("stateful", 1), ("db", 1))
    for role, per_module in expected:
        assert len(analysis.names_with_role(role)) == 1000 * per_module, role
    assert len(analysis.functions) == 6000
    plan = build_plan(analysis)
    assert match_target(plan, "synth.m0999", "helper_0999") is not None
