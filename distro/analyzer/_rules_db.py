"""Recognising database access: ORM models, connections, sessions, cursors, raw SQL.

DB calls are usually the slowest thing a request does, so they get timing even when the
surrounding code is not instrumented. Calls count when the receiver resolves to a DB
library or a project ORM model; unresolved ``.execute`` calls count only with a literal SQL
statement or a conventional cursor/connection/session name.
"""

from __future__ import annotations

import ast
import re
from typing import Final

from ._book import RoleBook
from ._model import Evidence
from ._names import short, top_package, variants
from ._resolve import ProjectIndex
from ._sites import CallSite, ProjectFacts

DB_PACKAGES: Final = frozenset(
    {"sqlite3", "psycopg", "psycopg2", "asyncpg", "pymysql", "MySQLdb", "aiosqlite", "sqlalchemy", "sqlmodel"}
    | {
        "pymongo",
        "motor",
        "peewee",
        "tortoise",
        "databases",
        "flask_sqlalchemy",
        "mysql",
        "cx_Oracle",
        "oracledb",
    }
)
# Column/type constructors in those packages describe a schema; they do not touch the database.
SCHEMA_ONLY: Final = re.compile(
    r"\.(Column|ForeignKey|relationship|mapped_column|Field|String|Integer|Text|Boolean|DateTime|Float|"
    r"Numeric|Table|MetaData|Index|UniqueConstraint|declared_attr|declarative_base|Mapped|backref)(\(\))?$"
)
MODEL_BASES: Final = frozenset(
    {
        "django.Model",
        "sqlalchemy.DeclarativeBase",
        "sqlalchemy.DeclarativeBaseNoMeta",
        "peewee.Model",
        "tortoise.Model",
        "mongoengine.Document",
        "sqlmodel.SQLModel",
    }
)
MODEL_INSTANCE_METHODS: Final = frozenset({"save", "delete", "refresh_from_db", "update"})
SQL: Final = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WITH|REPLACE|PRAGMA|UPSERT)\b", re.I
)
DB_NAMES: Final = frozenset({"cursor", "cur", "conn", "connection", "db", "session", "tx", "txn"})
DB_METHODS: Final = frozenset(
    {"execute", "executemany", "fetchone", "fetchall", "fetchmany", "commit", "rollback"}
)


# Terminal methods of a Flask-SQLAlchemy style ``Model.query`` chain: each one runs the SQL.
QUERY_TERMINALS: Final = frozenset(
    {"all", "first", "one", "one_or_none", "count", "scalar", "first_or_404", "one_or_404", "paginate"}
)


def _query_chain(call: CallSite) -> str | None:
    """``<x>.query[.filter(...)...].first()`` on a receiver the resolver could not type."""
    if call.method not in QUERY_TERMINALS or not isinstance(call.node.func, ast.Attribute):
        return None
    node: ast.expr = call.node.func.value
    while isinstance(node, (ast.Call, ast.Attribute)):
        if isinstance(node, ast.Attribute) and node.attr == "query":
            return f"{ast.unparse(node)}....{call.method}()"
        node = node.func if isinstance(node, ast.Call) else node.value
    return None


def is_model_base(origin: str) -> bool:
    if short(origin) in MODEL_BASES:
        return True
    declarative = ("declarative_base()", "generate_base()", ".Model")
    return top_package(origin) in DB_PACKAGES and origin.endswith(declarative)


def db_call(index: ProjectIndex, call: CallSite, models: set[str]) -> tuple[str, float] | None:
    """(reason, confidence) if ``call`` touches a database; ``models`` are ORM model class refs."""
    for func in variants(index, call.func):
        if top_package(func) in DB_PACKAGES or func.startswith("django.db."):
            if SCHEMA_ONLY.search(func):
                return None
            return func, 0.9
        module, colon, rest = func.partition(":")
        head = f"{module}:{rest.split('.', 1)[0]}" if colon else func.split(".", 1)[0]
        if head in models and (".objects." in func or ".query." in func):
            return func, 0.95
        if head.endswith("()") and head[:-2] in models and call.method in MODEL_INSTANCE_METHODS:
            return func, 0.85
    if call.method in ("execute", "executemany", "executescript") and call.node.args:
        sql = index.const_str(call.node.args[0], call.scope)
        if sql and SQL.match(sql) and (call.func is None or index.split_ref(call.func) is None):
            return f"{call.method}({sql.split()[0].upper()} ...)", 0.85
    chain = _query_chain(call) if call.func is None or index.split_ref(call.func) is None else None
    if chain is not None and not any(top_package(v) not in DB_PACKAGES for v in variants(index, call.func)):
        return chain, 0.7
    receiver = (call.receiver_text or "").rsplit(".", 1)[-1].lower()
    if call.method in DB_METHODS and receiver in DB_NAMES and call.func is None:
        return f"{call.receiver_text}.{call.method}()", 0.7
    return None


def recognise_db(facts: ProjectFacts, book: RoleBook) -> set[str]:
    """Add db recognitions; return the ORM model class refs (used for Model.objects calls)."""
    models: set[str] = set()
    for unit_facts in facts.units:
        for origin, line, text in unit_facts.bases:
            table_kw = any(
                kw.arg == "table" for kw in getattr(unit_facts.unit.node, "keywords", ())
            )  # SQLModel: only table=True classes are tables
            if is_model_base(origin) and (short(origin) != "sqlmodel.SQLModel" or table_kw):
                models.add(unit_facts.unit.name)
                book.add(
                    "db",
                    unit_facts.unit,
                    Evidence(line, "base_class", f"ORM model: {text} -> {origin}"),
                    0.95,
                )
                break
    for unit_facts in facts.units:
        for call in unit_facts.calls:
            found = db_call(facts.index, call, models)
            if found:
                book.add("db", call.unit, Evidence(call.line, "call", found[0]), found[1])
    return models
