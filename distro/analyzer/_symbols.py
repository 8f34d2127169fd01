"""Per-module symbol tables: imports, definitions and module-level bindings.

Role recognition must not be fooled by names alone (``from fastapi import FastAPI as F``,
``import celery as c``, a project class that happens to be called ``FastAPI``), so every
module gets a table mapping its local names to what they really are. Building the table is
a single cheap pass; resolving names through it happens lazily in ``_resolve``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from ._loader import SourceModule

FuncNode = ast.FunctionDef | ast.AsyncFunctionDef
# ``try/except*`` (ast.TryStar) only exists from Python 3.11; it has the same fields as Try.
_TRY_NODES: tuple[type[ast.Try], ...] = (ast.Try, getattr(ast, "TryStar", ast.Try))


@dataclass
class ClassInfo:
    module: str
    qualname: str
    node: ast.ClassDef
    methods: dict[str, FuncNode] = field(default_factory=dict)
    class_attrs: dict[str, ast.expr] = field(default_factory=dict)
    # attribute -> (method qualname, assigned value); ``__init__`` assignments win.
    self_attrs: dict[str, tuple[str, ast.expr]] = field(default_factory=dict)


@dataclass
class FunctionInfo:
    module: str
    qualname: str
    node: FuncNode
    class_qualname: str | None  # set for methods: the class the function is defined in
    parent_function: str | None  # set for nested functions: the enclosing function


@dataclass
class ModuleIndex:
    name: str
    path: str
    tree: ast.Module
    is_package: bool
    imports: dict[str, str] = field(default_factory=dict)  # local name -> absolute dotted target
    top_defs: set[str] = field(default_factory=set)  # top-level function and class names
    assigns: dict[str, ast.expr] = field(default_factory=dict)  # module-level name -> value
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    imported_modules: set[str] = field(default_factory=set)  # every absolute module imported anywhere
    star_imports: list[str] = field(default_factory=list)  # ``from X import *`` targets, in order


def absolute_import(module: str, is_package: bool, level: int, target: str | None) -> str | None:
    """Resolve a (possibly relative) ``from`` import to an absolute dotted name."""
    if level == 0:
        return target
    parts = module.split(".") if module else []
    if not is_package:
        parts = parts[:-1]
    if level > 1:
        if level - 1 > len(parts):
            return None
        parts = parts[: len(parts) - (level - 1)]
    base = ".".join(parts)
    if not target:
        return base or None
    return f"{base}.{target}" if base else target


def _record_import(index: ModuleIndex, node: ast.Import | ast.ImportFrom, table: dict[str, str]) -> None:
    if isinstance(node, ast.Import):
        for alias in node.names:
            index.imported_modules.add(alias.name)
            if alias.asname:
                table.setdefault(alias.asname, alias.name)
            else:
                top = alias.name.split(".")[0]
                table.setdefault(top, top)
        return
    base = absolute_import(index.name, index.is_package, node.level, node.module)
    if base is None:
        return
    index.imported_modules.add(base)
    for alias in node.names:
        if alias.name == "*":
            if table is index.imports and base not in index.star_imports:
                index.star_imports.append(base)
            continue
        table.setdefault(alias.asname or alias.name, f"{base}.{alias.name}")


def _top_level_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """Statements executed at import time, looking through if/try/with blocks."""
    out: list[ast.stmt] = []
    for stmt in body:
        out.append(stmt)
        if isinstance(stmt, ast.If):
            out += _top_level_statements(stmt.body) + _top_level_statements(stmt.orelse)
        elif isinstance(stmt, _TRY_NODES):
            blocks: list[ast.stmt] = stmt.body + stmt.orelse + stmt.finalbody
            for handler in stmt.handlers:
                blocks += handler.body
            out += _top_level_statements(blocks)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            out += _top_level_statements(stmt.body)
    return out


def _assigned_name(stmt: ast.stmt) -> tuple[str, ast.expr] | None:
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
        return stmt.targets[0].id, stmt.value
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
        return stmt.target.id, stmt.value
    return None


def _self_assignments(func: FuncNode, self_name: str) -> list[tuple[str, ast.expr | None]]:
    """``self.attr = value`` (value None for augmented/subscript mutation) inside ``func``."""
    found: list[tuple[str, ast.expr | None]] = []
    for node in walk_body(func.body):
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets, value = [node.target], node.value if isinstance(node, ast.AnnAssign) else None
        for target in targets:
            for leaf in ast.walk(target) if isinstance(target, (ast.Tuple, ast.List)) else [target]:
                if isinstance(leaf, ast.Attribute) and _is_name(leaf.value, self_name):
                    found.append((leaf.attr, value if leaf is target else None))
    return found


def _is_name(expr: ast.expr, name: str) -> bool:
    return isinstance(expr, ast.Name) and expr.id == name


def walk_body(body: list[ast.stmt]) -> list[ast.AST]:
    """All nodes under ``body`` without entering nested functions, lambdas or classes."""
    out: list[ast.AST] = []
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            # decorators and defaults run in the enclosing scope; the body does not
            stack.extend(reversed(node.decorator_list))
            if not isinstance(node, ast.ClassDef):
                stack.extend(reversed(node.args.defaults))
            else:
                stack.extend(reversed(node.bases))
            continue
        if isinstance(node, ast.Lambda):
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))
    return out


def first_param(func: FuncNode) -> str | None:
    params = func.args.posonlyargs + func.args.args
    return params[0].arg if params else None


def _index_class(index: ModuleIndex, node: ast.ClassDef, qualname: str) -> None:
    info = ClassInfo(index.name, qualname, node)
    index.classes[qualname] = info
    for stmt in _top_level_statements(node.body):
        assigned = _assigned_name(stmt)
        if assigned:
            info.class_attrs.setdefault(*assigned)
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            info.methods.setdefault(stmt.name, stmt)
    # __init__ first: what the constructor stores is the best guess for an attribute's type.
    for name in sorted(info.methods, key=lambda n: (n != "__init__", n)):
        method = info.methods[name]
        self_name = first_param(method)
        if self_name is None or _is_static(method):
            continue
        for attr, value in _self_assignments(method, self_name):
            if value is not None:
                info.self_attrs.setdefault(attr, (f"{qualname}.{name}", value))


def _is_static(func: FuncNode) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in func.decorator_list)


def _index_defs(
    index: ModuleIndex, body: list[ast.stmt], prefix: str, cls: str | None, parent_fn: str | None
) -> None:
    for stmt in _top_level_statements(body):
        if isinstance(stmt, ast.ClassDef):
            qualname = prefix + stmt.name
            _index_class(index, stmt, qualname)
            _index_defs(index, stmt.body, qualname + ".", qualname, parent_fn)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            qualname = prefix + stmt.name
            index.functions.setdefault(qualname, FunctionInfo(index.name, qualname, stmt, cls, parent_fn))
            _index_defs(index, stmt.body, qualname + ".<locals>.", None, qualname)


def build_module_index(source: SourceModule) -> ModuleIndex:
    index = ModuleIndex(source.name, source.path, source.tree, source.is_package)
    top = _top_level_statements(source.tree.body)
    for stmt in top:
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            _record_import(index, stmt, index.imports)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            index.top_defs.add(stmt.name)
        else:
            assigned = _assigned_name(stmt)
            if assigned and assigned[0] not in index.assigns:
                index.assigns[assigned[0]] = assigned[1]
    # Imports inside functions still tell what a name means when nothing at module level does.
    nested: dict[str, str] = {}
    top_ids = {id(stmt) for stmt in top}
    for node in ast.walk(source.tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top_ids:
            _record_import(index, node, nested)
    for name, target in nested.items():
        if name not in index.imports and name not in index.top_defs and name not in index.assigns:
            index.imports[name] = target
    _index_defs(index, source.tree.body, "", None, None)
    return index
