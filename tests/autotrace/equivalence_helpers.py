"""Run one module's code as written and as rewritten, and describe what happened comparably.

A *scenario* is a callable taking the imported module. ``run_both_ways`` imports the same
source under the same module name twice (plainly from ``<folder>/original``, through the
import hook at level full from ``<folder>/rewritten``), runs the scenario against each while
recording into memory, and returns an :class:`Outcome` per run. An outcome holds the
scenario's result or exception turned into plain data by :class:`Normalizer`: exceptions
become their type, arguments, cause/context chain, sub-exceptions and traceback frames
(file, line and column span, function name, source line). The two outcomes of a faithful
rewrite are equal.
"""

from __future__ import annotations

import gc
import inspect
import math
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import BuiltinFunctionType, FrameType, FunctionType, MethodType, ModuleType, TracebackType
from typing import Any

from autotrace_helpers import import_source, recording, unique_module_name

from execscope.autotrace._recorder import RECORDER

Scenario = Callable[[ModuleType], Any]

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_DEPTH = 40


@dataclass(frozen=True)
class Frame:
    """One traceback entry: ``file`` is ``"<module>"`` for the module under test."""

    file: str
    name: str
    lineno: int | None
    end_lineno: int | None
    colno: int | None
    end_colno: int | None
    line: str | None


@dataclass(frozen=True)
class Outcome:
    """What a scenario did: returned ``value`` or raised ``error`` (both normalised)."""

    value: object = None
    error: object = None

    @property
    def raised(self) -> str | None:
        """The qualified type name of the exception the scenario raised, if any."""
        return str(self.error[1]) if isinstance(self.error, tuple) else None


@dataclass(frozen=True)
class Run:
    outcome: Outcome
    span_names: tuple[str, ...]
    internal_errors: int


class Normalizer:
    """Turns values into data that compares equal across the two imports of one source.

    Both imports share the module name; only their folders differ, so the module's file is
    written ``<module>`` and its folder ``<folder>``. Object addresses are masked.
    """

    def __init__(self, module: ModuleType) -> None:
        assert module.__file__ is not None
        self.file = module.__file__
        self.folder = str(Path(module.__file__).parent)

    def text(self, value: str) -> str:
        return _ADDRESS.sub(" at 0x?", value.replace(self.file, "<module>").replace(self.folder, "<folder>"))

    def frames(self, tb: TracebackType | None) -> tuple[Frame, ...]:
        return tuple(
            Frame(
                "<module>" if entry.filename == self.file else self.text(entry.filename),
                entry.name,
                entry.lineno,
                getattr(entry, "end_lineno", None),
                getattr(entry, "colno", None),
                getattr(entry, "end_colno", None),
                entry.line,
            )
            for entry in traceback.extract_tb(tb)
        )

    def exception(self, error: BaseException | None, seen: set[int] | None = None) -> object:
        if error is None:
            return None
        seen = set() if seen is None else seen
        if id(error) in seen:
            return ("exception-cycle", type_name(type(error)))
        seen.add(id(error))
        group = getattr(error, "exceptions", None)
        return (
            "exception",
            type_name(type(error)),
            self(error.args),
            self.frames(error.__traceback__),
            self.exception(error.__cause__, seen),
            None if error.__suppress_context__ else self.exception(error.__context__, seen),
            self(getattr(error, "__notes__", None)),
            tuple(self.exception(e, seen) for e in group) if isinstance(group, tuple) else None,
        )

    def __call__(self, value: object, depth: int = 0) -> object:
        if depth > _MAX_DEPTH:
            return "<too deep>"
        if value is None or isinstance(value, (bool, int, bytes)):
            return value
        if isinstance(value, float):
            return "nan" if math.isnan(value) else value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, BaseException):
            return self.exception(value)
        if isinstance(value, (tuple, list)) and type(value) in (tuple, list):
            return (type(value).__name__, *(self(item, depth + 1) for item in value))
        if isinstance(value, dict) and type(value) is dict:
            return ("dict", *((self(k, depth + 1), self(v, depth + 1)) for k, v in value.items()))
        if isinstance(value, (set, frozenset)) and type(value) in (set, frozenset):
            return (type(value).__name__, sorted(repr(self(item, depth + 1)) for item in value))
        if isinstance(value, type):
            return ("class", type_name(value))
        if isinstance(value, (FunctionType, MethodType, BuiltinFunctionType)):
            owner = getattr(value, "__module__", None)
            return ("callable", owner, getattr(value, "__qualname__", None))
        if isinstance(value, (inspect.Signature, inspect.Parameter)):
            return (type(value).__name__, self.text(str(value)))
        return ("object", type_name(type(value)), self.text(repr(value)))


def type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def observe(module: ModuleType, scenario: Scenario) -> Outcome:
    normalise = Normalizer(module)
    try:
        value = scenario(module)
    except BaseException as error:
        return Outcome(error=normalise(error))
    return Outcome(value=normalise(value))


def run_both_ways(folder: Path, source: str, scenario: Scenario, stem: str = "eq") -> tuple[Run, Run]:
    """``(as written, as rewritten)``: the same source imported under the same name, each
    run of ``scenario`` recorded into memory."""
    name = unique_module_name(stem)
    runs = []
    gc.freeze()  # the collections below then only scan what the two runs allocate: fast
    try:
        with recording() as spans:
            for rewritten in (False, True):
                where = folder / ("rewritten" if rewritten else "original")
                where.mkdir(parents=True, exist_ok=True)
                errors_before = RECORDER.stats.internal_errors + RECORDER.stats.conversion_errors
                module = import_source(where, source, name=name, rewritten=rewritten)
                outcome = observe(module, scenario)
                gc.collect()  # generators the scenario abandoned in cycles finish in their own run
                names = tuple(span.name for span in spans.spans())
                errors = RECORDER.stats.internal_errors + RECORDER.stats.conversion_errors - errors_before
                runs.append(Run(outcome, names, errors))
                spans.clear()
                sys.modules.pop(name, None)
    finally:
        sys.modules.pop(name, None)
        gc.unfreeze()
    return runs[0], runs[1]


def catch(function: Callable[..., Any], *args: Any, **kwargs: Any) -> object:
    """What ``function(*args, **kwargs)`` raised (the exception itself), else ``("returned", value)``."""
    try:
        return ("returned", function(*args, **kwargs))
    except BaseException as error:
        return error


def drive(generator: Any, *steps: tuple[str, Any]) -> list[object]:
    """Each step is ``("send", value)``, ``("throw", exception)`` or ``("close", None)``;
    returns what each step yielded or raised (``StopIteration`` carries the return value)."""
    return [
        catch(generator.close) if method == "close" else catch(getattr(generator, method), argument)
        for method, argument in steps
    ]


def exhaust(iterator: Any) -> tuple[list[object], object]:
    """Everything ``iterator`` yields, and the value its ``StopIteration`` carries."""
    items = []
    while True:
        try:
            items.append(next(iterator))
        except StopIteration as stop:
            return items, stop.value


async def acatch(awaitable: Any) -> object:
    """``catch`` for an awaitable."""
    try:
        return ("returned", await awaitable)
    except BaseException as error:
        return error


def stack_depth() -> int:
    frame: FrameType | None = sys._getframe(1)
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def first_difference(left: object, right: object, path: str = "") -> str | None:
    """Where two normalised outcomes first differ (``None`` when they are equal), for messages."""
    if left == right:
        return None
    if isinstance(left, tuple) and isinstance(right, tuple) and len(left) == len(right):
        for index, (a, b) in enumerate(zip(left, right, strict=True)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found is not None:
                return found
    return f"at {path or 'the top'}:\n  original:  {left!r}\n  rewritten: {right!r}"


def trace_events(module: ModuleType, function: Callable[..., Any], *args: Any) -> list[tuple[str, str, int]]:
    """The ``sys.settrace`` events ``(event, function name, line)`` of the module's own frames
    while ``function(*args)`` runs."""
    events: list[tuple[str, str, int]] = []

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code.co_filename == module.__file__:
            events.append((event, frame.f_code.co_name, frame.f_lineno))
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        catch(function, *args)
    finally:
        sys.settrace(previous)
    return events
