"""The signal receivers that write task arguments, results and retries onto contrib's spans.

They find the span to annotate as the current span: contrib's receivers are connected before
these, and contrib makes its publish span current in ``before_task_publish`` and its run span
current from ``task_prerun`` to ``task_postrun`` (``task_success`` is sent in between). A span
counts as contrib's only if contrib's tracer made it with the expected kind, so with contrib
missing or skipping a message the caller's own span is never annotated by mistake.

Each receiver is a module function with no state of its own: what belongs to one task lives on
its span. Every receiver fails open (Celery would log a receiver's exception as an error).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from execscope.attributes import RETURN_VALUE
from execscope.instrumentors._capture import arguments_attributes, render_value, values_allowed
from execscope.instrumentors._failsafe import internal_error

#: The tracer name of opentelemetry-instrumentation-celery (its module's ``__name__``).
CONTRIB_SCOPE: Final = "opentelemetry.instrumentation.celery"
#: How many times the task was retried. Contrib's own key, which it writes only from the first
#: retry on; written here on every attempt, so a first attempt reads 0 instead of nothing.
RETRIES: Final = "celery.retries"


def _contrib_span(kind: SpanKind) -> Span | None:
    """The current span if contrib's Celery tracer made it with ``kind`` and it records."""
    span = trace.get_current_span()
    if not span.is_recording():
        return None
    scope = getattr(span, "instrumentation_scope", None)
    if getattr(scope, "name", None) != CONTRIB_SCOPE or getattr(span, "kind", None) is not kind:
        return None
    return span


_POSITIONAL: Final = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


@functools.lru_cache(maxsize=1024)
def _parameter_names(task: object) -> tuple[str, ...]:
    """The names of a task's positional parameters (``self`` of a bound task excluded)."""
    try:
        parameters = inspect.signature(task.run).parameters.values()  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return ()
    return tuple(parameter.name for parameter in parameters if parameter.kind in _POSITIONAL)


def _names_of(task: object) -> tuple[str, ...]:
    try:
        return _parameter_names(task)
    except TypeError:  # an unhashable task object
        return ()


def _published_task(name: object) -> object | None:
    """The task a message is for, from the current app's registry, if that is already complete
    (reading the registry of an unfinalized app would finalize it: a side effect)."""
    from celery import current_app

    app: Any = current_app._get_current_object()
    if not isinstance(name, str) or not getattr(app, "finalized", False):
        return None
    task: object | None = app.tasks.get(name)
    return task


def _arguments(args: object, kwargs: object, names: tuple[str, ...] = ()) -> dict[str, str]:
    """``execscope.args.<parameter name>`` per argument, positional ones named by the task's
    signature (so a positional ``password`` is redacted like a keyword one), by index beyond it.

    One call, so positional and keyword arguments share the span's capture budget.
    """
    values: dict[str, object] = {}
    if isinstance(args, (list, tuple)):
        values.update(
            (names[index] if index < len(names) else str(index), value) for index, value in enumerate(args)
        )
    if isinstance(kwargs, Mapping):
        values.update((str(name), value) for name, value in kwargs.items())
    return arguments_attributes(values) if values else {}


def _call_of(body: object) -> tuple[object, object] | None:
    """``(args, kwargs)`` of a task message body: protocol 2 ``(args, kwargs, embed)``, or protocol 1."""
    if isinstance(body, (list, tuple)) and len(body) >= 2:
        return body[0], body[1]
    if isinstance(body, Mapping):
        return body.get("args"), body.get("kwargs")
    return None


def on_before_task_publish(**signal: Any) -> None:
    """The message's arguments, on contrib's publish span (``apply_async/<task>``)."""
    try:
        span = _contrib_span(SpanKind.PRODUCER)
        if span is None or not values_allowed():
            return
        call = _call_of(signal.get("body"))
        if call is not None:
            task = _published_task(signal.get("sender"))
            span.set_attributes(_arguments(*call, _names_of(task) if task is not None else ()))
    except Exception:  # fail open: the message is sent all the same
        internal_error("celery before_task_publish")


def on_task_prerun(**signal: Any) -> None:
    """The retry count and the task's arguments, on contrib's run span (``run/<task>``)."""
    try:
        span = _contrib_span(SpanKind.CONSUMER)
        if span is None:
            return
        retries = getattr(getattr(signal.get("task"), "request", None), "retries", None)
        if isinstance(retries, int):
            # Not a captured value: the governor's shedding does not remove it.
            span.set_attribute(RETRIES, retries)
        if values_allowed():
            names = _names_of(signal.get("task"))
            span.set_attributes(_arguments(signal.get("args"), signal.get("kwargs"), names))
    except Exception:  # fail open: the task runs all the same
        internal_error("celery task_prerun")


def on_task_success(**signal: Any) -> None:
    """What the task returned, on contrib's run span.

    Only on success: a failed task's exception and ERROR status are contrib's (``task_failure``),
    recorded once; a retried attempt carries contrib's ``celery.retry.reason``.
    """
    try:
        span = _contrib_span(SpanKind.CONSUMER)
        if span is None or not values_allowed():
            return
        span.set_attribute(RETURN_VALUE, render_value(signal.get("result")))
    except Exception:  # fail open: the result is stored all the same
        internal_error("celery task_success")
