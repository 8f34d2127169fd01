"""Behaviour changes found by running third-party test suites under the auto-instrumentor
(``python -m bench.corpus``), each reduced to the smallest module that shows it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from autotrace_helpers import Recording, import_source, recording


@pytest.fixture
def rec() -> Iterator[Recording]:
    with recording() as active:
        yield active


SEEDED = """
import random


def draw(population, k):
    return random.sample(population, k)


def shuffled(items):
    items = list(items)
    random.shuffle(items)
    return items
"""


def test_recorded_calls_leave_the_programs_random_sequence_alone(tmp_path: Path, rec: Recording) -> None:
    # more-itertools' sample/interleave_randomly tests seed the random module and expect fixed
    # results: span ids and sampling draws must not come from the module's shared generator.
    plain = import_source(tmp_path, SEEDED, rewritten=False)
    rewritten = import_source(tmp_path, SEEDED)

    def run(module: object) -> tuple[list[int], list[int], float]:
        random.seed(123)
        return module.draw(range(100), 5), module.shuffled(range(10)), random.random()  # type: ignore[attr-defined]

    assert run(rewritten) == run(plain)
    assert {span.name for span in rec.spans()} == {"draw", "shuffled"}
