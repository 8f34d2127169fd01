"""The tracer execscope's provider hands out: the SDK's, with a cheaper way to start spans."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import time_ns
from types import TracebackType
from typing import Any, Final

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import Tracer
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from execscope.tracing._span import ExecscopeSpan

_RANDOM_TRACE_ID: Final[int] = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
#: The four trace-flag values a new span can have, made once: (sampled, random trace id) → flags.
_FLAGS: Final = {
    (sampled, random): TraceFlags(
        (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT) | (_RANDOM_TRACE_ID if random else 0)
    )
    for sampled in (False, True)
    for random in (False, True)
}


def can_speed_up(tracer: object) -> bool:
    """Whether ``tracer`` is an SDK tracer of the releases :class:`ExecscopeTracer` follows
    (1.40 and later: tracer configuration, the SDK's own metrics, ``_on_ending``)."""
    return (
        type(tracer) is Tracer
        and hasattr(tracer, "_is_enabled")
        and hasattr(tracer, "_tracer_metrics")
        and hasattr(tracer, "_span_limits")
        and hasattr(getattr(tracer, "span_processor", None), "_on_ending")
    )


class ExecscopeTracer(Tracer):
    """The SDK's ``Tracer`` whose spans are :class:`ExecscopeSpan`.

    ``start_span`` follows the SDK's step for step (the same sampler call with the same
    arguments, the same ids, flags, trace state, tracer configuration and SDK metrics, the same
    ``on_start``); it differs only in the span class, which the SDK's method cannot be told.
    ``start_as_current_span`` is a small class instead of a generator-based context manager
    with ``use_span`` inside it, with the same semantics.
    """

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        links = links or ()
        parent: SpanContext | None = trace_api.get_current_span(context).get_span_context()
        if parent is not None and not isinstance(parent, SpanContext):
            raise TypeError("parent_span_context must be a SpanContext or None.")
        if not self._is_enabled():
            return NonRecordingSpan(context=parent)  # type: ignore[arg-type]  # None as the SDK passes it
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = self.id_generator.generate_trace_id()
            random_trace_id = bool(getattr(self.id_generator, "is_trace_id_random", bool)())
        else:
            trace_id = parent.trace_id
            random_trace_id = bool(getattr(parent.trace_flags, "random_trace_id", False))
        result = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
        decision = result.decision
        sampled: bool = decision.is_sampled()  # type: ignore[no-untyped-call]
        recording: bool = decision.is_recording()  # type: ignore[no-untyped-call]
        span_context = SpanContext(
            trace_id,
            self.id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=_FLAGS[sampled, random_trace_id],
            trace_state=result.trace_state,
        )
        record_end_metrics = self._tracer_metrics.start_span(parent, decision)
        if not recording:
            return NonRecordingSpan(context=span_context)
        span = ExecscopeSpan(
            name,
            span_context,
            parent,
            self.sampler,
            self.resource,
            result.attributes,
            self.span_processor,
            kind,
            links,
            self.instrumentation_info,
            self._instrumentation_scope,
            self._span_limits,
            record_exception,
            set_status_on_exception,
            record_end_metrics,
        )
        span._start_time = start_time if start_time is not None else time_ns()
        self.span_processor.on_start(span, parent_context=context)
        return span

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> StartedAsCurrent:
        return StartedAsCurrent(
            self,
            (name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception),
            end_on_exit,
        )


class StartedAsCurrent:
    """What ``ExecscopeTracer.start_as_current_span`` returns: starts the span on entry, makes it
    current, and on exit records an ``Exception`` (not a bare ``BaseException``), sets the
    error status, detaches and ends the span, as the SDK's ``use_span`` does. Used as a
    decorator, it is the SDK's own context manager (which starts spans through this tracer)."""

    __slots__ = ("_arguments", "_end_on_exit", "_span", "_token", "_tracer")

    def __init__(self, tracer: ExecscopeTracer, arguments: tuple[Any, ...], end_on_exit: bool) -> None:
        self._tracer = tracer
        self._arguments = arguments
        self._end_on_exit = end_on_exit
        self._span: trace_api.Span | None = None
        self._token: object = None

    def __enter__(self) -> trace_api.Span:
        span = self._span = self._tracer.start_span(*self._arguments)
        self._token = context_api.attach(context_api.set_value(_SPAN_KEY, span))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self._span
        assert span is not None
        try:
            context_api.detach(self._token)  # type: ignore[arg-type]
            if isinstance(exc, Exception) and span.is_recording():
                if self._arguments[6]:  # record_exception
                    span.record_exception(exc)
                if self._arguments[7]:  # set_status_on_exception
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            if self._end_on_exit:
                span.end()

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        arguments = self._arguments
        sdk_manager = Tracer.start_as_current_span(
            self._tracer,
            *arguments,
            end_on_exit=self._end_on_exit,  # type: ignore[misc]
        )
        decorated: Callable[..., Any] = sdk_manager(function)
        return decorated
