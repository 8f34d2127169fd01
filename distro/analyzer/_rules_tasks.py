"""Recognising background task code: Celery/Dramatiq/RQ/Huey tasks and asyncio worker loops.

Task bodies run away from the request that caused them, so they are the second place
(after request handlers) where recorded arguments explain behaviour.
"""

from __future__ import annotations

import ast
from typing import Final

from ._book import RoleBook
from ._model import Evidence
from ._names import instance_method, is_queue_instance, short, top_package, variants
from ._resolve import ProjectIndex
from ._sites import CallSite, ProjectFacts, UnitFacts

TASK_DECORATORS: Final = frozenset(
    {"celery.shared_task", "celery.task", "dramatiq.actor", "rq.job", "huey.task"}
)
TASK_APP_METHODS: Final = frozenset(
    {
        ("celery.Celery", "task"),
        ("celery.Celery", "periodic_task"),
        ("huey.Huey", "task"),
        ("huey.RedisHuey", "task"),
        ("huey.SqliteHuey", "task"),
        ("huey.Huey", "periodic_task"),
        ("huey.RedisHuey", "periodic_task"),
    }
)
TASK_BASES: Final = frozenset({"celery.Task", "dramatiq.GenericActor"})
RQ_ENQUEUE: Final = {"enqueue": 0, "enqueue_call": 0, "enqueue_in": 1, "enqueue_at": 1}


def task_decorator(index: ProjectIndex, origin: str | None) -> str | None:
    """The matched framework name if ``origin`` is a task decorator, else None."""
    for v in variants(index, origin):
        if short(v) in TASK_DECORATORS:
            return short(v)
        found = instance_method(v)
        if found is not None and found in TASK_APP_METHODS:
            return f"{found[0]}().{found[1]}"
    return None


def rq_enqueued(index: ProjectIndex, call: CallSite) -> tuple[str, float] | None:
    """(function ref, confidence) when ``call`` enqueues a project function on an RQ queue."""
    if call.method not in RQ_ENQUEUE:
        return None
    known = any(top_package(v) == "rq" for v in variants(index, call.receiver))
    module = index.modules[call.unit.module]
    if not known and not any(top_package(m) == "rq" for m in module.imported_modules):
        return None
    position = RQ_ENQUEUE[call.method]
    args = call.node.args
    target = args[position] if len(args) > position else None
    for kw in call.node.keywords:
        if kw.arg in ("f", "func"):
            target = kw.value
    if target is None:
        return None
    if isinstance(target, ast.Constant) and isinstance(target.value, str):
        ref = index.canonical(target.value)
    else:
        ref = index.origin(target, call.scope)
    if not ref or index.project_function(ref) is None:
        return None
    return ref, 0.95 if known else 0.7


def worker_loop(index: ProjectIndex, unit_facts: UnitFacts) -> CallSite | None:
    """A ``while True`` loop that blocks on a queue's ``get()``: the asyncio/thread worker idiom."""
    for call in unit_facts.calls:
        if not call.in_while_true or call.method not in ("get", "get_nowait"):
            continue
        if call.node.args or any(kw.arg not in ("block", "timeout") for kw in call.node.keywords):
            continue
        if call.awaited or is_queue_instance(index, call.receiver):
            return call
    return None


def recognise_tasks(facts: ProjectFacts, book: RoleBook) -> None:
    index = facts.index
    for unit_facts in facts.units:
        unit = unit_facts.unit
        for deco in unit_facts.decorators:
            framework = task_decorator(index, deco.origin)
            if framework:
                book.add("task", unit, Evidence(deco.line, "decorator", f"{deco.text} -> {framework}"), 0.95)
        for origin, line, text in unit_facts.bases:
            if short(origin) in TASK_BASES:
                book.add("task", unit, Evidence(line, "base_class", f"{text} -> {origin}"), 0.9)
        for call in unit_facts.calls:
            enqueued = rq_enqueued(index, call)
            if enqueued:
                evidence = Evidence(
                    call.line, "call", f"{call.receiver_text or 'queue'}.{call.method}({enqueued[0]})"
                )
                book.add_ref("task", enqueued[0], evidence, enqueued[1], unit.path)
        if unit.kind == "function":
            loop = worker_loop(index, unit_facts)
            if loop is not None:
                how = "await " if loop.awaited else ""
                evidence = Evidence(
                    loop.line, "loop", f"while True: {how}{loop.receiver_text or '<queue>'}.get()"
                )
                book.add("task", unit, evidence, 0.85)
