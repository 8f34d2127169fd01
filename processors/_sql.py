"""Recorded SQL without the data in it: literals out of statements, sensitive values out of parameters.

Database instrumentations record the statement as the application wrote it, and (only when
``db_parameters`` is on) the values bound to it. Both can carry personal data and credentials:
``WHERE email = 'alice@example.com'`` writes the value into the text, and
``INSERT INTO users (name, password) VALUES (%s, %s)`` binds one as a parameter. This module,
run by the export worker on every span that carries a statement, removes them:

- :func:`sanitize_statement` replaces every literal written into the text (strings, numbers) by
  ``?`` and keeps everything that says what the query does: keywords, identifiers (quoted ones
  too), placeholders, comments (sqlcommenter's ``/*traceparent='…'*/`` must survive) and layout.
  ``IN (1, 2, 3)`` becomes ``IN (?, ?, ?)``: lists are not collapsed, so the text keeps its shape
  and ``?`` stands for exactly one literal;
- :func:`redact_parameters` maps each bound value to the column (or parameter name) it is bound
  to and masks the values of sensitive ones, by the capture redactor's name patterns.

Why hand-written lexing and not a library: a SQL *parser* (sqlparse, sqlglot, sqlparser-rs via
sqloxide, libpg_query) is either slow pure Python (sqlparse 0.6 takes about 1.8 ms for a
100-character statement, over 100 times this module's pass, on the export worker's budget) or
fails on the dialects it does not know, and all of them rebuild the text instead of keeping it
(comments, spacing). Sanitizing needs much less than a
parse: where literals, quoted identifiers and comments begin and end, which one compiled regular
expression finds in C, for every dialect at once. None of them is a dependency of execscope, and
the collector plugin runs this same module inside rotel, where only execscope's own
dependencies are installed.

The lexing is deliberately conservative: an unterminated string literal or block comment hides
everything after it (such a statement never ran: a truncated one lost its end); an unterminated
quoted identifier hides nothing, so the literals after it are still replaced. Standard SQL
quoting is assumed (a backslash is an ordinary character, ``"…"`` names an identifier) except
inside PostgreSQL's ``E'…'``; ``mysql=True`` switches to MySQL's (backslash escapes, ``"…"`` is
a string, ``#`` starts a comment).

Nothing here imports OpenTelemetry: the in-process pipeline and the collector plugin share it.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from typing import Final, Protocol

from execscope.capture import REDACTED

__all__ = [
    "NamePolicy",
    "parameter_bindings",
    "redact_parameters",
    "sanitize_statement",
    "sensitive_parameters",
]


class NamePolicy(Protocol):
    """What :func:`redact_parameters` needs of the capture ``Redactor`` (and ``NoopRedactor``)."""

    def is_sensitive_name(self, name: str) -> bool: ...

    def redact_text(self, text: str) -> str: ...


#: Statements up to this length have their results cached: applications run the same few
#: statements over and over, so most spans pay a dictionary look-up instead of a lexing pass.
_CACHED_LENGTH: Final = 4096
_CACHE_SIZE: Final = 512
#: Recorded parameters longer than this are not parsed (a bulk insert's values): they are
#: treated like parameters that do not parse.
_MAX_PARSED_PARAMETERS: Final = 200_000
_REDACTED_LITERAL: Final = repr(REDACTED)
#: Statements longer than this are not analysed for bindings (a bulk insert of thousands of
#: rows costs the export worker milliseconds per kilobyte): their parameters are masked whole
#: when the statement mentions any sensitive name at all.
_MAX_ANALYSED_STATEMENT: Final = 20_000
_WORD: Final = re.compile(r"[^\W\d][\w$]*")

# -- sanitizing ---------------------------------------------------------------------------------

# A number that is not the tail of an identifier (t1), nor of a numbered placeholder ($1, ?1, :1).
_NUMBER: Final = (
    r"(?:0[xX][0-9A-Fa-f_]+|0[bB][01_]+|0[oO][0-7_]+"
    r"|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9]+)?)"
)
# Strings with the SQL standard's quoting: '' is a quote, a backslash is an ordinary character.
_PLAIN_STRING: Final = r"'[^']*(?:''[^']*)*(?:'|\Z)"
# Strings where a backslash escapes the next character (PostgreSQL's E'...', MySQL's strings).
_ESCAPE_STRING: Final = r"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*(?:'|\\?\Z)"
_BLOCK_COMMENT: Final = r"/\*.*?(?:\*/|\Z)"
_DOLLAR_STRING: Final = r"\$\$.*?(?:\$\$|\Z)|\$(?P<tag>[^\W\d]\w*)\$.*?(?:\$(?P=tag)\$|\Z)"


def _sanitizer(mysql: bool) -> re.Pattern[str]:
    """The one pattern of the sanitizing pass: what to keep as it is, and each kind of literal.

    Identifiers and keywords are never matched at all (the pattern only wakes up on quotes,
    comment starts, placeholders and digits), which is what keeps the pass cheap. A literal
    glued to a word (``t1``, ``a$$``, the ``E`` of ``1E'x'``) is none; ``?`` counts as such a
    character too, so that a second pass over ``?`` (a replaced literal) reads what the first
    read, and sanitizing is idempotent.
    """
    if mysql:
        keep = r"--[^\n]*|\#[^\n]*|`[^`]*`|%\([^)]*\)[sbt]"
        double_quoted = _ESCAPE_STRING.replace("'", '"')  # "…" is a string too
        strings = rf"(?<![\w$?])[nNbBxX]{_ESCAPE_STRING}|{_ESCAPE_STRING}|{double_quoted}"
    else:
        keep = r"--[^\n]*|\"[^\"]*(?:\"\"[^\"]*)*\"|`[^`]*`|%\([^)]*\)[sbt]"
        strings = (
            rf"(?<![\w$?])[eE]{_ESCAPE_STRING}|(?<![\w$?])(?:[nNbBxX]|[uU]&){_PLAIN_STRING}|{_PLAIN_STRING}"
            rf"|(?<![\w$?])(?:{_DOLLAR_STRING})"
        )
    # Where nothing can start, fail at once instead of trying every branch: this halves the pass.
    starts = (
        r"""(?=[-/"`%'$+*=<>(,0-9.#]|[eEnNbBxX]'|[uU]&')"""
        if mysql
        else r"""(?=[-/"`%'$+*=<>(,0-9.]|[eEnNbBxX]'|[uU]&')"""
    )
    return re.compile(
        # One alternative for terminated and unterminated comments: failing on an unterminated
        # one would scan to the end from every "/*" after it.
        rf"{starts}(?:(?P<keep>{keep})|(?P<comment>{_BLOCK_COMMENT})|(?P<literal>{strings})"
        # A sign right after an operator, "(" or "," belongs to the number: "= -1" becomes "= ?".
        rf"|(?P<context>[-+*/%=<>(,]\s*)[-+]\s*{_NUMBER}"
        rf"|(?<![\w$?:]){_NUMBER})",
        re.DOTALL,
    )


_SANITIZERS: Final = {False: _sanitizer(False), True: _sanitizer(True)}
# Without a quote, a dollar or a digit a statement has no literal (what the pattern would keep
# needs no pass either): most statements with placeholders only are returned at once.
_MAY_HAVE_LITERAL: Final = re.compile(r"['\"$0-9]")


def _replace(match: re.Match[str]) -> str:
    group = match.lastgroup
    if group == "keep":
        return match.group()
    if group == "comment":
        comment = match.group()
        return comment if len(comment) >= 4 and comment.endswith("*/") else "?"
    if group == "context":
        return match.group("context") + "?"
    return "?"


def sanitize_statement(sql: str, *, mysql: bool = False) -> str:
    """``sql`` with every literal value written into it replaced by ``?``.

    Kept as they are: keywords, identifiers (``"quoted"`` and `` `quoted` `` ones too),
    placeholders (``%s``, ``%(name)s``, ``$1``, ``?``, ``:name``), comments and whitespace.
    Idempotent, and never raises on any text (a ``str`` is all it needs).
    """
    if _MAY_HAVE_LITERAL.search(sql) is None:
        return sql
    if len(sql) <= _CACHED_LENGTH:
        return _sanitize_cached(sql, mysql)
    return _SANITIZERS[mysql].sub(_replace, sql)


@lru_cache(maxsize=_CACHE_SIZE)
def _sanitize_cached(sql: str, mysql: bool) -> str:
    return _SANITIZERS[mysql].sub(_replace, sql)


# -- which parameter is bound to which column ---------------------------------------------------

# Every token of a statement, for the binding analysis (the sanitizer, unlike it, skips words).
_TOKENS: Final = re.compile(
    rf"(?P<space>\s+|--[^\n]*|{_BLOCK_COMMENT}|%%)"
    r"|(?P<quoted>\"[^\"]*(?:\"\"[^\"]*)*\"|`[^`]*`)"
    rf"|(?P<literal>(?<![\w$])[eE]{_ESCAPE_STRING}|{_PLAIN_STRING}|(?<![\w$])(?:{_DOLLAR_STRING}))"
    r"|%\((?P<pyformat>[^)]*)\)[sbt]"
    r"|(?P<sequential>%[sbt]|\?(?![0-9]))"
    r"|(?<![\w$])[$?](?P<numbered>[0-9]+)"
    r"|(?<![\w:\])\"'`$])[:@](?P<named>[^\W\d]\w*)"
    r"|(?P<cast>::)"
    r"|(?P<word>[^\W\d][\w$]*)"
    rf"|(?P<number>{_NUMBER})"
    r"|(?P<operator>[<>=!~]+|[-+*/%^&|#@]+)"
    r"|(?P<punctuation>[(),;.\[\]])"
    r"|(?P<other>.)",
    re.DOTALL,
)

_COMPARISON_OPERATORS: Final = frozenset(
    {"=", "==", "<>", "!=", "<", ">", "<=", ">=", "~", "~~", "!~", "~*", "!~*", "~~*", "!~~", "!~~*"}
    | {"@>", "<@"}
)
# Words after a column that compare it with what follows (``password NOT LIKE %s``).
_COMPARISON_WORDS: Final = frozenset(
    {"LIKE", "ILIKE", "IN", "IS", "BETWEEN", "NOT", "SIMILAR", "REGEXP", "RLIKE", "GLOB", "MATCH"}
)
# Words that end a comparison: a value after them is not bound to the column before them.
_CLAUSE_WORDS: Final = frozenset(
    {
        "AND", "OR", "WHERE", "SET", "FROM", "ON", "WHEN", "THEN", "ELSE", "END", "LIMIT", "OFFSET",
        "RETURNING", "ORDER", "GROUP", "HAVING", "SELECT", "VALUES", "JOIN", "UNION", "INTERSECT",
        "EXCEPT", "USING", "INTO", "CASE", "WINDOW", "FETCH", "FOR", "DO", "UPDATE", "DELETE",
        "INSERT", "WITH", "AS",
    }
)  # fmt: skip
_KEYWORDS: Final = (
    _COMPARISON_WORDS
    | _CLAUSE_WORDS
    | {"DISTINCT", "TO", "ANY", "ALL", "SOME", "NULL", "TRUE", "FALSE", "EXISTS", "ARRAY", "ESCAPE"}
)

# Tokens between a column and the value compared with it (``a IS NOT DISTINCT FROM %s``).
_COMPARING: Final = _COMPARISON_WORDS | {"DISTINCT", "TO", "ANY", "ALL", "SOME"}
# How far back from a placeholder the comparison it belongs to is looked for, in tokens (a
# parenthesized sub-expression counts as one).
_SCAN_LIMIT: Final = 64
# How many enclosing parentheses are looked through for a row of values (``VALUES (f(g(%s)))``).
_ROW_LEVELS: Final = 3

#: A parameter's key: its position in a sequence of parameters, or its name in a mapping.
ParameterKey = int | str


# The kind of token each group of _TOKENS makes (punctuation is its own kind, see _Tokens._lex).
_KINDS: Final = {
    "quoted": "name",
    "word": "name",
    "literal": "value",
    "number": "value",
    "pyformat": "ph",
    "named": "ph",
    "numbered": "ph",
    "sequential": "ph",
}


class _Tokens:
    """A statement's significant tokens, with their parenthesis structure."""

    __slots__ = ("depth", "enclosing", "item", "keys", "kinds", "partner", "texts")

    def __init__(self, statement: str) -> None:
        self._lex(statement)
        self._nest()

    def _lex(self, statement: str) -> None:
        kinds: list[str] = []
        texts: list[str] = []
        keys: list[ParameterKey | None] = []
        qmarks: list[int] = []
        other_style = False
        for match in _TOKENS.finditer(statement):
            group = match.lastgroup
            if group == "space":
                continue
            text = match.group()
            kind, key = _KINDS.get(group or "", "op"), None
            if group == "quoted":
                text = _unquote(text)
            elif group == "word":
                upper = text.upper()
                if upper in _KEYWORDS:
                    kind = "kw"
                    # "IS DISTINCT FROM": this FROM compares, it does not start a clause.
                    text = "DISTINCT" if upper == "FROM" and texts and texts[-1] == "DISTINCT" else upper
            elif group in ("pyformat", "named"):
                key = match.group(group)
                other_style = other_style or group == "pyformat"
            elif group in ("numbered", "sequential"):
                if group == "numbered":
                    key = int(match.group("numbered")) - 1
                if text[0] == "?":
                    qmarks.append(len(kinds))
                else:
                    other_style = True
            elif group == "operator" and text in _COMPARISON_OPERATORS:
                kind = "cmp"
            elif group == "punctuation":
                kind = text
            kinds.append(kind)
            texts.append(text)
            keys.append(key)
        if other_style:
            # With %s or $1 placeholders a "?" is PostgreSQL's JSON operator, not a parameter.
            for index in qmarks:
                kinds[index] = "op"
        sequential = 0
        for index, kind in enumerate(kinds):
            if kind == "ph" and keys[index] is None:
                keys[index] = sequential
                sequential += 1
        self.kinds, self.texts, self.keys = kinds, texts, keys

    def _nest(self) -> None:
        kinds = self.kinds
        count = len(kinds)
        self.depth = depth = [0] * count
        self.partner = partner = [-1] * count
        self.enclosing = enclosing = [-1] * count
        #: Per token: how many commas came before it in its innermost enclosing parenthesis.
        self.item = item = [0] * count
        stack: list[int] = []
        commas: list[int] = [0]
        for index, kind in enumerate(kinds):
            if kind == ")" and stack:
                opened = stack.pop()
                commas.pop()
                partner[opened], partner[index] = index, opened
            depth[index] = len(stack)
            enclosing[index] = stack[-1] if stack else -1
            item[index] = commas[-1]
            if kind == "(":
                stack.append(index)
                commas.append(0)
            elif kind == ",":
                commas[-1] += 1


def _unquote(text: str) -> str:
    quote = text[0]
    return text[1:-1].replace(quote * 2, quote)


def _columns(tokens: _Tokens, close: int) -> list[str] | None:
    """The column names of the parenthesis closed at ``close`` when it holds only names
    (``(a, t.b, "C")``); None when it holds anything else."""
    if close < 0 or tokens.kinds[close] != ")":
        return None
    opened = tokens.partner[close]
    if opened < 0:
        return None
    kinds, texts = tokens.kinds, tokens.texts
    columns: list[str] = []
    expect_name, dotted = True, False
    for index in range(opened + 1, close):
        kind = kinds[index]
        if expect_name:
            if kind != "name":
                return None
            if dotted:
                columns[-1] = texts[index]  # t.col: the column is the last part
            else:
                columns.append(texts[index])
            expect_name = False
        elif kind in (",", "."):
            expect_name, dotted = True, kind == "."
        else:
            return None
    return columns if columns and not expect_name else None


def _operand_before(tokens: _Tokens, index: int) -> str | None:
    """The column compared by the comparison at ``index``: the name before it, or the single
    name inside the parenthesis before it (``lower(email) = %s``)."""
    kinds, texts = tokens.kinds, tokens.texts
    at = index - 1
    while at >= 0 and (kinds[at] == "cmp" or (kinds[at] == "kw" and texts[at] in _COMPARING)):
        at -= 1
    while at >= 2 and kinds[at] == "name" and texts[at - 1] == "::":
        at -= 2  # a::text = %s: the column is a, not the type
    if at < 0:
        return None
    if kinds[at] == "name":
        return texts[at]
    columns = _columns(tokens, at)
    return columns[0] if columns is not None and len(columns) == 1 else None


def _compared_column(tokens: _Tokens, index: int) -> str | None:
    """The column of the comparison or assignment a placeholder is the value of, looking back.

    Sub-expressions before it are skipped whole; a comma inside parentheses leads out of them
    (``token IN (%s, %s)``, ``a = coalesce(b, %s)``); a clause word (``AND``, ``WHERE``, ``SET``,
    ``VALUES``…) or a comma at the top level ends the search.
    """
    kinds, texts = tokens.kinds, tokens.texts
    at = index - 1
    for _ in range(_SCAN_LIMIT):
        if at < 0:
            return None
        kind = kinds[at]
        if kind == ")":
            at = tokens.partner[at] - 1 if tokens.partner[at] >= 0 else -1
        elif kind == ",":
            at = tokens.enclosing[at] - 1 if tokens.enclosing[at] >= 0 else -1
        elif kind == "cmp" or (kind == "kw" and texts[at] in _COMPARING):
            return _operand_before(tokens, at)
        elif kind == ";":
            return None
        elif kind == "kw" and texts[at] in _CLAUSE_WORDS:
            if texts[at] == "AND" and at >= 2 and kinds[at - 2] == "kw" and texts[at - 2] == "BETWEEN":
                at -= 2  # BETWEEN %s AND %s: the second bound belongs to the same column
            else:
                return None
        else:
            at -= 1
    return None


def _column_after(tokens: _Tokens, index: int) -> str | None:
    """The column a placeholder written before its comparison is compared with (``%s = t.col``)."""
    kinds, texts = tokens.kinds, tokens.texts
    at = index + 1
    count = len(kinds)
    if at >= count or not (kinds[at] == "cmp" or (kinds[at] == "kw" and texts[at] in _COMPARING)):
        return None
    while at < count and (kinds[at] == "cmp" or (kinds[at] == "kw" and texts[at] in _COMPARING)):
        at += 1
    name = None
    while at < count and kinds[at] == "name":
        name = texts[at]
        if at + 2 < count and kinds[at + 1] == "." and kinds[at + 2] == "name":
            at += 2
        else:
            break
    return name


def _row_columns(tokens: _Tokens, opened: int, memo: dict[int, list[str] | None]) -> list[str] | None:
    """The columns when the parenthesis opened at ``opened`` is a row of values bound to a column
    list: ``(a, b) VALUES (…), (…)``, ``(a, b) = (…)``, ``(a, b) IN ((…), (…))``."""
    if opened in memo:
        return memo[opened]
    kinds, texts, partner = tokens.kinds, tokens.texts, tokens.partner
    at = opened - 1
    columns = None
    if at >= 1 and kinds[at] == "," and kinds[at - 1] == ")" and partner[at - 1] >= 0:
        columns = _row_columns(tokens, partner[at - 1], memo)  # a later row of the same list
    elif at >= 1 and (kinds[at] == "cmp" or (kinds[at] == "kw" and texts[at] == "VALUES")):
        columns = _columns(tokens, at - 1)
    elif at >= 2 and kinds[at] == "(" and kinds[at - 1] == "kw" and texts[at - 1] == "IN":
        before = at - 2
        while before >= 0 and kinds[before] == "kw" and texts[before] == "NOT":
            before -= 1
        columns = _columns(tokens, before)
    memo[opened] = columns
    return columns


def _row_column(tokens: _Tokens, index: int, memo: dict[int, list[str] | None]) -> str | None:
    """The column of the column list a placeholder's position in a row of values binds it to."""
    child = index
    opened = tokens.enclosing[index]
    for _ in range(_ROW_LEVELS):
        if opened < 0:
            return None
        columns = _row_columns(tokens, opened, memo)
        if columns is not None:
            position = tokens.item[child]
            return columns[position] if position < len(columns) else None
        child, opened = opened, tokens.enclosing[opened]
    return None


def parameter_bindings(statement: str) -> dict[ParameterKey, tuple[str, ...]]:
    """Each parameter of ``statement`` (by position, or by name for named placeholders) and the
    names it is bound to: the column it is compared with, assigned to or inserted into, and for a
    named placeholder its own name. A parameter bound to nothing known has no names."""
    if len(statement) <= _CACHED_LENGTH:
        return dict(_bindings_cached(statement))
    return dict(_bindings(statement))


@lru_cache(maxsize=_CACHE_SIZE)
def _bindings_cached(statement: str) -> tuple[tuple[ParameterKey, tuple[str, ...]], ...]:
    return _bindings(statement)


def _bindings(statement: str) -> tuple[tuple[ParameterKey, tuple[str, ...]], ...]:
    tokens = _Tokens(statement)
    names: dict[ParameterKey, list[str]] = {}
    memo: dict[int, list[str] | None] = {}
    for index, kind in enumerate(tokens.kinds):
        if kind != "ph":
            continue
        key = tokens.keys[index]
        assert key is not None  # every placeholder got a key in _Tokens
        bound = names.setdefault(key, [])
        if isinstance(key, str) and key not in bound:
            bound.append(key)
        column = (
            _compared_column(tokens, index)
            or _row_column(tokens, index, memo)
            or _column_after(tokens, index)
        )
        if column is not None and column not in bound:
            bound.append(column)
    return tuple((key, tuple(bound)) for key, bound in names.items())


def sensitive_parameters(statement: str, redactor: NamePolicy) -> frozenset[ParameterKey] | None:
    """The parameters of ``statement`` bound to a sensitive name (``password = %s``, ``:token``).

    None when any of them may be: a statement too long to analyse that mentions a sensitive name.
    """
    if len(statement) > _MAX_ANALYSED_STATEMENT:
        return None if _mentions_sensitive_name(statement, redactor) else frozenset()
    return frozenset(
        key
        for key, names in parameter_bindings(statement).items()
        if any(redactor.is_sensitive_name(name) for name in names)
    )


# -- parameters ---------------------------------------------------------------------------------


def redact_parameters(statement: str, parameters: str, redactor: NamePolicy) -> str:
    """``parameters`` (as recorded: ``str()`` of the tuple, list or dict bound to ``statement``)
    with the values bound to sensitive columns or names replaced by ``'[redacted]'``.

    The text is parsed, never evaluated (:func:`ast.parse`), and the masked values are cut out of
    it, so everything else stays exactly as recorded, including values that are not literals
    (``datetime.date(2024, 1, 1)``, ``Decimal('1.5')``). Rows of ``executemany`` (a list of
    dicts, or of tuples as long as the statement's placeholders) are masked row by row, and the
    keys of dicts inside values by their own name (a JSON document's ``"password"``). ``None``
    is kept: it says a value was missing, not what it was. Credential-looking text left
    anywhere is masked by ``redactor.redact_text``. When the text does not parse, it is masked
    whole if the statement binds any sensitive column, and only by ``redact_text`` otherwise.
    Never raises: on any failure the whole text is masked.
    """
    try:
        return _redact_parameters(statement, parameters, redactor)
    except Exception:
        return REDACTED


def _mentions_sensitive_name(statement: str, redactor: NamePolicy) -> bool:
    return any(redactor.is_sensitive_name(word) for word in set(_WORD.findall(statement)))


def _redact_parameters(statement: str, parameters: str, redactor: NamePolicy) -> str:
    if len(statement) > _MAX_ANALYSED_STATEMENT:
        if _mentions_sensitive_name(statement, redactor):
            return REDACTED
        return redactor.redact_text(parameters)
    bindings = parameter_bindings(statement)
    sensitive = {
        key for key, names in bindings.items() if any(redactor.is_sensitive_name(name) for name in names)
    }
    tree = _parse(parameters)
    if tree is None:
        return REDACTED if sensitive else redactor.redact_text(parameters)
    positional = 1 + max((key for key in bindings if isinstance(key, int)), default=-1)
    masked: list[ast.expr] = []
    top = tree.body

    def mask_sequence(values: list[ast.expr]) -> None:
        masked.extend(value for index, value in enumerate(values) if index in sensitive)

    def mask_mapping(mapping: ast.Dict) -> None:
        for key, value in zip(mapping.keys, mapping.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value in sensitive:
                masked.append(value)

    if isinstance(top, ast.Dict):
        mask_mapping(top)
    elif isinstance(top, (ast.Tuple, ast.List)):
        values = top.elts
        mappings = [value for value in values if isinstance(value, ast.Dict)]
        if values and len(mappings) == len(values):
            for row in mappings:
                mask_mapping(row)  # executemany with named parameters
        else:
            rows = [
                value.elts
                for value in values
                if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == positional
            ]
            shaped = bool(values) and len(rows) == len(values)
            for row_values in rows if shaped else ():
                mask_sequence(row_values)  # executemany: one sequence per row
            if not shaped or (isinstance(top, ast.Tuple) and len(values) == positional):
                # One row; or a tuple that reads either way (two tuple-valued parameters, or two
                # rows): both readings are masked.
                mask_sequence(values)
    elif 0 in sensitive:
        masked.append(top)
    for node in ast.walk(top):  # a JSON document's keys are names too
        if isinstance(node, ast.Dict):
            masked.extend(
                value
                for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant)
                and isinstance(key.value, str)
                and redactor.is_sensitive_name(key.value)
            )
    return redactor.redact_text(_splice(parameters, masked))


def _parse(parameters: str) -> ast.Expression | None:
    """The syntax tree of one line of Python literals; None when it is not one (a custom
    ``__repr__``, ``<object at 0x…>``, or too long to parse on the export worker)."""
    if len(parameters) > _MAX_PARSED_PARAMETERS or "\n" in parameters or "\r" in parameters:
        return None
    try:
        return ast.parse(parameters, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _splice(parameters: str, nodes: list[ast.expr]) -> str:
    """``parameters`` with the source of each of ``nodes`` replaced by ``'[redacted]'``.

    ``ast`` positions are UTF-8 byte offsets in the (single) line, hence the bytes. A node
    inside one already masked is skipped. ``None`` is left as it is.
    """
    ranges = sorted(
        {
            (node.col_offset, node.end_col_offset)
            for node in nodes
            if node.end_col_offset is not None and not (isinstance(node, ast.Constant) and node.value is None)
        },
        key=lambda span: (span[0], -span[1]),
    )
    if not ranges:
        return parameters
    data = parameters.encode("utf-8")
    replacement = _REDACTED_LITERAL.encode()
    pieces: list[bytes] = []
    end = 0
    for start, stop in ranges:
        if start < end:
            continue  # inside a value already masked
        pieces.append(data[end:start])
        pieces.append(replacement)
        end = stop
    pieces.append(data[end:])
    return b"".join(pieces).decode("utf-8")
