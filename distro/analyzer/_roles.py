"""Role recognition: runs the rule modules in dependency order over the collected facts.

Order matters: messaging needs the recognised tasks (``f.delay()`` is only a producer if
``f`` is a task), and "library" is whatever is left when every other rule has spoken.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._book import RoleBook
from ._messaging import MessageOp
from ._model import Recognition, Route
from ._rules_cli import recognise_cli, recognise_library
from ._rules_db import recognise_db
from ._rules_messaging import message_ops, recognise_messaging, task_names
from ._rules_state import recognise_state
from ._rules_tasks import recognise_tasks
from ._rules_web import recognise_web
from ._sites import ProjectFacts


@dataclass(frozen=True)
class RoleResult:
    recognitions: tuple[Recognition, ...]
    routes: list[Route]
    models: set[str]
    message_ops: list[MessageOp]


def recognise_roles(facts: ProjectFacts) -> RoleResult:
    book = RoleBook(facts)
    routes = recognise_web(facts, book)
    recognise_tasks(facts, book)
    recognise_state(facts, book)
    models = recognise_db(facts, book)
    ops = message_ops(facts, task_names(facts, book))
    recognise_messaging(ops, book)
    recognise_cli(facts, book)
    recognise_library(facts, book)
    return RoleResult(book.recognitions(), routes, models, ops)
