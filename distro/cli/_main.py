"""``execscope``: run a program traced, inspect settings, and read the embedded trace store."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from execscope import _launcher
from execscope._version import __version__
from execscope.cli import _render
from execscope.cli._analyze import analyze
from execscope.cli._autotrace import compile_modules, plan, rewrite
from execscope.cli._status import status
from execscope.settings import format_setting, get_settings, load_settings, setting_specs, settings_as_dict
from execscope.settings._parsers import parse_duration
from execscope.store import SpanFilter, TraceStore

_RUN_CONTEXT = {"ignore_unknown_options": True, "allow_interspersed_args": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="execscope")
def main() -> None:
    """Record what a Python program did, and inspect it."""


def _setting_options(command: Any) -> Any:
    """One ``execscope run`` option per setting in the table, so options never drift from it."""
    for spec in reversed(setting_specs()):
        command = click.option(
            f"--{spec.name.replace('_', '-')}",
            spec.name,
            default=None,
            metavar="VALUE",
            help=f"{spec.doc} [{spec.env}; default {spec.shown_default}]",
        )(command)
    return command


@main.command(context_settings=_RUN_CONTEXT)
@click.option(
    "-m", "module", default=None, metavar="MODULE", help="Run a library module as a script (like python -m)."
)
@click.option("--service-name", default=None, help="Service name of the spans [OTEL_SERVICE_NAME].")
@click.option(
    "--exporter", default=None, help="Trace exporters, e.g. otlp or console [OTEL_TRACES_EXPORTER]."
)
@click.option(
    "--endpoint",
    default=None,
    help="OTLP endpoint, e.g. http://localhost:4317 [OTEL_EXPORTER_OTLP_ENDPOINT].",
)
@_setting_options
@click.argument("program", nargs=-1, type=click.UNPROCESSED)
def run(
    module: str | None,
    service_name: str | None,
    exporter: str | None,
    endpoint: str | None,
    program: tuple[str, ...],
    **settings: str | None,
) -> None:
    """Run PROGRAM with execscope: `execscope run app.py`, `run -m pkg` or `run -- cmd ...`.

    Equivalent to `opentelemetry-instrument` with execscope selected; the program's own
    sitecustomize.py still runs.
    """
    explicit = {name: value for name, value in settings.items() if value is not None}
    otel = {
        name: value
        for name, value in (
            ("OTEL_SERVICE_NAME", service_name),
            ("OTEL_TRACES_EXPORTER", exporter),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        )
        if value is not None
    }
    try:
        argv = _launcher.command_line(module, program)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    env = _launcher.child_environment(os.environ, explicit, otel, str(Path.cwd()))
    try:
        _launcher.exec_program(argv, env)
    except OSError as error:
        raise click.ClickException(f"cannot run {argv[0]}: {error.strerror or error}") from None


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def config(as_json: bool) -> None:
    """Print the effective settings and where each value came from, and which compiled parts
    this installation has."""
    loaded = load_settings()
    values = settings_as_dict(loaded.settings)
    specs = setting_specs()
    compiled = _compiled_parts()
    if as_json:
        document = {
            "config_file": str(loaded.config_file) if loaded.config_file else None,
            "compiled": {name: present for name, present, _what in compiled},
            "settings": {
                spec.name: {
                    "value": format_setting(spec.name, values[spec.name])
                    if spec.secret
                    else _jsonable(values[spec.name]),
                    "source": loaded.origins[spec.name].kind,
                    "detail": loaded.origins[spec.name].detail,
                    "env": spec.env,
                }
                for spec in specs
            },
            "problems": [problem.message() for problem in loaded.problems],
        }
        click.echo(json.dumps(document, indent=2))
        return
    rows = [
        (spec.name, format_setting(spec.name, values[spec.name]), loaded.origins[spec.name].describe())
        for spec in specs
    ]
    width = [max(len(row[i]) for row in rows) for i in range(2)]
    click.echo(f"settings file: {loaded.config_file or '(none)'}")
    for name, value, origin in rows:
        click.echo(f"{name.ljust(width[0])}  {value.ljust(width[1])}  {origin}")
    click.echo("compiled parts (built at install where a C compiler was found):")
    for name, present, what in compiled:
        state = "compiled" if present else "not compiled: the Python implementation runs"
        click.echo(f"  {name.ljust(width[0] - 2)}  {state} ({what})")
    for problem in loaded.problems:
        click.echo(click.style(problem.message(), fg="yellow"), err=True)


def _compiled_parts() -> list[tuple[str, bool, str]]:
    """(name, compiled here, what it does) of each optional C extension: without one, the pure
    Python code of the same behaviour runs, only slower (without the bytecode rewrite, the
    ``ast`` rewrite)."""
    from execscope.autotrace import _code_rewrite, _runtime
    from execscope.processors import _compiled

    return [
        ("autotrace_core", _runtime.accelerated(), "a rewritten function's per-call path"),
        ("autotrace_bytecode", _code_rewrite.AVAILABLE, "a selected module's rewrite, on its compiled code"),
        ("span_pipeline", _compiled.ACCELERATED, "per-span compaction, masking check, OTLP encoding"),
    ]


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _store_option(command: Any) -> Any:
    return click.option(
        "--store",
        "store",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Trace store folder [default: the `store` setting, ./.execscope].",
    )(command)


def _open_store(store: Path | None) -> TraceStore:
    path = store if store is not None else get_settings().settings.store
    try:
        return TraceStore(path)
    except FileNotFoundError:
        raise click.ClickException(
            f"no trace store at {path}: run a program with `execscope run` first"
        ) from None


def _since_ns(since: str | None) -> int | None:
    if since is None:
        return None
    try:
        return int((dt.datetime.now().timestamp() - parse_duration(since)) * 1e9)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(since)
    except ValueError:
        raise click.BadParameter(
            "expected a duration such as 10m or 2h, or an ISO time", param_hint="--since"
        ) from None
    return int(moment.timestamp() * 1e9)


def _color() -> bool:
    return sys.stdout.isatty()


Rows = list[dict[str, Any]]


def _print_listing(found: Rows, as_json: bool, render: Callable[[Rows, bool], str], empty: str) -> None:
    """One JSON document with ``--json``; otherwise a table, or ``empty`` when nothing matched."""
    if as_json:
        click.echo(json.dumps(found, indent=2))
    else:
        click.echo(render(found, _color()) if found else empty)


@main.command()
@_store_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--service", default=None, help="Only traces whose root is in this service.")
@click.option("--since", default=None, help="Only traces started since (10m, 2h, or an ISO time).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (a list of traces).")
def traces(store: Path | None, limit: int, service: str | None, since: str | None, as_json: bool) -> None:
    """List recent traces: root span, service, start, duration, span and error counts."""
    with _open_store(store) as opened:
        found = opened.recent_traces(limit=limit, service=service, since_ns=_since_ns(since))
    _print_listing(found, as_json, _render.traces_table, "no traces")


@main.command()
@_store_option
@click.argument("trace_id", required=False)
@click.option("--last", is_flag=True, help="Show the most recent trace.")
@click.option("--attributes", "all_attributes", is_flag=True, help="Also list every span attribute.")
@click.option("--json", "as_json", is_flag=True, help="Print the trace with its spans as one JSON document.")
def show(store: Path | None, trace_id: str | None, last: bool, all_attributes: bool, as_json: bool) -> None:
    """Show one trace as a span tree with captured arguments, return values, exceptions and state diffs."""
    if not trace_id and not last:
        raise click.UsageError("give a TRACE_ID (or a unique prefix of one) or --last")
    with _open_store(store) as opened:
        wanted = opened.latest_trace_id() if last else trace_id
        document = opened.trace(wanted) if wanted else None
    if document is None:
        raise click.ClickException(f"no trace {trace_id or ''} in the store".replace("  ", " "))
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(_render.trace_tree(document, _color(), all_attributes))


@main.command()
@_store_option
@click.option("--service", default=None, help="Service name (wildcards * and ? allowed).")
@click.option("--name", default=None, help="Span name (wildcards allowed).")
@click.option("--function", default=None, help="Code function, code.function.name (wildcards allowed).")
@click.option("--correlation-id", default=None, help="Everything one correlation id touched.")
@click.option("--trace-id", default=None, help="A trace id or a prefix of one.")
@click.option("--errors", is_flag=True, help="Only spans with status ERROR.")
@click.option("--since", default=None, help="Only spans started since (10m, 2h, or an ISO time).")
@click.option("--min-duration", default=None, help="Only spans at least this long (e.g. 5ms, 1s).")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (a list of spans).")
def query(
    store: Path | None,
    service: str | None,
    name: str | None,
    function: str | None,
    correlation_id: str | None,
    trace_id: str | None,
    errors: bool,
    since: str | None,
    min_duration: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Find spans by service, name, function, correlation id, trace, status, time and duration."""
    min_duration_ns = None
    if min_duration is not None:
        try:
            min_duration_ns = int(parse_duration(min_duration) * 1e9)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--min-duration") from None
    where = SpanFilter(
        service=service,
        name=name,
        function=function,
        correlation_id=correlation_id,
        trace_id=trace_id,
        errors_only=errors,
        since_ns=_since_ns(since),
        min_duration_ns=min_duration_ns,
        limit=limit,
    )
    with _open_store(store) as opened:
        found = opened.query_spans(where)
    _print_listing(found, as_json, _render.spans_table, "no spans")


main.add_command(analyze)
main.add_command(plan)
main.add_command(rewrite)
main.add_command(compile_modules)
main.add_command(status)
