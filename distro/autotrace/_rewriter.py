"""The AST rewrite: what changes in a selected module, and nothing else.

For each selected function the body (after its docstring) is wrapped in
``with S:`` where ``S`` is ``__execscope_sites__.<key>[i]``, the function's
:class:`~execscope.autotrace._runtime.Site`; at levels that capture values its ``return x``
becomes ``return S.ret(x)``; in generators ``yield x`` becomes
``S.resume((yield S.suspend(x)))`` and ``yield from it`` becomes
``S.resume((yield from S.delegate(it)))``. One expression statement is added at the top of the
module (after the docstring and ``__future__`` imports) that registers the module's sites,
built from constants compiled into the module, so cached bytecode needs nothing else.
``__execscope_sites__`` is a registry installed in ``builtins`` (a name lookup falls back to
builtins), so a rewritten module has no extra global.

Why this shape: no wrapper function means no extra frame (``sys._getframe(1)``, recursion
depth and tracebacks stay as written) and no change to ``__code__`` metadata that matters
(name, qualname, signature, defaults, closures, ``__class__``); the ``with`` has no ``as``
target, so the function's locals are exactly its own. Every new node carries the location of
the code it stands for, so tracebacks point at the original lines.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from execscope.autotrace._levels import ARGS, OFF, SiteFlags

SITES_NAME: Final = "__execscope_sites__"
RUNTIME_MODULE: Final = "execscope.autotrace._runtime"
#: Bumped whenever the rewritten code changes shape, so cached rewrites are not reused.
REWRITER_VERSION: Final = 5

#: Methods the interpreter calls implicitly and often (hashing, comparison, attribute access,
#: iteration protocol, finalisation, printing): recording them would flood traces and would
#: run instrumentation from inside ``repr``/``==``/``del`` of arbitrary objects, so they are
#: never rewritten.
PLUMBING_METHODS: Final = frozenset(
    {
        "__repr__", "__str__", "__format__", "__hash__", "__bool__", "__len__", "__sizeof__",
        "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
        "__getattr__", "__getattribute__", "__setattr__", "__delattr__", "__dir__",
        "__get__", "__set__", "__delete__", "__set_name__",
        "__iter__", "__next__", "__aiter__", "__anext__", "__contains__",
        "__del__", "__instancecheck__", "__subclasscheck__", "__class_getitem__",
        "__index__", "__int__", "__float__", "__complex__",
        "__getstate__", "__setstate__", "__reduce__", "__reduce_ex__", "__copy__", "__deepcopy__",
        "__fspath__", "__subclasshook__", "__mro_entries__",
    }
)  # fmt: skip

_SCOPES: Final = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


@dataclass(frozen=True)
class SiteDescriptor:
    """What the runtime needs to know about one rewritten function (compiled in as constants)."""

    qualname: str
    lineno: int
    params: tuple[str, ...]
    flags: int
    level: int
    sample_rate: float
    min_duration: float

    def as_constant(self) -> tuple[str, int, tuple[str, ...], int, int, float, float]:
        return (
            self.qualname,
            self.lineno,
            self.params,
            self.flags,
            self.level,
            self.sample_rate,
            self.min_duration,
        )


@dataclass(frozen=True)
class RewriteResult:
    tree: ast.Module
    sites: tuple[SiteDescriptor, ...]


@dataclass(frozen=True)
class Decision:
    """How one function is recorded (from the plan and the settings)."""

    level: int
    stateful: bool = False
    sample_rate: float = 1.0
    min_duration: float = 0.0


#: Decides how a function is recorded from its qualified name (``Class.method``, ``f.<locals>.g``).
LevelFor = Callable[[str], Decision]


def _parameters(args: ast.arguments) -> tuple[str, ...]:
    names = [a.arg for a in (*args.posonlyargs, *args.args)]
    if args.vararg is not None:
        names.append(args.vararg.arg)
    names.extend(a.arg for a in args.kwonlyargs)
    if args.kwarg is not None:
        names.append(args.kwarg.arg)
    return tuple(names)


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    names = set()
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Attribute):
            names.add(target.attr)
    return names


def _own_nodes(body: list[ast.stmt]) -> list[ast.AST]:
    """Every node of a function body that belongs to the function's own scope."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, _SCOPES):
                stack.append(child)
    return found


def _is_generator(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in _own_nodes(node.body))


def _assigns_self(method: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Does the method (or code nested in it) assign, augment or delete an attribute of its
    first parameter, or call ``setattr`` on it? That makes its class stateful."""
    params = [*method.args.posonlyargs, *method.args.args]
    if not params:
        return False
    owner = params[0].arg

    def is_owner_attribute(target: ast.AST) -> bool:
        while isinstance(target, (ast.Attribute, ast.Subscript)):
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == owner
            ):
                return True
            target = target.value
        return False

    for node in ast.walk(method):
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            is_setattr = (isinstance(func, ast.Name) and func.id in ("setattr", "delattr")) or (
                isinstance(func, ast.Attribute) and func.attr in ("__setattr__", "__delattr__")
            )
            first = node.args[0]
            if is_setattr and isinstance(first, ast.Name) and first.id == owner:
                return True
        for target in targets:
            for element in ast.walk(target) if isinstance(target, (ast.Tuple, ast.List)) else [target]:
                if is_owner_attribute(element):
                    return True
    return False


class _ScopedRewrite(ast.NodeTransformer):
    """Rewrites the ``return``/``yield``/``yield from`` of one function, not of nested scopes."""

    def __init__(self, key: str, index: int, capture_return: bool, generator: bool) -> None:
        self.key = key
        self.index = index
        self.capture_return = capture_return
        self.generator = generator

    def _site_method(self, name: str, node: ast.AST) -> ast.Attribute:
        method = ast.Attribute(value=site_reference(self.key, self.index), attr=name, ctx=ast.Load())
        _place_on_first_line(method, node)
        return method

    def _call(self, name: str, argument: ast.expr, node: ast.AST) -> ast.Call:
        return ast.copy_location(
            ast.Call(func=self._site_method(name, node), args=[argument], keywords=[]), node
        )

    def rewrite_body(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        node.body = [self.visit(statement) for statement in node.body]

    # A nested scope's decorators, defaults, annotations and bases are evaluated in this
    # function's scope (and may contain its yields); its body is not ours.
    def _outer_parts(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> ast.AST:
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        if isinstance(node, ast.ClassDef):
            node.bases = [self.visit(b) for b in node.bases]
            for keyword in node.keywords:
                self.visit(keyword)
        else:
            self.visit(node.args)
            if node.returns is not None:
                node.returns = self.visit(node.returns)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._outer_parts(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return self._outer_parts(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        return self._outer_parts(node)

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        self.visit(node.args)
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST:
        self.generic_visit(node)
        if self.capture_return and node.value is not None:
            node.value = self._call("ret", node.value, node.value)
        return node

    def visit_Yield(self, node: ast.Yield) -> ast.AST:
        self.generic_visit(node)
        if not self.generator:
            return node
        value = node.value if node.value is not None else ast.copy_location(ast.Constant(value=None), node)
        node.value = self._call("suspend", value, value)
        return self._call("resume", node, node)

    def visit_YieldFrom(self, node: ast.YieldFrom) -> ast.AST:
        self.generic_visit(node)
        node.value = self._call("delegate", node.value, node.value)
        return self._call("resume", node, node)


class _ModuleRewrite(ast.NodeVisitor):
    def __init__(self, level_for: LevelFor, key: str) -> None:
        self.level_for = level_for
        self.key = key
        self.sites: list[SiteDescriptor] = []
        self.qualname: list[str] = []
        self.stateful_classes: set[str] = set()

    # Qualified names follow the interpreter's rules: ``C.m``, ``f.<locals>.g``.
    def _child_qualname(self, name: str) -> str:
        return ".".join([*self.qualname, name])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        qualname = self._child_qualname(node.name)
        methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        stateful = any(
            _assigns_self(m) for m in methods if not _decorator_names(m) & {"staticmethod", "classmethod"}
        ) or any(isinstance(b, ast.Name) and b.id in self.stateful_classes for b in node.bases)
        if stateful:
            self.stateful_classes.add(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        for item in (*node.bases, *node.keywords):
            self.visit(item)
        self.qualname.append(node.name)
        for statement in node.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._function(statement, in_class=True, stateful_class=stateful)
            else:
                self.visit(statement)
        self.qualname.pop()
        del qualname

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node, in_class=False, stateful_class=False)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node, in_class=False, stateful_class=False)

    def _function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, *, in_class: bool, stateful_class: bool
    ) -> None:
        # Decorators, defaults and annotations run in the enclosing scope: visit them there.
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.visit(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        qualname = self._child_qualname(node.name)
        self.qualname.extend([node.name, "<locals>"])
        for statement in node.body:
            self.visit(statement)
        self.qualname.pop()
        self.qualname.pop()

        if in_class and node.name in PLUMBING_METHODS:
            return
        decision = self.level_for(qualname)
        level = decision.level
        if level == OFF:
            return
        decorators = _decorator_names(node)
        params = _parameters(node.args)
        flags = 0
        if in_class and "staticmethod" not in decorators:
            flags |= SiteFlags.METHOD
            if "classmethod" not in decorators and node.name not in ("__new__", "__init_subclass__"):
                flags |= SiteFlags.INSTANCE_METHOD
                if stateful_class or decision.stateful:
                    flags |= SiteFlags.STATEFUL_CLASS
        elif params and (params[0] == "state" or decision.stateful):
            flags |= SiteFlags.REDUCER
        generator = _is_generator(node)
        if generator:
            flags |= SiteFlags.GENERATOR
        if isinstance(node, ast.AsyncFunctionDef):
            flags |= SiteFlags.ASYNC
        index = len(self.sites)
        self.sites.append(
            SiteDescriptor(
                qualname, node.lineno, params, flags, level, decision.sample_rate, decision.min_duration
            )
        )
        _ScopedRewrite(self.key, index, capture_return=level >= ARGS, generator=generator).rewrite_body(node)
        _wrap_body(node, index, self.key)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def site_reference(key: str, index: int) -> ast.Subscript:
    """``__execscope_sites__.<key>[index]``: the site, looked up in the registry installed in
    ``builtins`` (not a module global, so module globals stay the program's own and a function
    rebuilt from its code object with other globals still finds it). The registry is a module
    object: an attribute of a module is found as fast as a module global."""
    return ast.Subscript(
        value=ast.Attribute(value=ast.Name(id=SITES_NAME, ctx=ast.Load()), attr=key, ctx=ast.Load()),
        slice=ast.Constant(value=index),
        ctx=ast.Load(),
    )


def _place_on_first_line(tree: ast.AST, at: ast.AST) -> None:
    """Locate every node of ``tree`` at the start of ``at``, on that one line. A node spanning
    several lines would put an attribute load on its last line (the interpreter reports an
    attribute access where the attribute's name is) and show tracers a line jump."""
    line = getattr(at, "lineno", 1)
    column = getattr(at, "col_offset", 0)
    for node in ast.walk(tree):
        node.lineno, node.col_offset = line, column  # type: ignore[attr-defined]
        node.end_lineno, node.end_col_offset = line, column  # type: ignore[attr-defined]


def module_key(module: str, source: bytes | str) -> str:
    """The registry key of one version of a module: a digest of its name and source, so that
    functions of an older version (kept after ``reload``) keep their own sites."""
    data = source.encode("utf-8", "surrogateescape") if isinstance(source, str) else source
    return "m_" + hashlib.sha256(module.encode("utf-8", "surrogateescape") + b"\0" + data).hexdigest()[:20]


def _wrap_body(node: ast.FunctionDef | ast.AsyncFunctionDef, index: int, key: str) -> None:
    body = node.body
    head: list[ast.stmt] = []
    if body and _is_docstring(body[0]):
        head, body = body[:1], body[1:]
    # Where the implicit ``return None`` of a function with no code of its own (only a
    # docstring, ``global``, ``nonlocal``) is: its first line.
    first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    first_line = ast.Pass(lineno=first, col_offset=0, end_lineno=first, end_col_offset=0)
    if not body:
        body = [first_line]
    # The enter code runs on the line of the first statement that makes code.
    start = next((s for s in body if not isinstance(s, (ast.Global, ast.Nonlocal))), first_line)
    site = site_reference(key, index)
    # The ``with`` has no location of its own (-1, as the compiler's own artificial code): its
    # enter and exit code take the line of the code next to them, so a tracer (debugger,
    # coverage) sees no extra line event and the function returns from its own last line.
    wrapper = ast.With(
        items=[ast.withitem(context_expr=site)],
        body=body,
        lineno=-1,
        col_offset=-1,
        end_lineno=-1,
        end_col_offset=-1,
    )
    _place_on_first_line(site, start)
    node.body = [*head, wrapper]


def _header(
    key: str, module_filename: str, sites: tuple[SiteDescriptor, ...], anchor: ast.stmt | None
) -> ast.stmt:
    source = (
        f"__import__({RUNTIME_MODULE!r}, fromlist=('register',))"
        f".register({key!r}, __name__, {module_filename!r}, ())"
    )
    statement = ast.parse(source).body[0]
    assert isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
    constant: Any = tuple(site.as_constant() for site in sites)  # typeshed omits tuple constants
    statement.value.args[3] = ast.Constant(value=constant)
    location = (
        anchor if anchor is not None else ast.Pass(lineno=1, col_offset=0, end_lineno=1, end_col_offset=0)
    )
    for node in ast.walk(statement):
        if isinstance(node, (ast.expr, ast.stmt)):
            ast.copy_location(node, location)
            node.end_lineno = location.lineno
            node.end_col_offset = location.col_offset
    return statement


def _header_position(body: list[ast.stmt]) -> int:
    position = 1 if body and _is_docstring(body[0]) else 0
    while position < len(body):
        statement = body[position]
        if isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
            position += 1
        else:
            break
    return position


def rewrite_tree(tree: ast.Module, filename: str, level_for: LevelFor, key: str) -> RewriteResult:
    """Rewrite ``tree`` in place; returns it with the descriptors of its sites.

    ``key`` (see :func:`module_key`) names this module's sites in the registry. A module with
    no selected function is returned unchanged (and with no header).
    """
    visitor = _ModuleRewrite(level_for, key)
    visitor.visit(tree)
    sites = tuple(visitor.sites)
    if sites:
        position = _header_position(tree.body)
        anchor = tree.body[position] if position < len(tree.body) else (tree.body[-1] if tree.body else None)
        tree.body.insert(position, _header(key, filename, sites, anchor))
        ast.fix_missing_locations(tree)
    return RewriteResult(tree, sites)
