"""The fast rewrite pass emits the same code as the pass it replaced (rewriter version 5).

Version 5 walked every node of the module (``NodeTransformer``), then every node again in
``fix_missing_locations``. Version 6 walks statement lists, reads the source to find the few
functions whose expressions can matter (``yield``, ``setattr``), and describes the sites to the
runtime as text instead of a tuple of tuples. The version 5 pass is frozen below, verbatim but
for its name and fixes made to both passes since (``_own_nodes``: a generator defined in a
function does not make the function a generator; where the code added is located, so that a
tracer sees the original line events in statements spanning several lines: the ``with``'s
enter code where the first statement starts to run, ``_first_code``, shared with the fast pass,
and the calls' method lookups with no location; a generator's handlers and ``finally`` make its
span current again; a function in a block of a class body is a method, parameters are named as
the compiler mangles them, and a function or class declared ``global`` is named as the
interpreter names it); both passes rewrite the same sources, and
everything but the header (the part meant to change) must be identical, down to every node's
location (``ast.dump`` with attributes). The header must carry the same descriptors at the
same place.
"""

from __future__ import annotations

import ast
import hashlib
import sys
import textwrap
from typing import Any

import pytest
import test_equivalence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.autotrace_import import generate_module
from execscope.autotrace._levels import ARGS, FULL, OFF, TIMING, SiteFlags
from execscope.autotrace._rewriter import (
    PLUMBING_METHODS,
    RUNTIME_MODULE,
    SITES_NAME,
    Decision,
    LevelFor,
    RewriteResult,
    SiteDescriptor,
    _first_code,
    _mangled,
    class_methods,
    declared_global,
    rewrite_tree,
)
from execscope.autotrace._runtime import _parse_descriptor

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)

# -- the version 5 pass, frozen --------------------------------------------------------------


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

    def _site_method(self, name: str, argument: ast.AST) -> ast.Attribute:
        method = ast.Attribute(value=site_reference(self.key, self.index), attr=name, ctx=ast.Load())
        # Where the argument's code starts if it is on one line, else no location (version 5:
        # at the call's node; a fix shared with the fast pass).
        start = _first_code(argument)
        line = getattr(argument, "lineno", None)
        if line == getattr(argument, "end_lineno", None) == getattr(start, "lineno", None):
            _place_on_first_line(method, start)
        else:
            _unlocated(method)
        return method

    def _call(self, name: str, argument: ast.expr, node: ast.AST) -> ast.Call:
        return ast.copy_location(
            ast.Call(func=self._site_method(name, argument), args=[argument], keywords=[]), node
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

    # Since version 5 (a fix shared with the fast pass): the handlers and ``finally`` of a
    # ``try`` that holds a yield make the generator's span current again first.
    def visit_Try(self, node: ast.Try) -> ast.AST:
        self.generic_visit(node)
        if self.generator and any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in _own_nodes([node])):
            for block in [*(handler.body for handler in node.handlers), node.finalbody]:
                if block:
                    none = ast.Constant(None)
                    _unlocated(none)
                    call = ast.Call(func=self._site_method("resume", none), args=[none], keywords=[])
                    statement = ast.Expr(value=call)
                    _unlocated(statement)
                    block.insert(0, statement)
        return node

    visit_TryStar = visit_Try


class _ModuleRewrite(ast.NodeVisitor):
    def __init__(self, level_for: LevelFor, key: str) -> None:
        self.level_for = level_for
        self.key = key
        self.sites: list[SiteDescriptor] = []
        self.qualname: list[str] = []
        self.stateful_classes: set[str] = set()
        self.method_of: tuple[bool, bool] | None = None  # shared fix: methods in a class body's blocks
        self.class_names: list[str] = []  # shared fix: mangled parameter names
        self.globals: set[str] = set()  # shared fix: what the function being walked declares global

    # Qualified names follow the interpreter's rules: ``C.m``, ``f.<locals>.g``.
    def _child_qualname(self, name: str) -> str:
        if name in self.globals:
            return name
        return ".".join([*self.qualname, name])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        qualname = self._child_qualname(node.name)
        methods = class_methods(node.body)
        stateful = any(
            _assigns_self(m) for m in methods if not _decorator_names(m) & {"staticmethod", "classmethod"}
        ) or any(isinstance(b, ast.Name) and b.id in self.stateful_classes for b in node.bases)
        if stateful:
            self.stateful_classes.add(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        for item in (*node.bases, *node.keywords):
            self.visit(item)
        outer = self.qualname, self.method_of, self.globals
        self.qualname = qualname.split(".")
        self.method_of, self.globals = (True, stateful), set()
        self.class_names.append(node.name)
        for statement in node.body:
            self.visit(statement)
        self.class_names.pop()
        self.qualname, self.method_of, self.globals = outer

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        in_class, stateful = self.method_of or (False, False)
        self._function(node, in_class=in_class, stateful_class=stateful)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        in_class, stateful = self.method_of or (False, False)
        self._function(node, in_class=in_class, stateful_class=stateful)

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
        outer = self.qualname, self.method_of, self.globals
        self.qualname = [*qualname.split("."), "<locals>"]
        self.method_of, self.globals = None, declared_global(node.body)
        for statement in node.body:
            self.visit(statement)
        self.qualname, self.method_of, self.globals = outer

        if in_class and node.name in PLUMBING_METHODS:
            return
        decision = self.level_for(qualname)
        level = decision.level
        if level == OFF:
            return
        decorators = _decorator_names(node)
        params = _parameters(node.args)
        if self.class_names:
            params = _mangled(params, self.class_names[-1])
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
    # The enter code runs where the first statement that makes code starts to run (version 5:
    # at the statement's start; a fix shared with the fast pass).
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
    _place_on_first_line(site, _first_code(start))
    node.body = [*head, wrapper]


def _unlocated(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        node.lineno = node.col_offset = node.end_lineno = node.end_col_offset = -1  # type: ignore[attr-defined]


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


def reference_rewrite_tree(tree: ast.Module, filename: str, level_for: LevelFor, key: str) -> RewriteResult:
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


# -- comparing the passes --------------------------------------------------------------------

FILENAME = "/app/module.py"
KEY = "m_0123456789abcdef0123"


def every(level: int) -> LevelFor:
    decision = Decision(level)
    return lambda qualname: decision


def mixed(qualname: str) -> Decision:
    """A different decision per function, stable across runs (as a plan gives)."""
    digest = hashlib.sha256(qualname.encode()).digest()
    return Decision(
        level=(OFF, TIMING, ARGS, FULL, FULL)[digest[0] % 5],
        stateful=digest[1] % 3 == 0,
        sample_rate=(1.0, 0.5, 0.25)[digest[2] % 3],
        min_duration=(0.0, 0.002)[digest[3] % 2],
    )


LEVELS: dict[str, LevelFor] = {
    "timing": every(TIMING),
    "args": every(ARGS),
    "full": every(FULL),
    "mixed": mixed,
}


def header_index(result: RewriteResult) -> int | None:
    for index, statement in enumerate(result.tree.body):
        if (
            isinstance(statement, ast.Expr)
            and isinstance(statement.value, ast.Call)
            and isinstance(statement.value.func, ast.Attribute)
            and statement.value.func.attr == "register"
        ):
            return index
    return None


def described(header: ast.stmt) -> tuple[Any, ...]:
    """The descriptors a header passes to ``register``, as the runtime reads them."""
    assert isinstance(header, ast.Expr) and isinstance(header.value, ast.Call)
    argument = header.value.args[3]
    assert isinstance(argument, ast.Constant)
    value = argument.value
    if isinstance(value, str):
        return tuple(_parse_descriptor(line) for line in value.split("\n"))
    return tuple(value)


def assert_same_rewrite(source: str, level_for: LevelFor, *, with_source: bool = True) -> RewriteResult:
    before = reference_rewrite_tree(ast.parse(source), FILENAME, level_for, KEY)
    after = rewrite_tree(ast.parse(source), FILENAME, level_for, KEY, source=source if with_source else None)
    assert after.sites == before.sites
    old_header, new_header = header_index(before), header_index(after)
    assert old_header == new_header
    old_body, new_body = list(before.tree.body), list(after.tree.body)
    if old_header is not None and new_header is not None:
        old_statement, new_statement = old_body.pop(old_header), new_body.pop(new_header)
        constants = tuple(site.as_constant() for site in before.sites)
        # repr: 1 and 1.0 compare equal, but the runtime must get the same types.
        assert repr(described(new_statement)) == repr(described(old_statement)) == repr(constants)
        where = ("lineno", "col_offset", "end_lineno", "end_col_offset")
        assert [getattr(new_statement, a) for a in where] == [getattr(old_statement, a) for a in where]
        call = new_statement.value
        assert isinstance(call, ast.Call)
        assert ast.unparse(call.func) == f"__import__({RUNTIME_MODULE!r}, fromlist=('register',)).register"
        assert [ast.unparse(a) for a in call.args[:3]] == [repr(KEY), "__name__", repr(FILENAME)]
    old_dump = ast.dump(ast.Module(body=old_body, type_ignores=[]), include_attributes=True)
    # Version 7 calls ``ret_exit`` where nothing of the function's own runs after a return's
    # value (test_recording_sampling.py checks where); version 5 called ``ret`` everywhere.
    for node in ast.walk(ast.Module(body=new_body, type_ignores=[])):
        if isinstance(node, ast.Attribute) and node.attr == "ret_exit":
            node.attr = "ret"
    new_dump = ast.dump(ast.Module(body=new_body, type_ignores=[]), include_attributes=True)
    assert new_dump == old_dump
    compile(after.tree, FILENAME, "exec", dont_inherit=True)
    return after


TRICKY = """
\"\"\"Constructs where a statement-only walk could miss what the full walk saw.\"\"\"
from __future__ import annotations

import contextlib


def plain(a, /, b, *args, c=1, **kwargs):
    return a


def only_docstring():
    \"\"\"Nothing else.\"\"\"


def only_global():
    global G


def only_global_after_docstring():
    \"\"\"Doc.\"\"\"
    global G
    nonlocal_free = 1
    return nonlocal_free


def returns_everywhere(x):
    if x:
        return 1
    elif x is None:
        return
    for i in range(3):
        if i:
            return i
    else:
        return -1
    while x:
        return 2
    try:
        return 3
    except ValueError as error:
        return error
    else:
        return 4
    finally:
        pass
    with contextlib.suppress(Exception):
        return 5
    match x:
        case 1:
            return 6
        case _:
            return 7


def outer(v):
    def inner(w):
        def innermost():
            return w
        return innermost
    class Local:
        def method(self):
            return v
    if v:
        def conditional():
            return 1
    return inner, Local


def outer_of_a_generator():
    def gen():
        yield 1
    return gen


def generator(n):
    total = yield n
    got = yield
    yield from range(n)
    x = (yield total) + (yield got)
    return x


def generator_in_loop(items):
    for item in items:
        if item:
            yield item
    return len(items)


async def agen(n):
    yield n


async def coroutine(n):
    return n


def yield_in_default_of_nested():
    def inner(x=(yield 1)):
        return x
    return inner


def yield_in_decorator_of_nested():
    @(yield)
    def inner():
        return 1
    return inner


def lambda_with_yield():
    f = lambda: (yield)
    return f


def word_in_a_string():
    return "yield setattr delattr"


def word_in_a_comment():
    # yield, setattr
    return 1


def reducer(state, message):
    return state + [message]


class Stateless:
    def get(self):
        return 1

    @staticmethod
    def static(x):
        return x

    @classmethod
    def build(cls):
        return cls()

    def __repr__(self):
        return "Stateless()"


class Assigns:
    def __init__(self):
        self.x = 1


class Augments:
    def bump(self):
        self.count += 1


class Annotates:
    def set(self):
        self.value: int = 2


class Deletes:
    def drop(self):
        del self.value


class TupleTarget:
    def swap(self):
        self.a, self.b = self.b, self.a


class StarredTarget:
    def unpack(self, items):
        first, *self.rest = items


class SubscriptTarget:
    def put(self, k, v):
        self.items[k] = v


class NestedAssignment:
    def method(self):
        def helper():
            self.x = 1
        class Inner:
            def m(inner_self):
                self.y = 2
        return helper


class AssignsInBranches:
    def method(self, flag):
        if flag:
            try:
                pass
            except Exception:
                with contextlib.suppress(Exception):
                    self.z = 1


class CallsSetattr:
    def method(self):
        setattr(self, "x", 1)


class CallsDunderSetattr:
    def method(self):
        object.__setattr__(self, "x", 1)


class CallsDelattr:
    def method(self):
        delattr(self, "x")


class SetattrInDefault:
    def method(self, x=setattr(self, "y", 1)):  # (only rewritten, never run)
        return x


class SetattrOnOther:
    def method(self, other):
        setattr(other, "x", 1)


class StaticAssigns:
    @staticmethod
    def method(self):
        self.x = 1


class Subclass(Assigns):
    def get(self):
        return 1


class Outer:
    class Inner:
        def method(self):
            self.x = 1

    def method(self):
        return self

    if True:
        def conditional_method(self):
            return 2

    def __new__(cls):
        return super().__new__(cls)

    def __init_subclass__(cls):
        return None


def decorated_first_line():
    pass


@contextlib.contextmanager
def decorated():
    yield


@property
def decorated_property(self):
    return 1


try:
    def in_try():
        return 1
except ImportError:
    def in_except():
        return 2
else:
    def in_else():
        return 3
finally:
    def in_finally():
        return 4

match 1:
    case 1:
        def in_match():
            return 1

for _ in range(1):
    def in_loop():
        return 1
else:
    def in_loop_else():
        return 1

while False:
    def in_while():
        return 1

with contextlib.suppress(Exception):
    def in_with():
        return 1


def multi_line_return(a,
                      b):
    return (a +
            b)


def one_liner(x): return x


def one_line_generator(x): yield x
"""

TRY_STAR = """
def in_try_star():
    try:
        return 1
    except* ValueError:
        def nested():
            return 2
    finally:
        pass
    return nested
"""

UNICODE = """
class Café:
    def méthode(self, déjà):
        return déjà

    def \uff53etattr_spelt_wide(self):
        \uff53etattr(self, "x", 1)


def ünïcode():
    return "ünïcode"
"""


def sources() -> list[Any]:
    cases = [
        pytest.param(generate_module(), id="bench-module"),
        pytest.param(textwrap.dedent(TRICKY), id="tricky"),
        pytest.param(textwrap.dedent(TRICKY).replace("\n", "\r\n"), id="tricky-crlf"),
        pytest.param(textwrap.dedent(TRICKY).replace("\n", "\r"), id="tricky-cr"),
        pytest.param(UNICODE, id="unicode"),
        pytest.param("x = 1\n", id="no-functions"),
        pytest.param('"""Only a docstring."""\n', id="only-docstring"),
        pytest.param("def f():\n    return 1\n", id="no-docstring"),
    ]
    if sys.version_info >= (3, 11):
        cases.append(pytest.param(TRY_STAR, id="try-star"))
    return cases


@pytest.mark.parametrize("levels", list(LEVELS), ids=list(LEVELS))
@pytest.mark.parametrize("source", sources())
def test_the_fast_pass_emits_what_version_5_emitted(source: str, levels: str) -> None:
    assert_same_rewrite(source, LEVELS[levels])


@pytest.mark.parametrize("source", sources())
def test_without_the_source_every_function_is_walked_and_the_result_is_the_same(source: str) -> None:
    assert_same_rewrite(source, every(FULL), with_source=False)


def test_the_tricky_module_exercises_what_it_claims() -> None:
    result = assert_same_rewrite(textwrap.dedent(TRICKY), every(FULL))
    flags = {site.qualname: site.flags for site in result.sites}
    stateful = [q.split(".")[0] for q, f in flags.items() if f & SiteFlags.STATEFUL_CLASS]
    assert {"Assigns", "Augments", "Annotates", "Deletes", "TupleTarget", "StarredTarget"} <= set(stateful)
    assert {"SubscriptTarget", "NestedAssignment", "AssignsInBranches", "CallsSetattr"} <= set(stateful)
    assert {"CallsDunderSetattr", "CallsDelattr", "SetattrInDefault", "Subclass"} <= set(stateful)
    assert not {"Stateless", "SetattrOnOther", "StaticAssigns"} & set(stateful)
    assert flags["generator"] & SiteFlags.GENERATOR
    # A generator defined in a function does not make the function one (version 5 read it as
    # one, and the runtime then recorded a plain call as a generator; fixed in both readings).
    assert not flags["outer_of_a_generator"] & SiteFlags.GENERATOR
    assert not flags["word_in_a_string"] & SiteFlags.GENERATOR
    assert "Stateless.__repr__" not in flags


def test_identifiers_are_normalised_before_looking_for_setattr() -> None:
    result = assert_same_rewrite(UNICODE, every(FULL))
    flags = {site.qualname: site.flags for site in result.sites}
    assert flags["Café.méthode"] & SiteFlags.STATEFUL_CLASS  # via the wide-spelt setattr


@pytest.mark.parametrize("case", test_equivalence.CASES, ids=lambda c: c.name)
def test_the_equivalence_fixtures_are_rewritten_as_before(case: test_equivalence.Case) -> None:
    for level_for in LEVELS.values():
        assert_same_rewrite(case.source, level_for)


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=test_equivalence.generated_modules(), levels=st.sampled_from(sorted(LEVELS)))
def test_generated_modules_are_rewritten_as_before(source: str, levels: str) -> None:
    assert_same_rewrite(source, LEVELS[levels])


def test_the_header_describes_the_sites_in_one_string() -> None:
    """One constant for the whole module: unmarshalling a cached module makes one object for
    it, not several per function."""
    result = rewrite_tree(ast.parse(generate_module()), FILENAME, every(FULL), KEY, source=generate_module())
    index = header_index(result)
    assert index is not None
    header = result.tree.body[index]
    assert isinstance(header, ast.Expr) and isinstance(header.value, ast.Call)
    argument = header.value.args[3]
    assert isinstance(argument, ast.Constant) and isinstance(argument.value, str)
    assert len(argument.value.split("\n")) == len(result.sites) > 200


def test_descriptors_the_text_cannot_carry_are_passed_as_tuples() -> None:
    source = "def f():\n    return 1\n"
    result = assert_same_rewrite(source, lambda qualname: Decision(FULL, sample_rate=1))  # type: ignore[arg-type]
    index = header_index(result)
    assert index is not None
    assert described(result.tree.body[index]) == (("f", 1, (), 0, FULL, 1, 0.0),)
    assert type(described(result.tree.body[index])[0][5]) is int


@pytest.mark.parametrize(
    "descriptor",
    [
        ("f", 1, (), 0, 0, 1.0, 0.0),
        ("C.m", 12, ("self",), 7, 3, 0.5, 0.002),
        ("f.<locals>.g", 100000, ("a", "b", "args", "kwargs"), 63, 2, 1e-05, 1.5e300),
        ("Café.méthode", 3, ("self", "déjà"), 3, 1, 0.25, float("inf")),
        ("_", 2, ("_", "__", "a1"), 16, 3, 1.0, 0.0),
    ],
)
def test_the_runtime_reads_back_every_descriptor_line_exactly(descriptor: tuple[Any, ...]) -> None:
    line = repr(descriptor)
    parsed = _parse_descriptor(line)
    assert parsed == descriptor
    assert [type(v) for v in parsed] == [type(v) for v in descriptor]
    assert [type(p) for p in parsed[2]] == [str] * len(descriptor[2])


def test_no_site_needs_fix_missing_locations() -> None:
    """Every node the pass makes is located when it is made (no whole-tree fix-up pass)."""
    tree = ast.parse(textwrap.dedent(TRICKY))
    rewrite_tree(tree, FILENAME, every(FULL), KEY, source=textwrap.dedent(TRICKY))
    for node in ast.walk(tree):
        for attribute in ("lineno", "col_offset", "end_lineno", "end_col_offset"):
            if attribute in node._attributes:
                assert getattr(node, attribute, None) is not None, (ast.dump(node), attribute)


def test_a_return_ends_a_timed_call_only_where_nothing_of_the_function_runs_after_it() -> None:
    """``ret_exit`` settles a call below ``min_duration`` at its ``return``: only right where
    the function's own code is done. Inside a ``with`` or a ``try`` with a ``finally`` (body,
    handlers or ``else``) that code still runs after the value, so the return keeps ``ret``."""
    source = textwrap.dedent(
        """
        def f(a, cm):
            if a == 0:
                return 0
            for item in a:
                return 1
            with cm:
                return 2
            try:
                return 3
            except ValueError:
                return 4
            else:
                return 5
            finally:
                return 6
            try:
                return 7
            except ValueError:
                return 8
            def inner():
                with cm:
                    def innermost():
                        return 9
                    return 10
        """
    )
    tree = ast.parse(source)
    rewrite_tree(tree, FILENAME, every(FULL), KEY, source=source)
    methods = {
        call.args[0].value: call.func.attr
        for call in ast.walk(tree)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.args
        and isinstance(call.args[0], ast.Constant)
        and type(call.args[0].value) is int
    }
    assert methods == {
        0: "ret_exit",
        1: "ret_exit",
        2: "ret",
        3: "ret",
        4: "ret",
        5: "ret",
        6: "ret_exit",
        7: "ret_exit",
        8: "ret_exit",
        9: "ret_exit",
        10: "ret",
    }
