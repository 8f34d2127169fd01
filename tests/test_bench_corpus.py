"""The third-party corpus's gate, without running any suite: JUnit outcomes, the comparison of
the two runs, the report, and the probe plugin outside execscope."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# ``bench`` is a top-level package of the repository, not part of the installed distribution.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus._compare import compare
from bench.corpus._junit import FAILED, MISSING, PASSED, SKIPPED, Outcome, read_outcomes
from bench.corpus._libraries import LIBRARIES, KnownDifference, Library, by_name
from bench.corpus._probe import autotrace_report
from bench.corpus._report import details, table, unproven
from bench.corpus._run import LibraryRun, SuiteRun

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5">
  <testcase classname="tests.test_a.T" name="test_ok" time="0.1"/>
  <testcase classname="tests.test_a.T" name="test_bad" time="0.1">
    <failure message="AssertionError: 1 != 2&#10;second line">trace</failure></testcase>
  <testcase classname="tests.test_a" name="test_skip" time="0"><skipped message="no"/></testcase>
  <testcase classname="tests.test_a" name="test_teardown" time="0.1"/>
  <testcase classname="tests.test_a" name="test_teardown" time="0.1"><error message="boom"/></testcase>
</testsuite></testsuites>
"""


def _library(*known: KnownDifference) -> Library:
    return Library("lib", "1.0", ("lib",), "test", ("pytest==9",), ("tests",), known_differences=known)


def _run(library: Library, plain: dict[str, Outcome], traced: dict[str, Outcome]) -> LibraryRun:
    probe = {
        "active": True,
        "rewritten_modules": ["lib"],
        "rewritten_functions": 3,
        "stats": {"submitted": 7},
    }
    return LibraryRun(
        library,
        Path("/nowhere"),
        plain=SuiteRun(plain, 1.0, 0, False, Path("plain.log")),
        traced=SuiteRun(traced, 3.0, 1, False, Path("traced.log"), probe),
        stored_spans=5,
    )


def test_outcomes_are_read_per_test_and_the_worst_entry_wins(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text(REPORT, encoding="utf-8")
    outcomes = read_outcomes(report)
    assert outcomes == {
        "tests.test_a.T::test_ok": Outcome(PASSED),
        "tests.test_a.T::test_bad": Outcome(FAILED, "AssertionError: 1 != 2"),
        "tests.test_a::test_skip": Outcome(SKIPPED),
        "tests.test_a::test_teardown": Outcome(FAILED, "boom"),
    }
    assert read_outcomes(tmp_path / "absent.xml") == {}


def test_only_passing_tests_that_stop_passing_are_regressions() -> None:
    plain = {
        "a": Outcome(PASSED),
        "b": Outcome(PASSED),
        "c": Outcome(FAILED, "x"),
        "d": Outcome(PASSED),
        "e": Outcome(FAILED, "y"),
    }
    traced = {
        "a": Outcome(PASSED),
        "b": Outcome(FAILED, "z"),
        "c": Outcome(FAILED, "x"),
        "e": Outcome(PASSED),
    }
    comparison = compare(_run(_library(), plain, traced))
    assert comparison.regressions == [("b", Outcome(FAILED, "z")), ("d", Outcome(MISSING))]
    assert comparison.only_traced_pass == ["e"]
    assert (comparison.tests, comparison.passed_plain, comparison.passed_traced) == (5, 3, 2)


def test_a_known_difference_is_reported_but_not_a_regression() -> None:
    known = KnownDifference("b", "measures memory")
    stale = KnownDifference("gone", "no longer in the suite")
    run = _run(_library(known, stale), {"b": Outcome(PASSED)}, {"b": Outcome(FAILED, "z")})
    comparison = compare(run)
    assert comparison.regressions == []
    assert comparison.known == [(known, Outcome(FAILED, "z"))]
    assert comparison.stale == [stale]
    text = "\n".join(details(run, comparison))
    assert "known difference b (failed): measures memory" in text
    assert "gone did not show up" in text


def test_the_table_shows_the_proof_of_rewriting() -> None:
    run = _run(_library(), {"a": Outcome(PASSED)}, {"a": Outcome(PASSED)})
    lines = table([(run, compare(run))])
    assert lines[0].split()[:3] == ["library", "version", "tests"]
    assert lines[1].split() == [
        "lib",
        "1.0",
        "1",
        "1",
        "1",
        "0",
        "0",
        "1.0",
        "3.0",
        "3.0x",
        "1",
        "3",
        "7",
        "5",
    ]
    assert unproven(run) == []


def test_a_traced_run_without_rewriting_proves_nothing() -> None:
    run = _run(_library(), {"a": Outcome(PASSED)}, {"a": Outcome(PASSED)})
    assert run.traced is not None
    run.traced.probe = {"active": False, "rewritten_modules": [], "stats": {}}
    assert len(unproven(run)) == 3
    run.traced.probe = {}
    assert unproven(run) == ["the traced run wrote no probe report (see traced.log)"]


def test_the_probe_reports_nothing_rewritten_without_execscope(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "execscope.autotrace", raising=False)
    report = autotrace_report()
    assert report["active"] is False
    assert report["rewritten_modules"] == []


def test_the_table_of_libraries_is_pinned_and_consistent() -> None:
    assert 3 <= len(LIBRARIES) <= 4
    for library in LIBRARIES:
        assert by_name(library.name) is library
        assert all("==" in requirement for requirement in library.test_requirements)
        assert library.packages
        for difference in library.known_differences:
            assert difference.reason
