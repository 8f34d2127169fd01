"""Behaviour changes found by running third-party test suites under the auto-instrumentor
(``python -m bench.corpus``), each reduced to the smallest module that shows it."""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from autotrace_helpers import Recording, import_source, recording

from execscope.autotrace import _runtime


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

    def run(module: ModuleType) -> tuple[list[int], list[int], float]:
        random.seed(123)
        return module.draw(range(100), 5), module.shuffled(range(10)), random.random()

    assert run(rewritten) == run(plain)
    assert {span.name for span in rec.spans()} == {"draw", "shuffled"}


def _live_calls() -> list[_runtime.Call]:
    return [obj for obj in gc.get_objects() if type(obj) is _runtime.Call]


def test_finished_calls_are_freed_without_the_cyclic_collector(tmp_path: Path, rec: Recording) -> None:
    # more-itertools measures retained memory with tracemalloc: a finished call kept a cycle
    # (the call -> its inner context -> the call), so every recorded call stayed alive after
    # export until a full collection, and the program's memory grew with its call count.
    module = import_source(tmp_path, "def identity(value):\n    return value\n")
    gc.collect()
    gc.disable()
    try:
        for number in range(50):
            module.identity(number)
        assert len(rec.spans()) == 50
        deadline = time.monotonic() + 2.0
        while _live_calls() and time.monotonic() < deadline:  # the export thread may hold the last one
            time.sleep(0.01)
        assert _live_calls() == []
    finally:
        gc.enable()
