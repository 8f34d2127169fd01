"""The span around one message an actor handles: shared by ``trace_actor`` and the pykka instrumentor.

One object per message, used as a ``with`` block around the handler (sync) or around its ``await``
(async), so both twins record the same things the same way: the handler's ``code.*`` location,
values rendered with the capture limits and one budget per span, the actor's state diff, and a
failure as an exception event with status ERROR. The exception itself is never touched: ``__exit__``
returns ``None`` so Python re-raises the very object with its own traceback.

Every step of recording fails open (:func:`~execscope.instrumentors._failsafe.internal_error`): the
handler runs, returns and raises exactly as it would untraced.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from contextvars import Token
from types import TracebackType
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from execscope.attributes import STATE_DIFF
from execscope.capture import SpanBudget, diff, snapshot
from execscope.instrumentors import _capture
from execscope.instrumentors._failsafe import internal_error
from execscope.processors import SHEDDING

__all__ = ["FieldsWatch", "MessageSpan", "call_arguments", "unwrap"]


class FieldsWatch:
    """:class:`~execscope.instrumentors._capture.StateWatch` of an object's ``__dict__`` without
    ``hidden`` fields: the fields a library keeps on the user's actor for itself.

    A pykka actor carries its inbox, stop event and ref as instance attributes: rendering them
    cost ten times the rest of a message's recording, and their renderings change with other
    threads' activity (a sender waiting on the inbox), which would show up as changes the
    handler did not make. Same format, same governor, same redaction as ``StateWatch``; unlike
    it, fields in ``__slots__`` next to the ``__dict__`` are not watched (pykka actors have none).
    """

    __slots__ = ("_before", "_hidden", "_target")

    def __init__(self, target: object, hidden: frozenset[str]) -> None:
        self._target = target
        self._hidden = hidden
        self._before: dict[str, str] | None = None
        if SHEDDING.capture_state:
            self._before = self._snapshot()

    def _snapshot(self) -> dict[str, str]:
        try:
            # object.__getattribute__: the instance dict itself, never a class's __getattr__.
            fields: object = object.__getattribute__(self._target, "__dict__")
        except AttributeError:
            fields = self._target
        if type(fields) is dict:
            fields = {name: value for name, value in fields.items() if name not in self._hidden}
        return snapshot(fields, _capture.capture_limits(), _capture.capture_redactor())

    def diff_attributes(self) -> dict[str, str]:
        """``{execscope.state.diff: document}`` when the state changed, else ``{}``."""
        if self._before is None:
            return {}
        changes = diff(self._before, self._snapshot())
        if not changes:
            return {}
        return {STATE_DIFF: changes.to_json(_capture.capture_limits().max_state_diff)}


class MessageSpan:
    """Starts a span on ``__enter__`` (child of ``parent``, else of the current context), makes it
    current, snapshots ``target``'s state (less ``hidden_fields``); ends it on ``__exit__`` with the
    state diff and, for an ``Exception``, the error.

    ``where`` names the caller in internal-error reports. Not reusable, not shared across threads.
    """

    __slots__ = (
        "_attributes",
        "_budget",
        "_hidden_fields",
        "_kind",
        "_name",
        "_parent",
        "_span",
        "_target",
        "_token",
        "_tracer",
        "_watch",
        "_where",
    )

    def __init__(
        self,
        tracer: trace.Tracer,
        name: str,
        *,
        kind: SpanKind,
        attributes: Mapping[str, str | int],
        target: object | None,
        hidden_fields: frozenset[str] = frozenset(),
        parent: Context | None = None,
        where: str,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._kind = kind
        self._attributes = attributes
        self._target = target
        self._hidden_fields = hidden_fields
        self._parent = parent
        self._where = where
        self._span: Span | None = None
        self._token: Token[Context] | None = None
        self._watch: _capture.StateWatch | FieldsWatch | None = None
        self._budget: SpanBudget | None = None

    def __enter__(self) -> MessageSpan:
        try:
            span = self._tracer.start_span(
                self._name, context=self._parent, kind=self._kind, attributes=self._attributes
            )
            self._span = span
            # The parent context, not just its span: its baggage (the correlation id a request
            # brought in) must reach what the handler does too.
            self._token = otel_context.attach(trace.set_span_in_context(span, self._parent))
            if span.is_recording() and self._target is not None and not isinstance(self._target, type):
                self._watch = (
                    FieldsWatch(self._target, self._hidden_fields)
                    if self._hidden_fields
                    else _capture.StateWatch(self._target)
                )
        except Exception:  # fail open: the handler runs untraced
            self._close()
            internal_error(f"{self._where} span start")
        return self

    def value(self, key: str, value: object, *, name: str | None = None) -> None:
        """Record ``value`` rendered as ``key``, unless the governor sheds values now; ``[redacted]``
        unrendered when ``name`` (the parameter that holds it) is a sensitive name."""
        span = self._span
        if span is None or not span.is_recording() or not _capture.values_allowed():
            return
        try:
            label = name or key
            span.set_attribute(key, _capture.arguments_attributes({label: value}, "", self._charge())[label])
        except Exception:  # fail open: a value that cannot be recorded is left out
            internal_error(f"{self._where} values")

    def arguments(self, values: Mapping[str, object], prefix: str) -> None:
        """Record each value as ``prefix + name``; a sensitive name gets ``[redacted]`` unrendered."""
        span = self._span
        if span is None or not values or not span.is_recording() or not _capture.values_allowed():
            return
        try:
            span.set_attributes(_capture.arguments_attributes(values, prefix, self._charge()))
        except Exception:  # fail open: a value that cannot be recorded is left out
            internal_error(f"{self._where} values")

    def _charge(self) -> SpanBudget:
        # One budget for every value of the span, like the auto-instrumentor's calls.
        if self._budget is None:
            self._budget = SpanBudget(_capture.capture_limits().span_budget)
        return self._budget

    def __exit__(
        self, error_type: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        span = self._span
        if span is None:
            return
        try:
            if self._watch is not None:
                # Also after a failure: what the handler changed before it raised is the clue.
                span.set_attributes(self._watch.diff_attributes())
            # Only Exception is a failure: GeneratorExit, asyncio's CancelledError and
            # KeyboardInterrupt end the handler without it having failed.
            if isinstance(error, Exception):
                span.record_exception(error, escaped=True)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        except Exception:  # fail open: the handler's own outcome goes on unchanged
            internal_error(f"{self._where} span end")
        finally:
            self._close()

    def _close(self) -> None:
        if self._token is not None:
            otel_context.detach(self._token)
            self._token = None
        if self._span is not None:
            self._span.end()
            self._span = None


def call_arguments(
    signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, object]:
    """``{parameter name: value}`` of one call, in parameter order (``*args`` as a tuple, ``**kwargs``
    as a dict); without a signature, or when the call does not fit it (it is about to raise
    ``TypeError`` itself), positional arguments are named by their index."""
    if signature is not None:
        try:
            return dict(signature.bind(*args, **kwargs).arguments)
        except TypeError:
            pass
    return {**{str(index): value for index, value in enumerate(args)}, **kwargs}


def unwrap(target: Any, name: str, handle: Any) -> None:
    """Remove exactly the wrapper ``handle`` from ``target.name``, and nobody else's.

    ``wrapt.unwrap_object`` (wrapt >= 2.5) splices our wrapper out even when another wrapper was
    put on top of it later; without it, contrib's ``unwrap`` restores the attribute, but only when
    our wrapper is still the outermost one (so a later wrapper is never thrown away).
    """
    unwrap_object = getattr(wrapt, "unwrap_object", None)
    if unwrap_object is not None:
        unwrap_object(target, name, handle, missing_ok=True)
        return
    from opentelemetry.instrumentation.utils import unwrap as contrib_unwrap

    if vars(target).get(name) is handle:
        contrib_unwrap(target, name)
