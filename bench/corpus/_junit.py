"""Per-test outcomes from pytest's ``--junitxml`` report.

Why JUnit XML and not pytest's terminal summary: it names every test, also the passing ones,
in a stable format, so the two runs of a suite can be compared test by test; a test that is
missing from one report (the run crashed or hung) shows up as ``missing``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Final

PASSED: Final = "passed"
FAILED: Final = "failed"
SKIPPED: Final = "skipped"
MISSING: Final = "missing"
#: When one test id has several entries (a teardown error adds one), the worst outcome wins.
_RANK: Final = {PASSED: 0, SKIPPED: 1, FAILED: 2}


@dataclass(frozen=True)
class Outcome:
    status: str
    #: The first line of the failure or error message (empty when it passed or was skipped).
    message: str = ""


def case_id(classname: str, name: str) -> str:
    """``tests.test_more.SeekableTest::test_peek``: the JUnit class name and the test name."""
    return f"{classname}::{name}" if classname else name


def _outcome(case: ET.Element) -> Outcome:
    for child in case:
        if child.tag in ("failure", "error"):
            text = child.get("message") or (child.text or "")
            first = text.strip().splitlines()[0] if text.strip() else child.tag
            return Outcome(FAILED, first[:300])
    if any(child.tag == "skipped" for child in case):
        return Outcome(SKIPPED)
    return Outcome(PASSED)


def read_outcomes(report: Path) -> dict[str, Outcome]:
    """Every test of the report by id; empty when the report does not exist (the run died)."""
    if not report.is_file():
        return {}
    try:
        root = ET.parse(report).getroot()
    except ET.ParseError:
        return {}
    outcomes: dict[str, Outcome] = {}
    for case in root.iter("testcase"):
        key = case_id(case.get("classname", ""), case.get("name", ""))
        outcome = _outcome(case)
        previous = outcomes.get(key)
        if previous is None or _RANK[outcome.status] > _RANK[previous.status]:
            outcomes[key] = outcome
    return outcomes
