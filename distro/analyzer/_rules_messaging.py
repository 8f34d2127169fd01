"""Producer/consumer roles, derived from the message operations found by ``_messaging``."""

from __future__ import annotations

from ._book import RoleBook
from ._messaging import MessageOp, classify
from ._model import Evidence, Role
from ._sites import ProjectFacts


def task_names(facts: ProjectFacts, book: RoleBook) -> dict[str, str]:
    """Task name -> task ref: Celery's default ``module.function`` names and explicit ``name=``."""
    names: dict[str, str] = {}
    for unit_facts in facts.units:
        unit = unit_facts.unit
        if unit.kind != "function" or not book.has("task", unit.name):
            continue
        names[f"{unit.module}.{unit.qualname}"] = unit.name
        names[unit.name] = unit.name
        for deco in unit_facts.decorators:
            for kw in deco.call.keywords if deco.call else []:
                if kw.arg == "name":
                    explicit = facts.index.const_str(kw.value, unit_facts.scope)
                    if explicit:
                        names[explicit] = unit.name
    return names


def message_ops(facts: ProjectFacts, tasks: dict[str, str]) -> list[MessageOp]:
    return [
        op
        for unit_facts in facts.units
        for call in unit_facts.calls
        for op in classify(facts.index, call, tasks)
    ]


def recognise_messaging(ops: list[MessageOp], book: RoleBook) -> None:
    for op in ops:
        role: Role = "producer" if op.direction == "produce" else "consumer"
        detail = f"{op.detail}: {op.kind} {op.channel}"
        book.add(role, op.call.unit, Evidence(op.call.line, "call", detail), op.confidence)
