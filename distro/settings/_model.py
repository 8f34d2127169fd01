"""The one declarative table of execscope's own settings.

Every setting is a field of :class:`Settings` declared with :func:`_setting`: its type, its
default, its environment variable, its parser and its one line of documentation live in one
place. The loader, ``execscope config``, the launcher's options and the README table are all
generated from this table, so a setting is documented once and parsed by one helper.
Standard ``OTEL_*`` variables are not repeated here: the SDK reads them with their usual meaning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from execscope.settings import _parsers as p

ENV_PREFIX = "EXECSCOPE_"
#: Names a settings file explicitly; it cannot itself come from a file, so it is not in the table.
CONFIG_FILE_ENV = "EXECSCOPE_CONFIG"
#: JSON object of explicit settings, set by ``execscope run`` for the program it starts.
EXPLICIT_ENV = "EXECSCOPE__EXPLICIT"


def _setting(default: Any, parse: Callable[[Any], Any], doc: str, secret: bool = False) -> Any:
    return field(default=default, metadata={"parse": parse, "doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Effective execscope settings. Build it with :func:`execscope.settings.load_settings`."""

    enabled: bool = _setting(
        True,
        p.parse_bool,
        "Master switch. When false execscope sets nothing up and the program runs untraced.",
    )
    store: Path = _setting(
        Path(".execscope"),
        p.parse_path,
        "Folder of the embedded trace store; a relative path is taken from the working directory "
        "(in a settings file: from that file's folder).",
    )
    store_export: str = _setting(
        "auto",
        p.parse_choice("auto", "always", "never"),
        "When spans go to the embedded store: `auto` when no other trace exporter or OTLP endpoint is "
        "configured, `always` in addition to any exporter, `never`.",
    )
    store_max_size_mb: int = _setting(
        256, p.parse_positive_int, "Retention: the store deletes its oldest traces to stay under this size."
    )
    store_max_age: float = _setting(
        7 * 86400.0,
        p.parse_duration,
        "Retention: traces older than this (`30s`, `12h`, `7d`, or seconds) are deleted.",
    )
    sample_rate: float = _setting(
        1.0,
        p.parse_fraction,
        "Fraction of traces kept (0 to 1) when `OTEL_TRACES_SAMPLER` is not set; "
        "a sampled-in parent is always followed.",
    )
    plan: Path | None = _setting(
        None, p.parse_readable_file, "Instrumentation plan file (TOML) for the auto-instrumentor."
    )
    autotrace: bool = _setting(
        True,
        p.parse_bool,
        "Rewrite the application's own modules at import so their functions are traced "
        "(the auto-instrumentor).",
    )
    autotrace_level: str = _setting(
        "full",
        p.parse_choice("off", "timing", "args", "full"),
        "Level of functions the plan does not cover: `timing` (span only), `args` (+ arguments, return, "
        "exception), `full` (+ state diffs), `off`.",
    )
    autotrace_modules: tuple[str, ...] = _setting(
        (),
        p.parse_module_globs,
        "Dotted module globs to rewrite instead of the application's own files (e.g. `app,app.*`); "
        "installed packages may be named too.",
    )
    autotrace_exclude: tuple[str, ...] = _setting(
        (), p.parse_module_globs, "Dotted module globs never rewritten (a module covers its submodules)."
    )
    autotrace_accelerator: bool = _setting(
        True,
        p.parse_bool,
        "Run the per-call fast path of rewritten functions in C where it was compiled at install; "
        "`false`: the pure-Python path (same behaviour, slower).",
    )
    autotrace_bytecode: bool = _setting(
        True,
        p.parse_bool,
        "Rewrite a selected module's compiled code, where the interpreter is 3.11 and that pass was "
        "compiled at install; `false`: rewrite its `ast` tree and compile that (same behaviour, a "
        "dearer first import).",
    )
    capture_max_depth: int = _setting(
        3, p.parse_int_range(0, 64), "Nesting levels shown of a captured value."
    )
    capture_max_items: int = _setting(
        10, p.parse_int_range(0, 10_000), "Elements shown per captured container."
    )
    capture_max_string: int = _setting(
        200, p.parse_int_range(0, 1_000_000), "Characters shown per captured string."
    )
    capture_span_budget: int = _setting(
        4096,
        p.parse_int_range(0, 1_000_000),
        "Characters of all captured values (arguments, return, state) of one span.",
    )
    redact_names: tuple[str, ...] = _setting(
        (),
        p.parse_name_patterns,
        "Extra name patterns (regular expressions) whose values are masked, in addition to password, "
        "secret, token, api_key, authorization, cookie, session...",
    )
    redact: bool = _setting(
        True,
        p.parse_bool,
        "Mask sensitive attribute values (by name, and credential-looking text anywhere) before spans "
        "leave the process. False: nothing is masked.",
    )
    http_capture_body: int = _setting(
        4096,
        p.parse_int_range(0, 10_000_000),
        "Web requests: JSON and form request bodies up to this many bytes are captured on the server "
        "span, redacted (`0`: no bodies).",
    )
    websocket_preview: int = _setting(
        256,
        p.parse_int_range(0, 1_000_000),
        "WebSocket messages: characters of each received and sent message kept as a preview (`0`: none).",
    )
    db_parameters: bool = _setting(
        False,
        p.parse_bool,
        "Record the parameters of SQL statements (redacted by column name) on query spans.",
    )
    db_sanitize: bool = _setting(
        True,
        p.parse_bool,
        "Replace literal values written into recorded SQL statements with `?`.",
    )
    redis_pubsub_context: bool = _setting(
        True,
        p.parse_bool,
        "Carry the trace context of a Redis `PUBLISH` to its receivers through a short-lived key "
        "beside the message (the message itself is never changed).",
    )
    subprocess_context: bool = _setting(
        True,
        p.parse_bool,
        "Carry the current trace context and correlation id into the environment of child processes "
        "(`TRACEPARENT`, `TRACESTATE`, `BAGGAGE`), and continue the one found in this process's own "
        "environment at start-up.",
    )
    tail_keep_rate: float = _setting(
        1.0,
        p.parse_fraction,
        "Tail sampling: fraction of traces kept when they have no error and are not slow (0 to 1). "
        "Below 1, a trace's spans are held until its local root ends.",
    )
    tail_latency_threshold: float = _setting(
        1.0,
        p.parse_duration_or_off,
        "Tail sampling: traces lasting at least this long are always kept (`off`: no latency rule).",
    )
    tail_buffer_mb: int = _setting(
        64,
        p.parse_positive_int,
        "Tail sampling: memory for held spans; when full, the oldest traces are decided early.",
    )
    tail_max_hold: float = _setting(
        30.0,
        p.parse_duration,
        "Tail sampling: a trace whose local root has not ended after this long is decided early.",
    )
    export_queue_size: int = _setting(
        32768,
        p.parse_positive_int,
        "Spans waiting for export per exporter; beyond it spans are dropped (counted).",
    )
    export_flush_deadline: float = _setting(
        5.0,
        p.parse_duration,
        "At exit, the one deadline for delivering queued spans; what is left is spooled for the next start.",
    )
    spool: bool = _setting(
        True,
        p.parse_bool,
        "Keep OTLP batches on disk while the collector is down or slow, and deliver them in order later.",
    )
    spool_dir: Path | None = _setting(
        None, p.parse_path, "Folder of the on-disk spool (default: `spool` inside the store folder)."
    )
    spool_max_mb: int = _setting(
        256,
        p.parse_positive_int,
        "Size limit of the spool; beyond it the oldest batches are dropped (counted).",
    )
    governor_cpu_budget: float = _setting(
        0.5,
        p.parse_fraction,
        "CPU execscope may add, as a fraction of one core; above it the governor sheds work "
        "(`0`: no CPU limit).",
    )
    governor_memory_mb: int = _setting(
        0,
        p.parse_int_range(0, 1_000_000),
        "Resident memory of the process above which the governor sheds work (`0`: no limit).",
    )
    governor_max_spans_per_s: int = _setting(
        0,
        p.parse_int_range(0, 100_000_000),
        "Spans per second above which the governor sheds work (`0`: no limit).",
    )
    governor_export_latency: float = _setting(
        5.0,
        p.parse_duration_or_off,
        "How long one export call may take; a slower destination makes the governor shed work, "
        "as much more as it is slower (`off`: no limit).",
    )
    log_level: str = _setting(
        "warning", p.parse_log_level, "Level of execscope's own log messages (`debug` to `error`)."
    )
    llm_url: str | None = _setting(
        None,
        p.parse_url,
        "OpenAI-compatible chat endpoint (e.g. `http://localhost:8000/v1`) that `execscope analyze --llm` "
        "asks to refine the plan. Unset: no model is ever contacted.",
    )
    llm_model: str = _setting("gpt-4o-mini", p.parse_text, "Model name sent to `llm_url`.")
    llm_api_key: str | None = _setting(
        None,
        p.parse_text,
        "Bearer key for `llm_url` (never printed; `OPENAI_API_KEY` is used when unset).",
        True,
    )


@dataclass(frozen=True)
class SettingSpec:
    """One row of the settings table, as the loader and the documentation see it."""

    name: str
    env: str
    default: Any
    parse: Callable[[Any], Any]
    doc: str
    shown_default: str
    secret: bool


def setting_specs() -> tuple[SettingSpec, ...]:
    specs = []
    for item in dataclasses.fields(Settings):
        specs.append(
            SettingSpec(
                name=item.name,
                env=ENV_PREFIX + item.name.upper(),
                default=item.default,
                parse=item.metadata["parse"],
                doc=item.metadata["doc"],
                shown_default=format_setting(item.name, item.default),
                secret=item.metadata["secret"],
            )
        )
    return tuple(specs)


def format_setting(name: str, value: Any) -> str:
    """How one setting's value is shown: durations in the units people write them in, secrets never."""
    metadata = Settings.__dataclass_fields__[name].metadata
    if metadata["secret"]:
        return "(none)" if value is None else "(set)"
    parse = metadata["parse"]
    if parse is p.parse_duration_or_off and value == 0:
        return "off"
    if parse in (p.parse_duration, p.parse_duration_or_off) and isinstance(value, (int, float)):
        return p.format_duration(value)
    return format_value(value)


def format_value(value: Any) -> str:
    """How a value is shown to people: in warnings, ``execscope config`` and the docs."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ", ".join(str(item) for item in value) if value else "(none)"
    return str(value)


def settings_table_markdown() -> str:
    """The settings table as Markdown, for the README (a test keeps the two identical)."""
    lines = ["| Setting (file key) | Variable | Default | Meaning |", "| --- | --- | --- | --- |"]
    for spec in setting_specs():
        default = spec.shown_default if spec.name != "store" else "`./.execscope`"
        if not default.startswith("`"):
            default = f"`{default}`"
        lines.append(f"| `{spec.name}` | `{spec.env}` | {default} | {spec.doc} |")
    return "\n".join(lines)
