"""Recognition accuracy against the labelled fixture projects.

Each fixture's ``labels.toml`` lists, per role, every qualified name that should carry that
role; anything recognised beyond that is a false positive. The thresholds are the
contract: recall >= 0.9 per role, and at most 5% of all recognitions wrong.
"""

from __future__ import annotations

from collections import Counter

import pytest
from analyzer_helpers import FIXTURE_NAMES, fixture_labels, fixture_path

from execscope.analyzer import ROLES, Analysis, analyze_project


@pytest.fixture(scope="module")
def analyses() -> dict[str, Analysis]:
    return {name: analyze_project(fixture_path(name)) for name in FIXTURE_NAMES}


def _counts(analyses: dict[str, Analysis]) -> tuple[Counter[str], Counter[str], Counter[str]]:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for name, analysis in analyses.items():
        labels = fixture_labels(name)
        for role in ROLES:
            expected = labels.get(role, set())
            found = analysis.names_with_role(role)
            tp[role] += len(found & expected)
            fp[role] += len(found - expected)
            fn[role] += len(expected - found)
    return tp, fp, fn


def test_every_role_is_covered_by_at_least_one_fixture() -> None:
    labelled = set().union(*(fixture_labels(name).keys() for name in FIXTURE_NAMES))
    assert labelled == set(ROLES)


def test_recall_is_at_least_90_percent_for_every_role(analyses: dict[str, Analysis]) -> None:
    tp, _, fn = _counts(analyses)
    recall = {role: tp[role] / (tp[role] + fn[role]) for role in ROLES if tp[role] + fn[role]}
    assert all(value >= 0.9 for value in recall.values()), recall


def test_false_positive_rate_is_at_most_5_percent_overall(analyses: dict[str, Analysis]) -> None:
    tp, fp, _ = _counts(analyses)
    total_found = sum(tp.values()) + sum(fp.values())
    assert total_found > 0
    assert sum(fp.values()) / total_found <= 0.05, dict(fp)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_each_fixture_matches_its_labels_exactly(name: str, analyses: dict[str, Analysis]) -> None:
    labels = fixture_labels(name)
    found = {role: set(analyses[name].names_with_role(role)) for role in ROLES}
    expected = {role: labels.get(role, set()) for role in ROLES}
    assert found == expected


def test_every_recognition_carries_evidence_with_a_line_and_a_bounded_confidence(
    analyses: dict[str, Analysis],
) -> None:
    for analysis in analyses.values():
        for rec in analysis.recognitions:
            assert rec.evidence, rec
            assert all(e.line >= 1 and e.detail for e in rec.evidence), rec
            assert 0.0 < rec.confidence <= 1.0, rec
