"""The hot path: what a rewritten function runs on every call.

A rewritten function calls its :class:`Site` (``__execscope_sites__.<module key>[i]``) as a ``with``
would: ``__enter__`` where its body starts, ``__exit__`` with the exception that escapes it, and
at a ``return`` either ``ret_leave``/``leave`` (the bytecode rewrite: the value kept or not, and
the call ended, in one call) or ``ret``/``ret_exit`` followed by the ``with``'s own exit (the
``ast`` rewrite, whose body is wrapped in ``with site:``). The design keeps the common cases cheap:

* Per-call state is kept in the site's ``frames`` dict keyed by the calling frame, not in a
  local variable (the function's ``locals()`` stay exactly as written) nor in a wrapper frame
  (``sys._getframe(1)`` and the recursion limit stay as written). A call that records nothing
  leaves the dict empty, and ``__exit__`` returns after one truth test. The C core keeps the
  calls it times for ``min_duration`` apart, in an array of its own keyed by the interpreter
  frame, so a call below the threshold makes no frame object, no int and no dict entry; and a
  ``return`` with nothing of the function's own after it (``ret_exit``) settles such a call
  without keeping its value.
* Each site of the C core is the one instance of a class of its own, whose ``__enter__`` and
  ``__exit__`` are the C methods already bound to it: the ``with`` finds them as they are,
  where a class's plain methods would be bound into two new method objects at every call.
* A recorded call does not create an SDK span. It builds a small :class:`Call` object, which is
  itself an ``opentelemetry.trace.Span`` put into the current OpenTelemetry context, so spans
  other instrumentations start inside it become its children; its ``SpanContext`` is built only
  if someone asks. At the end the finished call is appended to the recorder's queue and a
  background thread turns it into a ``ReadableSpan`` for the SDK's span processors.
* Trace-level sampling is decided once, at the local root. A root that is not sampled puts a
  :class:`Unsampled` marker into the context, so the calls below it skip in a few hundred ns.

Nothing here may raise into the host program: every entry point catches its own errors,
counts them and carries on as if the call were not selected.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
import traceback
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from random import Random
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.context import Context
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.span import SpanContext, TraceFlags
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types as otel_types

from execscope.attributes import ARGS_PREFIX, RETURN_VALUE, STATE_DIFF
from execscope.autotrace._levels import ARGS, FULL, OFF, TIMING, SiteFlags
from execscope.autotrace._recorder import RECORDER, Recorder
from execscope.capture import REDACTED, CaptureLimits, SpanBudget, default_redactor, render, snapshot
from execscope.capture import Redactor as _Redactor
from execscope.capture import diff as _diff
from execscope.processors._governor import SHEDDING, Level

_logger = logging.getLogger("execscope.autotrace")
_getframe = sys._getframe
# Span ids and sampling draws come from a generator of our own: the ``random`` module's shared
# one belongs to the program, and a seeded program (``random.seed(0)``) must get the same
# numbers with or without execscope. Reseeded in a forked child so ids do not repeat.
_RANDOM: Final = Random()
getrandbits = _RANDOM.getrandbits
random = _RANDOM.random
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_RANDOM.seed)


class _Process:
    """Counts forks, so a call in flight when the process forked is recorded once (by the parent)."""

    __slots__ = ("generation",)

    def __init__(self) -> None:
        self.generation = 0

    def forked(self) -> None:
        self.generation += 1


_process = _Process()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_process.forked)

#: About one slow-path call in this many is timed (see :class:`SlowPathClock`).
_TIMED_EVERY: Final = 256


class SlowPathClock:
    """The CPU the sites' slow paths (``_enter_slow``, ``_exit_slow``, ``_exit_timed``: every
    call that records, or may) cost the application's threads, estimated for the governor.

    A rewritten function's span is made on the calling thread, not in an SDK span hook the
    pipeline times, so without this the governor would not see most of what recording rewritten
    functions costs. Reading a thread's CPU clock is a system call, so a random sample of about
    one call in ``_TIMED_EVERY`` is timed, each counted for the calls of its gap (random gaps:
    a fixed period would keep timing the same phase of a periodic cost). Counters are updated
    without a lock: a lost update from a race between threads changes the estimate, never the
    program. The C core's fast paths (calls that record nothing, ~0.1-0.3 µs) are not counted.
    """

    __slots__ = ("_random", "countdown", "estimated_s")

    def __init__(self) -> None:
        self._random = Random(0x510)  # private: the program's random state is not ours
        #: Slow-path calls left before the next timed one: each slow path counts it down and,
        #: at 0, hands its call to :meth:`time` (the common case costs a decrement and a test).
        self.countdown = _TIMED_EVERY
        #: The estimated CPU of every slow-path call so far, seconds.
        self.estimated_s = 0.0

    def time(self, slow_path: Callable[..., None], *args: Any) -> None:
        """Run ``slow_path(*args)`` again, timed, counted for the calls until the next timed
        one (the countdown is reset first, so the slow path runs its body this time)."""
        gap = self._random.randrange(1, 2 * _TIMED_EVERY)
        self.countdown = gap + 1
        began = _thread_time()
        slow_path(*args)
        self.estimated_s += (_thread_time() - began) * gap


SLOW_PATH: Final = SlowPathClock()
_time_ns = time.time_ns
_thread_time = time.thread_time
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)
_MAX_STACK_FRAMES: Final = 64
# Scalar argument types whose ``str`` cannot run user code, for exception messages.
_SAFE_MESSAGE_TYPES: Final = (str, int, float, bool, bytes, type(None))
# An exception's ``args`` read from its C slot: ``getattr`` would run an overridden
# ``__getattribute__`` or an ``args`` property, i.e. user code.
_EXCEPTION_ARGS: Final = BaseException.__dict__["args"].__get__
# Immutable builtin values whose rendering cannot run user code and cannot change after the
# call: the calling thread keeps a reference and the recorder's thread renders them.
_DEFERRED_TYPES: Final = frozenset({int, float, bool, type(None), str, bytes, complex})
_MISSING: Final = object()


def _suppress_key() -> str:
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

    return _SUPPRESS_INSTRUMENTATION_KEY


_SUPPRESS_KEY: Final = _suppress_key()


class _ContextAccess:
    """Reads and replaces the current OpenTelemetry context.

    With the SDK's default contextvars runtime context the context variable is used directly
    (the API's ``attach``/``detach`` add a Python call and a log on misuse to every call); with
    any other runtime context the public ``get_current``/``attach``/``detach`` API is used.
    """

    __slots__ = ("get", "reset", "set", "var")

    def __init__(self) -> None:
        var = getattr(getattr(otel_context, "_RUNTIME_CONTEXT", None), "_current_context", None)
        #: The SDK's context variable, or None with a custom runtime context.
        self.var: contextvars.ContextVar[Context] | None = (
            var if isinstance(var, contextvars.ContextVar) else None
        )
        if var is not None and all(hasattr(var, name) for name in ("get", "set", "reset")):
            self.get: Callable[[], Context] = var.get
            self.set: Callable[[Context], Any] = var.set
            self.reset: Callable[[Any], object] = var.reset
        else:  # pragma: no cover - a custom OTEL_PYTHON_CONTEXT
            self.get = otel_context.get_current
            self.set = otel_context.attach
            self.reset = otel_context.detach


_CONTEXT = _ContextAccess()
_context_get = _CONTEXT.get
_context_set = _CONTEXT.set


def _restore(token: Any, outer: Context) -> None:
    """Give the code around a call back its context. The token restores the variable exactly
    (even to "never set", so the program's ``contextvars.Context`` ends as it began); a
    generator resumed in another ``Context`` than the one its token belongs to gets ``outer``."""
    try:
        _CONTEXT.reset(token)
    except (ValueError, RuntimeError):
        _CONTEXT.set(outer)


# The last span of another tracer found current with a valid, not-sampled context: calls under
# it return after one identity test. A span's context never changes, so the entry never goes
# stale; it is a hint shared by all threads, and a race only costs a full check.
_DROPPED_PARENT: list[object] = [object()]

# The recorded generators running a ``yield from`` now, by the id of their frame: a generator
# the delegated-to iterator starts is their child (the consumer's context is current then, so
# that the delegating generator's span never leaks into it). An entry lives while its frame
# does (removed at the next resume or the end of the call), so its id is not reused meanwhile.
_DELEGATING: dict[int, Call] = {}


def _delegating_parent(frame: FrameType) -> Call | None:
    """The recorded generator whose ``yield from`` resumes the one running ``frame``, if any."""
    resumer = frame.f_back
    return _DELEGATING.get(id(resumer)) if resumer is not None else None


class Unsampled(trace.Span):
    """The current span below a local root that head sampling dropped (or while execscope's
    own threads run): rewritten calls underneath record nothing; its ``SpanContext`` (not
    sampled) is made only if another instrumentation or a propagator asks for it."""

    __slots__ = ("_context",)

    def __init__(self) -> None:
        self._context: SpanContext | None = None

    def get_span_context(self) -> SpanContext:
        if self._context is None:
            self._context = SpanContext(
                getrandbits(128) or 1, getrandbits(64) or 1, is_remote=False, trace_flags=_NOT_SAMPLED
            )
        return self._context

    def is_recording(self) -> bool:
        return False

    def end(self, end_time: int | None = None) -> None:
        pass

    def set_attributes(self, attributes: Mapping[str, otel_types.AttributeValue]) -> None:
        pass

    def set_attribute(self, key: str, value: otel_types.AttributeValue) -> None:
        pass

    def add_event(
        self, name: str, attributes: otel_types.Attributes = None, timestamp: int | None = None
    ) -> None:
        pass

    def update_name(self, name: str) -> None:
        pass

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        pass

    def record_exception(
        self,
        exception: BaseException,
        attributes: otel_types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        pass


class Call(trace.Span):
    """One recorded call: the span of a rewritten function while it runs and until exported.

    Other code sees it as the current span: ``trace.get_current_span().set_attribute(...)``
    inside an instrumented function lands on its span, and spans started inside are children.
    """

    __slots__ = (
        "_span_context",
        "attached",
        "attributes",
        "budget",
        "closed",
        "deferred",
        "end_time",
        "events",
        "exception",
        "generation",
        "has_return",
        "inner",
        "name",
        "outer",
        "parent_context",
        "parent_id",
        "returned",
        "site",
        "span_id",
        "start",
        "state_before",
        "state_owner",
        "status",
        "token",
        "trace_id",
        "yields",
    )

    outer: Context | None
    inner: Context | None
    token: Any

    def __init__(self, site: Site, trace_id: int, parent_id: int, parent_context: SpanContext | None) -> None:
        self.site = site
        self.trace_id = trace_id
        self.span_id = getrandbits(64) or 1
        self.parent_id = parent_id
        self.parent_context = parent_context
        self.start = _time_ns()
        self.end_time = 0
        self.attributes: dict[str, otel_types.AttributeValue] | None = None
        self.events: list[tuple[str, dict[str, Any], int]] | None = None
        self.status: Status | None = None
        self.exception: tuple[str, str, traceback.StackSummary | None] | None = None
        self.has_return = False
        self.returned: object = None
        self.state_owner: object = None
        self.state_before: dict[str, str] | None = None
        self.yields = 0
        self.closed = False
        self.deferred: list[tuple[str, object]] | None = None
        self.name = site.name
        self._span_context: SpanContext | None = None
        self.budget: SpanBudget | None = None
        self.generation = _process.generation
        # ``outer``, ``inner`` and ``token`` are set by attach() and read only while attached.
        self.attached = False

    def attach(self, outer: Context | None = None) -> None:
        """Make this call the current span, over ``outer`` (default: the context current now)."""
        outer = self.outer = _CONTEXT.get() if outer is None else outer
        self.inner = Context({**outer, _SPAN_KEY: self})
        self.attached = True
        self.token = _CONTEXT.set(self.inner)

    def detach(self) -> None:
        """Give the code around the call back its context (at exit, ``yield``, ``yield from``)."""
        if self.attached:
            self.attached = False
            _restore(self.token, self.outer)  # type: ignore[arg-type]

    # -- opentelemetry.trace.Span, for code running inside the call ---------------------------

    def get_span_context(self) -> SpanContext:
        if self._span_context is None:
            self._span_context = SpanContext(
                self.trace_id, self.span_id, is_remote=False, trace_flags=_SAMPLED
            )
        return self._span_context

    def is_recording(self) -> bool:
        return not self.end_time

    def end(self, end_time: int | None = None) -> None:
        """Ignored: the call ends when the function returns."""

    def set_attributes(self, attributes: Mapping[str, otel_types.AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: otel_types.AttributeValue) -> None:
        if self.end_time:
            return
        if self.attributes is None:
            self.attributes = {}
        self.attributes[key] = value

    def add_event(
        self, name: str, attributes: otel_types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self.end_time:
            return
        if self.events is None:
            self.events = []
        self.events.append((name, dict(attributes or {}), timestamp or _time_ns()))

    def update_name(self, name: str) -> None:
        if not self.end_time:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_time:
            return
        self.status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: otel_types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        event = exception_event_attributes(type(exception), exception, exception.__traceback__)
        event.update(attributes or {})
        self.add_event("exception", event, timestamp)

    def __repr__(self) -> str:
        return f"Call({self.site.name!r}, span_id={self.span_id:016x})"


class _Timed:
    """Per-call state of a call with a ``min_duration``: its start, until it proves slow, and
    what a recorded call would have learnt meanwhile (return value, yields)."""

    __slots__ = ("has_return", "outer", "returned", "start", "yields")

    def __init__(self, start: int, outer: Context | None) -> None:
        self.start = start
        # The context current when it started (a generator's; None for a plain function,
        # whose context is the same when it ends).
        self.outer = outer
        self.has_return = False
        self.returned: object = None
        self.yields = 0


class _Marker:
    """Per-call state of a local root that was not sampled: the context to restore."""

    __slots__ = ("outer", "token")

    def __init__(self, outer: Context) -> None:
        self.outer = outer
        self.token: Any = None


def exception_message(value: BaseException) -> str:
    """The exception's message without running user code: ``str`` only for builtin exception
    types whose arguments are plain scalars, the safe renderer otherwise."""
    args = _EXCEPTION_ARGS(value)
    if type(args) is not tuple:
        return render(args)
    if type(value).__module__ == "builtins" and all(type(a) in _SAFE_MESSAGE_TYPES for a in args):
        try:
            return str(value)
        except Exception:
            pass
    if len(args) == 1 and type(args[0]) is str:
        return args[0]
    if not args:
        return ""
    return render(args)


def exception_type_name(tp: type[BaseException]) -> str:
    module = getattr(tp, "__module__", "")
    qualname = getattr(tp, "__qualname__", tp.__name__)
    return qualname if module in ("builtins", "__main__", None) else f"{module}.{qualname}"


def stack_summary(tb: TracebackType | None) -> traceback.StackSummary:
    """The frames of ``tb`` without their source lines (read later, off the calling thread)."""
    return traceback.StackSummary.extract(traceback.walk_tb(tb), limit=_MAX_STACK_FRAMES, lookup_lines=False)


def exception_event_attributes(
    tp: type[BaseException], value: BaseException, tb: TracebackType | None
) -> dict[str, Any]:
    message = exception_message(value)
    summary = stack_summary(tb)
    return {
        "exception.type": exception_type_name(tp),
        "exception.message": message,
        "exception.stacktrace": format_stacktrace(exception_type_name(tp), message, summary),
    }


def format_stacktrace(type_name: str, message: str, summary: traceback.StackSummary | None) -> str:
    lines = ["Traceback (most recent call last):\n"]
    if summary:
        lines.extend(summary.format())
    lines.append(f"{type_name}: {message}\n" if message else f"{type_name}\n")
    return "".join(lines)


class RuntimeConfig:
    """What the sites of every rewritten module share: capture bounds, redaction, the root
    sampling decision and the recorder. Replaced as a whole by :func:`configure`; sites keep
    the configuration that was current when their module was imported. ``active`` is False
    until the auto-instrumentor is installed: rewritten code run without it records nothing."""

    __slots__ = ("accelerated", "active", "limits", "recorder", "redactor", "root_sampled")

    def __init__(
        self,
        limits: CaptureLimits | None = None,
        redactor: _Redactor | None = None,
        root_sampled: Callable[[int, str], bool] | None = None,
        recorder: Recorder | None = None,
        active: bool = False,
        accelerated: bool = True,
    ) -> None:
        self.limits = limits or CaptureLimits()
        self.redactor = redactor or default_redactor()
        self.root_sampled = root_sampled or _always
        self.recorder = recorder or RECORDER
        self.active = active
        #: Use the C core where it is available (False: the pure-Python core, same behaviour).
        self.accelerated = accelerated


def _always(trace_id: int, name: str) -> bool:
    return True


_CONFIG = RuntimeConfig()


def configure(config: RuntimeConfig) -> None:
    """Use ``config`` for sites created from now on (modules imported or reloaded later)."""
    global _CONFIG
    _CONFIG = config


def current_config() -> RuntimeConfig:
    return _CONFIG


#: Longer than any call: the ``min_duration`` of a site that records only errors.
_NEVER_LONG_ENOUGH: Final = 1 << 62
#: Whether sites record only the calls an exception escapes (set by the governor's level).
_ERRORS_ONLY: Final = [False]


class Site:
    """One rewritten function: its static description, its level, and its in-flight calls.

    ``__enter__``/``__exit__`` are called where the body starts and where an exception leaves
    it; ``ret_leave``/``leave`` (bytecode rewrite) or ``ret``/``ret_exit`` and ``__exit__``
    (``ast`` rewrite) at a ``return``; ``suspend``, ``resume`` and ``delegate`` around ``yield``
    and ``yield from``. ``frames`` maps each calling frame to its per-call state.

    This class holds the recording logic. ``__enter__``, ``__exit__``, ``ret``, ``ret_exit``,
    ``leave`` and ``ret_leave`` come from a core: the C one (``_speedups.SiteCore``) where it was compiled,
    or the pure-Python :class:`_PythonCore` (``RuntimeConfig.accelerated`` false, or no C
    extension). Both answer the calls that record nothing themselves and hand every other one
    to ``_enter_slow``, ``_exit_slow`` (``_exit_timed`` for the C core's timed calls) and
    ``_ret_slow`` with the calling frame. ``Site(...)`` makes the class with the core the
    configuration asks for.
    """

    if TYPE_CHECKING:  # the concrete classes' slots, and the core's methods
        frames: dict[FrameType, Any]
        level: int
        min_duration_ns: int
        timed_in_c: int
        record_errors: int
        own_min_duration_ns: int
        arguments: tuple[tuple[str, str, bool], ...] | None
        attributes: dict[str, otel_types.AttributeValue]
        config: RuntimeConfig
        errors: int
        filename: str
        flags: int
        lineno: int
        module: str
        name: str
        params: tuple[str, ...]
        qualname: str
        sample_rate: float
        state: int

        def __enter__(self) -> None: ...

        def __exit__(
            self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
        ) -> Literal[False]: ...

        def ret(self, value: Any) -> Any: ...

        def ret_exit(self, value: Any) -> Any: ...

        def leave(self, value: Any) -> Any: ...

        def ret_leave(self, value: Any) -> Any: ...

    else:
        __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Site:
        concrete: type[Site] = cls
        if cls is Site:
            config = kwargs.get("config", args[9] if len(args) > 9 else None)
            use_c = config is None or getattr(config, "accelerated", True)
            concrete = AcceleratedSite if use_c and AcceleratedSite is not None else PythonSite
        if _SiteCore is not None and issubclass(concrete, _SiteCore):
            # A class of its own, whose ``__enter__``/``__exit__`` are the C methods already
            # bound to this site. A ``with`` looks both up on the manager's type at every
            # entry: a method descriptor (a class's plain method) is bound into a new method
            # object each time, where a bound builtin method is not a descriptor and comes
            # back as it is. That saves about 65 ns per call, for about 11 µs and 1.5 KB once
            # per site (sites are built at their function's first call).
            own = type(concrete.__name__, (concrete,), {"__slots__": (), "__module__": concrete.__module__})
            made: Site = _SiteCore.__new__(own)
            own.__enter__ = _SiteCore.__enter__.__get__(made)  # type: ignore[attr-defined]
            own.__exit__ = _SiteCore.__exit__.__get__(made)  # type: ignore[attr-defined]
            return made
        site: Site = object.__new__(concrete)
        site.frames = {}
        return site

    def __init__(
        self,
        module: str,
        qualname: str,
        filename: str,
        lineno: int,
        params: Sequence[str],
        flags: int,
        level: int,
        sample_rate: float,
        min_duration: float,
        config: RuntimeConfig,
    ) -> None:
        self.module = module
        self.qualname = qualname
        self.name = qualname
        self.filename = filename
        self.lineno = lineno
        self.params = tuple(params)
        self.flags = flags
        self.config = config
        self.level = level if config.active else OFF
        self.sample_rate = sample_rate
        self.own_min_duration_ns = int(min_duration * 1e9)
        self.errors_only(_ERRORS_ONLY[0])
        # Calls that left no span, by rule (see not_recorded()); the first three are the core's.
        self.calls_not_sampled = self.calls_short = self.calls_shed = self.calls_suppressed = 0
        # Which state is diffed: 0 none, 1 the instance (first parameter), 2 reducer-style.
        self.state = 0
        if level >= FULL and self.params:
            if flags & SiteFlags.INSTANCE_METHOD and flags & SiteFlags.STATEFUL_CLASS:
                self.state = 1
            elif flags & SiteFlags.REDUCER:
                self.state = 2
        self.errors = 0
        # Per argument captured (see _argument_plan), made at the first capture: a redactor
        # that fails must fail a call (counted), never the import of the module.
        self.arguments: tuple[tuple[str, str, bool], ...] | None = None
        # The stable semantic-convention names only (the namespace is part of
        # code.function.name): every attribute costs ~2.4 µs to encode for OTLP, per span.
        self.attributes: dict[str, otel_types.AttributeValue] = {
            "code.function.name": f"{module}.{qualname}",
            "code.file.path": filename,
            "code.line.number": lineno,
        }

    def __repr__(self) -> str:
        return f"Site({self.module}:{self.qualname}, level={self.level})"

    def errors_only(self, on: bool) -> None:
        """Record only the calls an exception escapes (the governor's emergency level), or
        every call again. Such a call is timed as if its ``min_duration`` were endless, which
        records nothing and costs what a call below ``min_duration`` costs, and is recorded
        after the fact if it raised. Calls in flight when this changes end by the rule they
        started under, or by the new one."""
        self.min_duration_ns = _NEVER_LONG_ENOUGH if on else self.own_min_duration_ns
        self.record_errors = 1 if on else 0
        # A timed call of a plain function keeps its start (an int) as its state, which the C
        # core can test without calling back; a generator's must count its yields.
        self.timed_in_c = 1 if self.min_duration_ns and not self.flags & SiteFlags.GENERATOR else 0

    def _records(self, elapsed_ns: int, exc_type: type[BaseException] | None) -> bool:
        """Whether a timed call that lasted ``elapsed_ns`` (and raised ``exc_type``) is recorded;
        one that is not is counted."""
        if elapsed_ns >= self.min_duration_ns or (self.record_errors and exc_type is not None):
            return True
        self._count_unrecorded()
        return False

    def _rate_leaves_out(self) -> bool:
        """Whether the site's ``sample_rate`` leaves this call out (then counted)."""
        if random() >= self.sample_rate:
            self.calls_not_sampled += 1
            return True
        return False

    def _count_unrecorded(self) -> None:
        """A timed call too short to record: below min_duration, or shed by "errors only"."""
        if self.record_errors:
            self.calls_shed += 1
        else:
            self.calls_short += 1

    # -- entry and exit -------------------------------------------------------------------------

    def _enter_slow(self, outer: Context | None, frame: FrameType) -> None:
        """A call the core could not settle: a generator timed for ``min_duration``, or a call
        that may be recorded (the sampling decision, then the recorded call is started)."""
        clock = SLOW_PATH
        clock.countdown -= 1
        if clock.countdown <= 0:
            clock.time(self._enter_slow, outer, frame)
            return
        try:
            if outer is None:
                outer = _context_get()
            if self.min_duration_ns:
                # A timed generator (both cores time plain functions themselves, with an int
                # start): whether it is recorded is decided when it proves slow.
                self.frames[frame] = _Timed(_time_ns(), outer)
                return
            parent = (_delegating_parent(frame) if _DELEGATING else None) or outer.get(_SPAN_KEY)
            kind = type(parent)
            if kind is Call:
                if self.sample_rate < 1.0 and self._rate_leaves_out():
                    return
                trace_id = parent.trace_id  # type: ignore[attr-defined]
                parent_id = parent.span_id  # type: ignore[attr-defined]
                parent_context = None
            elif kind is Unsampled or parent is _DROPPED_PARENT[0]:
                self.calls_not_sampled += 1
                return
            else:
                parent_context = parent.get_span_context() if parent is not None else None  # type: ignore[attr-defined]
                if parent_context is not None and parent_context.is_valid:
                    if not parent_context.trace_flags.sampled:
                        _DROPPED_PARENT[0] = parent
                        self.calls_not_sampled += 1
                        return
                    if self.sample_rate < 1.0 and self._rate_leaves_out():
                        return
                    trace_id = parent_context.trace_id
                    parent_id = parent_context.span_id
                else:
                    if outer.get(_SUPPRESS_KEY):
                        self.calls_suppressed += 1
                        return
                    trace_id = getrandbits(128) or 1
                    if not (self.config.root_sampled(trace_id, self.name) and random() < self.sample_rate):
                        marker = _Marker(outer)
                        self.frames[frame] = marker
                        marker.token = _CONTEXT.set(Context({**outer, _SPAN_KEY: Unsampled()}))
                        self.calls_not_sampled += 1
                        return
                    parent_id = 0
                    parent_context = None
            call = Call(self, trace_id, parent_id, parent_context)
            if self.level >= ARGS:
                self._capture_arguments(call, frame)
            self.frames[frame] = call
            # Call.attach, inlined: this runs on every recorded call.
            call.outer = outer
            inner = call.inner = Context({**outer, _SPAN_KEY: call})
            call.attached = True
            call.token = _context_set(inner)
        except Exception:
            self._internal_error()

    def _exit_slow(
        self,
        frame: FrameType,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """The end of a call that has a state: record it, restore the context, or (timed)
        record it after the fact if it proved slow."""
        clock = SLOW_PATH
        clock.countdown -= 1
        if clock.countdown <= 0:
            clock.time(self._exit_slow, frame, exc_type, exc, tb)
            return
        try:
            state = self.frames.pop(frame, None)
            if state is None:
                return
            kind = type(state)
            if kind is Call:
                if _DELEGATING:
                    _DELEGATING.pop(id(frame), None)
                if state.attached:  # Call.detach, inlined
                    state.attached = False
                    _restore(state.token, state.outer)
                self._finish(state, exc_type, exc, tb)
            elif kind is _Marker:
                _restore(state.token, state.outer)
            elif kind is int:
                # A plain function the Python core timed: its start ...
                self._record_timed(frame, state, False, None, exc_type, exc, tb)
            elif kind is tuple:
                # ... or (start, returned value) once it returned.
                self._record_timed(frame, state[0], True, state[1], exc_type, exc, tb)
            elif kind is _Timed and self._records(_time_ns() - state.start, exc_type):
                self._finish_timed(state, frame, exc_type, exc, tb)
        except Exception:
            self._internal_error()

    def _exit_timed(
        self,
        frame: FrameType,
        start: int,
        has_return: bool,
        returned: Any,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """The end of a timed plain function's call the C core kept (not in ``frames``) and
        did not settle: recorded after the fact."""
        clock = SLOW_PATH
        clock.countdown -= 1
        if clock.countdown <= 0:
            clock.time(self._record_timed, frame, start, has_return, returned, exc_type, exc, tb)
            return
        self._record_timed(frame, start, has_return, returned, exc_type, exc, tb)

    def _record_timed(
        self,
        frame: FrameType,
        start: int,
        has_return: bool,
        returned: Any,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """The end of a timed plain function's call, from either core: recorded after the fact
        if it lasted at least min_duration (or raised, where the site records errors)."""
        try:
            timed = _Timed(start, None)
            if has_return:
                timed.returned, timed.has_return = returned, True
            self._finish_timed(timed, frame, exc_type, exc, tb)
        except Exception:
            self._internal_error()

    def _ret_slow(self, frame: FrameType, value: Any) -> Any:
        """``return value`` while some call of this site has a state: remembered if it is the
        calling frame's, returned unchanged."""
        try:
            frames = self.frames
            call = frames.get(frame)
            if call is None:
                return value
            kind = type(call)
            if kind is int:
                # A timed call: keep the value beside its start, in case the call proves slow.
                frames[frame] = (call, value)
            elif kind is Call or kind is _Timed:
                call.returned = value
                call.has_return = True
        except Exception:
            self._internal_error()
        return value

    # -- return values and generators ----------------------------------------------------------

    def suspend(self, value: Any) -> Any:
        """Just before a ``yield``: give the consumer back its own context, count the yield."""
        if self.frames:
            try:
                call = self.frames.get(_getframe(1))
                if call is not None and (type(call) is Call or type(call) is _Timed):
                    call.yields += 1
                    if type(call) is Call:
                        call.detach()
            except Exception:
                self._internal_error()
        return value

    def resume(self, sent: Any) -> Any:
        """Just after a ``yield`` resumed: make the generator's span current again."""
        if self.frames:
            try:
                frame = _getframe(1)
                call = self.frames.get(frame)
                if call is not None and type(call) is Call:
                    if _DELEGATING:
                        _DELEGATING.pop(id(frame), None)
                    if not call.attached:
                        call.attach()
            except Exception:
                self._internal_error()
        return sent

    def delegate(self, iterable: Any) -> Any:
        """Before ``yield from``: the delegated-to iterator runs in the consumer's context, and
        a generator it starts is this call's child (see ``_DELEGATING``)."""
        if self.frames:
            try:
                frame = _getframe(1)
                call = self.frames.get(frame)
                if call is not None and type(call) is Call:
                    call.detach()
                    _DELEGATING[id(frame)] = call
            except Exception:
                self._internal_error()
        return iterable

    # -- capture -------------------------------------------------------------------------------

    def _capture_arguments(self, call: Call, frame: FrameType) -> None:
        if not self.params or not SHEDDING.capture_args:
            return
        values = frame.f_locals
        config = self.config
        if not SHEDDING.capture_state:
            pass  # shed under load (the governor's degraded level): no state diff
        elif self.state == 1:
            owner = values.get(self.params[0])
            call.state_owner = owner
            call.state_before = snapshot(owner, config.limits, config.redactor)
        elif self.state == 2:
            call.state_before = snapshot(values.get(self.params[0]), config.limits, config.redactor)
        arguments = self.arguments
        if arguments is None:
            arguments = self.arguments = self._argument_plan()
        if not arguments:
            return
        attributes: dict[str, otel_types.AttributeValue] = {}
        deferred = None
        for name, key, sensitive in arguments:
            if sensitive:
                attributes[key] = REDACTED
                continue
            value = values.get(name, _MISSING)
            if value is _MISSING:
                continue
            if type(value) in _DEFERRED_TYPES:
                # Rendered by the recorder's thread; the key keeps its place in the order.
                attributes[key] = ""
                if deferred is None:
                    deferred = call.deferred = []
                deferred.append((key, value))
            else:
                budget = call.budget
                if budget is None:
                    budget = call.budget = SpanBudget(config.limits.span_budget)
                attributes[key] = render(value, config.limits, budget, config.redactor)
        call.attributes = attributes

    def _argument_plan(self) -> tuple[tuple[str, str, bool], ...]:
        """Per argument captured (a method's instance is not): its name, its attribute key,
        and whether the name is sensitive, in which case its value is never read at all."""
        is_sensitive = self.config.redactor.is_sensitive_name
        return tuple(
            (name, ARGS_PREFIX + name, is_sensitive(name))
            for name in self.params[1 if self.flags & SiteFlags.METHOD else 0 :]
        )

    def _finish(
        self,
        call: Call,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        call.end_time = _time_ns()
        # Its contexts are done with. ``inner`` maps back to the call: a cycle that only the
        # cyclic collector frees, which would keep every finished call (and what its contexts
        # hold) alive until a full collection, long after its span was exported.
        call.inner = None
        call.outer = None
        call.token = None
        config = self.config
        if exc_type is not None and exc is not None:
            if exc_type is GeneratorExit:
                call.closed = True
            else:
                message = exception_message(exc)
                call.exception = (exception_type_name(exc_type), message, stack_summary(tb))
        if self.level >= ARGS and SHEDDING.capture_args:
            attributes = call.attributes
            if attributes is None:
                attributes = call.attributes = {}
            returned = call.has_return and exc_type is None
            if returned:
                value = call.returned
                if type(value) in _DEFERRED_TYPES:
                    attributes[RETURN_VALUE] = ""
                    if call.deferred is None:
                        call.deferred = []
                    call.deferred.append((RETURN_VALUE, value))
                else:
                    budget = call.budget
                    if budget is None:
                        budget = call.budget = SpanBudget(config.limits.span_budget)
                    attributes[RETURN_VALUE] = render(value, config.limits, budget, config.redactor)
            # The state after: the instance's own (it changed in place, even if the call raised),
            # or for a reducer the new state it returned.
            if call.state_before is not None and (self.state == 1 or (self.state == 2 and returned)):
                owner = call.state_owner if self.state == 1 else call.returned
                after = snapshot(owner, config.limits, config.redactor)
                attributes[STATE_DIFF] = _diff(call.state_before, after).to_json(config.limits.max_state_diff)
        call.returned = None
        call.state_owner = None
        if call.generation != _process.generation:
            # Started before this process was forked: the parent records it. Calls made by the
            # child inside it still name it as their parent.
            return
        config.recorder.submit(call)

    def _finish_timed(
        self,
        timed: _Timed,
        frame: FrameType,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._records(_time_ns() - timed.start, exc_type):
            return
        # The call proved slow: record it after the fact, under the span that was current
        # when it started. Its arguments are read now (as bound at the end of the call).
        outer = timed.outer if timed.outer is not None else _context_get()
        parent = outer.get(_SPAN_KEY)
        if type(parent) is Call:
            trace_id, parent_id, parent_context = parent.trace_id, parent.span_id, None
        elif type(parent) is Unsampled:
            self.calls_not_sampled += 1
            return
        else:
            parent_context = parent.get_span_context() if parent is not None else None  # type: ignore[attr-defined]
            if parent_context is not None and parent_context.is_valid:
                if not parent_context.trace_flags.sampled:
                    self.calls_not_sampled += 1
                    return
                trace_id, parent_id = parent_context.trace_id, parent_context.span_id
            else:
                if outer.get(_SUPPRESS_KEY):
                    self.calls_suppressed += 1
                    return
                trace_id, parent_id, parent_context = getrandbits(128) or 1, 0, None
                if not self.config.root_sampled(trace_id, self.name):
                    self.calls_not_sampled += 1
                    return
        if self.sample_rate < 1.0 and random() >= self.sample_rate:
            self.calls_not_sampled += 1
            return
        call = Call(self, trace_id, parent_id, parent_context)
        call.start = timed.start
        call.returned, call.has_return, call.yields = timed.returned, timed.has_return, timed.yields
        if self.level >= ARGS:
            self._capture_arguments(call, frame)
            call.state_before = None
        self._finish(call, exc_type, exc, tb)

    def _internal_error(self) -> None:
        self.errors += 1
        if self.errors == 1:
            _logger.warning(
                "execscope: recording %s:%s failed; the call ran normally",
                self.module,
                self.qualname,
                exc_info=True,
            )
        self.config.recorder.count_internal_error()


class _PythonCore:
    """The pure-Python core of a :class:`Site`: what the C core does, for interpreters where it
    is not compiled and for ``RuntimeConfig(accelerated=False)``."""

    __slots__ = (
        "calls_not_sampled",
        "calls_shed",
        "calls_short",
        "frames",
        "level",
        "min_duration_ns",
        "record_errors",
        "timed_in_c",
    )

    def __enter__(self: Any) -> None:
        if not self.level:
            return
        try:
            outer = _context_get()
            parent = outer.get(_SPAN_KEY)
            if type(parent) is Unsampled or parent is _DROPPED_PARENT[0]:
                self.calls_not_sampled += 1
                return  # below a dropped local root, or a not-sampled span of another tracer
            if self.timed_in_c:
                self.frames[_getframe(1)] = _time_ns()
                return
            self._enter_slow(outer, _getframe(1))
        except Exception:
            self._internal_error()

    def __exit__(
        self: Any, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if self.frames:
            self._exit_from(_getframe(1), exc_type, exc, tb)
        return False

    def _exit_from(
        self: Any,
        frame: FrameType,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            state = self.frames.get(frame)
            if state is None:
                return
            # Most timed calls stay below min_duration: decided here, without another call.
            kind = type(state)
            if kind is int or kind is tuple:
                start = state if kind is int else state[0]
                if _time_ns() - start < self.min_duration_ns and not (self.record_errors and exc_type):
                    del self.frames[frame]
                    self._count_unrecorded()
                    return
            self._exit_slow(frame, exc_type, exc, tb)
        except Exception:
            self._internal_error()

    def ret(self: Any, value: Any) -> Any:
        """``return value`` of the rewritten function: remembered, returned unchanged."""
        if self.frames:
            return self._ret_slow(_getframe(1), value)
        return value

    def ret_exit(self: Any, value: Any) -> Any:
        """A ``return value`` with nothing of the function's own left to run before ``__exit__``
        (no enclosing ``try`` with a ``finally``, no enclosing ``with``): a timed call ends
        here, and one below min_duration is settled now, without keeping its value."""
        if self.frames:
            return self._ret_exit_from(_getframe(1), value)
        return value

    def _ret_exit_from(self: Any, frame: FrameType, value: Any) -> Any:
        try:
            state = self.frames.get(frame)
            if type(state) is int and _time_ns() - state < self.min_duration_ns:
                del self.frames[frame]
                self._count_unrecorded()
                return value
        except Exception:
            self._internal_error()
        return self._ret_slow(frame, value)

    def leave(self: Any, value: Any) -> Any:
        """The call ends at a ``return`` whose value is not kept: ``__exit__`` with no exception."""
        if self.frames:
            self._exit_from(_getframe(1), None, None, None)
        return value

    def ret_leave(self: Any, value: Any) -> Any:
        """The call ends at ``return value``: ``ret_exit``, then ``__exit__`` with no exception."""
        if self.frames:
            frame = _getframe(1)
            value = self._ret_exit_from(frame, value)
            if self.frames:
                self._exit_from(frame, None, None, None)
        return value


_SITE_SLOTS: Final = (
    "calls_suppressed",
    "own_min_duration_ns",
    "arguments",
    "attributes",
    "config",
    "errors",
    "filename",
    "flags",
    "lineno",
    "module",
    "name",
    "params",
    "qualname",
    "sample_rate",
    "state",
)


class PythonSite(_PythonCore, Site):
    __slots__ = _SITE_SLOTS


def _load_c_core() -> type | None:
    """The C core, configured with what its fast path reads; None where it cannot be used."""
    var = _CONTEXT.var
    if var is None:
        return None  # a custom OTEL_PYTHON_CONTEXT: only the public API reaches it
    try:
        from execscope.autotrace import _speedups  # type: ignore[attr-defined]
    except ImportError:
        return None
    _speedups.configure(var, _SPAN_KEY, Unsampled, _DROPPED_PARENT, Call)
    core: type = _speedups.SiteCore
    return core


_SiteCore: Final[Any] = _load_c_core()
#: The site class with the C core, or None where it is not available (see ``accelerated()``).
AcceleratedSite: type[Site] | None = (
    type("AcceleratedSite", (_SiteCore, Site), {"__slots__": _SITE_SLOTS, "__module__": __name__})
    if _SiteCore is not None
    else None
)


def accelerated() -> bool:
    """Whether rewritten functions can run on the C core here (it was compiled and loads)."""
    return AcceleratedSite is not None


Descriptor = tuple[str, int, tuple[str, ...], int, int, float, float]


class _NoSites:
    """What a key that was never registered gives: every index is a site that records nothing.
    Code of a rewritten function run where its module was not (a function rebuilt from its
    code object in another process) then runs as written."""

    __slots__ = ("site",)

    def __init__(self) -> None:
        self.site = Site("", "", "", 0, (), 0, OFF, 1.0, 0.0, RuntimeConfig())

    def __getitem__(self, index: int) -> Site:
        return self.site


_NO_SITES: Final = _NoSites()


def _parse_descriptor(line: str) -> Descriptor:
    """One line of the text the rewriter's ``describe_sites`` writes: the ``repr`` of one
    descriptor, e.g. ``('C.m', 12, ('self', 'x'), 7, 3, 1.0, 0.0)``. Its names are identifiers,
    written between quotes as they are, with no comma or parenthesis in them: splitting at the
    separators reads the descriptor back exactly (``literal_eval`` would take ~10 µs a line)."""
    head, _, rest = line[1:-1].partition(", (")
    qualname, lineno = head.rsplit(", ", 1)
    names, _, numbers = rest.partition("), ")
    params = tuple(name.strip()[1:-1] for name in names.split(",") if name.strip())
    flags, level, rate, min_duration = numbers.split(", ")
    return (qualname[1:-1], int(lineno), params, int(flags), int(level), float(rate), float(min_duration))


class _BuildsSite:
    """``__enter__`` and ``__exit__`` of a :class:`_PendingSite`. A ``with`` looks both up on
    its manager's type when it starts, as descriptors, so the lookup is where the real site is
    built: it returns that site's bound method, which the interpreter then calls from the
    rewritten function's own frame, the frame a site takes for its caller's."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, pending: _PendingSite | None, owner: type | None = None) -> Any:
        if pending is None:
            return self
        return getattr(pending.resolve(), self.name)


class _PendingSite:
    """Stands in a module's list in the registry for a site not built yet. The first ``with``
    of its function builds the :class:`Site` and puts it in its place, so from then on the
    rewritten code finds the real site by the same attribute load and list index as if it had
    been built at import. Any other attribute (``ret``, ``suspend``, ``resume``, ``delegate``,
    ``qualname``...) is the real site's."""

    __slots__ = ("_index", "_module")

    __enter__ = _BuildsSite("__enter__")
    __exit__ = _BuildsSite("__exit__")

    def __init__(self, module: _ModuleSites, index: int) -> None:
        self._module = module
        self._index = index

    def resolve(self) -> Site:
        return self._module.site(self._index)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    def __repr__(self) -> str:
        return f"<site {self._index} of {self._module.module}, built when first used>"


class _ModuleSites:
    """One version of a rewritten module as its first statement registered it: what its sites
    are built from, and its list in the registry.

    Building a :class:`Site` per function at import cost every import ~1.5 µs per function,
    most of a cached import's overhead, for functions a run may never call. So the list is made
    when the module's code first looks it up (:func:`_lookup`), holding :class:`_PendingSite`
    placeholders, and each site is built when its function is first called. Threads that race
    to build one agree on a single site through ``dict.setdefault`` (atomic), with no lock a
    signal handler calling a rewritten function could deadlock on.
    """

    __slots__ = ("_built", "_described", "_lines", "_list", "config", "filename", "module")

    def __init__(
        self, module: str, filename: str, described: str | tuple[Descriptor, ...], config: RuntimeConfig
    ) -> None:
        self.module = module
        self.filename = filename
        self.config = config
        self._described = described
        self._lines: list[str] | None = None
        self._list: dict[int, list[Any]] = {}  # the list, under key 0 once made
        self._built: dict[int, Site] = {}

    def _descriptors(self) -> Sequence[str] | tuple[Descriptor, ...]:
        described = self._described
        if not isinstance(described, str):
            return described
        if self._lines is None:
            self._lines = described.split("\n") if described else []
        return self._lines

    def sites(self) -> list[Any]:
        """The module's list in the registry: each function's :class:`Site` once built, a
        :class:`_PendingSite` until then."""
        made = self._list.get(0)
        if made is None:
            pending = [_PendingSite(self, index) for index in range(len(self._descriptors()))]
            made = self._list.setdefault(0, pending)
        return made

    def site(self, index: int) -> Site:
        """The site of the function numbered ``index``, built (and put in the list) if it was not."""
        site = self._built.get(index)
        if site is None:
            try:
                described = self._descriptors()[index]
                qualname, lineno, params, flags, level, rate, min_duration = (
                    _parse_descriptor(described) if isinstance(described, str) else described
                )
                where = (self.module, qualname, self.filename, lineno)
                built = Site(*where, params, flags, level, rate, min_duration, self.config)
            except Exception:  # the function runs as written rather than fail the program
                _logger.warning(
                    "execscope: the site of function %d of %s could not be built; it is not recorded",
                    index,
                    self.module,
                    exc_info=True,
                )
                self.config.recorder.count_internal_error()
                built = _NO_SITES.site
            site = self._built.setdefault(index, built)
            self.sites()[index] = site
        return site

    def built_sites(self) -> list[Site]:
        """The sites built so far (not building any)."""
        return list(self._built.values())

    def built(self) -> list[Site]:
        """The module's list in the registry, with every site built."""
        sites = self.sites()
        for index in range(len(sites)):
            self.site(index)
        return sites


def _lookup(key: str) -> list[Any] | _NoSites:
    """The registry's ``__getattr__``, run when rewritten code looks up a key that is not (yet)
    an attribute: a registered module's list is made and published as the attribute, so later
    lookups find it directly; a key never registered gives sites that record nothing."""
    if key.startswith("__"):
        raise AttributeError(key)
    module = _MODULES.get(key)
    if module is None:
        return _NO_SITES
    try:
        sites = module.sites()
    except Exception:  # nothing may raise into the program
        _logger.warning("execscope: the sites of %s could not be made", module.module, exc_info=True)
        return _NO_SITES
    setattr(SITES, key, sites)
    if _MODULES.get(key) is not module:  # registered again meanwhile (a reload): publish that one
        vars(SITES).pop(key, None)
    return sites


def _install_registry() -> types.ModuleType:
    """``__execscope_sites__`` in ``builtins``: a module whose attribute ``<key>`` is the list
    of one rewritten module's sites, published by its ``__getattr__`` (:func:`_lookup`) at the
    first lookup; an unknown key gives sites that record nothing."""
    import builtins

    registry = getattr(builtins, "__execscope_sites__", None)
    if not isinstance(registry, types.ModuleType):  # else this module imported twice: keep one
        registry = types.ModuleType("__execscope_sites__", "Sites of rewritten modules, by module key.")
        builtins.__execscope_sites__ = registry  # type: ignore[attr-defined]
    registry.__getattr__ = _lookup  # type: ignore[method-assign]
    return registry


SITES: Final = _install_registry()
#: Registered modules by key, kept on the registry so that a second copy of this module
#: (imported twice) publishes the modules the first one registered.
_MODULES: Final[dict[str, _ModuleSites]] = vars(SITES).setdefault("__modules__", {})
_BY_MODULE: dict[str, _ModuleSites] = {}


def register(key: str, module: str, filename: str, descriptors: str | Iterable[Descriptor]) -> None:
    """Called by the first statement of every rewritten module: registers its sites under
    ``key`` (in the order of the indexes the rewriter emitted), described by the rewriter's
    ``describe_sites`` text or by descriptor tuples, with the runtime configuration current
    now. Nothing is built here: see :class:`_ModuleSites`."""
    sites = _ModuleSites(
        module, filename, descriptors if isinstance(descriptors, str) else tuple(descriptors), _CONFIG
    )
    _MODULES[key] = sites
    vars(SITES).pop(key, None)  # the list of a version with the same source (a reload)
    _BY_MODULE[module] = sites


def _follow_shedding(level: Level) -> None:
    """At the governor's emergency level ("errors only"), every site built so far, and every
    one built from now on, records only the calls an exception escapes: a call that returns
    costs what one below ``min_duration`` costs, instead of being recorded and then dropped
    by the tail sampler. Below it, every site records again."""
    on = level >= Level.EMERGENCY
    if on == _ERRORS_ONLY[0]:
        return
    _ERRORS_ONLY[0] = on
    for module in list(_MODULES.values()):
        for site in list(module.built_sites()):
            site.errors_only(on)


SHEDDING.on_change(_follow_shedding)


#: Why a call of a rewritten function left no span, by the rule that decided it.
NOT_RECORDED_REASONS: Final = ("not_sampled", "below_min_duration", "errors_only", "suppressed")


def not_recorded() -> dict[str, int]:
    """Calls of rewritten functions that left no span, by reason, since start: their trace was
    not sampled (head sampling, a site's ``sample_rate``, or under a not-sampled span); they
    ended before ``min_duration``; they returned under the governor's "errors only" level; or
    instrumentation was suppressed where they were called. Counted per site on the hot path
    (an integer bump), summed here over every site built."""
    not_sampled = short = shed = suppressed = 0
    for module in list(_MODULES.values()):
        for site in module.built_sites():
            not_sampled += site.calls_not_sampled
            short += site.calls_short
            shed += site.calls_shed
            suppressed += site.calls_suppressed
    return dict(zip(NOT_RECORDED_REASONS, (not_sampled, short, shed, suppressed), strict=True))


def sites_of(module: str) -> list[Site] | None:
    """The sites of the most recently executed rewritten module named ``module``, all built:
    the list its code uses."""
    sites = _BY_MODULE.get(module)
    return None if sites is None else sites.built()


def sites_for(module: str, filename: str, descriptors: Iterable[Descriptor]) -> list[Site]:
    """One :class:`Site` per descriptor ``(qualname, line, parameters, flags, level,
    sample_rate, min_duration)``, with the runtime configuration current now."""
    config = _CONFIG
    return [
        Site(module, qualname, filename, lineno, params, flags, level, rate, min_duration, config)
        for qualname, lineno, params, flags, level, rate, min_duration in descriptors
    ]


__all__ = [
    "ARGS",
    "FULL",
    "OFF",
    "TIMING",
    "Call",
    "RuntimeConfig",
    "Site",
    "Unsampled",
    "configure",
    "current_config",
    "exception_event_attributes",
    "format_stacktrace",
    "not_recorded",
    "register",
    "sites_for",
    "sites_of",
]
