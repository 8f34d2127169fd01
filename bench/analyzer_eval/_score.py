"""Labels, the name universe of sampled modules, and per-role confusion counts."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from execscope.analyzer import ROLES, Analysis, Role
from execscope.analyzer._loader import module_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Labels:
    sampled_modules: tuple[str, ...]
    roles: dict[Role, frozenset[str]]


def load_toml(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    return data


def load_labels(path: Path) -> Labels:
    data = load_toml(path)
    raw_roles = data.get("roles", {})
    unknown = set(raw_roles) - set(ROLES)
    if unknown:
        raise ValueError(f"{path.name}: unknown roles {sorted(unknown)}")
    roles: dict[Role, frozenset[str]] = {r: frozenset(raw_roles.get(r, ())) for r in ROLES}
    return Labels(tuple(data["sampled_modules"]), roles)


def _walk(body: Iterable[ast.stmt], prefix: str, out: set[str]) -> None:
    """Class and function qualnames, spelled as the analyzer spells them."""
    for stmt in body:
        if isinstance(stmt, ast.ClassDef):
            out.add(prefix + stmt.name)
            _walk(stmt.body, f"{prefix}{stmt.name}.", out)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.add(prefix + stmt.name)
            _walk(stmt.body, f"{prefix}{stmt.name}.<locals>.", out)
        elif isinstance(stmt, (ast.If, ast.Try, ast.With, ast.AsyncWith, ast.For, ast.While)):
            _walk(stmt.body, prefix, out)
            _walk(getattr(stmt, "orelse", []), prefix, out)
            _walk(getattr(stmt, "finalbody", []), prefix, out)
            for handler in getattr(stmt, "handlers", []):
                _walk(handler.body, prefix, out)


def _assigned(body: Iterable[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for stmt in body:
        targets: list[ast.expr] = []
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


@dataclass(frozen=True)
class ModuleNames:
    units: frozenset[str]  # the module itself plus every class and function in it
    objects: frozenset[str]  # module-level assigned names (app objects, routers, ...)


def module_files(root: Path) -> dict[str, Path]:
    """Module name -> file, named exactly as the analyzer names them."""
    files: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        files.setdefault(module_name(path.relative_to(root)), path)
    return files


def module_names(module: str, path: Path) -> ModuleNames:
    tree = ast.parse(path.read_bytes(), filename=str(path))
    quals: set[str] = set()
    _walk(tree.body, "", quals)
    units = {module} | {f"{module}:{q}" for q in quals}
    objects = {f"{module}:{n}" for n in _assigned(tree.body)}
    return ModuleNames(frozenset(units), frozenset(objects))


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    fp_names: list[str] = field(default_factory=list)
    fn_names: list[str] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        self.fp_names += other.fp_names
        self.fn_names += other.fn_names


def _in_modules(name: str, modules: frozenset[str]) -> bool:
    return name.split(":", 1)[0] in modules


def check_labels(labels: Labels, names: Mapping[str, ModuleNames]) -> list[str]:
    """Problems with the label file: unknown sampled modules, labels that name nothing."""
    problems = [f"sampled module {m!r} not found" for m in labels.sampled_modules if m not in names]
    sampled = frozenset(labels.sampled_modules)
    for role, labelled in labels.roles.items():
        for name in sorted(labelled):
            module = name.split(":", 1)[0]
            if module not in sampled:
                problems.append(f"{role}: {name!r} is outside the sampled modules")
            elif module in names and name not in names[module].units | names[module].objects:
                problems.append(f"{role}: {name!r} names no module, class, function or object")
    return problems


def score(analysis: Analysis, labels: Labels, names: Mapping[str, ModuleNames]) -> dict[Role, Counts]:
    """Per-role counts over the sampled modules only.

    The universe of a sampled module is its own name, every class and function in it, and any
    module-level object that is labelled or predicted; TN counts universe names that are neither.
    """
    sampled = frozenset(labels.sampled_modules)
    predicted = {r: {n for n in analysis.names_with_role(r) if _in_modules(n, sampled)} for r in ROLES}
    universe: set[str] = set()
    for module in sampled:
        if module in names:
            universe |= names[module].units
    for role in ROLES:
        universe |= labels.roles[role] | predicted[role]
    result: dict[Role, Counts] = {}
    for role in ROLES:
        expected, found = labels.roles[role], predicted[role]
        result[role] = Counts(
            tp=len(found & expected),
            fp=len(found - expected),
            fn=len(expected - found),
            tn=len(universe - found - expected),
            fp_names=sorted(found - expected),
            fn_names=sorted(expected - found),
        )
    return result
