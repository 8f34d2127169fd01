"""What the framework instrumentors record of values, code and state, from the process's settings.

The instrumentors capture request bodies, task arguments, messages and actor state with the same
bounded, redacted renderer as the auto-instrumentor, obey the same governor (no values while it
sheds arguments, no state diffs while it sheds state), and name code locations with the same
``code.*`` attributes, so a request span and a rewritten function's span read alike.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from execscope.attributes import ARGS_PREFIX, STATE_DIFF
from execscope.capture import CaptureLimits, Redactor, SpanBudget, diff, render, render_arguments, snapshot
from execscope.processors._governor import SHEDDING
from execscope.settings import get_settings

__all__ = [
    "StateWatch",
    "arguments_attributes",
    "capture_limits",
    "capture_redactor",
    "code_attributes",
    "reload_settings",
    "render_value",
    "values_allowed",
]


@functools.lru_cache(maxsize=1)
def _limits_and_redactor() -> tuple[CaptureLimits, Redactor]:
    # Imported here: the autotrace package imports the SDK's tracing machinery, which an
    # instrumentor that records nothing yet need not pay for at import time.
    from execscope.autotrace._install import limits_from, redactor_from

    settings = get_settings().settings
    return limits_from(settings), redactor_from(settings)


def reload_settings() -> None:
    """Read the capture settings again (after ``execscope.settings.use_settings``)."""
    _limits_and_redactor.cache_clear()


def capture_limits() -> CaptureLimits:
    """The capture bounds of the ``capture_*`` settings."""
    return _limits_and_redactor()[0]


def capture_redactor() -> Redactor:
    """The redactor of the default sensitive names plus the ``redact_names`` setting."""
    return _limits_and_redactor()[1]


def values_allowed() -> bool:
    """False while the governor sheds captured values (critical level and above)."""
    return SHEDDING.capture_args


def render_value(value: object, budget: SpanBudget | None = None, *, cap: int | None = None) -> str:
    """``value`` rendered within the capture limits (and ``cap`` characters), redacted; never raises."""
    limits = capture_limits()
    if cap is not None and cap < limits.budget:
        limits = replace(limits, budget=max(cap, 1), max_string=min(limits.max_string, max(cap, 1)))
    return render(value, limits, budget, capture_redactor())


def arguments_attributes(
    values: Mapping[str, object], prefix: str = ARGS_PREFIX, budget: SpanBudget | None = None
) -> dict[str, str]:
    """``{prefix + name: rendering}``; values with sensitive names are ``[redacted]`` unrendered."""
    limits = capture_limits()
    if budget is None:
        budget = SpanBudget(limits.span_budget)
    rendered = render_arguments(values, limits, budget, capture_redactor())
    return {prefix + name: text for name, text in rendered.items()}


def code_attributes(func: Any) -> dict[str, str | int]:
    """``code.function.name`` / ``code.file.path`` / ``code.line.number`` of a function, method or
    class (the same keys the auto-instrumentor writes); empty when it has no Python source."""
    try:
        target = inspect.unwrap(func)
        if isinstance(target, functools.partial):
            target = target.func
        code = getattr(target, "__code__", None)
        module = getattr(target, "__module__", None) or ""
        qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", "")
        attributes: dict[str, str | int] = {
            "code.function.name": f"{module}.{qualname}" if module else str(qualname)
        }
        if code is not None:
            attributes["code.file.path"] = code.co_filename
            attributes["code.line.number"] = code.co_firstlineno
        elif inspect.isclass(target):
            source_file = inspect.getsourcefile(target)
            if source_file:
                attributes["code.file.path"] = source_file
        return attributes
    except Exception:  # fail open: a missing location never stops a request
        return {}


class StateWatch:
    """Snapshots an object's state before something happens to it, and gives the diff after.

    Obeys the governor: while it sheds state diffs, nothing is snapshotted and the diff is None.
    """

    __slots__ = ("_before", "_target")

    def __init__(self, target: object) -> None:
        self._target = target
        self._before: dict[str, str] | None = None
        if SHEDDING.capture_state:
            self._before = snapshot(target, capture_limits(), capture_redactor())

    def diff_attributes(self) -> dict[str, str]:
        """``{execscope.state.diff: document}`` when the state changed, else ``{}``."""
        if self._before is None:
            return {}
        limits = capture_limits()
        changes = diff(self._before, snapshot(self._target, limits, capture_redactor()))
        if not changes:
            return {}
        return {STATE_DIFF: changes.to_json(limits.max_state_diff)}
