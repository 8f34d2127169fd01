"""Recognising actors and stateful classes: code whose behaviour depends on its history.

For such code a call's arguments are not enough to explain its result, so the planner
records state as well (level ``full``). A class is *stateful* when a method other than the
constructor family rebinds or mutates ``self.<attr>`` (the GenServer analogue); it is an
*actor* when it derives from an actor library or is shaped like one (a message-receiving
method plus, for the generic name ``handle``, a mailbox).
"""

from __future__ import annotations

import ast
from typing import Final

from ._book import RoleBook
from ._model import Evidence
from ._names import is_queue_instance, short, variants
from ._resolve import ProjectIndex
from ._sites import ProjectFacts, UnitFacts, short_source
from ._symbols import ClassInfo, first_param, walk_body

ACTOR_BASES: Final = frozenset(
    {
        "pykka.ThreadingActor",
        "pykka.Actor",
        "pykka.GeventActor",
        "pykka.EventletActor",
        "thespian.Actor",
        "thespian.ActorTypeDispatcher",
    }
)
ACTOR_DECORATORS: Final = frozenset({"ray.remote"})
RECEIVE_METHODS: Final = ("receive", "on_receive", "receiveMessage", "receive_message")
MESSAGE_PARAMS: Final = frozenset({"message", "msg", "envelope"})
# External bases that do not disqualify a receive-shaped class from being an actor.
NEUTRAL_BASES: Final = frozenset({"abc.ABC", "builtins.object", "typing.Generic"})
# Methods whose job is to set state up or tear it down; assignments there are not "state changes".
SETUP_METHODS: Final = frozenset(
    {"__init__", "__new__", "__post_init__", "__init_subclass__", "__set_name__", "__setstate__"}
    | {"setUp", "setUpClass", "setup_method", "setup_class", "asyncSetUp"}
)


def _method_params(method: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    return [a.arg for a in method.args.posonlyargs + method.args.args][1:]


def _decorator_names(method: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    return {d.id for d in method.decorator_list if isinstance(d, ast.Name)}


def state_mutation(method: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.stmt | None:
    """The first statement in ``method`` that rebinds or mutates ``self.<attr>``."""
    if _decorator_names(method) & {"staticmethod", "classmethod"}:
        return None
    self_name = first_param(method)
    if self_name is None:
        return None
    for node in walk_body(method.body):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Subscript):
                    leaf = leaf.value  # noqa: PLW2901 - self.cache[key] = ... mutates self.cache
                if (
                    isinstance(leaf, ast.Attribute)
                    and isinstance(leaf.value, ast.Name)
                    and leaf.value.id == self_name
                ):
                    assert isinstance(node, ast.stmt)
                    return node
    return None


def _recognise_stateful(unit_facts: UnitFacts, cls: ClassInfo, book: RoleBook) -> None:
    # Walk the class body rather than ``cls.methods``: a property setter shares its getter's name.
    methods = [s for s in cls.node.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for method in methods:
        if method.name in SETUP_METHODS:
            continue
        stmt = state_mutation(method)
        if stmt is not None:
            detail = f"{short_source(stmt, 60)} in {method.name}() outside __init__"
            book.add("stateful", unit_facts.unit, Evidence(stmt.lineno, "assignment", detail), 0.9)
            return


def _has_mailbox(index: ProjectIndex, cls: ClassInfo) -> str | None:
    for attr in sorted(cls.self_attrs):
        method_qualname, value = cls.self_attrs[attr]
        fn = index.modules[cls.module].functions.get(method_qualname)
        if fn is not None and is_queue_instance(index, index.origin(value, index.function_scope(fn))):
            return attr
    return None


def _actor_shape(index: ProjectIndex, unit_facts: UnitFacts, cls: ClassInfo) -> tuple[Evidence, float] | None:
    external = [o for o, _, _ in unit_facts.bases if index.split_ref(o) is None]
    if any(o not in NEUTRAL_BASES for o in external):
        return None  # e.g. a WebSocketEndpoint.on_receive or a logging.Handler.handle
    for name in RECEIVE_METHODS:
        method = cls.methods.get(name)
        if method is not None and _method_params(method):
            return Evidence(method.lineno, "method", f"message-receiving method {name}()"), 0.75
    handle = cls.methods.get("handle")
    if handle is None or not _method_params(handle):
        return None
    mailbox = _has_mailbox(index, cls)
    if mailbox:
        return Evidence(handle.lineno, "method", f"handle() with mailbox self.{mailbox}"), 0.75
    if _method_params(handle)[0] in MESSAGE_PARAMS:
        return Evidence(handle.lineno, "method", f"handle({_method_params(handle)[0]})"), 0.6
    return None


def recognise_state(facts: ProjectFacts, book: RoleBook) -> None:
    index = facts.index
    for unit_facts in facts.units:
        cls = unit_facts.unit.cls
        if cls is None:
            continue
        _recognise_stateful(unit_facts, cls, book)
        for origin, line, text in unit_facts.bases:
            if short(origin) in ACTOR_BASES:
                book.add("actor", unit_facts.unit, Evidence(line, "base_class", f"{text} -> {origin}"), 0.95)
                break
        for deco in unit_facts.decorators:
            if any(short(v) in ACTOR_DECORATORS for v in variants(index, deco.origin)):
                book.add(
                    "actor",
                    unit_facts.unit,
                    Evidence(deco.line, "decorator", f"{deco.text} -> ray.remote"),
                    0.9,
                )
        shaped = _actor_shape(index, unit_facts, cls)
        if shaped is not None:
            book.add("actor", unit_facts.unit, *shaped)
