"""Resolving expressions to *origins*: what a name or call chain really refers to.

An origin is a string. External names stay dotted (``fastapi.FastAPI``); project
definitions are ``module:qualname`` (``app.main:create_app``); a trailing ``()`` means "the
result of calling it", so ``@app.get`` where ``app = F()`` and ``from fastapi import FastAPI
as F`` resolves to ``fastapi.FastAPI().get``. Rules then match on origins, never on local
spellings, which is what keeps recognition precise.

Resolution is flow-insensitive and lazy with memoisation and cycle guards: good enough for
the idioms frameworks use (module-level app objects, constructor-assigned attributes,
annotated parameters, factory functions) and linear in practice.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from ._symbols import ClassInfo, FunctionInfo, ModuleIndex, first_param, walk_body

_BUILTINS: Final = frozenset(dir(builtins))
_MAX_DEPTH: Final = 40

BindingKind = Literal["value", "instance", "fixed", "unknown"]


@dataclass(frozen=True)
class Binding:
    kind: BindingKind
    expr: ast.expr | None = None
    origin: str | None = None


@dataclass
class Scope:
    module: ModuleIndex
    function: FunctionInfo | None
    parent: Scope | None
    bindings: dict[str, list[Binding]] = field(default_factory=dict)

    def bind(self, name: str, binding: Binding) -> None:
        self.bindings.setdefault(name, []).append(binding)


def _target_names(target: ast.expr) -> list[str]:
    return [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]


def _collect_local_bindings(scope: Scope, func: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
    args = func.args
    for arg in args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]:
        if arg.annotation is not None and arg not in (args.vararg, args.kwarg):
            scope.bind(arg.arg, Binding("instance", arg.annotation))
        else:
            scope.bind(arg.arg, Binding("unknown"))
    for node in walk_body(func.body):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    scope.bind(target.id, Binding("value", node.value))
                else:
                    for name in _target_names(target):
                        scope.bind(name, Binding("unknown"))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if node.value is not None:
                scope.bind(node.target.id, Binding("value", node.value))
            scope.bind(node.target.id, Binding("instance", node.annotation))
        elif isinstance(node, ast.NamedExpr):
            scope.bind(node.target.id, Binding("value", node.value))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if isinstance(item.optional_vars, ast.Name):
                    scope.bind(item.optional_vars.id, Binding("value", item.context_expr))
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            for name in _target_names(node.target):
                scope.bind(name, Binding("unknown"))
        elif isinstance(node, ast.ExceptHandler) and node.name:
            scope.bind(node.name, Binding("unknown"))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            fn = scope.function
            prefix = f"{fn.qualname}.<locals>." if fn else ""
            scope.bind(node.name, Binding("fixed", origin=f"{scope.module.name}:{prefix}{node.name}"))


class ProjectIndex:
    """All module indexes of a project plus the lazy origin resolver over them."""

    def __init__(self, modules: Iterable[ModuleIndex]) -> None:
        self.modules: dict[str, ModuleIndex] = {m.name: m for m in modules}
        self._scopes: dict[tuple[str, str], Scope] = {}
        self._memo: dict[tuple[object, ...], str | None] = {}
        self._busy: set[tuple[object, ...]] = set()
        self._ancestors: dict[str, tuple[str, ...]] = {}
        self._rebase_script_imports()

    # --- imports of scripts run from their own directory -------------------------------------

    def _rebase_script_imports(self) -> None:
        """``from config import app`` in ``stamping/tasks.py`` means ``stamping.config``.

        A script (or an app whose entry point lives in a plain, non-package directory) has its
        own directory on ``sys.path``, so a bare import that names no top-level project module
        or package may name a module next to it. Only directories that are not packages
        themselves are tried (innermost first): inside a package, absolute imports are absolute.
        """
        tops = {name.split(".", 1)[0] for name in self.modules}
        for module in self.modules.values():
            parts = module.name.split(".")
            dirs = parts if module.is_package else parts[:-1]
            roots = [
                ".".join(dirs[:i])
                for i in range(len(dirs), 0, -1)
                if not self._is_package(".".join(dirs[:i]))
            ]
            if not roots:
                continue
            for table in (module.imports,):
                for name, target in list(table.items()):
                    rebased = self._rebased(target, roots, tops)
                    if rebased:
                        table[name] = rebased
            module.star_imports = [self._rebased(t, roots, tops) or t for t in module.star_imports]

    def _is_package(self, name: str) -> bool:
        found = self.modules.get(name)
        return found is not None and found.is_package

    def _rebased(self, target: str, roots: list[str], tops: set[str]) -> str | None:
        if target.split(".", 1)[0] in tops:
            return None
        parts = target.split(".")
        for root in roots:
            if any(f"{root}.{'.'.join(parts[:i])}" in self.modules for i in range(1, len(parts) + 1)):
                return f"{root}.{target}"
        return None

    # --- lookups of project definitions ------------------------------------------------------

    @staticmethod
    def split_ref(ref: str) -> tuple[str, str] | None:
        module, sep, qualname = ref.partition(":")
        return (module, qualname) if sep and "(" not in ref else None

    def project_class(self, ref: str) -> ClassInfo | None:
        parts = self.split_ref(ref)
        return self.modules[parts[0]].classes.get(parts[1]) if parts and parts[0] in self.modules else None

    def project_function(self, ref: str) -> FunctionInfo | None:
        parts = self.split_ref(ref)
        return self.modules[parts[0]].functions.get(parts[1]) if parts and parts[0] in self.modules else None

    # --- scopes --------------------------------------------------------------------------------

    def module_scope(self, module: str) -> Scope:
        key = (module, "")
        if key not in self._scopes:
            self._scopes[key] = Scope(self.modules[module], None, None)
        return self._scopes[key]

    def function_scope(self, fn: FunctionInfo) -> Scope:
        key = (fn.module, fn.qualname)
        scope = self._scopes.get(key)
        if scope is not None:
            return scope
        module = self.modules[fn.module]
        parent_fn = module.functions.get(fn.parent_function) if fn.parent_function else None
        parent = self.function_scope(parent_fn) if parent_fn else self.module_scope(fn.module)
        scope = Scope(module, fn, parent)
        _collect_local_bindings(scope, fn.node)
        self_name = first_param(fn.node)
        if fn.class_qualname and self_name and not _has_decorator(fn.node, "staticmethod"):
            cls_ref = f"{fn.module}:{fn.class_qualname}"
            instance = cls_ref if _has_decorator(fn.node, "classmethod") else cls_ref + "()"
            scope.bindings[self_name] = [Binding("fixed", origin=instance)]
        self._scopes[key] = scope
        return scope

    # --- origins -------------------------------------------------------------------------------

    def _guarded(self, key: tuple[object, ...], compute: Callable[[], str | None]) -> str | None:
        if key in self._memo:
            return self._memo[key]
        if key in self._busy or len(self._busy) > _MAX_DEPTH:
            return None
        self._busy.add(key)
        try:
            result = compute()
        finally:
            self._busy.discard(key)
        self._memo[key] = result
        return result

    def origin(self, expr: ast.expr, scope: Scope) -> str | None:
        """What ``expr`` refers to (see module docstring), or None when it cannot be known."""
        if isinstance(expr, ast.Name):
            return self._name(expr.id, scope)
        if isinstance(expr, ast.Attribute):
            base = self.origin(expr.value, scope)
            return self.attribute(base, expr.attr) if base else None
        if isinstance(expr, ast.Call):
            func = self.origin(expr.func, scope)
            return self._call(func) if func else None
        if isinstance(expr, ast.Await):
            return self.origin(expr.value, scope)
        return None

    def _name(self, name: str, scope: Scope) -> str | None:
        owner = _owning_scope(name, scope)
        if owner is None:
            return self.module_member(scope.module.name, name, allow_builtins=True)
        return self._guarded(("local", id(owner), name), lambda: self._first(owner.bindings[name], owner))

    def _first(self, bindings: list[Binding], scope: Scope) -> str | None:
        for binding in bindings:
            found = self._binding(binding, scope)
            if found:
                return found
        return None

    def _binding(self, binding: Binding, scope: Scope) -> str | None:
        if binding.kind == "fixed":
            return binding.origin
        if binding.kind == "value" and binding.expr is not None:
            return self.origin(binding.expr, scope)
        if binding.kind == "instance" and binding.expr is not None:
            return self.annotation_instance(binding.expr, self.module_scope(scope.module.name))
        return None

    def annotation_instance(self, annotation: ast.expr, scope: Scope) -> str | None:
        """``x: Session`` means x is a ``Session()``; unwraps Optional/Annotated/``X | None``/strings."""
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
            for side in (annotation.left, annotation.right):
                if not (isinstance(side, ast.Constant) and side.value is None):
                    return self.annotation_instance(side, scope)
            return None
        if isinstance(annotation, ast.Subscript):
            wrapper = self.origin(annotation.value, scope)
            if wrapper in ("typing.Optional", "typing.Annotated", "typing_extensions.Annotated"):
                inner = annotation.slice
                first = inner.elts[0] if isinstance(inner, ast.Tuple) and inner.elts else inner
                return self.annotation_instance(first, scope)
            return f"{wrapper}()" if wrapper and not wrapper.startswith(("typing.", "builtins.")) else None
        if isinstance(annotation, ast.Name):
            alias = self.value_of(annotation.id, scope)  # SessionDep = Annotated[Session, Depends(...)]
            if alias is not None and isinstance(alias[0], (ast.Subscript, ast.BinOp)):
                return self._guarded(
                    ("alias", id(alias[0])), lambda: self.annotation_instance(alias[0], alias[1])
                )
        found = self.origin(annotation, scope)
        if not found or found.startswith(("typing.", "builtins.")) or found.endswith("()"):
            return None
        return found + "()"

    def module_member(self, module: str, name: str, allow_builtins: bool = False) -> str | None:
        def compute() -> str | None:
            index = self.modules[module]
            if name in index.top_defs:
                return f"{module}:{name}"
            if name in index.assigns:
                return self.origin(index.assigns[name], self.module_scope(module))
            if name in index.imports:
                return self.canonical(index.imports[name])
            if f"{module}.{name}" in self.modules:
                return f"{module}.{name}"
            return None

        found = self._guarded(("member", module, name), compute)
        if found is None and allow_builtins and name in _BUILTINS and not self._defines(module, name):
            return f"builtins.{name}"
        if found is None and not self._defines(module, name):
            found = self._star_member(module, name)
        return found

    def _star_member(self, module: str, name: str) -> str | None:
        """A name that can only come from ``from X import *``: a project module's member, or
        ``X.name`` when exactly one external module is star-imported."""
        external: list[str] = []
        for target in self.modules[module].star_imports:
            if target in self.modules:
                found = self.module_member(target, name)  # itself memoised and cycle-guarded
                if found:
                    return found
            else:
                external.append(target)
        return f"{external[0]}.{name}" if len(external) == 1 and name.isidentifier() else None

    def _defines(self, module: str, name: str) -> bool:
        index = self.modules[module]
        return name in index.top_defs or name in index.assigns or name in index.imports

    def canonical(self, dotted: str) -> str | None:
        """Map an absolute dotted import target through project modules to its origin."""
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            module = ".".join(parts[:i])
            if module in self.modules:
                if i == len(parts):
                    return module
                found = self.module_member(module, parts[i])
                for attr in parts[i + 1 :]:
                    found = self.attribute(found, attr) if found else None
                return found
        return dotted

    def attribute(self, base: str, attr: str) -> str | None:
        if base in self.modules:
            return self.module_member(base, attr)
        is_instance = base.endswith("()")
        cls = self.project_class(base[:-2] if is_instance else base)
        if cls is None:
            return f"{base}.{attr}"
        return self._guarded(
            ("attr", base, attr), lambda: self._class_attribute(cls, attr, is_instance, base)
        )

    def _class_attribute(self, cls: ClassInfo, attr: str, is_instance: bool, base: str) -> str | None:
        for info in [cls, *self._project_ancestors(f"{cls.module}:{cls.qualname}")]:
            if f"{info.qualname}.{attr}" in self.modules[info.module].classes or attr in info.methods:
                return f"{info.module}:{info.qualname}.{attr}"
            if is_instance and attr in info.self_attrs:
                method_qualname, value = info.self_attrs[attr]
                method = self.modules[info.module].functions.get(method_qualname)
                if method is not None:
                    return self.origin(value, self.function_scope(method))
            if attr in info.class_attrs:
                return self.origin(info.class_attrs[attr], self.module_scope(info.module))
        return f"{base}.{attr}"

    def _call(self, func: str) -> str | None:
        fn = self.project_function(func)
        if fn is None:
            return func + "()"
        returned = self._guarded(("returns", func), lambda: self._returns(fn))
        return returned or func + "()"

    def _returns(self, fn: FunctionInfo) -> str | None:
        scope = self.function_scope(fn)
        found = {
            self.origin(node.value, scope)
            for node in walk_body(fn.node.body)
            if isinstance(node, ast.Return) and node.value is not None
        }
        found.discard(None)
        return found.pop() if len(found) == 1 else None

    # --- classes ---------------------------------------------------------------------------

    def ancestors(self, ref: str) -> tuple[str, ...]:
        """All base-class origins of project class ``ref``, transitively (project and external)."""
        if ref in self._ancestors:
            return self._ancestors[ref]
        self._ancestors[ref] = ()  # cycle guard
        cls = self.project_class(ref)
        out: list[str] = []
        if cls is not None:
            scope = self.module_scope(cls.module)
            for base in cls.node.bases:
                found = self.origin(base, scope)
                if found and found not in out:
                    out.append(found)
                    out += [a for a in self.ancestors(found) if a not in out]
        self._ancestors[ref] = tuple(out)
        return self._ancestors[ref]

    def _project_ancestors(self, ref: str) -> list[ClassInfo]:
        return [c for c in (self.project_class(a) for a in self.ancestors(ref)) if c is not None]

    def expand(self, origin: str) -> list[str]:
        """``origin`` plus variants where a project class instance is replaced by its external bases.

        ``app.core:MyApp().route`` also reads as ``flask.Flask().route`` when ``MyApp(Flask)``.
        """
        head, sep, tail = origin.partition("()")
        if not sep or self.project_class(head) is None:
            return [origin]
        return [origin] + [a + sep + tail for a in self.ancestors(head) if self.split_ref(a) is None]

    # --- literal values ----------------------------------------------------------------------

    def const_str(self, expr: ast.expr, scope: Scope, depth: int = 0) -> str | None:
        """A literal string value, following constants; f-string holes become ``{}``."""
        if depth > 8:
            return None
        if isinstance(expr, ast.Constant):
            return expr.value if isinstance(expr.value, str) else None
        if isinstance(expr, ast.JoinedStr):
            pieces = []
            for part in expr.values:
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    pieces.append(part.value)
                else:
                    inner = part.value if isinstance(part, ast.FormattedValue) else None
                    known = self.const_str(inner, scope, depth + 1) if inner is not None else None
                    pieces.append(known if known is not None else "{}")
            return "".join(pieces)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            left = self.const_str(expr.left, scope, depth + 1)
            right = self.const_str(expr.right, scope, depth + 1)
            return left + right if left is not None and right is not None else None
        if isinstance(expr, ast.Name):
            found = self.value_of(expr.id, scope)
            return self.const_str(found[0], found[1], depth + 1) if found else None
        return None

    def value_of(self, name: str, scope: Scope, depth: int = 0) -> tuple[ast.expr, Scope] | None:
        """The expression a name was assigned from (locals, then module, then imported module)."""
        owner = _owning_scope(name, scope)
        if owner is not None:
            values = [b.expr for b in owner.bindings[name] if b.kind == "value" and b.expr is not None]
            return (values[0], owner) if len(values) == 1 else None
        index = scope.module
        if name in index.assigns:
            return index.assigns[name], self.module_scope(index.name)
        target = index.imports.get(name)
        if target and depth < 8:
            module, _, member = target.rpartition(".")
            if module in self.modules:
                return self.value_of(member, self.module_scope(module), depth + 1)
        return None


def _owning_scope(name: str, scope: Scope) -> Scope | None:
    """The innermost function scope binding ``name`` (None: it is a module-level name)."""
    current: Scope | None = scope
    while current is not None and current.function is not None:
        if name in current.bindings:
            return current
        current = current.parent
    return None


def _has_decorator(func: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> bool:
    return any(isinstance(d, ast.Name) and d.id == name for d in func.decorator_list)
