"""The public surface of ``execscope.capture`` is small and changes only on purpose."""

from __future__ import annotations

import inspect

import execscope.capture
from execscope.capture import CaptureLimits, SpanBudget


def test_capture_exports() -> None:
    assert sorted(execscope.capture.__all__) == sorted(
        [
            "BUDGET_EXHAUSTED",
            "DEFAULT_NAME_PATTERNS",
            "REDACTED",
            "STATE_DIFF_VERSION",
            "CaptureLimits",
            "NoopRedactor",
            "Redactor",
            "SpanBudget",
            "StateDiff",
            "default_redactor",
            "diff",
            "diff_values",
            "render",
            "render_arguments",
            "snapshot",
        ]
    )


def test_entry_point_signatures() -> None:
    assert list(inspect.signature(execscope.capture.render).parameters) == [
        "value",
        "limits",
        "budget",
        "redactor",
    ]
    assert list(inspect.signature(execscope.capture.render_arguments).parameters) == [
        "names_and_values",
        "limits",
        "budget",
        "redactor",
    ]


def test_default_limits() -> None:
    limits = CaptureLimits()
    assert (limits.max_depth, limits.max_items, limits.max_string, limits.max_bytes) == (3, 10, 200, 64)
    assert (limits.budget, limits.span_budget, limits.max_state_diff) == (1024, 4096, 2000)
    assert SpanBudget().limit == SpanBudget.for_limits(limits).limit == 4096


def test_the_internal_error_switch_is_off_by_default() -> None:
    # Not imported from capture_helpers: this module checks the production default.
    from execscope.capture import _render

    assert _render._RAISE_INTERNAL_ERRORS is False
