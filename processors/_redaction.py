"""Masks sensitive span attribute values before they leave the process.

A pure function over one attribute, shared by the in-process pipeline (over SDK spans) and the
collector plugin (over the collector's spans). Two independent rules, both from the capture
redactor so the patterns are configured once:

- by name: a string value whose attribute key's last dotted segment is a sensitive name
  (``http.request.header.authorization``, ``db.password``, ``execscope.args.api_key``) is
  replaced whole. Numbers and booleans are never credentials and are left alone, so counters
  such as ``gen_ai.usage.input_tokens`` survive the ``token`` pattern;
- by value: credential-looking text (bearer/basic credentials, JWTs, card numbers) inside any
  string value is masked wherever it appears (an exception message, a SQL statement);
- in URLs (``url.full``, ``url.query``, ``http.url``, ``http.target``...): the value of a query
  parameter with a sensitive name (``?api_key=…&token=…``) is masked, the rest of the URL kept.

Database spans get one more pass (:func:`mask_sql`), with its own setting: the literals written
into the recorded statement are replaced by ``?`` (``db_sanitize``, independent of ``redact``),
and the recorded parameters are masked by the column each value is bound to (with redaction).
:class:`SpanMasking` carries both settings; a bare ``Redactor`` still works where one is asked
for and means redaction only (its SQL parameters are masked, its statements are not sanitized).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import unquote_plus

from execscope.attributes import CORRELATION_ID
from execscope.capture import REDACTED, Redactor
from execscope.processors._compiled import COMPILED
from execscope.processors._sql import redact_parameters, sanitize_statement, sensitive_parameters

#: Attributes holding the text of a query: the old semantic conventions' and the new.
STATEMENT_KEYS: Final = ("db.statement", "db.query.text")
#: The parameters of a query as the DB-API instrumentations record them (``str()`` of them).
PARAMETERS_KEY: Final = "db.statement.parameters"
#: One attribute per parameter in the new conventions: ``db.query.parameter.<position or name>``.
PARAMETER_PREFIX: Final = "db.query.parameter."
_SYSTEM_KEYS: Final = ("db.system.name", "db.system")
# A span has SQL to mask only if it has one of these (its per-parameter attributes come with the
# query text). One C-level check over the keys keeps spans without them as cheap as before.
_SQL_KEYS: Final = frozenset({*STATEMENT_KEYS, PARAMETERS_KEY})
#: What :func:`mask_sql` reads, besides the ``db.query.parameter.<key>`` attributes.
SQL_ATTRIBUTES: Final = _SQL_KEYS | frozenset(_SYSTEM_KEYS)
# Database systems whose "statements" are not SQL (a Redis command, a MongoDB filter document,
# an Elasticsearch body): sanitizing them as SQL would mangle them. Their own instrumentations
# sanitize them where they can.
_NOT_SQL: Final = frozenset(
    {
        "redis",
        "memcached",
        "mongodb",
        "elasticsearch",
        "opensearch",
        "couchdb",
        "couchbase",
        "dynamodb",
        "aws.dynamodb",
        "cosmosdb",
        "azure.cosmosdb",
        "hbase",
        "geode",
        "neo4j",
    }
)
# Systems with MySQL's quoting (backslash escapes, "..." strings, # comments).
_MYSQL: Final = frozenset({"mysql", "mariadb"})


class SpanMasking:
    """What the export worker masks in each span: sensitive values, and literals in SQL.

    Two settings in one value so that each can be on without the other (``redact``,
    ``db_sanitize``), and so that the pipeline asks one cheap question (``enabled``) per span.
    """

    __slots__ = ("clean", "enabled", "redactor", "sanitize_sql")

    def __init__(self, redactor: Redactor, *, sanitize_sql: bool) -> None:
        self.redactor = redactor
        self.sanitize_sql = sanitize_sql
        #: Whether masking can change anything at all (False: spans pass untouched).
        self.enabled = redactor.enabled or sanitize_sql
        #: ``(key, value)`` string attributes already found to need no masking. Most of a span's
        #: strings repeat from span to span (a function's name and file, a route, a service's
        #: peer): one set lookup then replaces the name and value pattern checks. Only clean
        #: pairs are kept, so no credential is held here.
        self.clean: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        return f"SpanMasking({self.redactor!r}, sanitize_sql={self.sanitize_sql})"


def as_masking(masking: SpanMasking | Redactor) -> SpanMasking:
    """``masking`` itself, or for a bare ``Redactor``: redaction only, as before SQL sanitizing."""
    if isinstance(masking, SpanMasking):
        return masking
    return SpanMasking(masking, sanitize_sql=False)


#: ``clean_span(span, clean, skip_keys, unmasked_key, max_length)`` of ``_accelerated.c``: True when
#: masking would change none of a compact span's attributes nor its events', as far as the clean
#: set and the value types tell.
_compiled_clean_span: (
    Callable[[tuple[Any, ...], set[tuple[str, str]], frozenset[str], str, int], bool] | None
) = COMPILED.clean_span if COMPILED is not None else None


def known_clean(span: tuple[Any, ...], masking: SpanMasking) -> bool:
    """True when masking is already known to change nothing in a compact span: each of its and its
    events' attributes is a number, ``None``, execscope's correlation id, or a string pair in
    ``masking.clean``, and none is a SQL attribute. False means "not known" (the attributes must
    go through ``redact_attributes``), always so where the compiled check is not installed. Why:
    for the spans seen most often, one C call then replaces a Python loop over each attribute."""
    check = _compiled_clean_span
    if check is None or not masking.redactor.enabled:
        return False
    return check(span, masking.clean, _SQL_KEYS, CORRELATION_ID, _CLEAN_MAX_LENGTH)


def _sensitive_key(key: str, redactor: Redactor) -> bool:
    return redactor.is_sensitive_name(key.rpartition(".")[2] or key)


# Bounds of SpanMasking.clean: at most this many pairs of strings this long (about 1 MB).
_CLEAN_MAX_ENTRIES: Final = 4096
_CLEAN_MAX_LENGTH: Final = 256

#: Attributes holding a URL or its query string (old and new HTTP semantic conventions).
URL_KEYS: Final = frozenset({"url.full", "url.query", "url.original", "http.url", "http.target"})
_QUERY_PAIR: Final = re.compile(r"(^|[?&;])([^=&#;?]+)=([^&#;]*)")


def _mask_query(key: str, url: str, redactor: Redactor) -> str:
    """``url`` with the values of its sensitive query parameters masked (``token=[redacted]``)."""
    if key == "url.query":
        start = 0
    else:
        start = url.find("?")
        if start < 0:
            return url

    def masked(match: re.Match[str]) -> str:
        if redactor.is_sensitive_name(unquote_plus(match.group(2))):
            return f"{match.group(1)}{match.group(2)}={REDACTED}"
        return match.group(0)

    query = _QUERY_PAIR.sub(masked, url[start:])
    return url if query == url[start:] else url[:start] + query


def redact_attribute(key: str, value: Any, redactor: Redactor) -> Any:
    """``value`` with its sensitive parts masked; the very same object when nothing changed."""
    if key == CORRELATION_ID:
        return value  # execscope's own random id: never a credential, and must stay intact
    if isinstance(value, str):
        if _sensitive_key(key, redactor):
            return REDACTED if value != REDACTED else value
        if key in URL_KEYS:
            value = _mask_query(key, value, redactor)
        if len(value) >= redactor.min_text_length:
            return redactor.redact_text(value)
        return value
    if isinstance(value, bytes):
        return REDACTED if _sensitive_key(key, redactor) else value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], str):
        if _sensitive_key(key, redactor):
            return tuple(REDACTED for _ in value)
        masked = tuple(
            redactor.redact_text(item)
            if isinstance(item, str) and len(item) >= redactor.min_text_length
            else item
            for item in value
        )
        return value if all(a is b for a, b in zip(masked, value, strict=True)) else masked
    return value


def redact_attributes(
    attributes: Mapping[str, Any] | None, masking: SpanMasking | Redactor
) -> dict[str, Any] | None:
    """A masked copy of ``attributes``, or None when nothing in them is sensitive (no copy made)."""
    if not attributes:
        return None
    masking = as_masking(masking)
    if not masking.enabled:
        return None
    redactor = masking.redactor
    if not redactor.enabled:
        if _SQL_KEYS.isdisjoint(attributes):
            return None
        sql = mask_sql(dict(attributes), masking)
        return {**attributes, **sql} if sql else None
    changed: dict[str, Any] | None = None
    has_sql = False
    clean = masking.clean
    for key, value in attributes.items():
        if key in _SQL_KEYS:
            has_sql = True  # masked below, once the whole span has been read
            continue
        if type(value) is str and len(value) <= _CLEAN_MAX_LENGTH:
            pair = (key, value)
            if pair in clean:
                continue
            masked = redact_attribute(key, value, redactor)
            if masked is value:
                if len(clean) >= _CLEAN_MAX_ENTRIES:
                    clean.clear()
                clean.add(pair)
                continue
        else:
            masked = redact_attribute(key, value, redactor)
        if masked is not value and masked != value:
            if changed is None:
                changed = dict(attributes)
            changed[key] = masked
    if has_sql:
        changed = _with_sql(attributes, changed, masking)
    return changed


def _with_sql(
    attributes: Mapping[str, Any], changed: dict[str, Any] | None, masking: SpanMasking
) -> dict[str, Any] | None:
    """``changed`` (the other attributes' masking) completed with the SQL attributes'."""
    original = dict(attributes)  # read once: the SDK's mapping answers each key in Python
    sql = mask_sql(original, masking) or {}
    for key, value in original.items():
        if key in _SQL_KEYS or key in sql:
            masked = redact_attribute(key, sql.get(key, value), masking.redactor)
            if masked is not value and masked != value:
                if changed is None:
                    changed = dict(original)
                changed[key] = masked
    return changed


def mask_sql(attributes: Mapping[str, Any], masking: SpanMasking) -> dict[str, Any] | None:
    """The new values of a database span's SQL attributes; None when none changes.

    With ``sanitize_sql``, the statement (``db.statement``, ``db.query.text``) loses its
    literals. With redaction, ``db.statement.parameters`` and ``db.query.parameter.<key>`` lose
    the values bound to sensitive columns or names (``password = %s``). Statements of database
    systems that do not speak SQL are left to the value rule alone. Never raises: should
    anything fail, the SQL attributes are masked whole (an exception would cost the batch).
    """
    try:
        return _mask_sql(attributes, masking)
    except Exception:
        return {key: REDACTED for key in attributes if key in _SQL_KEYS or key.startswith(PARAMETER_PREFIX)}


def _mask_sql(attributes: Mapping[str, Any], masking: SpanMasking) -> dict[str, Any] | None:
    statements: list[tuple[str, str]] = []
    parameters: Any = None
    per_parameter: list[str] = []
    system: str | None = None
    for key, value in attributes.items():
        if key in STATEMENT_KEYS:
            if isinstance(value, str):
                statements.append((key, value))
        elif key == PARAMETERS_KEY:
            parameters = value
        elif key.startswith(PARAMETER_PREFIX):
            per_parameter.append(key)
        elif key in _SYSTEM_KEYS and system is None and isinstance(value, str):
            system = value
    if system in _NOT_SQL:
        return None
    changes: dict[str, Any] = {}
    if masking.sanitize_sql:
        mysql = system in _MYSQL
        for key, statement in statements:
            sanitized = sanitize_statement(statement, mysql=mysql)
            if sanitized != statement:
                changes[key] = sanitized
    redactor = masking.redactor
    if redactor.enabled and (parameters is not None or per_parameter):
        statement = statements[0][1] if statements else ""
        if isinstance(parameters, str):
            masked = redact_parameters(statement, parameters, redactor)
            if masked != parameters:
                changes[PARAMETERS_KEY] = masked
        if per_parameter:
            sensitive = sensitive_parameters(statement, redactor)  # None: any of them may be
            for key in per_parameter:
                name = key[len(PARAMETER_PREFIX) :]
                parameter = int(name) if name.isascii() and name.isdigit() else name
                if (sensitive is None or parameter in sensitive) and attributes[key] != REDACTED:
                    changes[key] = REDACTED
    return changes or None
