"""Where execscope meets pykka: the envelope a sender makes, and the actor handling its message.

**Carrying the sender's context.** ``ActorRef.tell``/``ask`` (and so every proxy call, which is an
``ask`` of a :class:`pykka.messages.ProxyCall`) wrap each message in an ``Envelope`` in the
*sender's* thread; the actor's thread later takes it from the inbox and calls
``Actor._handle_receive(envelope.message)``. The name ``Envelope`` in ``pykka._ref`` is wrapped so
that it makes a :class:`TracedEnvelope` instead: the same class plus one slot holding the sender's
OpenTelemetry context. Messages, inboxes, futures and replies stay exactly what pykka made them;
only code that checks ``type(envelope) is Envelope`` (pykka does not) could tell.

**Handing it to the handler.** ``_handle_receive`` is given the message, not the envelope, so the
envelope hands its context over when the actor loop reads ``envelope.message``, in the actor's own
thread just before the call, through a context variable that ``_handle_receive``'s wrapper takes
(and clears). The hand-over is only believed when its message *is* the message being handled, so a
read elsewhere (a ``repr`` in a log line, the teardown of a stopped actor) can never lend a wrong
parent; a message without one starts a trace of its own, as untraced code would.

**The span.** ``Actor._handle_receive`` dispatches every message, so its wrapper sees all of them
and names the span by what pykka is about to do: ``"<Class> on_receive"`` for a plain message,
``"<Class>.<method>"`` for a proxy call (and ``"<Class> get <attr>"``/``"<Class> set <attr>"``
for proxy attribute access). Lifecycle messages (the stop request) get none. Kind CONSUMER: the
message crossed a mailbox into another thread and is handled asynchronously to its sender, which
may be gone on (``tell``); the span is still the sender's child, in its trace.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, Final, NamedTuple

import pykka
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from pykka import messages
from pykka._envelope import Envelope

from execscope.attributes import ARGS_PREFIX, MESSAGE, REPLY, RETURN_VALUE
from execscope.instrumentors import _capture
from execscope.instrumentors._failsafe import internal_error
from execscope.instrumentors.actors._span import MessageSpan, call_arguments
from execscope.instrumentors.actors._trace import is_message_tracer

__all__ = ["TracedEnvelope", "handle_receive_wrapper", "make_envelope"]

#: What pykka's ``Actor.__init__`` keeps on the user's actor for itself: not the actor's state.
PYKKA_FIELDS: Final = frozenset({"actor_urn", "actor_inbox", "actor_stopped", "_actor_ref"})

# The slot of Envelope that TracedEnvelope's property stores the message in.
_MESSAGE_SLOT: Final[Any] = vars(Envelope)["message"]

# (message, sender's context) of the envelope whose message the actor loop just read.
_handed_over: ContextVar[tuple[object, Context] | None] = ContextVar("execscope_pykka_sender", default=None)


class TracedEnvelope(Envelope[Any]):
    """An ``Envelope`` that also carries the context of the code that sent it."""

    __slots__ = ("_execscope_sender",)

    def __init__(self, message: Any, reply_to: pykka.Future[Any] | None = None) -> None:
        super().__init__(message, reply_to)
        self._execscope_sender = otel_context.get_current()

    @property
    def message(self) -> Any:
        message = _MESSAGE_SLOT.__get__(self, type(self))
        _handed_over.set((message, self._execscope_sender))
        return message

    @message.setter
    def message(self, value: Any) -> None:
        _MESSAGE_SLOT.__set__(self, value)


def make_envelope(
    wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Wrapper of ``pykka._ref.Envelope``: the same envelope, plus the sender's context."""
    try:
        return TracedEnvelope(*args, **kwargs)
    except Exception:  # fail open: an envelope pykka makes itself, untraced
        internal_error("pykka envelope")
        return wrapped(*args, **kwargs)


def _sender_context(message: object) -> Context | None:
    handed_over = _handed_over.get()
    if handed_over is None:
        return None
    _handed_over.set(None)
    sent, context = handed_over
    return context if sent is message else None


_UNKNOWN: Final = object()


class _Plan:
    """What the span of one message records: name, location, and the call's values."""

    __slots__ = ("arguments", "code", "message", "name", "result_key")

    def __init__(
        self,
        name: str,
        code: Mapping[str, str | int],
        result_key: str,
        *,
        message: object = _UNKNOWN,
        arguments: Callable[[], Mapping[str, object]] | None = None,
    ) -> None:
        self.name = name
        self.code = code
        self.result_key = result_key
        self.message = message
        self.arguments = arguments


class _Callee(NamedTuple):
    """The function a proxy call will run, and whether pykka calls it bound (``self`` or ``cls``
    supplied, so not among the message's arguments)."""

    function: Any
    bound: bool


def _static_callee(owner: object, name: str) -> _Callee | None:
    """What ``getattr(owner, name)(...)`` will run, found without running the actor's code (no
    property, no ``__getattr__``, no descriptor but functions', static and class methods'); None
    when that cannot be known so."""
    attribute = inspect.getattr_static(owner, name, _UNKNOWN)
    if attribute is not inspect.getattr_static(type(owner), name, _UNKNOWN):
        # From the instance's own __dict__, called as it is.
        return (
            _Callee(attribute, False)
            if inspect.isfunction(attribute) or inspect.ismethod(attribute)
            else None
        )
    if isinstance(attribute, staticmethod):
        return _Callee(attribute.__func__, False)
    if isinstance(attribute, classmethod):
        return _Callee(attribute.__func__, True)
    if inspect.isfunction(attribute):  # also a wrapt wrapper of a function
        return _Callee(attribute, True)
    return None


def _callee(actor: pykka.Actor, attr_path: tuple[str, ...]) -> _Callee | None:
    owner: object = actor
    for name in attr_path[:-1]:  # pykka's traversable attributes: plain instance attributes
        owner = inspect.getattr_static(owner, name, _UNKNOWN)
        if owner is _UNKNOWN or inspect.isdatadescriptor(owner):
            return None
    return _static_callee(owner, attr_path[-1])


@functools.lru_cache(maxsize=1024)
def _signature(callee: _Callee) -> inspect.Signature | None:
    # Cached: working out a signature costs more than the rest of a proxy call's recording, and
    # an actor's methods are called again and again. Bounded, so short-lived classes come and go.
    try:
        signature = inspect.signature(callee.function)
    except (TypeError, ValueError):
        return None
    if not callee.bound:
        return signature
    return signature.replace(parameters=list(signature.parameters.values())[1:])


def _proxy_call_plan(actor: pykka.Actor, call: messages.ProxyCall) -> _Plan:
    callee = _callee(actor, call.attr_path)
    return _Plan(
        f"{type(actor).__name__}.{'.'.join(call.attr_path)}",
        {} if callee is None else _capture.code_attributes(callee.function),
        RETURN_VALUE,
        arguments=lambda: call_arguments(
            None if callee is None else _signature(callee), call.args, call.kwargs
        ),
    )


def _plan(actor: pykka.Actor, message: object) -> _Plan | None:
    actor_name = type(actor).__name__
    if isinstance(message, messages.ProxyCall):
        return _proxy_call_plan(actor, message)
    if isinstance(message, messages.ProxyGetAttr):
        return _Plan(f"{actor_name} get {'.'.join(message.attr_path)}", {}, RETURN_VALUE)
    if isinstance(message, messages.ProxySetAttr):
        value = message.value
        return _Plan(
            f"{actor_name} set {'.'.join(message.attr_path)}",
            {},
            RETURN_VALUE,
            arguments=lambda: {"value": value},
        )
    if isinstance(message, messages._ActorStop):  # lifecycle: no span
        return None
    on_receive = inspect.getattr_static(type(actor), "on_receive", None)
    if is_message_tracer(on_receive):
        return None  # trace_actor's own span records it; this wrapper only lends the sender's context
    return _Plan(f"{actor_name} on_receive", _capture.code_attributes(on_receive), REPLY, message=message)


def _arguments(arguments: Callable[[], Mapping[str, object]]) -> Mapping[str, object]:
    if not _capture.values_allowed():
        return {}
    try:
        return arguments()
    except Exception:  # fail open: the arguments go unrecorded
        internal_error("pykka arguments")
        return {}


def handle_receive_wrapper(tracer: trace.Tracer) -> Callable[..., Any]:
    """The wrapper of ``pykka.Actor._handle_receive``, recording into ``tracer``."""

    def handle_receive(
        wrapped: Callable[..., Any], instance: pykka.Actor, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            message = args[0] if args else kwargs["message"]
            parent = _sender_context(message)
            plan = _plan(instance, message)
        except Exception:  # fail open: the message is handled untraced
            internal_error("pykka message")
            return wrapped(*args, **kwargs)
        if plan is None:
            if parent is None:
                return wrapped(*args, **kwargs)
            token = otel_context.attach(parent)
            try:
                return wrapped(*args, **kwargs)
            finally:
                otel_context.detach(token)
        with MessageSpan(
            tracer,
            plan.name,
            kind=SpanKind.CONSUMER,
            attributes=plan.code,
            target=instance,
            hidden_fields=PYKKA_FIELDS,
            parent=parent,
            where="pykka",
        ) as recording:
            if plan.message is not _UNKNOWN:
                recording.value(MESSAGE, plan.message, name="message")
            if plan.arguments is not None:
                recording.arguments(_arguments(plan.arguments), ARGS_PREFIX)
            result = wrapped(*args, **kwargs)
            recording.value(plan.result_key, result)
        return result

    return handle_receive
