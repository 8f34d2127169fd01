"""``execscope plan show``, ``execscope rewrite`` and ``execscope compile``: see what the
auto-instrumentor will do, and do its first-start work ahead of time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from execscope.autotrace import rewrite_bytecode, rewrite_source
from execscope.autotrace._hook import RewritingFinder
from execscope.autotrace._install import load_configured_plan, selection_from
from execscope.autotrace._precompile import precompile
from execscope.cli import _render
from execscope.plan import Plan, PlanError, load_plan
from execscope.settings import get_settings


@click.group()
def plan() -> None:
    """Inspect the instrumentation plan the auto-instrumentor follows."""


def _effective(plan_file: Path | None) -> tuple[Plan | None, str]:
    settings = get_settings().settings
    if plan_file is not None:
        try:
            return load_plan(plan_file), str(plan_file)
        except (OSError, PlanError) as error:
            raise click.ClickException(f"plan {plan_file} cannot be used: {error}") from None
    if settings.plan is None:
        return None, "(none: every function of the selected modules at the default level)"
    return load_configured_plan(settings), str(settings.plan)


@plan.command("show")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A plan file to show instead of the configured one (EXECSCOPE_PLAN).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def plan_show(plan_file: Path | None, as_json: bool) -> None:
    """Print the effective plan: selection rules, default level and every target."""
    settings = get_settings().settings
    loaded, source = _effective(plan_file)
    selection = selection_from(settings, loaded)
    document: dict[str, Any] = {
        "source": source,
        "autotrace": settings.autotrace,
        "default_level": settings.autotrace_level,
        "application_roots": list(selection.roots),
        "modules": list(selection.include),
        "exclude": list(selection.exclude),
        "targets": [
            {
                "pattern": t.pattern,
                "level": t.level,
                "sample_rate": t.sample_rate,
                "min_duration_ms": t.min_duration_ms,
                "stateful": t.stateful,
                "priority": t.priority,
                "reason": t.reason,
            }
            for t in (loaded.targets if loaded is not None else ())
        ],
    }
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    selected = (
        "modules named " + ", ".join(selection.include)
        if selection.include
        else "application files under " + ", ".join(selection.roots)
    )
    click.echo(f"plan: {source}")
    click.echo(f"auto-instrumentor: {'on' if settings.autotrace else 'off'}")
    click.echo(f"selected by default: {selected} (never the standard library or installed packages)")
    if selection.exclude:
        click.echo("excluded: " + ", ".join(selection.exclude))
    click.echo(f"level of functions no target covers: {settings.autotrace_level}")
    if document["targets"]:
        rows = [
            (
                t["pattern"],
                t["level"],
                f"{t['sample_rate']:g}",
                f"{t['min_duration_ms']:g}",
                "yes" if t["stateful"] else "",
                t["reason"],
            )
            for t in document["targets"]
        ]
        click.echo("")
        click.echo(_render.table(("target", "level", "sample", "min ms", "stateful", "reason"), rows))


@click.command("rewrite")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--module", default=None, help="Module name the plan is matched against (default: file stem).")
@click.option(
    "--bytecode",
    is_flag=True,
    help="Print the rewritten compiled code (disassembled), which runs on CPython 3.11 where that rewrite "
    "was compiled at install; the default output is the same calls as source.",
)
def rewrite(path: Path, module: str | None, bytecode: bool) -> None:
    """Print PATH as the auto-instrumentor rewrites it (comments are not kept)."""
    try:
        click.echo(rewrite_bytecode(path, module) if bytecode else rewrite_source(path, module))
    except SyntaxError as error:
        raise click.ClickException(f"{path} cannot be parsed: {error}") from None
    except RuntimeError as error:  # no bytecode rewrite on this interpreter or installation
        raise click.ClickException(
            f"{error}; `execscope rewrite` without --bytecode shows what runs"
        ) from None


@click.command("compile")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="Print only the modules that could not be rewritten.")
def compile_modules(paths: tuple[Path, ...], quiet: bool) -> None:
    """Rewrite the application's modules into the cache ahead of its start, as `python -m
    compileall` does for bytecode: the first start then reads them instead of rewriting them.

    PATHS are files or folders [default: the working directory]; the settings and plan are the
    ones `execscope run` uses. Exits with status 1 when a module could not be rewritten (it
    would run unmodified) or does not compile.
    """
    settings = get_settings().settings
    if not settings.autotrace:
        click.echo("the auto-instrumentor is off (autotrace = false): nothing to compile")
        return
    targets = paths or (Path.cwd(),)
    roots = tuple(sorted({str((p if p.is_dir() else p.parent).resolve()) for p in targets}))
    finder = RewritingFinder(
        selection_from(settings, load_configured_plan(settings), roots), bytecode=settings.autotrace_bytecode
    )
    report = precompile(targets, finder)
    for name in report.unmodified:
        click.echo(f"{name}: the rewriter cannot handle it; it runs unmodified", err=True)
    for name, error in report.errors:
        click.echo(f"{name}: {error}", err=True)
    if not quiet:
        click.echo(
            f"rewrote {len(report.rewritten)} modules into the cache; {len(report.up_to_date)} up to date; "
            f"{len(report.not_selected) + len(report.not_importable)} not selected"
        )
    if report.unmodified or report.errors:
        raise SystemExit(1)
