"""The gate: which tests pass without execscope and not with it.

Only that direction counts. A test that fails plainly too says nothing about execscope, and
one that fails plainly but passes traced is reported for a look (usually a flaky test) but
does not fail the corpus. A test that passed plainly and is missing from the traced report
(the run crashed or timed out) is a regression like a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.corpus._junit import MISSING, PASSED, SKIPPED, Outcome
from bench.corpus._libraries import KnownDifference
from bench.corpus._run import LibraryRun


@dataclass
class Comparison:
    tests: int = 0
    passed_plain: int = 0
    passed_traced: int = 0
    #: Passed plainly, did not pass traced, and is not a known difference: each fails the corpus.
    regressions: list[tuple[str, Outcome]] = field(default_factory=list)
    #: Known differences that did show up this time, with the traced outcome.
    known: list[tuple[KnownDifference, Outcome]] = field(default_factory=list)
    #: Known differences that passed traced too (or are not in the suite): the entry may be stale.
    stale: list[KnownDifference] = field(default_factory=list)
    #: Failed plainly and passed traced (informational).
    only_traced_pass: list[str] = field(default_factory=list)
    failed_plain: int = 0


def compare(run: LibraryRun) -> Comparison:
    result = Comparison()
    if run.plain is None or run.traced is None:
        return result
    plain, traced = run.plain.outcomes, run.traced.outcomes
    known = {difference.test: difference for difference in run.library.known_differences}
    result.tests = len(plain.keys() | traced.keys())
    result.passed_plain = sum(1 for outcome in plain.values() if outcome.status == PASSED)
    result.passed_traced = sum(1 for outcome in traced.values() if outcome.status == PASSED)
    result.failed_plain = sum(1 for outcome in plain.values() if outcome.status not in (PASSED, SKIPPED))
    for test, before in sorted(plain.items()):
        after = traced.get(test, Outcome(MISSING))
        if before.status == PASSED and after.status != PASSED:
            if test in known:
                result.known.append((known[test], after))
            else:
                result.regressions.append((test, after))
        elif before.status != PASSED and after.status == PASSED:
            result.only_traced_pass.append(test)
    shown = {difference.test for difference, _ in result.known}
    result.stale = [difference for test, difference in known.items() if test not in shown]
    return result
