"""Result types of the static analysis.

They are frozen and built from tuples only, so an ``Analysis`` can be compared, hashed in
tests for determinism, and turned into JSON without custom encoders.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Final, Literal, get_args

Role = Literal["web_entry", "task", "actor", "stateful", "db", "producer", "consumer", "cli", "library"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)

UnitKind = Literal["module", "class", "function", "object"]


def qualified(module: str, qualname: str) -> str:
    """The display name used everywhere: ``pkg.mod`` for a module, ``pkg.mod:Cls.meth`` otherwise."""
    return f"{module}:{qualname}" if qualname else module


@dataclass(frozen=True, order=True)
class Evidence:
    """One observation that supports a recognition: what was seen, and on which line."""

    line: int
    kind: str  # "decorator", "base_class", "call", "assignment", "guard", "method", "loop", "reference"
    detail: str


@dataclass(frozen=True)
class Recognition:
    """A role attributed to a module, class, function or module-level object."""

    role: Role
    module: str
    qualname: str
    kind: UnitKind
    path: str
    line: int
    confidence: float
    evidence: tuple[Evidence, ...]

    @property
    def name(self) -> str:
        return qualified(self.module, self.qualname)


@dataclass(frozen=True)
class FunctionMetrics:
    """Size and shape of one function, used to tell hot trivial helpers from heavy code."""

    module: str
    qualname: str
    path: str
    line: int
    end_line: int
    is_async: bool
    cyclomatic: int
    max_nesting: int
    lines: int
    statements: int
    loops: int
    recursive: bool
    writes_state: bool  # rebinds or mutates self.<attr> (outside the constructor family)
    io: tuple[str, ...]
    loop_call_sites: int  # call sites elsewhere in the project that call this function inside a loop
    call_sites: int  # all resolved call sites in the project that call this function
    callees: tuple[str, ...]  # project functions this one calls (resolved statically)

    @property
    def name(self) -> str:
        return qualified(self.module, self.qualname)


@dataclass(frozen=True, order=True)
class FlowNode:
    id: str
    kind: str  # "unit", "queue", "channel", "pattern", "route", "task_name"
    label: str


@dataclass(frozen=True, order=True)
class FlowEdge:
    source: str
    target: str
    kind: str  # "enqueue", "put", "get", "publish", "subscribe", "matches", "http", "routes"
    path: str
    line: int
    detail: str


@dataclass(frozen=True)
class FlowGraph:
    nodes: tuple[FlowNode, ...]
    edges: tuple[FlowEdge, ...]


@dataclass(frozen=True, order=True)
class LifecycleEvent:
    """Where a concurrent or serving component is created, started, waited for or stopped."""

    path: str
    line: int
    module: str
    qualname: str
    action: str  # "create", "start", "submit", "run", "join", "cancel", "stop", "shutdown", "signal"
    subject: str  # "process", "thread", "asyncio_task", "task_group", "executor", "server", "event_loop"
    detail: str
    confidence: float


@dataclass(frozen=True, order=True)
class Skipped:
    """A file or directory that was not analysed, and why (reported once, never fatal)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Route:
    """An HTTP/WebSocket route declared by the project, used to link client calls to handlers."""

    method: str
    path: str
    handler: str
    line: int


def _jsonable(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class Analysis:
    """Everything the analyzer learned about one project tree."""

    root: str
    modules: tuple[str, ...]
    recognitions: tuple[Recognition, ...]
    functions: tuple[FunctionMetrics, ...]
    routes: tuple[Route, ...]
    flows: FlowGraph
    lifecycle: tuple[LifecycleEvent, ...]
    skipped: tuple[Skipped, ...]

    def names_with_role(self, role: Role) -> frozenset[str]:
        return frozenset(r.name for r in self.recognitions if r.role == role)

    def roles_of(self, name: str) -> tuple[Role, ...]:
        return tuple(sorted({r.role for r in self.recognitions if r.name == name}))

    def recognition(self, name: str, role: Role) -> Recognition | None:
        return next((r for r in self.recognitions if r.name == name and r.role == role), None)

    def function(self, name: str) -> FunctionMetrics | None:
        return next((f for f in self.functions if f.name == name), None)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (lists, not tuples), with each recognition's display name added."""
        data = asdict(self)
        for rec, raw in zip(self.recognitions, data["recognitions"], strict=True):
            raw["name"] = rec.name
        for fn, raw in zip(self.functions, data["functions"], strict=True):
            raw["name"] = fn.name
        result = _jsonable(data)
        assert isinstance(result, dict)
        return result
