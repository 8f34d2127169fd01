"""Properties over arbitrary nested builtin data: rendering never raises and stays in budget."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("hypothesis")

from capture_helpers import raise_internal_errors  # noqa: F401
from hypothesis import given, settings
from hypothesis import strategies as st

from execscope.capture import (
    BUDGET_EXHAUSTED,
    CaptureLimits,
    SpanBudget,
    StateDiff,
    default_redactor,
    diff_values,
    render,
    render_arguments,
)

hashables = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30) | st.binary(max_size=30),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4),
    max_leaves=8,
)
leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**9000), max_value=2**9000)
    | st.floats()
    | st.complex_numbers()
    | st.decimals()
    | st.text()
    | st.binary()
    | st.binary().map(bytearray)
    | st.binary().map(memoryview)
    | st.datetimes()
    | st.dates()
    | st.timedeltas()
    | st.uuids()
)
data = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=15)
        | st.lists(inner, max_size=15).map(tuple)
        | st.sets(hashables, max_size=15)
        | st.dictionaries(hashables, inner, max_size=15)
    ),
    max_leaves=60,
)
# Smaller values for state diffs: generating data, not rendering it, is what costs time here.
field_values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=5), max_leaves=6)
limits = st.builds(
    CaptureLimits,
    max_depth=st.integers(0, 8),
    max_items=st.integers(0, 20),
    max_string=st.integers(0, 300),
    max_bytes=st.integers(0, 100),
    budget=st.integers(18, 2000),
)


@settings(max_examples=300, deadline=None, database=None)
@given(value=data, limits=limits)
def test_render_never_raises_and_never_exceeds_the_value_budget(value: Any, limits: CaptureLimits) -> None:
    text = render(value, limits)
    assert isinstance(text, str)
    assert len(text) <= limits.budget


@settings(max_examples=150, deadline=None, database=None)
@given(values=st.lists(data, max_size=5), span=st.integers(0, 500))
def test_the_values_of_one_span_never_exceed_the_span_budget(values: list[Any], span: int) -> None:
    budget = SpanBudget(span)
    rendered = render_arguments(
        [(f"a{i}", value) for i, value in enumerate(values)], budget=budget, redactor=default_redactor()
    )
    charged = sum(len(text) for text in rendered.values() if text != BUDGET_EXHAUSTED)
    assert charged <= span
    assert budget.remaining == max(0, span - charged)


@settings(max_examples=150, deadline=None, database=None)
@given(
    before=st.dictionaries(st.text(max_size=20), field_values, max_size=25),
    after=st.dictionaries(st.text(max_size=20), field_values, max_size=25),
    max_size=st.integers(64, 3000),
)
def test_a_state_diff_is_valid_json_within_its_size_cap(
    before: dict[str, Any], after: dict[str, Any], max_size: int
) -> None:
    change = diff_values(before, after)
    assert isinstance(change, StateDiff)
    text = change.to_json(max_size)
    assert len(text.encode()) <= max_size
    document = json.loads(text)
    assert document["v"] == 1
