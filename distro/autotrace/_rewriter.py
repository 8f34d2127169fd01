"""The AST rewrite: what changes in a selected module, and nothing else.

For each selected function the body (after its docstring) is wrapped in
``with S:`` where ``S`` is ``__execscope_sites__.<key>[i]``, the function's
:class:`~execscope.autotrace._runtime.Site`; at levels that capture values its ``return x``
becomes ``return S.ret_exit(x)`` (``return S.ret(x)`` inside a ``with`` or a ``try`` with a
``finally``, whose exit code runs after the value); in generators ``yield x`` becomes
``S.resume((yield S.suspend(x)))``, ``yield from it`` becomes
``S.resume((yield from S.delegate(it)))``, and each handler and ``finally`` of a ``try`` that
holds a ``yield`` starts with ``S.resume(None)``. One expression statement is added at the top of the
module (after the docstring and ``__future__`` imports) that registers the module's sites,
described by constants compiled into the module, so cached bytecode needs nothing else.
``__execscope_sites__`` is a registry installed in ``builtins`` (a name lookup falls back to
builtins), so a rewritten module has no extra global.

Why this shape: no wrapper function means no extra frame (``sys._getframe(1)``, recursion
depth and tracebacks stay as written) and no change to ``__code__`` metadata that matters
(name, qualname, signature, defaults, closures, ``__class__``); the ``with`` has no ``as``
target, so the function's locals are exactly its own. A new node carries the location of the
code it stands for (tracebacks point at the original lines), or none where it is the rewrite's
own bookkeeping (the ``with``, the method lookup of an added call), whose code then takes the
location of the code before it, as the compiler's own artificial code does: a line tracer sees
the original events. The ``with``'s enter code runs first, so it is placed where the body's
first statement starts to run (:func:`_first_code`).

What it costs: the rewrite runs on every import from a cold cache, between the parse and the
compile (which it cannot avoid), so it touches as little of the tree as it can. Functions and
``return`` are statements: the pass walks statement lists only, never the ~10 expression nodes
per line of code. Expressions are walked only where they can matter, and the source text says
where that can be: a ``yield`` can only be in a function whose lines contain the word, and a
``setattr``/``delattr`` call that makes a class stateful only in a method whose lines contain
it. New nodes get their locations when they are made. The sites are described to the runtime
by one string constant, one line per site, rather than a tuple of tuples: unmarshalling a
cached module then makes one object instead of several per function (see ``describe_sites``).
"""

from __future__ import annotations

import ast
import bisect
import hashlib
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from execscope.autotrace._levels import ARGS, OFF, SiteFlags

SITES_NAME: Final = "__execscope_sites__"
RUNTIME_MODULE: Final = "execscope.autotrace._runtime"
#: Bumped whenever the rewritten code changes shape, so cached rewrites are not reused: the code
#: of either rewrite (of the tree, here; of the compiled code, ``_code_rewrite`` and ``_bytecode``).
REWRITER_VERSION: Final = 11

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
_FUNCTIONS: Final = (ast.FunctionDef, ast.AsyncFunctionDef)
_LOAD: Final = ast.Load()
_NO_NAMES: Final[frozenset[str]] = frozenset()

#: The fields of compound statements that hold statements, in the order of their ``_fields``
#: (the order sites are numbered in). ``handlers`` and ``cases`` hold nodes with a ``body``.
#: Every other statement holds expressions only; function and class bodies are handled apart.
_BLOCKS: Final[dict[type[ast.stmt], tuple[str, ...]]] = {
    ast.If: ("body", "orelse"),
    ast.For: ("body", "orelse"),
    ast.AsyncFor: ("body", "orelse"),
    ast.While: ("body", "orelse"),
    ast.With: ("body",),
    ast.AsyncWith: ("body",),
    ast.Try: ("body", "handlers", "orelse", "finalbody"),
    ast.Match: ("cases",),
}
_TRY_STAR: type[ast.stmt] | None = getattr(ast, "TryStar", None)  # Python 3.11+
if _TRY_STAR is not None:
    _BLOCKS[_TRY_STAR] = ("body", "handlers", "orelse", "finalbody")


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


def _blocks(statement: ast.stmt, fields: tuple[str, ...]) -> list[list[ast.stmt]]:
    """The statement lists directly inside a compound statement, in ``_fields`` order."""
    found: list[list[ast.stmt]] = []
    for name in fields:
        value = getattr(statement, name)
        if name in {"handlers", "cases"}:
            found.extend(item.body for item in value)
        else:
            found.append(value)
    return found


def _own_nodes(body: list[ast.stmt]) -> list[ast.AST]:
    """Every node of a function body that belongs to the function's own scope (a function or
    class defined in the body is not, whether nested in a statement or a statement itself)."""
    found: list[ast.AST] = []
    stack: list[ast.AST] = [s for s in reversed(body) if not isinstance(s, _SCOPES)]
    while stack:
        node = stack.pop()
        found.append(node)
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, _SCOPES):
                stack.append(child)
    return found


def _yields_in(statements: list[ast.stmt]) -> bool:
    """Is there a ``yield`` among the nodes :func:`_own_nodes` finds from ``statements``?"""
    return any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in _own_nodes(statements))


def _is_generator(node: ast.FunctionDef | ast.AsyncFunctionDef, source: _SourceIndex | None = None) -> bool:
    """:func:`_yields_in` the body. With ``source``, the walk skips the nodes whose lines have
    no ``yield``."""
    if source is None:
        return _yields_in(node.body)
    stack: list[ast.AST] = [s for s in node.body if not isinstance(s, _SCOPES) and source.may_yield_in(s)]
    while stack:
        current = stack.pop()
        if isinstance(current, (ast.Yield, ast.YieldFrom)):
            return True
        stack.extend(
            child
            for child in ast.iter_child_nodes(current)
            if not isinstance(child, _SCOPES) and source.may_yield_in(child)
        )
    return False


_Found = TypeVar("_Found", bound=ast.stmt)


def _statements_of(statements: list[ast.stmt], kinds: tuple[type[_Found], ...]) -> list[_Found]:
    """The statements of ``kinds`` among ``statements`` and the blocks nested in them (not in
    nested functions or classes, nor in what they found)."""
    found: list[_Found] = []
    stack = list(reversed(statements))
    while stack:
        statement = stack.pop()
        if isinstance(statement, kinds):
            found.append(statement)
            continue
        fields = _BLOCKS.get(type(statement))
        if fields is not None:
            for block in reversed(_blocks(statement, fields)):
                stack.extend(reversed(block))
    return found


def _own_returns(statements: list[ast.stmt]) -> list[ast.Return]:
    """The ``return`` statements of a function's own: among ``statements`` and their blocks."""
    return _statements_of(statements, (ast.Return,))


def _is_owner_attribute(target: ast.AST, owner: str) -> bool:
    """Is ``target`` (an assignment target) ``owner.x``, or an item or attribute below it?"""
    while isinstance(target, (ast.Attribute, ast.Subscript)):
        if (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == owner
        ):
            return True
        target = target.value
    return False


def _targets_owner(targets: Iterable[ast.expr], owner: str) -> bool:
    for target in targets:
        for element in ast.walk(target) if isinstance(target, (ast.Tuple, ast.List)) else [target]:
            if _is_owner_attribute(element, owner):
                return True
    return False


def _owner(method: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    params = [*method.args.posonlyargs, *method.args.args]
    return params[0].arg if params else None


def _assigns_self(method: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Does the method (or code nested in it) assign, augment or delete an attribute of its
    first parameter, or call ``setattr`` on it? That makes its class stateful."""
    owner = _owner(method)
    if owner is None:
        return False
    for node in ast.walk(method):
        targets: list[ast.expr] = []
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
        if _targets_owner(targets, owner):
            return True
    return False


def _statements_assign_owner(statements: list[ast.stmt], owner: str) -> bool:
    """:func:`_assigns_self` without the ``setattr`` calls: the assignments, augmented
    assignments and deletions among ``statements`` and every statement nested in them
    (nested functions and classes included), without walking any expression but targets."""
    for statement in statements:
        if isinstance(statement, (ast.Assign, ast.Delete)):
            if _targets_owner(statement.targets, owner):
                return True
        elif isinstance(statement, (ast.AugAssign, ast.AnnAssign)):
            if _targets_owner((statement.target,), owner):
                return True
        elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if _statements_assign_owner(statement.body, owner):
                return True
        else:
            fields = _BLOCKS.get(type(statement))
            if fields is not None and any(
                _statements_assign_owner(block, owner) for block in _blocks(statement, fields)
            ):
                return True
    return False


class _SourceIndex:
    """Where in the source the words are that the rewrite must look for in expressions.

    A ``yield`` (generators; the only expressions the rewrite changes) can only be in a
    function whose lines contain ``yield``: a keyword is never spelled any other way. A call
    of ``setattr``/``__setattr__``/``delattr``/``__delattr__`` (which makes a class stateful)
    can only be in a method whose lines contain ``setattr`` or ``delattr``, once identifiers
    are NFKC-normalised as the parser does. Without the source every function may have both.
    """

    __slots__ = ("_setattr_lines", "_yield_lines")

    def __init__(self, source: str | None) -> None:
        self._yield_lines: list[int] | None = None
        self._setattr_lines: list[int] | None = None
        if source is None:
            return
        # The parser counts "\r\n", "\r" and "\n" as line ends.
        text = source.replace("\r\n", "\n").replace("\r", "\n") if "\r" in source else source
        self._yield_lines = _lines_containing(text, ("yield",))
        setattr_lines = _lines_containing(text, ("setattr", "delattr"))
        if not text.isascii():
            for number, line in enumerate(text.split("\n"), 1):
                if not line.isascii():
                    normal = unicodedata.normalize("NFKC", line)
                    if "setattr" in normal or "delattr" in normal:
                        setattr_lines.append(number)
            setattr_lines = sorted(set(setattr_lines))
        self._setattr_lines = setattr_lines

    @staticmethod
    def _any_between(lines: list[int] | None, first: int, last: int | None) -> bool:
        if lines is None or last is None:
            return True
        position = bisect.bisect_left(lines, first)
        return position < len(lines) and lines[position] <= last

    def may_yield_in(self, node: ast.AST) -> bool:
        """Can ``node`` (decorators included) have a ``yield`` in it? A node with no location
        (``arguments``, ``comprehension``..., the ``with`` of a function rewritten already) may."""
        last: int | None = getattr(node, "end_lineno", None)
        if last is None or last < 0 or self._yield_lines is None:
            return True
        decorators = getattr(node, "decorator_list", None)
        first: int = decorators[0].lineno if decorators else node.lineno  # type: ignore[attr-defined]
        return self._any_between(self._yield_lines, first, last)

    def may_call_setattr(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        return self._any_between(self._setattr_lines, _first_line(function), function.end_lineno)


def _first_line(statement: ast.stmt) -> int:
    """Where a statement starts: a decorated definition at its first decorator (its
    ``lineno`` is the line of ``def`` or ``class``)."""
    decorators = getattr(statement, "decorator_list", None)
    return decorators[0].lineno if decorators else statement.lineno


def _lines_containing(text: str, words: tuple[str, ...]) -> list[int]:
    """The numbers (from 1) of the lines of ``text`` where any of ``words`` occurs, sorted."""
    found: set[int] = set()
    for word in words:
        line, counted = 1, 0
        position = text.find(word)
        while position >= 0:
            line += text.count("\n", counted, position)
            counted = position
            found.add(line)
            position = text.find(word, position + 1)
    return sorted(found)


def _site_at(key: str, index: int, line: int, column: int) -> ast.Subscript:
    """``__execscope_sites__.<key>[index]``, every node at ``line:column`` (start and end).

    The site is looked up in the registry installed in ``builtins`` (not a module global, so
    module globals stay the program's own and a function rebuilt from its code object with
    other globals still finds it). The registry is a module object: an attribute of a module is
    found as fast as a module global. All on one line: a node spanning several lines would put
    an attribute load on its last line (the interpreter reports an attribute access where the
    attribute's name is) and show tracers a line jump.

    The rewrite makes ~20 nodes per function, so they are made the cheapest way: empty (no
    ``__init__``), then given their fields and locations one by one, in the order the parser
    gives them (half the time of keyword arguments; the compiler reads them as fast as parsed
    nodes)."""
    name = ast.Name.__new__(ast.Name)
    name.id = SITES_NAME
    name.ctx = _LOAD
    name.lineno = name.end_lineno = line
    name.col_offset = name.end_col_offset = column
    registry = ast.Attribute.__new__(ast.Attribute)
    registry.value = name
    registry.attr = key
    registry.ctx = _LOAD
    registry.lineno = registry.end_lineno = line
    registry.col_offset = registry.end_col_offset = column
    number = ast.Constant.__new__(ast.Constant)
    number.value = index
    number.lineno = number.end_lineno = line
    number.col_offset = number.end_col_offset = column
    site = ast.Subscript.__new__(ast.Subscript)
    site.value = registry
    site.slice = number
    site.ctx = _LOAD
    site.lineno = site.end_lineno = line
    site.col_offset = site.end_col_offset = column
    return site


def _first_code(node: ast.AST) -> ast.AST:
    """The node whose code the compiler emits first for ``node``: where a statement or an
    expression that spans several lines starts to run (``return (`` on one line, the value on
    the next runs first). Code the rewrite puts before it is located there, so that a tracer
    sees no line event the original did not have. Only the shapes whose order of evaluation is
    plain are followed (a call's function, an operation's left operand, the value of an
    attribute, subscript, assignment, ``return``, ``yield``, ``await``, the condition of an
    ``if`` expression or statement, the iterable of a ``for``, a ``with``'s first item, the
    subject of a ``match``, a definition's first decorator); anything else is its own start."""
    while True:
        kind = type(node)
        if kind in _VALUE_FIRST:
            value = node.value  # type: ignore[attr-defined]
            if value is None:
                return node
            node = value
        elif kind is ast.Call:
            func = node.func  # type: ignore[attr-defined]
            # A call the rewrite made whose lookup has no location: its argument's code is the
            # first with one.
            node = node.args[0] if func.lineno == -1 else func  # type: ignore[attr-defined]
        elif kind is ast.BinOp or kind is ast.Compare:
            node = node.left  # type: ignore[attr-defined]
        elif kind is ast.BoolOp:
            node = node.values[0]  # type: ignore[attr-defined]
        elif kind is ast.IfExp or kind is ast.If:
            node = node.test  # type: ignore[attr-defined]
        elif kind is ast.For or kind is ast.AsyncFor:
            node = node.iter  # type: ignore[attr-defined]
        elif kind is ast.With or kind is ast.AsyncWith:
            node = node.items[0].context_expr  # type: ignore[attr-defined]
        elif kind is ast.Match:
            node = node.subject  # type: ignore[attr-defined]
        elif (kind is ast.FunctionDef or kind is ast.AsyncFunctionDef or kind is ast.ClassDef) and (
            node.decorator_list  # type: ignore[attr-defined]
        ):
            node = node.decorator_list[0]  # type: ignore[attr-defined]
        else:
            return node


#: Nodes whose ``value`` is evaluated before anything else of theirs.
_VALUE_FIRST: Final = frozenset(
    {ast.Return, ast.Expr, ast.Assign, ast.AnnAssign, ast.Attribute, ast.Subscript, ast.Starred,
     ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom}
)  # fmt: skip


def _site_call(key: str, index: int, name: str, argument: ast.expr, at: ast.expr) -> ast.Call:
    """``S.<name>(argument)``, located where ``at`` (a parsed or located expression) is.

    The method lookup runs before the argument's code and the call after it, both on the line
    3.11 gives the method's name. For an argument on one line, that is where its code starts
    (:func:`_first_code`): a tracer sees no other line. For an argument over several lines the
    lookup has no location (-1), like the compiler's own artificial code, and both take the
    location of the code before them (a ``yield`` whose value starts on the next line, resumed
    on its own line). Not so on one line: where the argument ends in a branch (``a if c else
    b``) the call starts a block two paths lead to, which the compiler leaves with no location,
    and a tracer would see the line again after it."""
    start = _first_code(argument)
    if argument.lineno == argument.end_lineno == start.lineno:  # type: ignore[attr-defined]
        line, column = argument.lineno, start.col_offset  # type: ignore[attr-defined]
    else:
        line = column = -1
    method = ast.Attribute.__new__(ast.Attribute)
    method.value = _site_at(key, index, line, column)
    method.attr = name
    method.ctx = _LOAD
    method.lineno = method.end_lineno = line
    method.col_offset = method.end_col_offset = column
    call = ast.Call.__new__(ast.Call)
    call.func = method
    call.args = [argument]
    call.keywords = []
    call.lineno = at.lineno
    call.col_offset = at.col_offset
    call.end_lineno = at.end_lineno
    call.end_col_offset = at.end_col_offset
    return call


class _ScopedRewrite(ast.NodeTransformer):
    """Rewrites the ``return``/``yield``/``yield from`` of one function, not of nested scopes.

    Walks the nodes whose lines contain ``yield`` (see :class:`_SourceIndex`); used only for
    functions that may have one. The others only have their ``return`` statements rewritten,
    which :class:`_ModuleRewrite` collects while it walks the statements anyway.
    """

    def __init__(
        self, key: str, index: int, capture_return: bool, generator: bool, source: _SourceIndex
    ) -> None:
        self.key = key
        self.index = index
        self.capture_return = capture_return
        self.generator = generator
        self.source = source

    def visit(self, node: ast.AST) -> Any:
        # A node whose lines have no ``yield`` has none inside: only a statement's returns change.
        if not self.source.may_yield_in(node):
            if self.capture_return and isinstance(node, ast.stmt):
                for statement in _own_returns([node]):
                    if statement.value is not None:
                        statement.value = self._call("ret", statement.value, statement.value)
            return node
        return super().visit(node)

    def _call(self, name: str, argument: ast.expr, node: ast.expr) -> ast.Call:
        return _site_call(self.key, self.index, name, argument, node)

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

    def visit_Try(self, node: ast.Try) -> ast.AST:
        """A ``try`` that holds a ``yield``: an exception thrown into the generator there
        (``throw()``, ``close()``, or raised by the iterator a ``yield from`` runs) reaches its
        handlers and ``finally`` while the generator's span is not current (``suspend`` gave the
        consumer its context back, and no ``resume`` runs after a yield that raises). Each of
        them starts by making it current again (``resume`` does nothing where it is)."""
        self.generic_visit(node)
        if self.generator and _yields_in([node]):
            for handler in node.handlers:
                handler.body.insert(0, self._reattach())
            if node.finalbody:
                node.finalbody.insert(0, self._reattach())
        return node

    visit_TryStar = visit_Try

    def _reattach(self) -> ast.Expr:
        """``S.resume(None)`` as a statement with no location (its code takes the location of
        the code before it, so a tracer sees no line of its own)."""
        none = ast.Constant.__new__(ast.Constant)
        none.value = None
        none.lineno = none.col_offset = none.end_lineno = none.end_col_offset = -1
        statement = ast.Expr.__new__(ast.Expr)
        statement.value = _site_call(self.key, self.index, "resume", none, none)
        statement.lineno = statement.col_offset = statement.end_lineno = statement.end_col_offset = -1
        return statement


class _ModuleRewrite:
    """Finds the functions (statements, so only statement lists are walked), numbers their
    sites in the order a post-order walk meets them (a nested function before the one it is
    in) and rewrites each."""

    def __init__(self, level_for: LevelFor, key: str, index: _SourceIndex) -> None:
        self.level_for = level_for
        self.key = key
        self.index = index
        self.sites: list[SiteDescriptor] = []
        # Qualified names follow the interpreter's rules: ``C.m``, ``f.<locals>.g``.
        self.prefix = ""
        self.stateful_classes: set[str] = set()
        # How many ``with`` blocks and ``try`` blocks with a ``finally`` of the current function
        # enclose the statements being walked, and the ``return`` statements (by id) that had
        # any: code of the function's own runs after their value is computed.
        self.guards = 0
        self.guarded_returns: set[int] = set()
        # Set while the statements of a class body are walked: a function found in them, in a
        # block or not, is a method of that class (in_class, stateful).
        self.method_of: tuple[bool, bool] | None = None
        # The innermost enclosing class's name: the compiler mangles ``__x`` names below it.
        self.class_name: str | None = None
        # The names the function being walked declares ``global``.
        self.globals: set[str] = set()

    def statements(self, statements: list[ast.stmt], returns: list[ast.Return] | None) -> None:
        """Rewrite the functions in ``statements``; collect the ``return`` statements that
        belong to the enclosing function into ``returns``."""
        for statement in statements:
            kind = type(statement)
            if kind is ast.FunctionDef or kind is ast.AsyncFunctionDef or kind is ast.ClassDef:
                # A function or class whose name its function declares ``global`` is named as one
                # defined at the top of the module.
                outer = self.prefix
                if self.globals and statement.name in self.globals:  # type: ignore[attr-defined]
                    self.prefix = ""
                if kind is ast.ClassDef:
                    self.class_(statement)  # type: ignore[arg-type]
                else:
                    in_class, stateful = self.method_of or (False, False)
                    self.function(statement, in_class, stateful)  # type: ignore[arg-type]
                self.prefix = outer
            elif kind is ast.Return:
                if returns is not None:
                    returns.append(statement)  # type: ignore[arg-type]
                    if self.guards:
                        self.guarded_returns.add(id(statement))
            else:
                fields = _BLOCKS.get(kind)
                if fields is None:
                    continue
                if kind is ast.With or kind is ast.AsyncWith:
                    self.guards += 1
                    self.statements(statement.body, returns)  # type: ignore[attr-defined]
                    self.guards -= 1
                elif getattr(statement, "finalbody", None):
                    finalbody = statement.finalbody  # type: ignore[attr-defined]
                    for block in _blocks(statement, fields):
                        guarded = block is not finalbody
                        self.guards += guarded
                        self.statements(block, returns)
                        self.guards -= guarded
                else:
                    for block in _blocks(statement, fields):
                        self.statements(block, returns)

    def _stateful_method(self, method: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        if self.index.may_call_setattr(method):
            return _assigns_self(method)
        owner = _owner(method)
        return owner is not None and _statements_assign_owner(method.body, owner)

    def class_(self, node: ast.ClassDef) -> None:
        methods = class_methods(node.body)
        stateful = any(
            self._stateful_method(m)
            for m in methods
            if not (m.decorator_list and _decorator_names(m) & {"staticmethod", "classmethod"})
        ) or any(isinstance(b, ast.Name) and b.id in self.stateful_classes for b in node.bases)
        if stateful:
            self.stateful_classes.add(node.name)
        outer, outer_method_of, outer_class = self.prefix, self.method_of, self.class_name
        self.prefix = f"{outer}{node.name}."
        # A function anywhere in the body's statements is a method (``if``/``try`` blocks too).
        self.method_of = (True, stateful)
        self.class_name = node.name
        self.statements(node.body, None)
        self.prefix, self.method_of, self.class_name = outer, outer_method_of, outer_class

    def function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool, stateful_class: bool
    ) -> None:
        name = node.name
        outer, outer_method_of = self.prefix, self.method_of
        qualname = outer + name
        self.prefix = qualname + ".<locals>."
        self.method_of = None
        outer_globals, self.globals = self.globals, declared_global(node.body)
        returns: list[ast.Return] = []
        outer_guards, self.guards = self.guards, 0
        self.statements(node.body, returns)
        self.guards = outer_guards
        self.prefix, self.method_of, self.globals = outer, outer_method_of, outer_globals

        if in_class and name in PLUMBING_METHODS:
            return
        decision = self.level_for(qualname)
        level = decision.level
        if level == OFF:
            return
        decorators = _decorator_names(node) if node.decorator_list else _NO_NAMES
        args = node.args
        if args.posonlyargs or args.vararg or args.kwonlyargs or args.kwarg:
            params = _parameters(args)
        else:
            params = tuple([a.arg for a in args.args])
        if self.class_name is not None:
            params = _mangled(params, self.class_name)
        flags = binding_flags(name, params, decorators, in_class, stateful_class, decision.stateful)
        may_yield = self.index.may_yield_in(node)
        generator = may_yield and _is_generator(node, self.index)
        if generator:
            flags |= SiteFlags.GENERATOR
        if type(node) is ast.AsyncFunctionDef:
            flags |= SiteFlags.ASYNC
        index = len(self.sites)
        self.sites.append(
            SiteDescriptor(
                qualname, node.lineno, params, flags, level, decision.sample_rate, decision.min_duration
            )
        )
        key = self.key
        capture_return = level >= ARGS
        if may_yield:
            _ScopedRewrite(key, index, capture_return, generator, self.index).rewrite_body(node)
        elif capture_return:
            # Where nothing of the function's own runs after the value (most returns), the
            # site can end a timed call at the return (``ret_exit``) and keep no value for a
            # call that proves too short to record.
            guarded = self.guarded_returns
            for statement in returns:
                value = statement.value
                if value is not None:
                    method = "ret" if id(statement) in guarded else "ret_exit"
                    statement.value = _site_call(key, index, method, value, value)
        _wrap_body(node, index, key)


def binding_flags(
    name: str,
    params: tuple[str, ...],
    decorators: Iterable[str],
    in_class: bool,
    stateful_class: bool,
    stateful: bool,
) -> int:
    """The :class:`SiteFlags` of how a function is called: a method (bound to an instance or to
    its class: not a ``staticmethod``), of a stateful class (``stateful_class``, or ``stateful``
    in the plan); or a reducer (first parameter ``state``, or ``stateful`` in the plan)."""
    if in_class and "staticmethod" not in decorators:
        if "classmethod" in decorators or name in ("__new__", "__init_subclass__"):
            return SiteFlags.METHOD
        held = SiteFlags.STATEFUL_CLASS if stateful_class or stateful else 0
        return SiteFlags.METHOD | SiteFlags.INSTANCE_METHOD | held
    if params and (params[0] == "state" or stateful):
        return SiteFlags.REDUCER
    return 0


def declared_global(statements: list[ast.stmt]) -> set[str]:
    """The names ``global`` statements declare among ``statements`` and their blocks."""
    return {name for statement in _statements_of(statements, (ast.Global,)) for name in statement.names}


def class_methods(statements: list[ast.stmt]) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The functions defined in a class body: its statements and the blocks nested in them (a
    method defined under an ``if`` or a ``try``)."""
    return _statements_of(statements, _FUNCTIONS)


def _mangled(names: tuple[str, ...], class_name: str) -> tuple[str, ...]:
    """Parameter names as the compiler stores them in a class: ``__x`` is ``_Class__x``."""
    stripped = class_name.lstrip("_")
    if not stripped or not any(n.startswith("__") for n in names):
        return names
    return tuple(f"_{stripped}{n}" if n.startswith("__") and not n.endswith("__") else n for n in names)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


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
    # The enter code runs where the first statement that makes code starts to run (see
    # :func:`_first_code`). Where the implicit ``return None`` of a function with no code of
    # its own (only a docstring, ``global``, ``nonlocal``) is: its first line, where a ``pass``
    # stands for it.
    for start in body:
        if not isinstance(start, (ast.Global, ast.Nonlocal)):
            break
    else:
        first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
        start = ast.Pass(lineno=first, col_offset=0, end_lineno=first, end_col_offset=0)
        if not body:
            body = [start]
    anchor = _first_code(start)
    item = ast.withitem.__new__(ast.withitem)
    item.context_expr = _site_at(key, index, anchor.lineno, anchor.col_offset)  # type: ignore[attr-defined]
    # The ``with`` has no location of its own (-1, as the compiler's own artificial code): its
    # enter and exit code take the line of the code next to them, so a tracer (debugger,
    # coverage) sees no extra line event and the function returns from its own last line.
    wrapper = ast.With.__new__(ast.With)
    wrapper.items = [item]
    wrapper.body = body
    wrapper.lineno = wrapper.col_offset = wrapper.end_lineno = wrapper.end_col_offset = -1
    node.body = [*head, wrapper]


Descriptors = tuple[tuple[str, int, tuple[str, ...], int, int, float, float], ...]


def describe_sites(sites: tuple[SiteDescriptor, ...]) -> str | Descriptors:
    """What the header passes to ``register``: one line per site, the ``repr`` of its
    descriptor tuple (the runtime parses a line when the site is first used).

    Why text: unmarshalling a cached module makes one ``str`` of it, where a tuple of tuples
    makes several objects per function, at every import. The runtime's parser reads names
    between quotes and numbers with ``int``/``float``; identifiers are printable and have no
    quotes or backslashes, so ``repr`` writes them as they are. Should a descriptor not be
    of that form (a name that is not printable, a rate that is not a float), the tuple of
    tuples is passed instead, which ``register`` accepts too.
    """
    constants = tuple([site.as_constant() for site in sites])
    names = "".join([site.qualname + "".join(site.params) for site in sites])
    numbers = {type(number) for site in sites for number in (site.lineno, site.flags, site.level)}
    fractions = {type(fraction) for site in sites for fraction in (site.sample_rate, site.min_duration)}
    if names.isprintable() and numbers <= {int} and fractions <= {float}:
        return "\n".join(map(repr, constants))
    return constants


def _header(
    key: str, module_filename: str, sites: tuple[SiteDescriptor, ...], anchor: ast.stmt | None
) -> ast.stmt:
    """``__import__(RUNTIME_MODULE, fromlist=('register',)).register(key, __name__, filename,
    sites)``, every node at the start of ``anchor`` (start and end)."""
    line, column = (anchor.lineno, anchor.col_offset) if anchor is not None else (1, 0)
    where: dict[str, Any] = {
        "lineno": line,
        "col_offset": column,
        "end_lineno": line,
        "end_col_offset": column,
    }
    described: Any = describe_sites(sites)  # typeshed omits tuple constants

    def constant(value: Any) -> ast.Constant:
        return ast.Constant(value=value, **where)

    runtime = ast.Call(
        func=ast.Name(id="__import__", ctx=_LOAD, **where),
        args=[constant(RUNTIME_MODULE)],
        keywords=[
            ast.keyword(
                arg="fromlist", value=ast.Tuple(elts=[constant("register")], ctx=_LOAD, **where), **where
            )
        ],
        **where,
    )
    call = ast.Call(
        func=ast.Attribute(value=runtime, attr="register", ctx=_LOAD, **where),
        args=[
            constant(key),
            ast.Name(id="__name__", ctx=_LOAD, **where),
            constant(module_filename),
            constant(described),
        ],
        keywords=[],
        **where,
    )
    return ast.Expr(value=call, **where)


def _header_position(body: list[ast.stmt]) -> int:
    position = 1 if body and _is_docstring(body[0]) else 0
    while position < len(body):
        statement = body[position]
        if isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
            position += 1
        else:
            break
    return position


def rewrite_tree(
    tree: ast.Module, filename: str, level_for: LevelFor, key: str, source: str | None = None
) -> RewriteResult:
    """Rewrite ``tree`` in place; returns it with the descriptors of its sites.

    ``key`` (see :func:`module_key`) names this module's sites in the registry. ``source`` is
    the text ``tree`` was parsed from: with it, only the functions whose lines can hold what
    the rewrite looks for in expressions have their expressions walked (the rewrite is the
    same either way). A module with no selected function is returned unchanged (and with no
    header).
    """
    visitor = _ModuleRewrite(level_for, key, _SourceIndex(source))
    visitor.statements(tree.body, None)
    sites = tuple(visitor.sites)
    if sites:
        position = _header_position(tree.body)
        anchor = tree.body[position] if position < len(tree.body) else (tree.body[-1] if tree.body else None)
        tree.body.insert(position, _header(key, filename, sites, anchor))
    return RewriteResult(tree, sites)
