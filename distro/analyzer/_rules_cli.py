"""Recognising command-line entry points and, by elimination, plain library modules."""

from __future__ import annotations

import ast
from typing import Final

from ._book import RoleBook
from ._model import Evidence
from ._names import instance_method, short, variants
from ._resolve import ProjectIndex
from ._sites import DecoratorSite, ProjectFacts, UnitFacts

CLI_DECORATORS: Final = frozenset({"click.command", "click.group"})
CLI_APP_METHODS: Final = frozenset(
    {("typer.Typer", "command"), ("typer.Typer", "callback"), ("click.Group", "command")}
)
CLI_RUNNERS: Final = frozenset({"typer.run", "fire.Fire"})
ARG_PARSERS: Final = frozenset({"argparse.ArgumentParser", "optparse.OptionParser", "docopt.docopt"})


def _is_main_guard(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    sides = [stmt.test.left, *stmt.test.comparators]
    names = {s.id for s in sides if isinstance(s, ast.Name)}
    consts = {s.value for s in sides if isinstance(s, ast.Constant)}
    return names == {"__name__"} and consts == {"__main__"}


def _cli_decorator(index: ProjectIndex, deco: DecoratorSite, groups: set[str]) -> str | None:
    for v in variants(index, deco.origin):
        if short(v) in CLI_DECORATORS:
            return short(v)
        found = instance_method(v)
        if found is not None and found in CLI_APP_METHODS:
            return f"{found[0]}().{found[1]}"
        owner, _, method = v.rpartition(".")
        if owner in groups and method in ("command", "group"):
            return f"click group {owner}"
    return None


def _click_groups(index: ProjectIndex, facts: ProjectFacts) -> set[str]:
    """Project functions decorated ``@click.group`` (their ``.command`` makes subcommands)."""
    groups: set[str] = set()
    while True:  # a group's own ``.group()`` makes nested groups: iterate to a fixpoint
        found = set(groups)
        for unit_facts in facts.units:
            for deco in unit_facts.decorators:
                for v in variants(index, deco.origin):
                    owner, _, method = v.rpartition(".")
                    if short(v) == "click.group" or (owner in groups and method == "group"):
                        found.add(unit_facts.unit.name)
        if found == groups:
            return groups
        groups = found


def _recognise_unit(index: ProjectIndex, unit_facts: UnitFacts, book: RoleBook, groups: set[str]) -> None:
    unit = unit_facts.unit
    for deco in unit_facts.decorators:
        framework = _cli_decorator(index, deco, groups)
        if framework:
            book.add("cli", unit, Evidence(deco.line, "decorator", f"{deco.text} -> {framework}"), 0.95)
    for call in unit_facts.calls:
        func = short(call.func) if call.func else ""
        if func in CLI_RUNNERS and call.node.args:
            ref = index.origin(call.node.args[0], call.scope)
            if ref:
                book.add_ref("cli", ref, Evidence(call.line, "call", f"{func}({ref})"), 0.9, unit.path)
        elif func in ARG_PARSERS:
            book.add("cli", unit, Evidence(call.line, "call", f"{func}(...)"), 0.85)


def recognise_cli(facts: ProjectFacts, book: RoleBook) -> None:
    index = facts.index
    groups = _click_groups(index, facts)
    for unit_facts in facts.units:
        unit = unit_facts.unit
        if unit.kind == "module":
            assert isinstance(unit.node, ast.Module)
            guard = next((s for s in unit.node.body if _is_main_guard(s)), None)
            if guard is not None:
                book.add("cli", unit, Evidence(guard.lineno, "guard", 'if __name__ == "__main__"'), 1.0)
        _recognise_unit(index, unit_facts, book, groups)


def recognise_library(facts: ProjectFacts, book: RoleBook) -> None:
    """A module with definitions but no other role anywhere in it is plain library code."""
    named = book.named()
    touched = {name.split(":", 1)[0] for name in named}
    for unit_facts in facts.units:
        unit = unit_facts.unit
        if unit.kind != "module" or unit.module in touched:
            continue
        module = facts.index.modules[unit.module]
        defs = len(module.functions) + len(module.classes)
        if defs:
            detail = f"{defs} definitions and no evidence of any other role"
            book.add("library", unit, Evidence(1, "structure", detail), 0.8)
