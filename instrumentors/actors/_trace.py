"""``trace_actor`` / ``untrace_actor``: wrap one class's message method with wrapt, and undo it."""

from __future__ import annotations

import inspect
import sys
import threading
import weakref
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Final, TypeVar, overload

import wrapt
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from execscope._version import __version__
from execscope.attributes import ARGS_PREFIX, MESSAGE, REPLY
from execscope.instrumentors import _capture
from execscope.instrumentors._failsafe import internal_error
from execscope.instrumentors.actors._span import MessageSpan, call_arguments, unwrap

__all__ = ["MESSAGE_METHODS", "is_message_tracer", "trace_actor", "untrace_actor"]

#: The message method's names, in the order they are looked for.
MESSAGE_METHODS: Final = ("receive", "on_receive", "handle")

C = TypeVar("C", bound=type[Any])

# Class → (method name, wrapt handle). Weak: tracing a class must not keep it alive. The lock makes
# "is it traced? then wrap it" one step when two threads decorate the same class.
_traced: weakref.WeakKeyDictionary[type[Any], tuple[str, Any]] = weakref.WeakKeyDictionary()
_traced_lock = threading.Lock()


class _MessageTracer:
    """The wrapt wrapper of one class's message method: one span per call.

    Everything that does not depend on the call (span name, ``code.*``, signature) is worked out
    once, when the class is traced, so a message pays only for the span and the values.
    """

    __slots__ = ("_code", "_hidden_fields", "_is_async", "_signature", "_span_name", "_tracer")

    def __init__(
        self,
        tracer: trace.Tracer,
        span_name: str,
        code: Mapping[str, str | int],
        signature: inspect.Signature | None,
        is_async: bool,
        hidden_fields: frozenset[str],
    ) -> None:
        self._tracer = tracer
        self._span_name = span_name
        self._code = code
        self._signature = signature
        self._is_async = is_async
        self._hidden_fields = hidden_fields

    def __call__(
        self, wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if self._is_async:
            # Made here, not in _traced_await: a call that does not fit the signature raises
            # TypeError at the call, as it does untraced.
            return self._traced_await(wrapped(*args, **kwargs), instance, args, kwargs)
        with self._span(instance) as recording:
            self._record_message(recording, args, kwargs)
            result = wrapped(*args, **kwargs)
            recording.value(REPLY, result)
        return result

    async def _traced_await(
        self,
        coroutine: Coroutine[Any, Any, Any],
        instance: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        # The span, the snapshot and the message are taken when the body starts to run (the first
        # await), not when the coroutine was made: the state in between is not the handler's doing.
        with self._span(instance) as recording:
            self._record_message(recording, args, kwargs)
            result = await coroutine
            recording.value(REPLY, result)
        return result

    def _span(self, instance: object) -> MessageSpan:
        return MessageSpan(
            self._tracer,
            self._span_name,
            # INTERNAL: the wrapper sees a plain method call in the caller's thread and cannot tell
            # whether a mailbox was crossed; CONSUMER would tell readers of the trace (and
            # execscope's analyzer) that an asynchronous hand-off happened when it may not have.
            kind=SpanKind.INTERNAL,
            attributes=self._code,
            target=instance,
            hidden_fields=self._hidden_fields,
            where="actors",
        )

    def _record_message(self, recording: MessageSpan, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not _capture.values_allowed():
            return
        try:
            values = call_arguments(self._signature, args, kwargs)
        except Exception:  # fail open: the message goes unrecorded
            internal_error("actors message")
            return
        if not values:
            return
        # The first parameter is the message; any others (a sender, a reply address) are arguments.
        name, message = next(iter(values.items()))
        recording.value(MESSAGE, message, name=name)
        del values[name]
        recording.arguments(values, ARGS_PREFIX)


def is_message_tracer(attribute: object) -> bool:
    """Whether a class attribute (as ``inspect.getattr_static`` gives it) is a traced message method."""
    return isinstance(getattr(attribute, "_self_wrapper", None), _MessageTracer)


def _is_method(attribute: object) -> bool:
    # inspect.isfunction is also true of a wrapt wrapper around a function.
    return inspect.isfunction(attribute) or isinstance(attribute, (staticmethod, classmethod))


def _message_method(cls: type[Any], method: str | None) -> tuple[str, Any]:
    names = MESSAGE_METHODS if method is None else (method,)
    for name in names:
        # getattr_static: finding the method must not run a property or a metaclass __getattr__.
        attribute = inspect.getattr_static(cls, name, None)
        if attribute is not None and _is_method(attribute):
            return name, attribute
    if method is not None:
        raise ValueError(f"trace_actor: {cls.__qualname__} has no method {method!r} to trace")
    raise ValueError(
        f"trace_actor: {cls.__qualname__} has no message method: define one of "
        f"{', '.join(MESSAGE_METHODS)}, or name it with trace_actor({cls.__name__}, method=...)"
    )


def _tracer_for(cls: type[Any], name: str, attribute: Any, tracer: trace.Tracer) -> _MessageTracer:
    function = attribute.__func__ if isinstance(attribute, (staticmethod, classmethod)) else attribute
    try:
        signature: inspect.Signature | None = inspect.signature(function)
    except (TypeError, ValueError):  # no introspectable signature: arguments named by position
        signature = None
    if signature is not None and not isinstance(attribute, staticmethod):
        # The instance (or class) is the state, not part of the message.
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    return _MessageTracer(
        tracer,
        f"{cls.__name__} {name}",
        _capture.code_attributes(function),
        signature,
        inspect.iscoroutinefunction(function),
        _library_fields(cls),
    )


def _library_fields(cls: type[Any]) -> frozenset[str]:
    """The fields an actor library keeps on the instance for itself: not the actor's state."""
    pykka = sys.modules.get("pykka")  # only if the program uses it: never imported for this
    if pykka is not None and issubclass(cls, pykka.Actor):
        from execscope.instrumentors.pykka._seams import PYKKA_FIELDS

        return PYKKA_FIELDS
    return frozenset()


@overload
def trace_actor(
    cls: C, method: str | None = None, *, tracer_provider: trace.TracerProvider | None = None
) -> C: ...


@overload
def trace_actor(
    cls: None = None, method: str | None = None, *, tracer_provider: trace.TracerProvider | None = None
) -> Callable[[C], C]: ...


def trace_actor(
    cls: C | None = None, method: str | None = None, *, tracer_provider: trace.TracerProvider | None = None
) -> C | Callable[[C], C]:
    """Record a span for every message ``cls`` (and its subclasses) handle; returns ``cls``.

    The message method is ``method`` if given, else the first of ``receive``, ``on_receive`` and
    ``handle`` that the class defines or inherits; it may be ``async def`` (the span then covers
    the ``await``). Use ``@trace_actor``, ``@trace_actor(method="process")`` or
    ``trace_actor(SomeClass)`` for a class you do not own.

    Each call makes a span named ``"<ClassName> <method>"`` (``"Counter receive"``) of kind
    INTERNAL, a child of the current span, with the method's ``code.*`` location, the first
    argument rendered as ``execscope.message`` (further arguments as ``execscope.args.<name>``),
    the return value as ``execscope.reply``, the change of the instance's attributes as
    ``execscope.state.diff``, and an exception as an exception event with status ERROR. Values are
    bounded and redacted like the auto-instrumentor's, and left out while the load governor
    sheds them.

    The method is wrapped with wrapt, so its return values, exceptions, signature, ``__name__``,
    ``__qualname__`` and ``__doc__`` stay what they were. Tracing a class again (or a subclass of
    a traced class that does not override the method) changes nothing.

    ``tracer_provider`` defaults to the global one, looked up when a message is handled, so a
    class decorated at import time records into the provider set up later.

    Raises ``ValueError`` (naming the class) when there is no such method: that is a mistake in the
    program, found when the class is decorated rather than when the first message arrives.
    """
    if cls is None:

        def decorate(target: C) -> C:
            return trace_actor(target, method, tracer_provider=tracer_provider)

        return decorate
    if not isinstance(cls, type):
        raise TypeError(f"trace_actor: expected a class, got {cls!r}")
    name, attribute = _message_method(cls, method)
    with _traced_lock:
        if cls in _traced or is_message_tracer(attribute):
            return cls
        # Without a provider, get_tracer answers a proxy that follows the global provider.
        tracer = trace.get_tracer(__name__.rpartition("._")[0], __version__, tracer_provider)
        handle = wrapt.wrap_function_wrapper(cls, name, _tracer_for(cls, name, attribute, tracer))
        _traced[cls] = (name, handle)
    return cls


def untrace_actor(cls: type[Any]) -> None:
    """Undo :func:`trace_actor` on ``cls``: its message method is again exactly the original.

    Only the wrapper ``trace_actor`` put there is removed (one put on top of it later stays);
    a class that is not traced is left alone.
    """
    with _traced_lock:
        entry = _traced.pop(cls, None)
    if entry is not None:
        name, handle = entry
        unwrap(cls, name, handle)
