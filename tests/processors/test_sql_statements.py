"""Query spans leave the process without the data of the query.

The literals written into a recorded SQL statement become ``?`` (``db_sanitize``, on by default,
independent of ``redact``); the parameters, recorded only with ``db_parameters``, keep their
values except those bound to a sensitive column or name, which become ``[redacted]``. Everything
that says what the query does stays: keywords, identifiers, placeholders, comments.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext
from pipeline_helpers import in_memory

from conftest import require_service
from execscope.capture import REDACTED, NoopRedactor, Redactor
from execscope.processors._compact import ATTRIBUTES, CompactSpan, compact_span
from execscope.processors._redact_span import redact_span
from execscope.processors._redaction import SpanMasking, redact_attributes
from execscope.processors._sql import parameter_bindings, redact_parameters, sanitize_statement

REDACTOR = Redactor()
POSTGRES = "host=127.0.0.1 port=5432 user=postgres dbname=test"
SQLCOMMENT = "/*db_driver='psycopg',traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/"

# -- statements -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "sanitized"),
    [
        # strings, with the standard's '' escape, and PostgreSQL's other string forms
        ("SELECT * FROM users WHERE name = 'alice'", "SELECT * FROM users WHERE name = ?"),
        ("SELECT 'it''s', ''", "SELECT ?, ?"),
        (r"SELECT E'a\'b', e'\\'", "SELECT ?, ?"),
        ("SELECT N'abc', X'1F', B'0101', U&'d\\0061t'", "SELECT ?, ?, ?, ?"),
        ("SELECT $$it's$$, $fn$ body $$ nested $fn$", "SELECT ?, ?"),
        (r"SELECT 'C:\' FROM t WHERE a = 'x'", "SELECT ? FROM t WHERE a = ?"),  # \ is just a character
        ("INSERT INTO notes VALUES ('line 1\nline 2')", "INSERT INTO notes VALUES (?)"),
        # numbers that are not part of identifiers, with the sign they carry after an operator
        ("SELECT 12, 3.5, .5, 1e3, 1.5E-3, 0x1F, 1_000", "SELECT ?, ?, ?, ?, ?, ?, ?"),
        (
            "SELECT * FROM t1 WHERE c2 = -1 AND c3 > +2.5e3 AND c4 IN (-1, -2)",
            "SELECT * FROM t1 WHERE c2 = ? AND c3 > ? AND c4 IN (?, ?)",
        ),
        ("UPDATE t SET n = n - 1", "UPDATE t SET n = n - ?"),
        (
            'SELECT a.b1, t2."c 3" FROM s1.t2 LIMIT 10 OFFSET 20',
            'SELECT a.b1, t2."c 3" FROM s1.t2 LIMIT ? OFFSET ?',
        ),
        # lists keep their length: ? stands for exactly one literal
        ("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (?, ?, ?)"),
        # quoted identifiers, keywords, casts and placeholders stay
        (
            'SELECT "Name", "it\'s 1" FROM "T 2" WHERE x::int = 3',
            'SELECT "Name", "it\'s 1" FROM "T 2" WHERE x::int = ?',
        ),
        ("SELECT `col1` FROM `t 2`", "SELECT `col1` FROM `t 2`"),
        (
            "SELECT * FROM t WHERE a = %s AND b = %(name)s AND c = $1 AND d = ? AND e = :name AND f = ?2",
            "SELECT * FROM t WHERE a = %s AND b = %(name)s AND c = $1 AND d = ? AND e = :name AND f = ?2",
        ),
        ("SELECT * FROM t WHERE a LIKE 'x%%' AND b = %s", "SELECT * FROM t WHERE a LIKE ? AND b = %s"),
        ("SELECT * FROM t WHERE data ? 'key'", "SELECT * FROM t WHERE data ? ?"),
        # comments stay as they are: sqlcommenter's carries the traceparent
        (
            f"SELECT * FROM t WHERE id = 7 {SQLCOMMENT}",
            f"SELECT * FROM t WHERE id = ? {SQLCOMMENT}",
        ),
        ("SELECT 1 -- keeps 'this' and 42\nFROM t", "SELECT ? -- keeps 'this' and 42\nFROM t"),
        # what does not end: an unterminated string or comment hides the rest, an identifier nothing
        ("SELECT * FROM t WHERE a = 'secret", "SELECT * FROM t WHERE a = ?"),
        ("SELECT a /* 'x' FROM t WHERE a = 'secret'", "SELECT a ?"),
        ("SELECT a /*/ 1", "SELECT a ?"),
        ("SELECT a /**/ 1", "SELECT a /**/ ?"),
        ("SELECT \"unterminated, 'secret'", 'SELECT "unterminated, ?'),
        # nothing to do
        ("", ""),
        ("SELECT name FROM users WHERE id = %s", "SELECT name FROM users WHERE id = %s"),
    ],
)
def test_literals_in_statements_become_question_marks(statement: str, sanitized: str) -> None:
    assert sanitize_statement(statement) == sanitized


@pytest.mark.parametrize(
    ("statement", "sanitized"),
    [
        (r"SELECT * FROM t WHERE a = 'it\'s' AND b = 'x'", "SELECT * FROM t WHERE a = ? AND b = ?"),
        ('SELECT * FROM t WHERE name = "alice"', "SELECT * FROM t WHERE name = ?"),
        ("SELECT `a` FROM t WHERE b = 1 # the 'comment'", "SELECT `a` FROM t WHERE b = ? # the 'comment'"),
    ],
)
def test_mysql_quoting_has_backslash_escapes_and_double_quoted_strings(
    statement: str, sanitized: str
) -> None:
    assert sanitize_statement(statement, mysql=True) == sanitized


# Statements made of known tokens: the sanitized form is known token by token.
_IDENTIFIER = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
_QUOTED = st.from_regex(r'"[^"\x00]{0,8}"', fullmatch=True)
_PLACEHOLDER = st.sampled_from(["%s", "%(name)s", "%(p1)s", "$1", "$12", "?", ":name"])
_KEYWORD = st.sampled_from(["SELECT", "FROM", "WHERE", "AND", "IN", "=", "<>", ",", "(", ")", "::int"])
_COMMENT = st.from_regex(r"/\*[^*]{0,12}\*/", fullmatch=True)
_STRING = st.text(max_size=10).map(lambda text: "'" + text.replace("'", "''") + "'")
_NUMBER = st.one_of(
    st.integers(min_value=0).map(str),
    st.floats(min_value=0, allow_nan=False, allow_infinity=False)
    .map(repr)
    .filter(lambda text: "inf" not in text),
    st.integers(min_value=0).map(hex),
)
_DOLLAR = st.text(max_size=10).filter(lambda text: "$" not in text).map(lambda text: f"$q${text}$q$")
_KEPT = st.one_of(_IDENTIFIER, _QUOTED, _PLACEHOLDER, _KEYWORD, _COMMENT).map(lambda text: (text, text))
_LITERAL = st.one_of(_STRING, _NUMBER, _DOLLAR).map(lambda text: (text, "?"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_KEPT, _LITERAL), max_size=25))
def test_placeholders_identifiers_and_comments_survive_and_only_literals_change(
    tokens: list[tuple[str, str]],
) -> None:
    statement = " ".join(text for text, _ in tokens)
    assert sanitize_statement(statement) == " ".join(expected for _, expected in tokens)


_SQLISH = st.lists(
    st.one_of(
        st.sampled_from(list("'\"$`-/*#%()?:,=<>+ \n\\eEnNxXuU&ab1209._sT")),
        st.sampled_from(
            ["$$", "$t$", "--", "/*", "*/", "%s", "%(a)s", "$1", "''", "E'", "0x1F", "1e3", " IN "]
        ),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=500, deadline=None)
@given(st.one_of(_SQLISH, st.text()), st.booleans())
def test_sanitizing_is_idempotent_and_never_raises(text: str, mysql: bool) -> None:
    once = sanitize_statement(text, mysql=mysql)
    assert sanitize_statement(once, mysql=mysql) == once


# -- parameters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "bindings"),
    [
        ("INSERT INTO t (a, b, password) VALUES (%s, %s, %s)", {0: ("a",), 1: ("b",), 2: ("password",)}),
        ("UPDATE t SET password = %s WHERE id = %s", {0: ("password",), 1: ("id",)}),
        ("SELECT * FROM u WHERE token = $1 AND id = $2", {0: ("token",), 1: ("id",)}),
        ("SELECT * FROM u WHERE id = $2 OR token = $1", {1: ("id",), 0: ("token",)}),
        ("SELECT * FROM u WHERE u.email = %(email)s", {"email": ("email",)}),
        ("SELECT * FROM u WHERE name = :who", {"who": ("who", "name")}),
        ("SELECT * FROM u WHERE t.token IN (%s, %s)", {0: ("token",), 1: ("token",)}),
        ("SELECT * FROM u WHERE lower(email) = %s AND %s = u.secret", {0: ("email",), 1: ("secret",)}),
        (
            "SELECT * FROM u WHERE a BETWEEN %s AND %s AND b IS NOT DISTINCT FROM %s",
            {0: ("a",), 1: ("a",), 2: ("b",)},
        ),
        ('SELECT * FROM u WHERE "Password"::text = %s', {0: ("Password",)}),
        ("SELECT * FROM u WHERE data ? 'k' AND token = %s", {0: ("token",)}),  # ? is an operator here
        (
            "INSERT INTO t (a, password) VALUES (%s, crypt(%s, gen_salt('bf'))), (%s, %s) "
            "ON CONFLICT (a) DO UPDATE SET password = %s RETURNING id",
            {0: ("a",), 1: ("password",), 2: ("a",), 3: ("password",), 4: ("password",)},
        ),
        ("INSERT INTO t (a, b) VALUES (%s, 'x', %s)", {0: ("a",), 1: ()}),  # more values than columns
        (
            "SELECT * FROM t WHERE (a, token) IN ((%s, %s), (%s, %s))",
            {0: ("a",), 1: ("token",), 2: ("a",), 3: ("token",)},
        ),
        ("SELECT * FROM t LIMIT %s", {0: ()}),
    ],
)
def test_each_parameter_is_bound_to_its_column(
    statement: str, bindings: dict[object, tuple[str, ...]]
) -> None:
    assert parameter_bindings(statement) == bindings


@pytest.mark.parametrize(
    ("statement", "parameters", "redacted"),
    [
        # positional, by the column list of an INSERT
        (
            "INSERT INTO users (name, email, password) VALUES (%s, %s, %s)",
            "('alice', 'a@example.com', 'hunter2')",
            "('alice', 'a@example.com', '[redacted]')",
        ),
        # by an assignment and a comparison, as a list
        ("UPDATE users SET password = %s WHERE id = %s", "['hunter2', 42]", "['[redacted]', 42]"),
        ("SELECT * FROM sessions WHERE token = $1", "('abc123',)", "('[redacted]',)"),
        # named: by the parameter's own name, or by the column it is bound to
        (
            "INSERT INTO users (name, password) VALUES (%(name)s, %(password)s)",
            "{'name': 'alice', 'password': 'hunter2'}",
            "{'name': 'alice', 'password': '[redacted]'}",
        ),
        (
            "SELECT * FROM users WHERE api_key = :value AND name = :name",
            "{'value': 'k-1', 'name': 'bob'}",
            "{'value': '[redacted]', 'name': 'bob'}",
        ),
        # executemany: every row
        (
            "INSERT INTO users (name, password) VALUES (%s, %s)",
            "[('alice', 'a'), ('bob', 'b')]",
            "[('alice', '[redacted]'), ('bob', '[redacted]')]",
        ),
        (
            "UPDATE users SET password = %(pw)s WHERE name = %(name)s",
            "[{'pw': 'a', 'name': 'alice'}, {'pw': 'b', 'name': 'bob'}]",
            "[{'pw': '[redacted]', 'name': 'alice'}, {'pw': '[redacted]', 'name': 'bob'}]",
        ),
        # a tuple of two pairs for two placeholders reads both ways: both readings are masked
        (
            "SELECT * FROM t WHERE name IN %s AND token IN %s",
            "(('a', 'b'), ('c', 'd'))",
            "(('a', '[redacted]'), '[redacted]')",
        ),
        # what is not a literal is kept as recorded, and masked whole when sensitive
        (
            "INSERT INTO t (created, secret) VALUES (%s, %s)",
            "(datetime.date(2024, 1, 2), Decimal('1.5'))",
            "(datetime.date(2024, 1, 2), '[redacted]')",
        ),
        # a JSON document's keys are names too; None says nothing
        (
            "INSERT INTO t (doc, password) VALUES (%s, %s)",
            "(Jsonb({'user': 'bob', 'password': 'x'}), None)",
            "(Jsonb({'user': 'bob', 'password': '[redacted]'}), None)",
        ),
        # credential-looking text is masked wherever it is
        ("SELECT * FROM t WHERE note = %s", "('Bearer abcdefghijk123',)", "('Bearer [redacted]',)"),
        # nothing sensitive: the very same text
        ("SELECT * FROM t WHERE name = %s", "('é ü', 1.5, b'x')", "('é ü', 1.5, b'x')"),
        # what does not parse: whole when a sensitive column is bound, the value rule otherwise
        ("SELECT * FROM t WHERE password = %s", "(<object at 0x7f>,)", REDACTED),
        (
            "SELECT * FROM t WHERE id = %s",
            "(<object at 0x7f>, 'Bearer abcdefghijk123')",
            "(<object at 0x7f>, 'Bearer [redacted]')",
        ),
    ],
)
def test_parameters_bound_to_sensitive_names_are_redacted(
    statement: str, parameters: str, redacted: str
) -> None:
    assert redact_parameters(statement, parameters, REDACTOR) == redacted


def test_user_name_patterns_apply_to_columns() -> None:
    redactor = Redactor(extra_name_patterns=["ssn"])
    assert (
        redact_parameters("INSERT INTO p (name, ssn) VALUES (?, ?)", "('ann', '123-45-6789')", redactor)
        == "('ann', '[redacted]')"
    )


@settings(max_examples=300, deadline=None)
@given(st.one_of(_SQLISH, st.text()), st.one_of(_SQLISH, st.text()))
def test_parameter_redaction_never_raises(statement: str, parameters: str) -> None:
    assert isinstance(redact_parameters(statement, parameters, REDACTOR), str)


# -- in the span pipeline -------------------------------------------------------------------------


def _db_span(**attributes: object) -> CompactSpan:
    context = SpanContext(1, 2, is_remote=False)
    return compact_span(
        ReadableSpan("SELECT", context=context, attributes={"db.system": "postgresql", **attributes})  # type: ignore[arg-type]
    )


def _attributes(span: CompactSpan) -> dict[str, object]:
    return dict(span[ATTRIBUTES])


def test_statement_sanitizing_is_independent_of_redaction() -> None:
    span = _db_span(**{"db.statement": "SELECT * FROM t WHERE a = 'x'", "db.query.text": "SELECT 1"})
    sanitized = _attributes(redact_span(span, SpanMasking(NoopRedactor(), sanitize_sql=True)))
    assert sanitized["db.statement"] == "SELECT * FROM t WHERE a = ?"
    assert sanitized["db.query.text"] == "SELECT ?"
    kept = redact_span(span, SpanMasking(REDACTOR, sanitize_sql=False))
    assert kept is span  # nothing sensitive, nothing to sanitize: no copy
    assert redact_span(span, SpanMasking(NoopRedactor(), sanitize_sql=False)) is span


def test_parameters_are_redacted_with_redaction_only() -> None:
    span = _db_span(
        **{
            "db.statement": "UPDATE u SET password = %s WHERE name = 'x' AND id = %s",
            "db.statement.parameters": "('hunter2', 7)",
        }
    )
    masked = _attributes(redact_span(span, SpanMasking(REDACTOR, sanitize_sql=True)))
    assert masked["db.statement"] == "UPDATE u SET password = %s WHERE name = ? AND id = %s"
    assert masked["db.statement.parameters"] == "('[redacted]', 7)"
    unmasked = _attributes(redact_span(span, SpanMasking(NoopRedactor(), sanitize_sql=True)))
    assert unmasked["db.statement.parameters"] == "('hunter2', 7)"  # redact=false: nothing is masked


def test_per_parameter_attributes_of_the_new_conventions_are_redacted_by_position() -> None:
    masked = redact_attributes(
        {
            "db.query.text": "SELECT * FROM u WHERE token = $1 AND id = $2",
            "db.query.parameter.0": "abc",
            "db.query.parameter.1": "7",
        },
        SpanMasking(REDACTOR, sanitize_sql=True),
    )
    assert masked is not None
    assert masked["db.query.parameter.0"] == REDACTED
    assert masked["db.query.parameter.1"] == "7"


def test_statements_of_systems_that_do_not_speak_sql_are_not_sanitized() -> None:
    command = {"db.system": "redis", "db.statement": "SET session:1 42"}
    assert redact_attributes(command, SpanMasking(REDACTOR, sanitize_sql=True)) is None


def test_mysql_statements_are_read_with_mysql_quoting() -> None:
    masked = redact_attributes(
        {"db.system": "mysql", "db.statement": 'SELECT * FROM t WHERE a = "x"'},
        SpanMasking(NoopRedactor(), sanitize_sql=True),
    )
    assert masked == {"db.system": "mysql", "db.statement": "SELECT * FROM t WHERE a = ?"}


def test_an_unusual_system_value_is_read_as_sql() -> None:
    masked = redact_attributes(
        {"db.system": ("a", "b"), "db.statement": "SELECT 'x'"}, SpanMasking(REDACTOR, sanitize_sql=True)
    )
    assert masked == {"db.system": ("a", "b"), "db.statement": "SELECT ?"}


# -- end to end, against PostgreSQL -----------------------------------------------------------------


def _statement(span: ReadableSpan) -> str:
    attributes = span.attributes or {}
    statement = attributes.get("db.statement", attributes.get("db.query.text"))
    assert isinstance(statement, str), attributes
    return statement


def _run_queries(tmp_path: Path, **settings: object) -> dict[str, ReadableSpan]:
    """Spans of an INSERT and a SELECT against the real PostgreSQL, through execscope's pipeline."""
    import psycopg
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    require_service("PostgreSQL", 5432)
    instrumentor = PsycopgInstrumentor()
    with in_memory(tmp_path, **settings) as (pipeline, exporter):
        instrumentor.instrument(tracer_provider=pipeline.provider, capture_parameters=True)
        try:
            with psycopg.connect(POSTGRES) as connection, connection.cursor() as cursor:
                cursor.execute("CREATE TEMP TABLE accounts (name text, plan text, password text)")
                cursor.execute(
                    "INSERT INTO accounts (name, plan, password) VALUES (%s, 'gold', %s)",
                    ("alice", "hunter2"),
                )
                cursor.execute("SELECT plan FROM accounts WHERE name = 'alice'")
                assert cursor.fetchall() == [("gold",)]  # the query itself was not changed
        finally:
            instrumentor.uninstrument()
        pipeline.flush()
        spans = exporter.get_finished_spans()
    return {_statement(span).split()[0]: span for span in spans}


def test_query_spans_of_a_real_database_are_sanitized_and_redacted(tmp_path: Path) -> None:
    spans = _run_queries(tmp_path, db_parameters=True)
    insert, select = spans["INSERT"], spans["SELECT"]
    assert _statement(insert) == "INSERT INTO accounts (name, plan, password) VALUES (%s, ?, %s)"
    assert (insert.attributes or {})["db.statement.parameters"] == "('alice', '[redacted]')"
    assert _statement(select) == "SELECT plan FROM accounts WHERE name = ?"
    assert "alice" not in _statement(select)


def test_literals_stay_when_sanitizing_is_off(tmp_path: Path) -> None:
    spans = _run_queries(tmp_path, db_parameters=True, db_sanitize=False)
    assert _statement(spans["SELECT"]) == "SELECT plan FROM accounts WHERE name = 'alice'"
    assert _statement(spans["INSERT"]).endswith("VALUES (%s, 'gold', %s)")
    # redaction is a setting of its own: the password is still masked
    assert (spans["INSERT"].attributes or {})["db.statement.parameters"] == "('alice', '[redacted]')"


# -- in the collector -------------------------------------------------------------------------------


def test_the_collector_plugin_reads_db_sanitize_like_the_settings_table() -> None:
    from execscope.processors import collector_plugin

    read = collector_plugin.read_settings
    assert read({}, collector_plugin.SQL_SETTINGS) == {"db_sanitize": True}
    assert read({"EXECSCOPE_DB_SANITIZE": "false"}, collector_plugin.SQL_SETTINGS) == {"db_sanitize": False}


def test_the_collector_plugin_masks_sql_as_in_process(tmp_path: Path) -> None:
    from collector_helpers import Receiver, attributes_of, rotel_binary, running_rotel
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    binary = rotel_binary()
    statement = "UPDATE users SET token = %s WHERE email = 'a@example.com' AND id = 42"
    with Receiver() as receiver, running_rotel(binary, tmp_path / "rotel", receiver.port) as rotel:
        provider = TracerProvider()
        provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=rotel.endpoint, insecure=True))
        )
        attributes = {
            "db.system": "postgresql",
            "db.statement": statement,
            "db.statement.parameters": "('t-123', 42)",
        }
        with provider.get_tracer("test").start_as_current_span("UPDATE", attributes=attributes):
            pass
        provider.shutdown()
        (span,) = receiver.wait_for(lambda got: len(got) == 1, "the query span")
    received = attributes_of(span)
    in_process = redact_attributes(attributes, SpanMasking(REDACTOR, sanitize_sql=True))
    assert in_process is not None
    assert received["db.statement"] == in_process["db.statement"] == re.sub(r"'[^']*'|\b42\b", "?", statement)
    assert (
        received["db.statement.parameters"] == in_process["db.statement.parameters"] == "('[redacted]', 42)"
    )
