"""execscope's span processing inside the rotel collector: the same decisions, made next to the backend.

Services that cannot run execscope's in-process pipeline (or a fleet that wants one place to
configure it) get the same three decisions from the collector: sensitive attribute values are
masked, every span of a unit of work carries one ``execscope.correlation_id``, and whole traces
are kept or dropped by the tail rule. None of the logic lives here: this module only translates
rotel's span objects into the inputs of the shared modules
(:mod:`execscope.processors._decision`, :mod:`execscope.processors._redaction`,
:mod:`execscope.processors._correlation`) and writes their answers back, so the collector and
the in-process form cannot drift apart. It needs no OpenTelemetry SDK.

Running it
----------
rotel (``pip install rotel``) embeds CPython 3.11 and loads this file by path::

    PYTHONPATH=/path/to/venv/lib/python3.11/site-packages \\
    EXECSCOPE_TAIL_KEEP_RATE=0.3 EXECSCOPE_TAIL_LATENCY_THRESHOLD=500ms \\
    rotel-agent start --otlp-with-trace-processor \\
        /path/to/venv/lib/python3.11/site-packages/execscope/processors/collector_plugin.py ...

``PYTHONPATH`` must name the site-packages folder of a Python **3.11** environment where
execscope is installed (rotel's interpreter starts with only the system's folders on its path).
The embedded interpreter does not treat ``PYTHONPATH`` folders as site folders, so an editable
install's ``.pth`` file would be ignored; this module therefore processes the ``.pth`` files of
the ``PYTHONPATH`` folders when execscope is not importable, and when it is loaded from inside an
installed ``execscope/processors/`` folder it also adds the folder holding ``execscope``. (With a
strict editable install, naming the ``build/__editable__.*`` folder in ``PYTHONPATH`` works too.)
``collector-config/rotel.env`` has a ready-made configuration.

Settings are read once, at load, from the same environment variables, parsers and defaults as
the in-process form (the settings table): ``EXECSCOPE_TAIL_KEEP_RATE`` (default 1: keep all),
``EXECSCOPE_TAIL_LATENCY_THRESHOLD`` (seconds or ``500ms``; ``off``; default 1s),
``EXECSCOPE_REDACT_NAMES`` (comma-separated extra name patterns), ``EXECSCOPE_REDACT``
(``false`` turns masking off) and ``EXECSCOPE_DB_SANITIZE`` (``false`` keeps the literals in SQL
statements). A value that does not parse is reported once and the default used.

What one call does
------------------
rotel calls :func:`process_spans` once per ``ResourceSpans`` of each request it receives. Spans
are grouped by trace id (across the resource's scopes), then per trace:

- **Decision.** A span is the trace's *local root* when its ``parent_span_id`` is empty (or all
  zeros), or when its ``flags`` say its parent is remote (bits 8 and 9 both set, as the
  OpenTelemetry SDKs write them): exactly the in-process sampler's ``parent is None or
  parent.is_remote``. A span whose flags do not say whether its parent is remote is *not* taken
  for a root even when its parent is absent from the call, because exporters send children
  before their parent (spans are exported when they end) and a child mistaken for the root
  would fix the whole trace's fate on partial facts. When the local root is in the call, the
  trace is decided by the shared ``decide`` on the facts of all its spans seen so far, and the
  verdict is remembered (65,536 traces, the oldest forgotten first) so later parts of the trace
  (spans that end after their root) follow it, kept or dropped, as in-process. A trace already
  decided follows its remembered verdict.
- **Limitation.** rotel's processor API cannot hold spans back for a later call: whatever a
  call does not drop is exported. So a part of a trace that arrives *before* its root is
  decided at once on the facts seen so far (they are remembered, bounded, and included in the
  decision when the root arrives). The rule is monotonic (an error stays, the duration only grows, the
  rate test depends on the trace id alone), so a part that was kept is never contradicted by
  a later drop; but an early part dropped as ordinary may belong to a trace that turns out to
  be slow or failed, whose later parts are then kept without it. Export whole traces (the
  SDK's batch processor mostly does) or run execscope in-process where that matters.
- **Correlation.** A kept span without ``execscope.correlation_id`` gets the id carried by
  another span of its trace in the call, else the id already given to the trace (a bounded
  table, the in-process registry class), else a new one.
- **Redaction.** String values (and string arrays) of span and event attributes go through the
  shared ``redact_attribute``; a sensitive name's bytes value becomes ``[redacted]`` as in-process.
- **SQL.** A span's SQL attributes (``db.statement``, ``db.query.text``,
  ``db.statement.parameters``, ``db.query.parameter.<key>``, read with ``db.system``) go through
  the shared ``mask_sql`` first: literals in statements become ``?``, parameters bound to
  sensitive columns ``[redacted]``, exactly as in-process.

Spans kept and dropped are counted by verdict in :data:`SPANS_KEPT` and :data:`SPANS_DROPPED`
and logged at most once a minute.

rotel constraints (0.0.1a15)
----------------------------
- An exception escaping ``process_spans`` makes rotel panic and stop. Nothing here may raise:
  any failure leaves the batch as it came (every change is planned before the first one is
  written) and is logged once; later failures are only counted in :data:`FAILED_CALLS`.
- rotel takes the batch back after the call and panics if Python still holds some of its
  objects (a span's status or events, for instance), so nothing but ints and strings is kept
  across calls, and a failure's traceback is let go before the call returns.
- An attribute sent without any value message (a bare key, which no OpenTelemetry SDK sends;
  an empty value is fine) makes rotel's SDK panic as soon as a processor reads it, and the lock
  it poisons stops rotel after the call whatever the processor does. No processor that reads
  attribute values can guard against it.
- rotel writes array attribute values back in reverse order for every span whose attributes a
  processor has read (its conversion pops the array). That is rotel's, and is not compensated
  here because other rotel versions convert in order. rotel also shows bytes values to Python
  as lists of ints; they are treated as bytes.
"""

from __future__ import annotations

import importlib
import logging
import os
import site
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final


def _make_execscope_importable() -> None:
    """Put execscope on the path of rotel's embedded interpreter, which ignores ``.pth`` files there."""
    try:
        import execscope
    except ImportError:
        pass
    else:
        return
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry and Path(entry).is_dir():
            site.addsitedir(entry)  # runs its .pth files (an editable install's path or finder)
    here = Path(__file__).absolute().parent  # not resolved: an editable install links the source
    if here.name == "processors" and here.parent.name == "execscope":
        sys.path.append(str(here.parent.parent))
    importlib.invalidate_caches()
    try:
        import execscope  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "execscope collector plugin: cannot import execscope; set PYTHONPATH to the site-packages "
            "folder of a Python 3.11 environment where execscope is installed"
        ) from error


_make_execscope_importable()

from opentelemetry import baggage  # noqa: E402
from opentelemetry.context import Context  # noqa: E402

from execscope.attributes import CORRELATION_ID  # noqa: E402
from execscope.capture import NoopRedactor, Redactor  # noqa: E402
from execscope.processors._correlation import BAGGAGE_KEY, CorrelationRegistry  # noqa: E402
from execscope.processors._decision import TailPolicy, TraceFacts, Verdict, decide  # noqa: E402
from execscope.processors._redaction import (  # noqa: E402
    PARAMETER_PREFIX,
    SQL_ATTRIBUTES,
    SpanMasking,
    mask_sql,
    redact_attribute,
)
from execscope.settings import setting_specs  # noqa: E402

_logger = logging.getLogger("execscope.collector_plugin")

#: The settings of the table this plugin honours (the rest concern the in-process pipeline only).
SETTINGS: Final = ("tail_keep_rate", "tail_latency_threshold", "redact", "redact_names")
#: The SQL pass's settings, read like SETTINGS (kept apart: SETTINGS are the decisions' own).
SQL_SETTINGS: Final = ("db_sanitize",)
#: Traces whose verdict, or whose facts before their root arrived, are remembered across calls.
MEMORY_CAPACITY: Final = 65_536
#: Seconds between two reports of the counters in the log.
REPORT_INTERVAL_S: Final = 60.0
#: OTLP ``Status.code`` of an error.
STATUS_CODE_ERROR: Final = 2
# OTLP span flags: bit 8 says whether bit 9 (the parent is remote) is known.
_FLAG_HAS_IS_REMOTE: Final = 0x100
_FLAG_IS_REMOTE: Final = 0x200
_REMOTE_PARENT: Final = _FLAG_HAS_IS_REMOTE | _FLAG_IS_REMOTE

#: Spans forwarded, by the verdict that kept them (``error``, ``latency``, ``rate``).
SPANS_KEPT: Counter[str] = Counter()
#: Spans dropped, by verdict (``sampled_out``).
SPANS_DROPPED: Counter[str] = Counter()
#: Calls that failed and let their batch pass unchanged.
FAILED_CALLS = 0


def read_settings(environ: Mapping[str, str], names: Iterable[str] = SETTINGS) -> dict[str, Any]:
    """The plugin's settings ``names`` from ``environ``, parsed by the settings table's own parsers."""
    specs = {spec.name: spec for spec in setting_specs()}
    values: dict[str, Any] = {}
    for name in names:
        spec = specs[name]
        values[name] = spec.default
        raw = environ.get(spec.env)
        if raw is None:
            continue
        try:
            values[name] = spec.parse(raw)
        except ValueError as error:
            _logger.warning(
                "execscope: %s=%r is not valid: %s; using %s", spec.env, raw, error, spec.shown_default
            )
    return values


def _policy(values: Mapping[str, Any]) -> TailPolicy:
    # The same conversion as the in-process pipeline's (execscope.processors._build).
    return TailPolicy(
        keep_rate=values["tail_keep_rate"],
        latency_threshold_ns=int(values["tail_latency_threshold"] * 1e9),
    )


def _redactor(values: Mapping[str, Any]) -> Redactor:
    # The same rule as make_redactor in execscope.processors._build, which imports the SDK.
    if not values["redact"]:
        return NoopRedactor()
    return Redactor(extra_name_patterns=values["redact_names"])


def _configure_logging() -> None:
    """Inside rotel nobody configures logging: send this plugin's lines to rotel's stderr."""
    if __name__ == "execscope.processors.collector_plugin" or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("execscope collector plugin: %(levelname)s %(message)s"))
    _logger.addHandler(handler)
    _logger.setLevel(logging.INFO)
    _logger.propagate = False


_configure_logging()
_SETTINGS = read_settings(os.environ)
_POLICY = _policy(_SETTINGS)
_REDACTOR = _redactor(_SETTINGS)
# The same rule as make_masking in execscope.processors._build.
_MASKING = SpanMasking(_REDACTOR, sanitize_sql=read_settings(os.environ, SQL_SETTINGS)["db_sanitize"])
_CORRELATION = CorrelationRegistry(MEMORY_CAPACITY)
#: Verdicts of traces whose local root was seen: their later parts follow them.
_DECIDED: OrderedDict[int, Verdict] = OrderedDict()
#: Facts of traces seen without their local root yet, counted again when it arrives.
_PENDING: OrderedDict[int, TraceFacts] = OrderedDict()
_LOCK = threading.Lock()
_error_logged = False
_last_report = time.monotonic()
_key_value_type: Any = None


def _remember(table: OrderedDict[int, Any], trace_id: int, value: Any) -> None:
    table[trace_id] = value
    table.move_to_end(trace_id)
    if len(table) > MEMORY_CAPACITY:
        table.popitem(last=False)


def is_local_root(parent_span_id: Iterable[int], flags: int) -> bool:
    """Whether a span is its trace's local root: no parent, or a parent the sender marks as remote."""
    if not any(parent_span_id):
        return True
    return flags & _REMOTE_PARENT == _REMOTE_PARENT


def _combined(earlier: TraceFacts | None, now: TraceFacts) -> TraceFacts:
    """The facts of ``earlier`` calls and of this one together (``earlier`` is left as it was)."""
    if earlier is None:
        return now
    facts = TraceFacts()
    facts.add(earlier.start_ns, earlier.end_ns, earlier.has_error)
    facts.add(now.start_ns, now.end_ns, now.has_error)
    facts.spans = earlier.spans + now.spans
    return facts


class _Plan:
    """Every change to one batch, gathered before the first is written."""

    __slots__ = ("appends", "emptied", "scope_lists", "string_writes")

    def __init__(self) -> None:
        #: (AnyValue, new text): masked values, written in place.
        self.string_writes: list[tuple[Any, str]] = []
        #: (Span, correlation id): spans that get the attribute.
        self.appends: list[tuple[Any, str]] = []
        #: (ScopeSpans, kept spans): scopes that lost spans.
        self.scope_lists: list[tuple[Any, list[Any]]] = []
        #: The ResourceSpans when some of its scopes lost every span (they are left out).
        self.emptied: Any = None


def _plan_redaction(key: str, any_value: Any, plan: _Plan) -> None:
    """Queue the masking of one attribute value, by the shared rule."""
    value = any_value.value
    if isinstance(value, str):
        masked = redact_attribute(key, value, _REDACTOR)
        if masked is not value and masked != value:
            plan.string_writes.append((any_value, masked))
    elif isinstance(value, (list, bytes)):  # rotel shows a bytes value as a list of ints
        try:
            data = bytes(value)
        except (TypeError, ValueError):
            return
        masked = redact_attribute(key, data, _REDACTOR)
        if isinstance(masked, str):
            plan.string_writes.append((any_value, masked))
    elif type(value).__name__ == "ArrayValue":
        items = list(value)
        texts = tuple(item.value for item in items)
        if not texts or not all(isinstance(text, str) for text in texts):
            return
        masked_items = redact_attribute(key, texts, _REDACTOR)
        if masked_items is texts:
            return
        for item, before, after in zip(items, texts, masked_items, strict=True):
            if after != before:
                plan.string_writes.append((item, after))


def _scan_attributes(attributes: Any, plan: _Plan) -> str | None:
    """Queue the masking of ``attributes``; their correlation id when they carry one."""
    carried = None
    redact = _REDACTOR.enabled
    sql: dict[str, Any] | None = None
    for key_value in attributes:
        any_value = key_value.value
        if any_value is None:
            continue
        key = key_value.key
        if key == CORRELATION_ID:
            value = any_value.value
            carried = value if isinstance(value, str) else carried
        elif key in SQL_ATTRIBUTES or key.startswith(PARAMETER_PREFIX):
            if sql is None:
                sql = {}
            sql[key] = any_value  # masked together, once the span's statement is known
        elif redact:
            _plan_redaction(key, any_value, plan)
    if sql is not None:
        _plan_sql(sql, plan)
    return carried


def _plan_sql(any_values: dict[str, Any], plan: _Plan) -> None:
    """Queue the masking of a span's SQL attributes: the shared ``mask_sql``, then the value rule."""
    values = {key: any_value.value for key, any_value in any_values.items()}
    changes = mask_sql(values, _MASKING) if _MASKING.enabled else None
    for key, any_value in any_values.items():
        if changes is None or key not in changes:
            if _REDACTOR.enabled:
                _plan_redaction(key, any_value, plan)
            continue
        masked = redact_attribute(key, changes[key], _REDACTOR) if _REDACTOR.enabled else changes[key]
        if isinstance(masked, str) and masked != values[key]:
            plan.string_writes.append((any_value, masked))


class _Trace:
    """The spans of one trace in one call, and what they show."""

    __slots__ = ("facts", "rooted", "spans")

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.facts = TraceFacts()
        self.rooted = False


def _gather(scope_spans: list[list[tuple[int, Any]]]) -> dict[int, _Trace]:
    traces: dict[int, _Trace] = {}
    for spans in scope_spans:
        for trace_id, span in spans:
            trace = traces.get(trace_id)
            if trace is None:
                trace = traces[trace_id] = _Trace()
            status = span.status
            error = status is not None and status.code == STATUS_CODE_ERROR
            trace.facts.add(span.start_time_unix_nano, span.end_time_unix_nano, error)
            trace.spans.append(span)
            trace.rooted = trace.rooted or is_local_root(bytes(span.parent_span_id), span.flags)
    return traces


def _plan_correlation(trace_id: int, spans: list[Any], plan: _Plan) -> None:
    """Queue the masking of a kept trace's spans, and the correlation id of those without one."""
    carried = None
    missing = []
    for span in spans:
        own = _scan_attributes(span.attributes, plan)
        carried = carried or own
        if own is None:
            missing.append(span)
        if _MASKING.enabled:
            for event in span.events:
                _scan_attributes(event.attributes, plan)
    # The in-process registry's rule: an id the trace carries wins, else the known one, else a new one.
    context = baggage.set_baggage(BAGGAGE_KEY, carried, Context()) if carried else None
    correlation_id = _CORRELATION.resolve(trace_id, context)
    plan.appends.extend((span, correlation_id) for span in missing)


def _plan_batch(resource_spans: Any) -> _Plan:
    """Decide, mask and correlate one ResourceSpans; only the module's memory is changed here."""
    plan = _Plan()
    scopes = list(resource_spans.scope_spans)
    scope_spans = [
        [(int.from_bytes(bytes(span.trace_id), "big"), span) for span in scope.spans] for scope in scopes
    ]
    traces = _gather(scope_spans)
    verdicts: dict[int, Verdict] = {}
    decided: dict[int, Verdict] = {}
    pending: dict[int, TraceFacts] = {}
    for trace_id, trace in traces.items():
        verdict = _DECIDED.get(trace_id)
        if verdict is None:
            seen = _combined(_PENDING.get(trace_id), trace.facts)
            verdict = decide(trace_id, seen, _POLICY)
            if trace.rooted:
                decided[trace_id] = verdict
            else:
                pending[trace_id] = seen
        verdicts[trace_id] = verdict
        if verdict.keep:
            _plan_correlation(trace_id, trace.spans, plan)

    for scope, spans in zip(scopes, scope_spans, strict=True):
        kept = [span for trace_id, span in spans if verdicts[trace_id].keep]
        if len(kept) != len(spans):
            plan.scope_lists.append((scope, kept))
            if not kept:
                plan.emptied = resource_spans

    # Everything is decided: commit to the memory and the counters.
    for trace_id, verdict in decided.items():
        _remember(_DECIDED, trace_id, verdict)
        _PENDING.pop(trace_id, None)
    for trace_id, seen in pending.items():
        _remember(_PENDING, trace_id, seen)
    for trace_id, trace in traces.items():
        verdict = verdicts[trace_id]
        (SPANS_KEPT if verdict.keep else SPANS_DROPPED)[verdict.value] += len(trace.spans)
    return plan


def _apply(plan: _Plan) -> None:
    global _key_value_type
    for any_value, text in plan.string_writes:
        any_value.string_value = text
    if plan.appends:
        if _key_value_type is None:
            _key_value_type = importlib.import_module("rotel_sdk.open_telemetry.common.v1").KeyValue
        for span, correlation_id in plan.appends:
            span.attributes.append(_key_value_type.new_string_value(CORRELATION_ID, correlation_id))
    for scope, spans in plan.scope_lists:
        scope.spans = spans
    if plan.emptied is not None:
        plan.emptied.scope_spans = [scope for scope in plan.emptied.scope_spans if len(scope.spans)]


def _report(now: float) -> None:
    """Log the counters, at most once a minute: what sampling drops must be visible, not loud."""
    global _last_report
    if now - _last_report < REPORT_INTERVAL_S:
        return
    _last_report = now
    _logger.info(
        "spans kept %s, dropped %s, failed calls %d", dict(SPANS_KEPT), dict(SPANS_DROPPED), FAILED_CALLS
    )


def process_spans(resource_spans: Any) -> None:
    """rotel's entry point: mask, correlate and tail-sample one ResourceSpans in place; never raises.

    ``resource_spans`` is a ``rotel_sdk.open_telemetry.trace.v1.ResourceSpans``; rotel's SDK ships
    no type information to this package, hence ``Any``.
    """
    global FAILED_CALLS, _error_logged
    try:
        with _LOCK:
            plan = _plan_batch(resource_spans)
        _apply(plan)
    except BaseException:  # also rotel's PanicException, which is not an Exception
        with _LOCK:
            FAILED_CALLS += 1
            first = not _error_logged
            _error_logged = True
        if first:
            _logger.exception("a batch passed unprocessed (reported once; later failures are counted)")
    try:
        with _LOCK:
            _report(time.monotonic())
    except Exception:  # a broken log handler must not reach rotel either
        pass


__all__ = [
    "FAILED_CALLS",
    "MEMORY_CAPACITY",
    "SETTINGS",
    "SPANS_DROPPED",
    "SPANS_KEPT",
    "is_local_root",
    "process_spans",
    "read_settings",
]
