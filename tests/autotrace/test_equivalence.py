"""A rewritten module behaves exactly as the original.

Each case below is a module source and a scenario (a function of the imported module). The
scenario runs against the module imported plainly and against the same source imported
through the import hook at level full while recording into memory; what it returns or raises
(values, exception types and arguments, cause/context chains, traceback frames with their
files, lines, columns and function names) must be identical. The rewritten run must also have
recorded the spans the case names (so a case cannot pass by not rewriting) without any
internal recording error, and the plain run must have raised exactly what the case declares
(so a scenario cannot pass by failing the same way twice).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import gc
import inspect
import logging
import operator
import pickle
import sys
import textwrap
import types
import typing
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from equivalence_helpers import (
    Scenario,
    acatch,
    catch,
    drive,
    exhaust,
    first_difference,
    run_both_ways,
    stack_depth,
    trace_events,
    type_name,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    scenario: Scenario
    spans: tuple[str, ...]
    raises: type[BaseException] | None
    since: tuple[int, int]
    xfail: str | None
    internal_errors: bool

    def param(self) -> Any:
        marks: list[Any] = []
        if sys.version_info < self.since:
            marks.append(pytest.mark.skip(reason=f"needs Python {self.since[0]}.{self.since[1]}"))
        if self.xfail is not None:
            marks.append(pytest.mark.xfail(strict=True, reason=self.xfail))
        return pytest.param(self, id=self.name, marks=marks)


CASES: list[Case] = []


def case(
    source: str,
    *,
    spans: tuple[str, ...],
    raises: type[BaseException] | None = None,
    since: tuple[int, int] = (3, 10),
    xfail: str | None = None,
    internal_errors: bool = False,
) -> Callable[[Scenario], Scenario]:
    """Register the decorated scenario, run against ``source``; the case is named after it.
    ``internal_errors``: the recording itself may fail (and be counted), e.g. at the recursion
    limit, as long as the program does not notice."""

    def register(scenario: Scenario) -> Scenario:
        CASES.append(
            Case(
                scenario.__name__,
                textwrap.dedent(source),
                scenario,
                spans,
                raises,
                since,
                xfail,
                internal_errors,
            )
        )
        return scenario

    return register


# -- results, exceptions and tracebacks --------------------------------------------------------


@case(
    """
    class Invalid(Exception):
        def __init__(self, field, reason):
            super().__init__(field, reason)
            self.field = field

    def add(a, b):
        return a + b

    def divide(a, b):
        return a / b

    def lookup(table, key):
        return table[key]

    def validate(value):
        if value < 0:
            raise Invalid("value", f"{value} is negative")
        return value
    """,
    spans=("add", "divide", "lookup", "validate", "Invalid.__init__"),
)
def results_and_exceptions_are_the_same(m: ModuleType) -> object:
    return (
        m.add(1, 2),
        m.add("a", "b"),
        catch(m.add, 1, "x"),
        m.divide(1, 4),
        catch(m.divide, 1, 0),
        catch(m.lookup, {}, "missing"),
        m.validate(3),
        catch(m.validate, -1),
        getattr(catch(m.validate, -1), "field", None),
    )


@case(
    """
    import traceback

    def parse(text):
        fields = text.split(",")
        return [
            int(field)
            for field in fields
        ]

    def load(lines):
        total = 0
        for line in lines:
            total += sum(parse(line))
        return total

    def guarded(lines):
        try:
            return load(lines)
        finally:
            lines.clear()

    def report(lines):
        try:
            guarded(lines)
        except ValueError as error:
            return "".join(traceback.format_exception(error))

    def compute(x):
        return (
            x
            + 1 / x
        )
    """,
    spans=("parse", "load", "guarded", "report", "compute"),
)
def tracebacks_point_at_the_original_file_lines_and_columns(m: ModuleType) -> object:
    return catch(m.load, ["1,2", "3,x"]), m.report(["4", "5,,6"]), catch(m.compute, 0)


@case(
    """
    def outer(n):
        return inner(n) * 2

    def inner(n):
        if n > 2:
            raise OverflowError(f"{n} is too big")
        return n
    """,
    spans=("outer", "inner"),
    raises=OverflowError,
)
def an_exception_escaping_a_call_chain_is_identical(m: ModuleType) -> object:
    assert m.outer(1) == 2
    return m.outer(3)


@case(
    """
    import sys

    def current():
        return sys.exc_info()[0], repr(sys.exc_info()[1])

    def handler():
        try:
            raise KeyError("outer")
        except KeyError:
            return current()

    def fail():
        raise ValueError("inner")

    def fail_while_handling():
        try:
            raise KeyError("outer")
        except KeyError:
            fail()
    """,
    spans=("current", "handler", "fail", "fail_while_handling"),
)
def the_exception_being_handled_is_visible_to_called_functions(m: ModuleType) -> object:
    return m.current(), m.handler(), catch(m.fail_while_handling)


@case(
    """
    class AppError(Exception):
        pass

    def load(text):
        try:
            return int(text)
        except ValueError as error:
            raise AppError(f"bad number {text!r}") from error

    def hide(text):
        try:
            return int(text)
        except ValueError:
            raise AppError("hidden") from None

    def implicit(text):
        try:
            return int(text)
        except ValueError:
            return undefined

    def replaced_in_finally():
        try:
            raise KeyError("first")
        finally:
            raise LookupError("second")

    def noted():
        error = ValueError("with notes")
        error.add_note("first note")
        raise error
    """,
    spans=("load", "hide", "implicit", "replaced_in_finally", "noted"),
    since=(3, 11),
)
def raise_from_keeps_cause_context_and_notes(m: ModuleType) -> object:
    return (
        m.load("3"),
        catch(m.load, "x"),
        catch(m.hide, "x"),
        catch(m.implicit, "x"),
        catch(m.replaced_in_finally),
        catch(m.noted),
    )


@case(
    """
    def collect(values):
        errors = []
        for value in values:
            try:
                if value < 0:
                    raise ValueError(value)
                if value == 0:
                    raise ZeroDivisionError("zero")
            except Exception as error:
                errors.append(error)
        if errors:
            raise ExceptionGroup("invalid values", errors)
        return "ok"

    def triage(values):
        handled = []
        try:
            collect(values)
        except* ValueError as group:
            handled.append(("value", [str(e) for e in group.exceptions]))
        except* ZeroDivisionError as group:
            handled.append(("zero", len(group.exceptions)))
        return handled

    def partial(values):
        try:
            collect(values)
        except* ValueError:
            pass
        return "only values"
    """,
    spans=("collect", "triage", "partial"),
    since=(3, 11),
)
def exception_groups_and_except_star(m: ModuleType) -> object:
    return (
        m.collect([1, 2]),
        catch(m.collect, [-1, 0, -2]),
        m.triage([-1, 0, 3]),
        m.triage([]),
        m.partial([-1]),
        catch(m.partial, [-1, 0]),
    )


@case(
    """
    def flow(kind):
        log = []
        try:
            log.append("try")
            if kind == "raise":
                raise ValueError("v")
            if kind == "return":
                return "from try", log
        except ValueError:
            log.append("except")
            return "from except", log
        else:
            log.append("else")
        finally:
            log.append("finally")
            if kind == "override":
                return "from finally", log
        return "end", log

    def swallow():
        try:
            raise KeyError("lost")
        finally:
            return "swallowed"

    def loop_control():
        out = []
        for i in range(5):
            try:
                if i == 1:
                    continue
                if i == 3:
                    break
                out.append(i)
            finally:
                out.append(f"finally {i}")
        return out
    """,
    spans=("flow", "swallow", "loop_control"),
)
def try_except_else_finally_flows(m: ModuleType) -> object:
    return [m.flow(kind) for kind in ("plain", "raise", "return", "override")], m.swallow(), m.loop_control()


@case(
    """
    def down(n):
        if n == 0:
            return 0
        return 1 + down(n - 1)
    """,
    spans=("down",),
)
def recursion_close_to_the_limit_works(m: ModuleType) -> object:
    limit = sys.getrecursionlimit()
    depth = limit - stack_depth() - 50
    assert depth > limit * 3 // 4, "the test itself runs too deep to say anything"
    return m.down(depth) == depth


@case(
    """
    def forever(n):
        return forever(n + 1)
    """,
    spans=("forever",),
    internal_errors=True,
)
def unbounded_recursion_raises_recursion_error(m: ModuleType) -> object:
    try:
        m.forever(0)
    except RecursionError as error:
        return type(error).__name__, m.forever.__name__
    return "no error"


@case(
    """
    def straight(a):
        b = a + 1
        return b

    def branches(a):
        if a > 0:
            result = "positive"
        else:
            result = "other"
        return result

    def falls_off_the_end(items):
        for item in items:
            items.count(item)

    def joins(a):
        if a:
            a += 1
        else:
            a -= 1

    def raises(a):
        b = a
        raise ValueError(b)

    def handles(a):
        try:
            return 1 / a
        except ZeroDivisionError:
            return None
        finally:
            a = 0

    def numbers(n):
        for i in range(n):
            yield i
        return n

    def documented():
        '''Only a docstring.'''

    def declares_global(a):
        global counter
        counter = a

    def only_global():
        global counter

    def closure(a):
        def bump():
            nonlocal a
            a += 1
            return a
        return bump()
    """,
    spans=(
        "straight",
        "branches",
        "falls_off_the_end",
        "joins",
        "raises",
        "handles",
        "numbers",
        "documented",
    ),
)
def tracers_see_the_original_line_events(m: ModuleType) -> object:
    calls = (
        (m.straight, 1),
        (m.branches, 1),
        (m.branches, -1),
        (m.falls_off_the_end, [1, 2]),
        (m.joins, 0),
        (m.joins, 1),
        (m.raises, 1),
        (m.handles, 0),
        (m.handles, 2),
        (lambda n: list(m.numbers(n)), 2),
        (lambda _: m.documented(), None),
        (m.declares_global, 1),
        (lambda _: m.only_global(), None),
        (m.closure, 1),
    )
    return [trace_events(m, function, argument) for function, argument in calls]


@case(
    """
    def spread(x):
        return (
            x
            + 1
        )

    def spread_yields(x):
        received = yield (
            x
            + 1
        )
        total = yield from iter(
            [x, received]
        )
        return total

    def decorates(x):
        @staticmethod
        def inner():
            return x
        return inner

    def matches(x):
        match (
            x
        ):
            case 1:
                return "one"
        return None

    def branches(a):
        try:
            return (a if a > 0 else 0)
        except ValueError:
            return None

    def opens(path):
        with open(
            path
        ) as handle:
            return handle.read()
    """,
    spans=("spread", "spread_yields", "decorates", "matches", "branches", "opens"),
)
def tracers_see_the_original_line_events_inside_multi_line_statements(m: ModuleType) -> object:
    return (
        trace_events(m, m.decorates, 1),
        trace_events(m, m.matches, 1),
        trace_events(m, m.branches, 1),
        trace_events(m, m.opens, __file__),
        trace_events(m, m.spread, 1),
        trace_events(m, lambda: drive(m.spread_yields(1), ("send", None), ("send", "r"), ("send", None))),
    )


# -- function objects: names, signatures, defaults, closures, frames ---------------------------


@case(
    """
    from typing import Optional

    def f(a: int, /, b: "str" = "x", *args: float, c: Optional[int] = None, d=[], **kw: bytes) -> list:
        '''Docs of f.

        More lines.
        '''
        d.append(a)
        return [a, b, args, c, list(d), kw]

    class K:
        def method(self, x: int = 3) -> "K":
            "One-line doc."
            return self

        async def coro(self, *, y=lambda: 1):
            return y()

    def undocumented():
        return 1
    """,
    spans=("f", "K.method", "K.coro", "undocumented"),
)
def names_signatures_docs_annotations_and_defaults_are_kept(m: ModuleType) -> object:
    functions = (m.f, m.K.method, m.K.coro, m.undocumented)
    metadata = [
        (
            fn.__name__,
            fn.__qualname__,
            fn.__module__ == m.__name__,
            fn.__doc__,
            inspect.getdoc(fn),
            fn.__annotations__,
            fn.__defaults__,
            fn.__kwdefaults__,
            inspect.signature(fn),
            fn.__dict__,
        )
        for fn in functions
    ]
    k = m.K()
    calls = (m.f(1), m.f(2, "b", 3.0, c=4, z=b"z"), k.method() is k, asyncio.run(k.coro()), m.undocumented())
    return metadata, calls


@case(
    '''
    """Module docstring."""
    from __future__ import annotations

    import typing

    def f(x: Later, y: list[Later] | None = None) -> dict[str, Later]:
        return {"x": x}

    class Later:
        count: int = 0

        def method(self, other: Later) -> Later:
            return other
    ''',
    spans=("f", "Later.method"),
)
def postponed_annotations_stay_strings(m: ModuleType) -> object:
    later = m.Later()
    return (
        m.__doc__,
        m.f.__annotations__,
        m.Later.method.__annotations__,
        m.Later.__annotations__,
        typing.get_type_hints(m.f),
        typing.get_type_hints(m.Later.method),
        m.f(1),
        later.method(later) is later,
    )


@case(
    """
    evaluated = []

    def default(name):
        evaluated.append(name)
        return name

    def f(a=default("a"), *, b=default("b")):
        return a, b

    evaluated.append("after f")

    def outer():
        def inner(x=default("inner")):
            return x
        return inner

    def appends(item, bucket=[]):
        bucket.append(item)
        return bucket
    """,
    spans=("default", "f", "outer", "outer.<locals>.inner", "appends"),
)
def defaults_are_evaluated_once_when_the_function_is_defined(m: ModuleType) -> object:
    at_import = list(m.evaluated)
    return (
        at_import,
        m.f(),
        m.f("x", b="y"),
        m.outer()(),
        m.outer()(),
        list(m.evaluated),
        [list(m.appends(i)) for i in range(3)],
    )


@case(
    """
    def counter(start=0):
        count = start

        def increment(step=1):
            nonlocal count
            count += step
            return count

        def peek():
            return count

        return increment, peek

    def make_adders():
        early = [lambda x, i=i: x + i for i in range(3)]
        late = [lambda x: x + i for i in range(3)]
        return early, late

    def cells():
        value = "v"

        def read():
            return value

        return read.__closure__[0].cell_contents, read.__code__.co_freevars, cells.__code__.co_cellvars

    def late_binding():
        functions = []
        for n in range(3):
            def get():
                return n
            functions.append(get)
        return [f() for f in functions]
    """,
    spans=("counter", "counter.<locals>.increment", "counter.<locals>.peek", "cells", "late_binding"),
)
def closures_and_nonlocal_share_cells(m: ModuleType) -> object:
    increment, peek = m.counter(10)
    early, late = m.make_adders()
    return (
        increment(),
        increment(5),
        peek(),
        [f(100) for f in early],
        [f(100) for f in late],
        m.cells(),
        m.late_binding(),
    )


@case(
    """
    import inspect
    import sys

    def whoami():
        frame = sys._getframe()
        caller = sys._getframe(1)
        return (
            frame.f_code.co_name,
            getattr(frame.f_code, "co_qualname", None),
            frame.f_lineno,
            caller.f_code.co_name,
            caller.f_lineno,
            frame.f_back is caller,
        )

    def caller():
        return whoami()

    def peek_caller():
        return dict(sys._getframe(1).f_locals)

    def caller_with_locals(argument):
        secret = argument * 2
        return peek_caller()

    def back_chain():
        frame = inspect.currentframe()
        names = []
        while frame is not None and frame.f_code.co_filename == __file__:
            names.append((frame.f_code.co_name, frame.f_lineno))
            frame = frame.f_back
        return names

    def nested():
        return back_chain()

    def generator_caller():
        yield sys._getframe(1).f_code.co_name
        yield sys._getframe().f_lineno

    def consume():
        return list(generator_caller())

    class Widget:
        def frame_of_method(self):
            return sys._getframe().f_code.co_name, sys._getframe(1).f_code.co_name
    """,
    spans=("whoami", "caller", "peek_caller", "caller_with_locals", "nested", "consume", "generator_caller"),
)
def getframe_sees_the_function_and_its_real_caller(m: ModuleType) -> object:
    return (
        m.caller(),
        m.caller_with_locals(21),
        m.nested(),
        m.consume(),
        m.Widget().frame_of_method(),
    )


@case(
    """
    import logging
    import traceback
    import warnings

    logger = logging.getLogger("equivalence")

    def deprecated():
        warnings.warn("use something else", DeprecationWarning, stacklevel=2)
        return "deprecated"

    def caller():
        return deprecated()

    def log_something():
        logger.warning("from %s", "log_something")

    def stack():
        return [(entry.name, entry.lineno, entry.line) for entry in traceback.extract_stack(limit=3)]

    def calls_stack():
        return stack()
    """,
    spans=("deprecated", "caller", "log_something", "stack", "calls_stack"),
)
def warnings_logging_and_stack_extraction_name_the_same_callers(m: ModuleType) -> object:
    records: list[Any] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    m.logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m.caller()
        m.log_something()
    finally:
        m.logger.removeHandler(handler)
    return (
        [(w.filename, w.lineno, str(w.message), w.category) for w in caught],
        [(r.pathname, r.lineno, r.funcName, r.getMessage()) for r in records],
        m.calls_stack(),
    )


@case(
    """
    def f(a, b=2, *args, **kwargs):
        first = sorted(locals())
        c = a + b
        second = dict(locals())
        del c
        third = sorted(locals())
        return first, second, third

    class C:
        def m(self, x):
            super()
            return sorted(locals())

    def gen(n):
        total = 0
        for i in range(n):
            total += i
            yield dict(locals())

    def with_closure():
        v = 1

        def inner():
            return v

        return sorted(locals()), sorted(inner.__code__.co_freevars)

    def held(a):
        snapshot = locals()
        later = a
        return sorted(snapshot), later

    def evaluate(a, b):
        return eval("a * b + len(locals())")

    def exec_into_locals(a):
        exec("injected = a * 2")
        return locals().get("injected")
    """,
    spans=("f", "C.m", "gen", "with_closure", "held", "evaluate", "exec_into_locals"),
)
def locals_are_exactly_the_functions_own(m: ModuleType) -> object:
    return (
        m.f(1),
        m.f(1, 5, 6, k=7),
        m.C().m(3),
        list(m.gen(3)),
        m.with_closure(),
        m.held(4),
        m.evaluate(3, 4),
        m.exec_into_locals(5),
    )


@case(
    """
    import functools

    calls = []

    def logged(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            calls.append(function.__name__)
            return function(*args, **kwargs)
        return wrapper

    def repeat(times):
        def decorate(function):
            @functools.wraps(function)
            def wrapper(*args, **kwargs):
                return [function(*args, **kwargs) for _ in range(times)]
            return wrapper
        calls.append(f"repeat({times})")
        return decorate

    def register(cls):
        cls.registered = True
        return cls

    def with_repr(cls):
        def __repr__(self):
            return f"<{type(self).__name__}>"
        cls.__repr__ = __repr__
        return cls

    @logged
    def greet(name: str, *, punctuation: str = "!") -> str:
        '''Say hello.'''
        return f"hello {name}{punctuation}"

    @repeat(2)
    @logged
    def ping():
        return "pong"

    @register
    @with_repr
    class Service:
        @logged
        def handle(self, request):
            return request.upper()
    """,
    spans=(
        "logged",
        "logged.<locals>.wrapper",
        "greet",
        "ping",
        "Service.handle",
        "with_repr.<locals>.__repr__",
    ),
)
def decorators_and_functools_wraps(m: ModuleType) -> object:
    return (
        m.greet("a"),
        m.greet("b", punctuation="?"),
        (m.greet.__name__, m.greet.__qualname__, m.greet.__doc__, m.greet.__annotations__),
        m.greet.__wrapped__.__qualname__,
        inspect.signature(m.greet),
        inspect.unwrap(m.greet).__code__.co_firstlineno,
        m.ping(),
        m.Service().handle("x"),
        m.Service.handle.__qualname__,
        repr(m.Service()),
        m.Service.registered,
        list(m.calls),
    )


@case(
    """
    import functools

    @functools.singledispatch
    def render(value):
        return f"object {value!r}"

    @render.register
    def _(value: int):
        return f"int {value}"

    @render.register
    def _(value: list):
        return "[" + ", ".join(render(v) for v in value) + "]"

    class Formatter:
        @functools.singledispatchmethod
        def format(self, arg):
            return "default"

        @format.register
        def _(self, arg: int):
            return f"int {arg}"

    calls = []

    class Dataset:
        def __init__(self, rows):
            self.rows = rows

        @functools.cached_property
        def total(self):
            calls.append("total")
            return sum(self.rows)

    @functools.lru_cache(maxsize=4)
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    def scale(factor, value):
        return factor * value

    triple = functools.partial(scale, 3)
    """,
    spans=("render", "_", "Formatter.format", "Formatter._", "Dataset.total", "fib", "scale"),
)
def functools_dispatch_caching_and_partials(m: ModuleType) -> object:
    dataset = m.Dataset([1, 2, 3])
    return (
        m.render(1),
        m.render([1, "a"]),
        m.render(2.5),
        m.Formatter().format(3),
        m.Formatter().format("x"),
        dataset.total,
        dataset.total,
        list(m.calls),
        m.fib(20),
        m.fib.cache_info(),
        m.fib.__wrapped__.__name__,
        m.triple(4),
    )


@case(
    """
    import types

    def plain(a, b=1, *args, c, **kw):
        x = a
        return x

    def gen():
        yield 1

    async def coro():
        return 1

    async def agen():
        yield 1

    def outer():
        v = 1

        def inner():
            return v

        return inner

    class C:
        def method(self):
            return super()

    def docstring_only():
        '''Nothing else.'''
    """,
    spans=("plain",),
)
def code_objects_keep_their_metadata_and_source(m: ModuleType) -> object:
    m.plain(1, c=2)
    functions = (m.plain, m.gen, m.coro, m.agen, m.outer, m.outer(), m.C.method, m.docstring_only)
    attributes = (
        "co_name",
        "co_qualname",
        "co_argcount",
        "co_posonlyargcount",
        "co_kwonlyargcount",
        "co_nlocals",
        "co_varnames",
        "co_cellvars",
        "co_freevars",
        "co_flags",
        "co_firstlineno",
        "co_filename",
    )
    return [
        (
            tuple(getattr(fn.__code__, name, None) for name in attributes),
            inspect.isgeneratorfunction(fn),
            inspect.iscoroutinefunction(fn),
            inspect.isasyncgenfunction(fn),
            inspect.getsource(fn),
            inspect.getsourcelines(fn)[1],
            inspect.getfile(fn),
        )
        for fn in functions
    ]


@case(
    """
    def strict(a, b, /, c, *, d, e=5):
        return a, b, c, d, e

    def star(*args, **kwargs):
        return args, kwargs

    class Api:
        def call(self, required, *, flag=False):
            return required, flag
    """,
    spans=("strict", "star", "Api.call"),
)
def argument_binding_and_call_errors(m: ModuleType) -> object:
    return (
        m.strict(1, 2, 3, d=4),
        catch(m.strict, 1, b=2, c=3, d=4),
        catch(m.strict, 1, 2, 3),
        catch(m.strict, 1, 2, 3, 4, d=1),
        m.star(1, x=2),
        m.star(*range(3), **{"a": 1}),
        catch(m.Api().call),
        catch(m.Api().call, 1, True),
        m.Api().call(1, flag=True),
    )


@case(
    """
    counter = 0

    def bump(by=1):
        global counter
        counter += by
        return counter

    def define_later():
        global created
        created = "created"

    def read_missing():
        return undefined_name

    def shadow():
        counter = "local"
        return counter, globals()["counter"]
    """,
    spans=("bump", "define_later", "read_missing", "shadow"),
)
def global_statements_bind_module_names(m: ModuleType) -> object:
    return m.bump(), m.bump(5), m.counter, m.define_later(), m.created, catch(m.read_missing), m.shadow()


@case(
    """
    def first_long(words, minimum):
        if any(len(found := word) >= minimum for word in words):
            return found
        return None

    def chunks(data):
        out = []
        while chunk := data[:2]:
            out.append(chunk)
            data = data[2:]
        return out

    def comprehension_binds():
        [last := n * 2 for n in range(3)]
        return last

    def formatted(value, width=8):
        return (
            f"{value=}",
            f"{value:>{width}.2f}",
            f"{value!r:*^{width + 4}}",
            f"{'nested ' + f'{value:.1f}'}",
            f"{width=!s:>5}",
        )
    """,
    spans=("first_long", "chunks", "comprehension_binds", "formatted"),
)
def walrus_and_f_strings(m: ModuleType) -> object:
    return (
        m.first_long(["a", "abc", "abcd"], 3),
        m.first_long(["a"], 3),
        m.chunks("abcde"),
        m.comprehension_binds(),
        m.formatted(3.14159),
        catch(m.formatted, "text"),
    )


@case(
    """
    from dataclasses import dataclass

    @dataclass
    class Point:
        x: int
        y: int

    def describe(value):
        match value:
            case 0 | 1 as small:
                return f"small {small}"
            case [first, *rest]:
                return f"sequence {first} {rest}"
            case {"kind": "circle", "r": r} if r > 0:
                return f"circle {r}"
            case Point(x=0, y=y):
                return f"on the y axis at {y}"
            case Point(x, y):
                return f"point {x},{y}"
            case str() as text:
                return text.upper()
            case _:
                raise TypeError(f"unsupported {type(value).__name__}")
    """,
    spans=("describe",),
)
def match_statements(m: ModuleType) -> object:
    values = (0, 1, [1, 2, 3], {"kind": "circle", "r": 2}, {"kind": "circle", "r": 0}, m.Point(0, 5))
    return [catch(m.describe, v) for v in (*values, m.Point(1, 2), "abc", 2.5)]


@case(
    """
    square = lambda x: x * x

    class Outer:
        factor = 3

        class Inner:
            def value(self):
                return "inner"

            class Deepest:
                def path(self):
                    return type(self).__qualname__

        def make(self):
            class Local:
                def hello(self):
                    return "local"
            return Local()

        scale = staticmethod(lambda x: x * Outer.factor)

    def compose(*functions):
        return lambda x: [f(x) for f in functions]
    """,
    spans=("Outer.Inner.value", "Outer.Inner.Deepest.path", "Outer.make", "Outer.make.<locals>.Local.hello"),
)
def lambdas_and_nested_classes(m: ModuleType) -> object:
    local = m.Outer().make()
    return (
        m.square(4),
        (m.square.__name__, m.square.__qualname__),
        m.Outer.Inner().value(),
        m.Outer.Inner.Deepest().path(),
        m.Outer.Inner.Deepest.path.__qualname__,
        local.hello(),
        type(local).__qualname__,
        m.Outer.scale(2),
        m.compose(m.square, abs)(-3),
    )


@case(
    """
    def documented():
        '''Only a docstring.'''

    class Interface:
        def method(self, x):
            '''Subclasses implement this.'''

        async def amethod(self):
            '''An async docstring only.'''

    def ellipsis_only(): ...

    def pass_only():
        pass
    """,
    spans=("documented", "Interface.method", "Interface.amethod", "ellipsis_only", "pass_only"),
)
def functions_whose_body_is_only_a_docstring(m: ModuleType) -> object:
    return (
        m.documented(),
        m.documented.__doc__,
        m.Interface().method(1),
        m.Interface.method.__doc__,
        asyncio.run(m.Interface().amethod()),
        m.ellipsis_only(),
        m.pass_only(),
    )


@case(
    """
    from typing import overload

    @overload
    def parse(value: int) -> int: ...
    @overload
    def parse(value: str) -> str: ...
    def parse(value):
        '''Parse a value.'''
        return value * 2
    """,
    spans=("parse",),
    since=(3, 11),
)
def typing_overload_registers_every_variant(m: ModuleType) -> object:
    variants = typing.get_overloads(m.parse)
    return (
        m.parse(2),
        m.parse("a"),
        m.parse.__doc__,
        [str(inspect.signature(v)) for v in variants],
        [v(1) for v in variants],
    )


# -- classes -----------------------------------------------------------------------------------


@case(
    """
    class Base:
        def __init__(self, name):
            self.name = name

        def describe(self):
            return f"Base({self.name})"

        @classmethod
        def create(cls, name):
            return cls(name)

    class Child(Base):
        def __init__(self, name, age=0):
            super().__init__(name)
            self.age = age

        def describe(self):
            return f"Child<{super().describe()}, {self.age}>"

        def owner(self):
            return __class__

        @classmethod
        def create(cls, name):
            made = super().create(name)
            made.age = 1
            return made

        @staticmethod
        def kind():
            return __class__.__name__

        def in_comprehension(self):
            return [super().describe() for _ in range(1)]

        def generator(self):
            yield super().describe()

    class GrandChild(Child):
        def describe(self):
            return "Grand" + super().describe()

    def broken():
        return super()
    """,
    spans=(
        "Child.__init__",
        "Child.describe",
        "Child.owner",
        "Child.create",
        "Child.kind",
        "GrandChild.describe",
    ),
)
def zero_argument_super_and_dunder_class(m: ModuleType) -> object:
    child = m.Child("x", 3)
    grand = m.GrandChild("g")
    return (
        child.describe(),
        child.owner(),
        m.Child.create("y").describe(),
        m.Child.kind(),
        grand.describe(),
        grand.owner(),
        m.GrandChild.create("z").describe(),
        catch(child.in_comprehension),
        list(child.generator()),
        catch(m.broken),
    )


@case(
    """
    registry = {}

    class Plugin:
        def __init_subclass__(cls, /, name=None, **kwargs):
            super().__init_subclass__(**kwargs)
            registry[name or cls.__name__] = cls

    class Alpha(Plugin, name="alpha"):
        pass

    class Beta(Plugin):
        pass
    """,
    spans=("Plugin.__init_subclass__",),
)
def init_subclass_hooks_receive_class_keywords(m: ModuleType) -> object:
    return (
        sorted(m.registry),
        m.registry["alpha"] is m.Alpha,
        catch(types.new_class, "Gamma", (m.Plugin,), {"unknown": 1}),
        sorted(m.registry),
    )


@case(
    """
    class Registry(type):
        created = []

        @classmethod
        def __prepare__(mcs, name, bases, **kwargs):
            namespace = super().__prepare__(name, bases)
            namespace["prepared_by"] = mcs.__name__
            return namespace

        def __new__(mcs, name, bases, namespace, **kwargs):
            cls = super().__new__(mcs, name, bases, namespace)
            Registry.created.append(name)
            return cls

        def __init__(cls, name, bases, namespace, **kwargs):
            super().__init__(name, bases, namespace)
            cls.options = kwargs

        def __call__(cls, *args, **kwargs):
            instance = super().__call__(*args, **kwargs)
            instance.via_metaclass = True
            return instance

    class Model(metaclass=Registry, table="models"):
        def __init__(self, value):
            self.value = value

    class Child(Model, table="children"):
        pass
    """,
    spans=(
        "Registry.__prepare__",
        "Registry.__new__",
        "Registry.__init__",
        "Registry.__call__",
        "Model.__init__",
    ),
)
def metaclasses_prepare_create_and_call_classes(m: ModuleType) -> object:
    return (
        list(m.Registry.created),
        m.Model.prepared_by,
        m.Model.options,
        m.Child.options,
        vars(m.Model(3)),
        vars(m.Child(4)),
        type(m.Child) is m.Registry,
    )


@case(
    """
    import dataclasses

    @dataclasses.dataclass(order=True)
    class Version:
        major: int
        minor: int = 0
        tags: list = dataclasses.field(default_factory=list, compare=False)

        def __post_init__(self):
            if self.major < 0:
                raise ValueError("negative")

        def bump(self):
            self.minor += 1
            return self

    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        y: int

        def moved(self, dx):
            return dataclasses.replace(self, x=self.x + dx)

        def poke(self):
            self.x = 0

    @dataclasses.dataclass(slots=True)
    class Slotted:
        a: int
        b: str = "b"

        def total(self):
            return f"{self.a}{self.b}"

    @dataclasses.dataclass(frozen=True, slots=True)
    class FrozenSlotted:
        n: int

        def __post_init__(self):
            object.__setattr__(self, "n", self.n * 2)

        def halved(self):
            return self.n // 2
    """,
    spans=("Version.__post_init__", "Version.bump", "Point.moved", "Slotted.total", "FrozenSlotted.halved"),
)
def dataclasses_plain_frozen_and_slotted(m: ModuleType) -> object:
    versions = sorted([m.Version(2), m.Version(1, 5), m.Version(1)])
    point = m.Point(1, 2)
    slotted = m.Slotted(1)
    frozen = m.FrozenSlotted(2)
    return (
        [repr(v) for v in versions],
        repr(m.Version(1).bump().bump()),
        catch(m.Version, -1),
        repr(point.moved(3)),
        catch(setattr, point, "x", 5),
        catch(point.poke),
        hash(point) == hash(m.Point(1, 2)),
        m.Slotted.__slots__,
        hasattr(slotted, "__dict__"),
        catch(setattr, slotted, "zzz", 1),
        slotted.total(),
        frozen.n,
        frozen.halved(),
        catch(setattr, frozen, "n", 1),
        [f.name for f in fields(m.Version)],
        repr(pickle.loads(pickle.dumps(frozen))),
        repr(copy.deepcopy(m.Version(3, tags=["a"]))),
    )


@case(
    """
    class Vector:
        __slots__ = ("x", "y")

        def __init__(self, x, y):
            self.x = x
            self.y = y

        def scale(self, k):
            self.x *= k
            self.y *= k
            return self

        def clear_y(self):
            del self.y

    class Tagged(Vector):
        __slots__ = ("tag",)

        def label(self):
            return self.tag
    """,
    spans=("Vector.__init__", "Vector.scale", "Vector.clear_y", "Tagged.label"),
)
def slots_restrict_attributes(m: ModuleType) -> object:
    vector = m.Vector(1, 2).scale(3)
    coordinates = (vector.x, vector.y)
    tagged = m.Tagged(1, 2)
    return (
        coordinates,
        catch(setattr, vector, "z", 1),
        vector.clear_y(),
        catch(getattr, vector, "y"),
        catch(tagged.label),
        hasattr(vector, "__dict__"),
    )


@case(
    """
    class Positive:
        def __set_name__(self, owner, name):
            self.name = "_" + name

        def __get__(self, instance, owner=None):
            if instance is None:
                return self
            return getattr(instance, self.name)

        def __set__(self, instance, value):
            if not self.valid(value):
                raise ValueError(f"{self.name[1:]} must be positive, got {value}")
            setattr(instance, self.name, value)

        def valid(self, value):
            return value > 0

    class Order:
        quantity = Positive()

        def __init__(self, quantity):
            self.quantity = quantity
    """,
    spans=("Positive.valid", "Order.__init__"),
)
def descriptors_and_set_name(m: ModuleType) -> object:
    order = m.Order(3)
    return (
        order.quantity,
        catch(m.Order, 0),
        m.Order.quantity.name,
        vars(order),
        catch(setattr, order, "quantity", -1),
    )


@case(
    """
    class Temperature:
        def __init__(self):
            self._celsius = 0.0
            self.log = []

        @property
        def celsius(self):
            '''Degrees Celsius.'''
            self.log.append("get")
            return self._celsius

        @celsius.setter
        def celsius(self, value):
            if value < -273.15:
                raise ValueError("below absolute zero")
            self.log.append("set")
            self._celsius = value

        @celsius.deleter
        def celsius(self):
            self.log.append("delete")
            del self._celsius

        @property
        def fahrenheit(self):
            return self.celsius * 9 / 5 + 32
    """,
    spans=("Temperature.celsius", "Temperature.fahrenheit"),
)
def properties_get_set_and_delete(m: ModuleType) -> object:
    t = m.Temperature()
    t.celsius = 20
    fahrenheit = t.fahrenheit
    too_cold = catch(setattr, t, "celsius", -300)
    del t.celsius
    return (
        fahrenheit,
        too_cold,
        catch(getattr, t, "celsius"),
        m.Temperature.celsius.__doc__,
        catch(setattr, t, "fahrenheit", 1),
        list(t.log),
    )


@case(
    """
    class Temperature:
        scale = "C"

        def __init__(self, degrees):
            self.degrees = degrees

        @classmethod
        def from_fahrenheit(cls, f):
            return cls((f - 32) * 5 / 9)

        @staticmethod
        def valid(degrees):
            return degrees >= -273.15

    class Kelvin(Temperature):
        scale = "K"
    """,
    spans=("Temperature.from_fahrenheit", "Temperature.valid", "Temperature.__init__"),
)
def classmethods_and_staticmethods(m: ModuleType) -> object:
    kelvin = m.Kelvin.from_fahrenheit(212)
    t = m.Temperature(1)
    return (
        type(kelvin),
        kelvin.degrees,
        m.Temperature.valid(-300),
        t.valid(1),
        t.from_fahrenheit(32).degrees,
        type(vars(m.Temperature)["valid"]),
        type(vars(m.Temperature)["from_fahrenheit"]),
        m.Temperature.valid.__qualname__,
        m.Kelvin.from_fahrenheit.__func__ is m.Temperature.from_fahrenheit.__func__,
    )


@case(
    """
    import abc

    class Shape(abc.ABC):
        @abc.abstractmethod
        def area(self):
            '''The area.'''

        @property
        @abc.abstractmethod
        def name(self): ...

        def describe(self):
            return f"{self.name}: {self.area()}"

    class Square(Shape):
        def __init__(self, side):
            self.side = side

        def area(self):
            return self.side**2

        @property
        def name(self):
            return "square"

    class Half(Shape):
        def area(self):
            return super().area()
    """,
    spans=("Square.area", "Square.name", "Shape.describe"),
)
def abstract_methods(m: ModuleType) -> object:
    return (
        catch(m.Shape),
        m.Square(3).describe(),
        sorted(m.Shape.__abstractmethods__),
        sorted(m.Half.__abstractmethods__),
        catch(m.Half),
        m.Shape.area.__isabstractmethod__,
        m.Shape.area.__doc__,
    )


@case(
    """
    class Multiplier:
        def __init__(self, factor):
            self.factor = factor

        def __call__(self, value, /, *, twice=False):
            result = value * self.factor
            return result * 2 if twice else result

    class Singleton:
        _instance = None

        def __new__(cls, *args, **kwargs):
            if cls._instance is None:
                cls._instance = super().__new__(cls)
                cls._instance.created = 0
            cls._instance.created += 1
            return cls._instance

        def __init__(self, label):
            self.label = label

    class Circle:
        pass

    class Shape:
        def __new__(cls, kind):
            if kind == "circle":
                return Circle()
            return super().__new__(cls)

        def __init__(self, kind):
            self.kind = kind

    class Meters(float):
        def __new__(cls, value):
            return super().__new__(cls, abs(value))

    class Bad:
        def __init__(self):
            return 5
    """,
    spans=("Multiplier.__call__", "Singleton.__new__", "Shape.__new__", "Meters.__new__", "Bad.__init__"),
)
def call_and_new(m: ModuleType) -> object:
    multiplier = m.Multiplier(3)
    first, second = m.Singleton("a"), m.Singleton("b")
    return (
        multiplier(2),
        multiplier(2, twice=True),
        catch(multiplier, value=2),
        inspect.signature(multiplier),
        first is second,
        (first.label, first.created),
        type(m.Shape("circle")),
        vars(m.Shape("square")),
        m.Meters(-2.5),
        type(m.Meters(1)),
        catch(m.Bad),
    )


@case(
    """
    class Account:
        def __init__(self, balance):
            self.__balance = balance

        def deposit(self, amount):
            self.__balance += amount
            return self.__balance

        def __audit(self):
            return "audited"

        def run_audit(self):
            return self.__audit()
    """,
    spans=("Account.__init__", "Account.deposit", "Account.__audit", "Account.run_audit"),
)
def private_names_are_mangled_as_written(m: ModuleType) -> object:
    account = m.Account(10)
    return account.deposit(5), vars(account), account.run_audit(), hasattr(account, "__audit")


@case(
    """
    import operator

    class Money:
        def __init__(self, cents):
            self.cents = cents

        def __add__(self, other):
            if isinstance(other, Money):
                return Money(self.cents + other.cents)
            if isinstance(other, int):
                return Money(self.cents + other)
            return NotImplemented

        __radd__ = __add__

        def __eq__(self, other):
            return isinstance(other, Money) and other.cents == self.cents

        def __repr__(self):
            return f"Money({self.cents})"

        def __getitem__(self, index):
            if index >= 3:
                raise IndexError(index)
            return self.cents * index

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            return exc_info[0] is KeyError
    """,
    spans=("Money.__add__", "Money.__getitem__", "Money.__enter__", "Money.__exit__"),
)
def operator_methods_and_notimplemented(m: ModuleType) -> object:
    def suppressed() -> str:
        with m.Money(1):
            raise KeyError("suppressed")
        return "after"

    return (
        repr(m.Money(1) + m.Money(2)),
        repr(5 + m.Money(1)),
        repr(sum([m.Money(1), m.Money(2)])),
        catch(operator.add, m.Money(1), "x"),
        list(m.Money(2)),
        m.Money(1) == m.Money(1),
        suppressed(),
    )


@case(
    """
    import enum

    class Color(enum.Enum):
        RED = 1
        GREEN = 2

        def describe(self):
            return f"{self.name.lower()}={self.value}"

        @classmethod
        def _missing_(cls, value):
            if isinstance(value, str):
                return cls[value.upper()]
            return None

    class Flag(enum.IntFlag):
        A = enum.auto()
        B = enum.auto()

    class Planet(enum.Enum):
        EARTH = (5.97e24, 6.37e6)

        def __init__(self, mass, radius):
            self.mass = mass
            self.radius = radius

        @property
        def gravity(self):
            return round(6.673e-11 * self.mass / (self.radius**2), 3)
    """,
    spans=("Color.describe", "Color._missing_", "Planet.__init__", "Planet.gravity"),
)
def enums_with_methods(m: ModuleType) -> object:
    return (
        m.Color(1).describe(),
        m.Color("green"),
        catch(m.Color, 7),
        list(m.Color),
        m.Flag.A | m.Flag.B,
        m.Planet.EARTH.gravity,
        pickle.loads(pickle.dumps(m.Color.RED)) is m.Color.RED,
    )


@case(
    """
    from typing import NamedTuple, Protocol, runtime_checkable

    class Pair(NamedTuple):
        left: int
        right: int = 0

        def total(self):
            return self.left + self.right

    @runtime_checkable
    class HasTotal(Protocol):
        def total(self) -> int: ...
    """,
    spans=("Pair.total",),
)
def named_tuples_and_protocols(m: ModuleType) -> object:
    return (
        m.Pair(1, 2).total(),
        m.Pair._fields,
        m.Pair(3)._replace(right=4),
        isinstance(m.Pair(1), m.HasTotal),
        isinstance(1, m.HasTotal),
        pickle.loads(pickle.dumps(m.Pair(5, 6))),
    )


@case(
    """
    import dataclasses

    def double(x):
        return 2 * x

    class Point:
        def __init__(self, x, y):
            self.x = x
            self.y = y

        def norm1(self):
            return abs(self.x) + abs(self.y)

        class Inner:
            def value(self):
                return "inner"

    @dataclasses.dataclass(frozen=True)
    class Frozen:
        a: int

        def twice(self):
            return self.a * 2
    """,
    spans=("double", "Point.__init__", "Point.norm1", "Point.Inner.value", "Frozen.twice"),
)
def pickling_functions_classes_and_instances(m: ModuleType) -> object:
    objects = (m.double, m.Point, m.Point.norm1, m.Point.Inner, m.Frozen, m.Point(1, -2), m.Frozen(3))
    dumped = [
        pickle.dumps(o, protocol=protocol) for o in objects for protocol in (2, pickle.HIGHEST_PROTOCOL)
    ]
    loaded = [pickle.loads(d) for d in dumped]
    point = pickle.loads(pickle.dumps(m.Point(1, -2)))
    return (
        dumped,
        [loaded[i] is objects[i // 2] for i in range(10)],
        loaded[0](4),
        (type(point) is m.Point, vars(point), point.norm1()),
        loaded[12] == m.Frozen(3),
        loaded[12].twice(),
        pickle.loads(pickle.dumps(m.Point.Inner())).value(),
        copy.deepcopy(m.Point(3, 4)).norm1(),
    )


@case(
    """
    touched = []

    class Watched:
        def __init__(self):
            self.items = []
            self.count = 0

        def __getattribute__(self, name):
            touched.append(name)
            return object.__getattribute__(self, name)

        def __getattr__(self, name):
            touched.append(f"missing {name}")
            raise AttributeError(name)

        def __repr__(self):
            touched.append("__repr__")
            return "Watched()"

        def add(self, item):
            self.items.append(item)
            self.count += 1
            return self

        @property
        def size(self):
            touched.append("size")
            return len(self.items)

    def reducer(state, message):
        return {**state, message: True}
    """,
    spans=("Watched.__init__", "Watched.add", "reducer"),
)
def recording_state_runs_no_user_code(m: ModuleType) -> object:
    watched = m.Watched()
    watched.add("a").add(watched)
    del m.touched[:]
    watched.add("b")
    return list(m.touched), m.reducer({"a": 1}, "b"), list(m.touched)


@case(
    """
    touched = []

    class Loud(Exception):
        def __getattribute__(self, name):
            touched.append(name)
            return super().__getattribute__(name)

        def __str__(self):
            touched.append("__str__")
            return "loud"

    class Shouting(Exception):
        @property
        def args(self):
            touched.append("args property")
            return ("shouting",)

    def fail(kind):
        raise kind("message")
    """,
    spans=("fail",),
)
def recording_an_exception_runs_none_of_its_code(m: ModuleType) -> object:
    caught = [catch(m.fail, m.Loud), catch(m.fail, m.Shouting)]
    touched = list(m.touched)
    return touched, caught


# -- generators, coroutines and context managers -----------------------------------------------


@case(
    """
    log = []

    def accumulate():
        total = 0
        try:
            while True:
                value = yield total
                if value is None:
                    return total
                total += value
        except KeyError as error:
            yield f"recovered {error}"
            return "after recovery"
        finally:
            log.append(("finally", total))

    def closing():
        try:
            yield 1
            yield 2
        except GeneratorExit:
            log.append("closing")
            raise

    def stubborn():
        try:
            yield 1
        except GeneratorExit:
            yield 2

    def leaks_stop_iteration():
        yield 1
        raise StopIteration("inner")

    def early():
        return "done"
        yield
    """,
    spans=("accumulate", "closing", "stubborn", "leaks_stop_iteration", "early"),
)
def generator_send_throw_close_and_stop_iteration_values(m: ModuleType) -> object:
    steps = [
        drive(m.accumulate(), ("send", None), ("send", 2), ("send", 3), ("send", None), ("send", 1)),
        drive(m.accumulate(), ("send", None), ("throw", KeyError("k")), ("send", None)),
        drive(m.accumulate(), ("send", None), ("throw", ValueError("v")), ("send", None)),
        drive(m.accumulate(), ("send", None), ("close", None), ("send", None)),
        drive(m.accumulate(), ("send", 1)),
        drive(m.closing(), ("send", None), ("close", None), ("close", None)),
        drive(m.stubborn(), ("send", None), ("close", None), ("close", None)),
        drive(m.leaks_stop_iteration(), ("send", None), ("send", None)),
        drive(m.early(), ("send", None)),
    ]
    return steps, list(m.log)


@case(
    """
    def numbers(limit):
        total = 0
        for n in range(limit):
            total += n
            yield n
        return total

    def delegator(limit):
        result = yield from numbers(limit)
        return ("delegated", result)

    def to_list(limit):
        received = yield from iter(range(limit))
        return received

    def relay():
        got = yield from echo()
        return got

    def echo():
        sent = yield "ready"
        while sent != "stop":
            sent = yield f"echo {sent}"
        return "stopped"

    def walk(tree, depth=0):
        label, children = tree
        yield depth, label
        for child in children:
            yield from walk(child, depth + 1)
    """,
    spans=("numbers", "delegator", "to_list", "relay", "echo", "walk"),
)
def yield_from_delegation_returns_the_subgenerators_value(m: ModuleType) -> object:
    delegator = m.delegator(3)
    first = next(delegator)
    yield_from = delegator.gi_yieldfrom
    tree = ("root", [("a", [("a1", [])]), ("b", [])])
    return (
        first,
        (type(yield_from).__name__, yield_from.gi_code.co_name, yield_from.gi_frame.f_lineno),
        exhaust(delegator),
        exhaust(m.to_list(2)),
        drive(m.relay(), ("send", None), ("send", "x"), ("throw", KeyError("k"))),
        drive(m.relay(), ("send", None), ("send", "stop")),
        list(m.walk(tree)),
    )


@case(
    """
    def numbers(limit):
        total = 0
        for n in range(limit):
            total += n
            yield n
        return total

    log = []

    def worker(name):
        try:
            yield 1
            yield 2
        finally:
            log.append(("cleanup", name))
    """,
    spans=("numbers", "worker"),
)
def generators_inspect_and_finalise_like_the_originals(m: ModuleType) -> object:
    generator = m.numbers(3)
    states = [inspect.getgeneratorstate(generator)]
    next(generator)
    states.append(inspect.getgeneratorstate(generator))
    suspended = (inspect.getgeneratorlocals(generator), generator.gi_frame.f_lineno, generator.gi_running)
    names = (generator.__name__, generator.__qualname__, generator.gi_code.co_name)
    exhaust(generator)
    states.append(inspect.getgeneratorstate(generator))
    abandoned = m.worker("abandoned")
    next(abandoned)
    del abandoned
    finalised_at_once = list(m.log)
    never_started = m.worker("never started")
    del never_started
    in_a_cycle = m.worker("in a cycle")
    next(in_a_cycle)
    cycle: list[Any] = [in_a_cycle]
    cycle.append(cycle)
    del in_a_cycle, cycle
    before_collection = list(m.log)
    gc.collect()
    return states, suspended, names, finalised_at_once, before_collection, list(m.log)


@case(
    """
    import asyncio

    log = []

    async def ticker(limit):
        try:
            for i in range(limit):
                received = yield i
                log.append(("received", received))
                await asyncio.sleep(0)
        except ValueError as error:
            log.append(("thrown", str(error)))
            yield "recovered"
        finally:
            log.append("finally")

    async def stubborn():
        try:
            yield 1
        except GeneratorExit:
            yield 2

    async def consume(limit):
        return [i async for i in ticker(limit)]
    """,
    spans=("ticker", "stubborn", "consume"),
)
def async_generators_asend_athrow_and_aclose(m: ModuleType) -> object:
    async def scenario() -> object:
        first = m.ticker(5)
        second = m.ticker(5)
        third = m.stubborn()
        return (
            [
                await acatch(first.asend(None)),
                await acatch(first.asend("a")),
                await acatch(first.athrow(ValueError("boom"))),
                await acatch(first.asend(None)),
            ],
            [
                await acatch(second.asend(None)),
                await acatch(second.aclose()),
                await acatch(second.asend(None)),
            ],
            [await acatch(third.asend(None)), await acatch(third.aclose())],
            await m.consume(2),
            list(m.log),
        )

    return asyncio.run(scenario())


@case(
    """
    import asyncio

    log = []

    async def fetch(n, delay=0):
        await asyncio.sleep(delay)
        log.append(n)
        if n < 0:
            raise ValueError(n)
        return n * 10

    async def gather_all():
        return await asyncio.gather(fetch(1), fetch(2), fetch(3))

    async def gather_errors():
        return await asyncio.gather(fetch(1), fetch(-1), return_exceptions=True)

    async def grouped():
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(fetch(i)) for i in range(3)]
        return [task.result() for task in tasks]

    async def grouped_failure():
        async with asyncio.TaskGroup() as group:
            group.create_task(fetch(-2))
            group.create_task(fetch(5, delay=1))

    async def cancelled():
        task = asyncio.ensure_future(fetch(9, delay=10))
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"

    async def main():
        return (
            await gather_all(),
            await gather_errors(),
            await grouped(),
            await cancelled(),
            await fetch(4),
        )
    """,
    spans=("fetch", "gather_all", "gather_errors", "grouped", "grouped_failure", "cancelled", "main"),
    since=(3, 11),
)
def async_functions_await_gather_and_task_groups(m: ModuleType) -> object:
    return asyncio.run(m.main()), catch(asyncio.run, m.grouped_failure()), list(m.log)


@case(
    """
    import types

    @types.coroutine
    def suspend(value):
        received = yield value
        return received

    async def pipeline():
        first = await suspend("first")
        try:
            second = await suspend("second")
        except KeyError as error:
            second = f"recovered {error}"
        return first, second
    """,
    spans=("suspend", "pipeline"),
)
def coroutines_driven_by_hand(m: ModuleType) -> object:
    coroutine = m.pipeline()
    steps = drive(coroutine, ("send", None), ("send", "a"), ("throw", KeyError("k")))
    closed = m.pipeline()
    closed.send(None)
    closed.close()
    return steps, coroutine.cr_frame, inspect.getcoroutinestate(closed)


@case(
    """
    import contextlib

    log = []

    class Resource:
        def __init__(self, name):
            self.name = name

        def __enter__(self):
            log.append(("enter", self.name))
            return self

        def __exit__(self, exc_type, exc, tb):
            log.append(("exit", self.name, exc_type.__name__ if exc_type else None))
            return exc_type is KeyError

    @contextlib.contextmanager
    def managed(name):
        log.append(("acquire", name))
        try:
            yield name.upper()
        except ValueError:
            log.append(("handled", name))
        finally:
            log.append(("release", name))

    @contextlib.contextmanager
    def reraising():
        try:
            yield
        except LookupError as error:
            raise RuntimeError("wrapped") from error

    @contextlib.asynccontextmanager
    async def amanaged(name):
        log.append(("async acquire", name))
        try:
            yield name
        finally:
            log.append(("async release", name))

    def use(name, error=None):
        with Resource(name) as resource, managed(name) as upper:
            if error is not None:
                raise error
            return resource.name, upper

    def wrap(error):
        with reraising():
            raise error

    async def use_async(name):
        async with amanaged(name) as value:
            return value
    """,
    spans=("Resource.__enter__", "Resource.__exit__", "managed", "reraising", "amanaged", "use", "wrap"),
)
def context_managers_and_contextlib_generators(m: ModuleType) -> object:
    stop = StopIteration("from the body")
    return (
        m.use("a"),
        catch(m.use, "b", KeyError("k")),
        catch(m.use, "c", ValueError("v")),
        catch(m.use, "d", TypeError("t")),
        catch(m.use, "e", stop),
        catch(m.wrap, KeyError("k")),
        catch(m.wrap, TypeError("t")),
        asyncio.run(m.use_async("f")),
        list(m.log),
    )


# -- modules -----------------------------------------------------------------------------------


@case(
    """
    import os as _os

    PUBLIC = 1
    _private = 2

    def exported():
        return "e"

    class Exported:
        pass

    def __getattr__(name):
        if name.startswith("lazy_"):
            return name[5:].upper()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__():
        return ["lazy_x", "PUBLIC"]
    """,
    spans=("__getattr__", "__dir__"),
)
def module_namespace_star_import_and_module_getattr(m: ModuleType) -> object:
    namespace: dict[str, Any] = {}
    exec(f"from {m.__name__} import *", namespace)
    return (
        sorted(k for k in namespace if k != "__builtins__"),
        m.lazy_value,
        catch(getattr, m, "other"),
        dir(m),
    )


@case(
    """
    import threading
    from concurrent.futures import ThreadPoolExecutor

    def work(n):
        return n * n, threading.current_thread() is threading.main_thread()

    def fan_out(values):
        with ThreadPoolExecutor(max_workers=3) as pool:
            return list(pool.map(work, values))
    """,
    spans=("work", "fan_out"),
)
def functions_running_in_threads(m: ModuleType) -> object:
    return m.fan_out(range(6))


# -- what the program can see of the instrumentation itself ----------------------------------


@case(
    """
    def pure(x):
        return x + 1
    """,
    spans=("pure",),
)
def code_objects_run_with_fresh_globals(m: ModuleType) -> object:
    m.pure(0)
    rebuilt = types.FunctionType(m.pure.__code__, {"__builtins__": __builtins__}, "rebuilt")
    return catch(rebuilt, 1)


@case(
    """
    def inside(values):
        return sorted(values)
    """,
    spans=("inside",),
)
def contexts_are_left_as_they_were(m: ModuleType) -> object:
    # While a call is recorded it is the current span in OpenTelemetry's context variable (as
    # for any OpenTelemetry instrumentation); afterwards the program's Context is exactly as
    # it was, down to the variable being unset again.
    def measure() -> tuple[int, object, int]:
        before = len(contextvars.copy_context())
        return before, m.inside([3, 1, 2]), len(contextvars.copy_context())

    return contextvars.Context().run(measure)


@case(
    """
    def f():
        return 1
    """,
    spans=("f",),
)
def module_globals_are_exactly_the_sources(m: ModuleType) -> object:
    m.f()
    return sorted(vars(m)), dir(m)


# -- the test ----------------------------------------------------------------------------------


def test_case_names_are_unique() -> None:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_rewritten_module_behaves_like_the_original(case: Case, tmp_path: Path) -> None:
    original, rewritten = run_both_ways(tmp_path, case.source, case.scenario, stem=case.name)
    expected = type_name(case.raises) if case.raises is not None else None
    assert original.outcome.raised == expected, f"the scenario itself misbehaves: {original.outcome}"
    assert original.span_names == ()
    assert rewritten.outcome == original.outcome, first_difference(
        (original.outcome.value, original.outcome.error), (rewritten.outcome.value, rewritten.outcome.error)
    )
    missing = set(case.spans) - set(rewritten.span_names)
    assert not missing, f"not recorded: {sorted(missing)}; recorded: {sorted(set(rewritten.span_names))}"
    assert case.internal_errors or rewritten.internal_errors == 0


# -- small generated functions ---------------------------------------------------------------

GENERATED_INPUTS = ((0, 0), (1, 2), (-3, 5), (7, -2), (4, 4))

GENERATED_MODULE = """\
import contextlib

def helper(v):
    if v > 50:
        raise OverflowError(v)
    return v * 2

def f(a, b):
    x = 0
    i = 0
{body}
"""


@st.composite
def expressions(draw: st.DrawFn, depth: int = 0) -> str:
    kinds = ["literal", "name"]
    if depth < 2:
        kinds += ["binary", "scaled", "conditional", "walrus", "lambda", "helper"]
    kind = draw(st.sampled_from(kinds))
    if kind == "literal":
        return str(draw(st.integers(-3, 5)))
    if kind == "name":
        return draw(st.sampled_from(("a", "b", "x", "i")))
    left, right = draw(expressions(depth + 1)), draw(expressions(depth + 1))
    if kind == "binary":
        return f"({left} {draw(st.sampled_from(('+', '-', '//', '%')))} {right})"
    if kind == "scaled":
        return f"({left} * {draw(st.integers(-3, 3))})"
    if kind == "conditional":
        return f"({left} if {right} > {draw(expressions(depth + 1))} else {draw(expressions(depth + 1))})"
    if kind == "walrus":
        return f"(x := {left})"
    if kind == "lambda":
        return f"(lambda y: y - {left})({right})"
    return f"helper({left})"


def _indented(lines: list[str]) -> list[str]:
    return [f"    {line}" for line in lines]


@st.composite
def blocks(draw: st.DrawFn, depth: int, generator: bool, in_loop: bool) -> list[str]:
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        lines += draw(statements(depth, generator, in_loop))
    return lines


@st.composite
def statements(draw: st.DrawFn, depth: int, generator: bool, in_loop: bool) -> list[str]:
    kinds = ["assign", "augment", "return", "raise", "call"]
    kinds += ["yield"] if generator else []
    kinds += ["break", "continue"] if in_loop else []
    kinds += ["if", "for", "try", "with", "nested"] if depth < 2 else []
    kind = draw(st.sampled_from(kinds))
    value = draw(expressions())
    if kind in ("assign", "augment", "call"):
        target = {"assign": f"x = {value}", "augment": f"x += {value}", "call": f"x = helper({value})"}
        return [target[kind]]
    if kind in ("return", "raise", "yield"):
        yielding = draw(st.sampled_from((f"yield {value}", f"x += yield {value}")))
        return [{"return": f"return {value}", "raise": f"raise ValueError({value})", "yield": yielding}[kind]]
    if kind in ("break", "continue"):
        return [f"if {value} > 1:", f"    {kind}"]
    inner = _indented(draw(blocks(depth + 1, generator, in_loop or kind == "for")))
    if kind == "if":
        return [
            f"if {value} > {draw(expressions())}:",
            *inner,
            "else:",
            *_indented(draw(blocks(depth + 1, generator, in_loop))),
        ]
    if kind == "for":
        return [f"for i in range({draw(st.integers(0, 3))}):", *inner]
    if kind == "try":
        handler = ["except (ArithmeticError, ValueError) as error:", "    x = len(error.args) + 100"]
        cleanup = ["finally:", "    i += 1"] if draw(st.booleans()) else []
        return ["try:", *inner, *handler, *cleanup]
    if kind == "with":
        return ["with contextlib.suppress(ZeroDivisionError):", *inner]
    return [
        "def inner(y):",
        "    nonlocal x",
        "    x = x + y",
        f"    return {value}",
        f"x = inner({draw(expressions())})",
    ]


@st.composite
def generated_modules(draw: st.DrawFn) -> str:
    generator = draw(st.booleans())
    body = draw(blocks(0, generator, in_loop=False))
    body += ["x += yield x", "return x"] if generator else ["return x"]
    return GENERATED_MODULE.format(body="\n".join(_indented(body)))


def send_until_done(generator: Any) -> tuple[list[object], object]:
    """Drive a generator sending 1, 2, 3... after its first yield; what it yielded and returned."""
    items = []
    try:
        items.append(next(generator))
        while True:
            items.append(generator.send(len(items)))
    except StopIteration as stop:
        return items, stop.value


def call_with_every_input(m: ModuleType) -> object:
    """What ``f`` returns or raises for each input, and the line events a tracer sees."""
    if inspect.isgeneratorfunction(m.f):
        return [
            (catch(send_until_done, m.f(a, b)), trace_events(m, send_until_done, m.f(a, b)))
            for a, b in GENERATED_INPUTS
        ]
    return [(catch(m.f, a, b), trace_events(m, m.f, a, b)) for a, b in GENERATED_INPUTS]


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(source=generated_modules())
def test_generated_functions_behave_like_the_originals(source: str, tmp_path: Path) -> None:
    original, rewritten = run_both_ways(tmp_path, source, call_with_every_input, stem="generated")
    assert original.outcome.raised is None, source
    assert rewritten.outcome == original.outcome, first_difference(
        (original.outcome.value, original.outcome.error), (rewritten.outcome.value, rewritten.outcome.error)
    )
    assert "f" in rewritten.span_names
    assert original.span_names == ()
    assert rewritten.internal_errors == 0
