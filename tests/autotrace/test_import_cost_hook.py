"""What the import hook does to keep a rewrite cheap, without changing what it decides.

The selection's answers are asked once per module (the fingerprint, whether a module is
selected by default, a plan-less decision); a plan still decides per function.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from autotrace_helpers import BYTECODE, recording, unique_module_name

from execscope.autotrace._hook import RewritingFinder, RewritingLoader
from execscope.autotrace._levels import FULL, TIMING
from execscope.autotrace._rewriter import Decision
from execscope.autotrace._selection import Selection
from execscope.plan import Plan, Target

SOURCE = """
def double(n):
    return n * 2


def triple(n):
    return n * 3
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def write_module(project: Path) -> str:
    name = unique_module_name("cost")
    (project / f"{name}.py").write_text(SOURCE, encoding="utf-8")
    return name


def find(project: Path, name: str, selection: Selection) -> RewritingLoader:
    spec = RewritingFinder(selection, bytecode=BYTECODE).find_spec(name, [str(project)])
    assert spec is not None and isinstance(spec.loader, RewritingLoader)
    return spec.loader


def run(loader: RewritingLoader) -> Any:
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_without_a_plan_a_module_is_decided_once_for_all_its_functions(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    original = Selection.decide

    def counting(self: Selection, module: str, qualname: str, default_selected: bool) -> Decision:
        asked.append(qualname)
        return original(self, module, qualname, default_selected)

    monkeypatch.setattr(Selection, "decide", counting)
    name = write_module(project)
    with recording() as spans:
        module = run(find(project, name, Selection(roots=(str(project),), default_level=TIMING, never=())))
        assert (module.double(1), module.triple(1)) == (2, 3)
        assert {span.name for span in spans.spans()} == {"double", "triple"}
    assert len(asked) == 1


def test_a_plan_still_decides_each_function(project: Path) -> None:
    name = write_module(project)
    plan = Plan(targets=(Target(f"{name}:double", level="full"), Target(f"{name}:triple", level="off")))
    selection = Selection(roots=(str(project),), plan=plan, default_level=TIMING, never=())
    with recording() as spans:
        module = run(find(project, name, selection))
        assert (module.double(1), module.triple(1)) == (2, 3)
        double = spans.span("double")
        assert [span.name for span in spans.spans()] == ["double"]
    assert dict(double.attributes or {})["execscope.args.n"] == "1"  # full, as planned


@pytest.mark.parametrize(
    ("roots_it", "plan_it", "default_selected"),
    [(True, False, True), (True, True, True), (False, True, False)],
    ids=["application-file", "application-file-and-plan", "plan-only"],
)
def test_whether_a_module_is_selected_by_default_is_what_the_selection_says(
    project: Path, roots_it: bool, plan_it: bool, default_selected: bool
) -> None:
    name = write_module(project)
    plan = Plan(targets=(Target(name, level="timing"),)) if plan_it else None
    roots = (str(project),) if roots_it else (str(project / "elsewhere"),)
    selection = Selection(roots=roots, plan=plan, default_level=FULL, never=())
    loader = find(project, name, selection)
    assert loader._default_selected is default_selected
    assert selection.by_default(name, str(project / f"{name}.py")) is default_selected
    with recording() as spans:
        module = run(loader)
        assert module.double(1) == 2
        arguments = dict(spans.span("double").attributes or {})
    assert ("execscope.args.n" in arguments) is (not plan_it)  # the plan's timing level, or full


def test_the_fingerprint_is_computed_once_per_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Selection] = []
    original = Selection.fingerprint

    def counting(self: Selection) -> str:
        calls.append(self)
        return original(self)

    monkeypatch.setattr(Selection, "fingerprint", counting)
    first = Selection(roots=("/nowhere",), default_level=FULL, never=())
    finder = RewritingFinder(first, bytecode=BYTECODE)
    assert finder.fingerprint() == finder.fingerprint() == original(first)
    assert calls == [first]
    second = Selection(roots=("/nowhere",), default_level=TIMING, never=())
    finder.selection = second  # a new selection: a new fingerprint
    assert finder.fingerprint() == original(second)
    assert calls == [first, second]


def test_the_finder_still_finds_nothing_for_unselected_modules(project: Path) -> None:
    name = write_module(project)
    selection = Selection(roots=(str(project / "elsewhere"),), default_level=FULL, never=())
    assert RewritingFinder(selection, bytecode=BYTECODE).find_spec(name, [str(project)]) is None
    assert sys.modules.get(name) is None
