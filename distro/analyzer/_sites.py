"""Code units and the call/decorator sites inside them, with resolved origins.

Every rule (roles, flows, lifecycle, IO indicators, call graph) looks at the same facts:
"unit U calls something resolving to origin O on line L, inside a loop, awaited". Computing
them once here keeps each rule module small and makes the whole analysis a single
resolution pass per module.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Literal

from ._model import qualified
from ._resolve import ProjectIndex, Scope
from ._symbols import ClassInfo, FunctionInfo, ModuleIndex

UnitKind = Literal["module", "class", "function"]


@dataclass(frozen=True)
class Unit:
    module: str
    qualname: str  # "" for the module itself
    kind: UnitKind
    path: str
    line: int
    end_line: int
    node: ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
    function: FunctionInfo | None = None
    cls: ClassInfo | None = None

    @property
    def name(self) -> str:
        return qualified(self.module, self.qualname)

    @property
    def is_async(self) -> bool:
        return isinstance(self.node, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class CallSite:
    unit: Unit
    node: ast.Call
    scope: Scope
    func: str | None  # origin of the callee
    method: str | None  # attribute name when the callee is ``x.method``
    receiver: str | None  # origin of ``x``
    receiver_text: str | None  # ``x`` spelled as a dotted name, when it is one
    in_loop: bool
    in_while_true: bool
    awaited: bool

    @property
    def line(self) -> int:
        return self.node.lineno


@dataclass(frozen=True)
class DecoratorSite:
    node: ast.expr
    call: ast.Call | None
    origin: str | None  # origin of the decorator (of the callee when it is ``@x(...)``)
    text: str

    @property
    def line(self) -> int:
        return self.node.lineno


@dataclass
class UnitFacts:
    unit: Unit
    scope: Scope
    calls: list[CallSite] = field(default_factory=list)
    decorators: list[DecoratorSite] = field(default_factory=list)
    bases: list[tuple[str, int, str]] = field(default_factory=list)  # (origin, line, source text)


@dataclass
class ProjectFacts:
    index: ProjectIndex
    units: list[UnitFacts]
    by_name: dict[str, UnitFacts]


def dotted(expr: ast.expr) -> str | None:
    """``a.b.c`` for a plain name chain, else None."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if isinstance(expr, ast.Name):
        parts.append(expr.id)
        return ".".join(reversed(parts))
    return None


def short_source(node: ast.AST, limit: int = 80) -> str:
    text = ast.unparse(node).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_forever(test: ast.expr) -> bool:
    return isinstance(test, ast.Constant) and bool(test.value)


class _CallCollector:
    """Walks one unit's own code (not nested defs) recording call sites with loop context."""

    def __init__(self, index: ProjectIndex, facts: UnitFacts) -> None:
        self.index = index
        self.facts = facts

    def stmts(self, body: list[ast.stmt], in_loop: bool, forever: bool) -> None:
        for stmt in body:
            self.node(stmt, in_loop, forever, awaited=False)

    def node(self, node: ast.AST, in_loop: bool, forever: bool, awaited: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            return
        if isinstance(node, (ast.For, ast.AsyncFor)):
            self.node(node.iter, in_loop, forever, False)
            self.stmts(node.body, True, forever)
            self.stmts(node.orelse, in_loop, forever)
            return
        if isinstance(node, ast.While):
            self.node(node.test, True, forever, False)
            self.stmts(node.body, True, forever or _is_forever(node.test))
            self.stmts(node.orelse, in_loop, forever)
            return
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            for child in ast.iter_child_nodes(node):
                self.node(child, True, forever, False)
            return
        if isinstance(node, ast.Await):
            self.node(node.value, in_loop, forever, True)
            return
        if isinstance(node, ast.Call):
            self.record(node, in_loop, forever, awaited)
        for child in ast.iter_child_nodes(node):
            self.node(child, in_loop, forever, False)

    def record(self, call: ast.Call, in_loop: bool, forever: bool, awaited: bool) -> None:
        scope = self.facts.scope
        func = self.index.origin(call.func, scope)
        method = receiver = receiver_text = None
        if isinstance(call.func, ast.Attribute):
            method = call.func.attr
            receiver = self.index.origin(call.func.value, scope)
            receiver_text = dotted(call.func.value)
        self.facts.calls.append(
            CallSite(
                self.facts.unit, call, scope, func, method, receiver, receiver_text, in_loop, forever, awaited
            )
        )


def _decorators(
    index: ProjectIndex, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, scope: Scope
) -> list[DecoratorSite]:
    out = []
    for deco in node.decorator_list:
        call = deco if isinstance(deco, ast.Call) else None
        origin = index.origin(call.func if call else deco, scope)
        out.append(DecoratorSite(deco, call, origin, "@" + short_source(deco)))
    return out


def _enclosing_scope(index: ProjectIndex, module: ModuleIndex, fn_qualname: str | None) -> Scope:
    parent = module.functions.get(fn_qualname) if fn_qualname else None
    return index.function_scope(parent) if parent else index.module_scope(module.name)


def _class_facts(index: ProjectIndex, module: ModuleIndex, cls: ClassInfo) -> UnitFacts:
    node = cls.node
    owner = _owner_function(module, cls.qualname)
    scope = _enclosing_scope(index, module, owner)
    end = node.end_lineno or node.lineno
    unit = Unit(module.name, cls.qualname, "class", module.path, node.lineno, end, node, cls=cls)
    facts = UnitFacts(unit, scope, decorators=_decorators(index, node, scope))
    ref = f"{module.name}:{cls.qualname}"
    for base in node.bases:
        found = index.origin(base, scope)
        if found:
            facts.bases.append((found, base.lineno, short_source(base)))
    direct = {b[0] for b in facts.bases}
    facts.bases += [(a, node.lineno, f"{a} (inherited)") for a in index.ancestors(ref) if a not in direct]
    _CallCollector(index, facts).stmts(node.body, False, False)
    return facts


def _owner_function(module: ModuleIndex, qualname: str) -> str | None:
    """The function a nested class/function is defined in (``f.<locals>.C`` -> ``f``)."""
    head, sep, _ = qualname.rpartition(".<locals>.")
    return head if sep and head in module.functions else None


def _function_facts(index: ProjectIndex, module: ModuleIndex, fn: FunctionInfo) -> UnitFacts:
    node = fn.node
    end = node.end_lineno or node.lineno
    unit = Unit(module.name, fn.qualname, "function", module.path, node.lineno, end, node, fn)
    outer = _enclosing_scope(index, module, fn.parent_function)
    facts = UnitFacts(unit, index.function_scope(fn), decorators=_decorators(index, node, outer))
    _CallCollector(index, facts).stmts(node.body, False, False)
    return facts


def collect_facts(index: ProjectIndex) -> ProjectFacts:
    units: list[UnitFacts] = []
    for name in sorted(index.modules):
        module = index.modules[name]
        tree = module.tree
        end = max((getattr(n, "end_lineno", 0) or 0 for n in tree.body), default=1)
        unit = Unit(name, "", "module", module.path, 1, end, tree)
        facts = UnitFacts(unit, index.module_scope(name))
        _CallCollector(index, facts).stmts(tree.body, False, False)
        units.append(facts)
        units += [_class_facts(index, module, cls) for cls in module.classes.values()]
        units += [_function_facts(index, module, fn) for fn in module.functions.values()]
    return ProjectFacts(index, units, {f.unit.name: f for f in units})
