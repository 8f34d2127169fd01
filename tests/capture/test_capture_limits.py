"""Rendering is bounded in size and time: huge, deep and recursive values, and the budgets."""

from __future__ import annotations

import time

import pytest
from capture_helpers import raise_internal_errors  # noqa: F401

from execscope.capture import (
    BUDGET_EXHAUSTED,
    CaptureLimits,
    NoopRedactor,
    SpanBudget,
    render,
    render_arguments,
)

PLAIN = NoopRedactor()


def r(value: object, **limits: int) -> str:
    return render(value, CaptureLimits(**limits), redactor=PLAIN)


def timed(value: object) -> tuple[str, float]:
    start = time.perf_counter()
    text = r(value)
    return text, time.perf_counter() - start


# --------------------------------------------------------------------------- huge values


def test_a_million_item_list_is_rendered_fast_and_truncated() -> None:
    text, seconds = timed(list(range(10**6)))
    assert text == "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, …+999990 more]"
    assert seconds < 0.01


@pytest.mark.parametrize(
    "value",
    [
        {i: i for i in range(10**6)},
        set(range(10**6)),
        tuple(range(10**6)),
        "x" * 10**7,
        b"x" * 10**7,
        bytearray(10**7),
        memoryview(bytes(10**7)),
    ],
    ids=["dict", "set", "tuple", "str", "bytes", "bytearray", "memoryview"],
)
def test_huge_builtins_are_rendered_fast_and_short(value: object) -> None:
    text, seconds = timed(value)
    assert seconds < 0.01
    assert len(text) < 300


def test_a_huge_object_dict_is_rendered_fast() -> None:
    class Big:
        pass

    big = Big()
    big.__dict__.update((f"f{i}", i) for i in range(10**5))
    text, seconds = timed(big)
    assert text.endswith(", …+99990 more)")
    assert seconds < 0.01


# --------------------------------------------------------------------------- recursion


def test_a_list_containing_itself() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    assert r(loop) == "[1, <recursion>]"


def test_a_dict_containing_itself() -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    assert r(loop) == "{'self': <recursion>}"


def test_objects_referring_to_each_other() -> None:
    class Node:
        def __init__(self) -> None:
            self.next: Node | None = None

    first, second = Node(), Node()
    first.next, second.next = second, first
    assert r(first) == "Node(next=Node(next=<recursion>))"


def test_a_shared_but_acyclic_value_is_shown_each_time() -> None:
    shared = [1]
    assert r([shared, shared]) == "[[1], [1]]"


def test_deep_nesting_is_bounded_by_max_depth() -> None:
    deep: list[object] = []
    for _ in range(10_000):
        deep = [deep]
    assert r(deep) == "[[[[…]]]]"
    assert r(deep, max_depth=64).count("[") == 65


# --------------------------------------------------------------------------- budgets


def test_one_value_never_exceeds_its_budget() -> None:
    limits = CaptureLimits(budget=50)
    text = render([["x" * 40] * 10] * 10, limits, redactor=PLAIN)
    assert len(text) == 50
    assert text.endswith("…")


def test_the_budget_stops_the_walk_early() -> None:
    # 10 items of 10 items of 10 items: the budget ends the walk long before 1000 leaves.
    text = r([[[i] * 10] * 10 for i in range(10)], budget=100)
    assert len(text) <= 100


def test_a_span_budget_is_shared_by_the_values_of_one_call() -> None:
    budget = SpanBudget(100)
    first = render("a" * 60, budget=budget, redactor=PLAIN)
    assert first == "'" + "a" * 60 + "'"
    assert budget.remaining == 38
    second = render("b" * 60, budget=budget, redactor=PLAIN)
    assert len(second) == 38 and second.endswith("…")
    assert budget.exhausted
    assert render(1, budget=budget) == BUDGET_EXHAUSTED


def test_render_arguments_charges_every_argument_to_the_span_budget() -> None:
    budget = SpanBudget(30)
    rendered = render_arguments([("a", "x" * 20), ("b", "y" * 20), ("c", 3)], budget=budget, redactor=PLAIN)
    assert rendered["a"] == "'" + "x" * 20 + "'"
    assert len(rendered["b"]) == 8
    assert rendered["c"] == BUDGET_EXHAUSTED
    assert budget.remaining == 0


def test_the_return_value_and_the_diff_share_the_same_budget() -> None:
    budget = SpanBudget.for_limits(CaptureLimits(span_budget=20))
    render_arguments({"a": 1}, budget=budget)
    budget.consume(18)  # e.g. the state diff's JSON, rendered by the caller
    assert render("long string", budget=budget) == "…"
    assert render("x", budget=budget) == BUDGET_EXHAUSTED


@pytest.mark.parametrize(
    "bad",
    [{"max_depth": -1}, {"max_depth": 65}, {"budget": 5}, {"max_items": 1.5}, {"max_state_diff": 10}],
)
def test_invalid_limits_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="CaptureLimits"):
        CaptureLimits(**bad)  # type: ignore[arg-type]


def test_limits_are_frozen() -> None:
    with pytest.raises(AttributeError):
        CaptureLimits().budget = 1  # type: ignore[misc]
