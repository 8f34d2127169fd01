"""``execscope analyze``: a readable report of a project's roles, complexity, flows and lifecycle."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import click

from execscope.analyzer import Analysis, analyze_project, build_plan, render_graph_dot
from execscope.analyzer._llm import LlmError, LlmNotConfigured, refine_plan
from execscope.analyzer._picture import render_graph_html, render_graph_svg
from execscope.cli._render import table
from execscope.plan import Plan, dump_plan
from execscope.settings import get_settings

#: How many rows each section of the terminal report shows (``--json`` has everything).
REPORT_ROWS = 25


@click.command()
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--json", "as_json", is_flag=True, help="Print the full structured analysis (and plan) as JSON."
)
@click.option(
    "--plan", "plan_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the plan (TOML)."
)
@click.option(
    "--graph",
    "graph_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the role and message-flow graph: .dot (Graphviz), .svg, or .html (a page with the picture).",
)
@click.option("--llm", is_flag=True, help="Ask the model at EXECSCOPE_LLM_URL to refine the plan.")
def analyze(path: Path, as_json: bool, plan_file: Path | None, graph_file: Path | None, llm: bool) -> None:
    """Read a project's source (never importing or running it) and report what it is made of."""
    if graph_file is not None and graph_file.suffix not in (".dot", ".svg", ".html"):
        raise click.BadParameter("the graph file must end in .dot, .svg or .html", param_hint="--graph")
    analysis = analyze_project(path)
    plan = build_plan(analysis)
    notes: list[str] = []
    if llm:
        plan, notes = _refined(analysis, plan)
    if plan_file is not None:
        plan_file.write_text(dump_plan(plan))
    if graph_file is not None:
        renderers = {".dot": render_graph_dot, ".svg": render_graph_svg, ".html": render_graph_html}
        graph_file.write_text(renderers[graph_file.suffix](analysis))
    if as_json:
        document = {"analysis": analysis.to_dict(), "plan": _plan_dict(plan), "llm": notes}
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(report(analysis, plan))
    for note in notes:
        click.echo(f"llm: {note}")
    if plan_file is not None:
        click.echo(f"plan written to {plan_file}")
    if graph_file is not None:
        click.echo(f"graph written to {graph_file}")


def _refined(analysis: Analysis, plan: Plan) -> tuple[Plan, list[str]]:
    settings = get_settings().settings
    try:
        refinement = refine_plan(
            analysis,
            plan,
            url=settings.llm_url,
            api_key=settings.llm_api_key or os.environ.get("OPENAI_API_KEY"),
            model=settings.llm_model,
        )
    except LlmNotConfigured as error:
        raise click.UsageError(str(error)) from None
    except LlmError as error:
        raise click.ClickException(
            f"plan refinement failed: {error} (the rule-based plan is unchanged)"
        ) from None
    notes = [*refinement.applied, *(f"rejected {item}" for item in refinement.rejected)]
    return refinement.plan, notes


def _plan_dict(plan: Plan) -> dict[str, object]:
    return {
        "version": plan.version,
        "generated_by": plan.generated_by,
        "estimate": None if plan.estimate is None else vars(plan.estimate),
        "targets": [vars(target) for target in plan.targets],
    }


def report(analysis: Analysis, plan: Plan) -> str:
    """The terminal report: one section per question, each a small table."""
    sections = [
        f"analyzed {len(analysis.modules)} modules under {analysis.root}"
        + (f" ({len(analysis.skipped)} skipped)" if analysis.skipped else "")
    ]
    counts = Counter(recognition.role for recognition in analysis.recognitions)
    sections.append("roles: " + ", ".join(f"{role} {count}" for role, count in sorted(counts.items())))
    roles = sorted(
        (r for r in analysis.recognitions if r.role != "library"), key=lambda r: (r.role, r.module, r.line)
    )
    sections.append(
        _section(
            "ROLES",
            ("ROLE", "NAME", "CONF", "EVIDENCE"),
            [
                (r.role, r.name, f"{r.confidence:.2f}", f"line {r.evidence[0].line}: {r.evidence[0].detail}")
                for r in roles
                if r.evidence
            ],
        )
    )
    complex_functions = sorted(analysis.functions, key=lambda fn: (-fn.cyclomatic, fn.name))
    sections.append(
        _section(
            "MOST COMPLEX FUNCTIONS",
            ("FUNCTION", "CC", "NEST", "LINES", "LOOPS", "RECURSIVE", "IO"),
            [
                (
                    fn.name,
                    str(fn.cyclomatic),
                    str(fn.max_nesting),
                    str(fn.lines),
                    str(fn.loops),
                    "yes" if fn.recursive else "",
                    ",".join(fn.io),
                )
                for fn in complex_functions
            ],
        )
    )
    sections.append(
        _section(
            "MESSAGE FLOWS",
            ("FROM", "KIND", "TO", "WHERE"),
            [
                (e.source, e.kind, e.target, f"{e.path}:{e.line}" if e.path else f"line {e.line}")
                for e in analysis.flows.edges
            ],
        )
    )
    sections.append(
        _section(
            "LIFECYCLE",
            ("WHERE", "ACTION", "SUBJECT", "DETAIL"),
            [(f"{e.path}:{e.line}", e.action, e.subject, e.detail) for e in analysis.lifecycle],
        )
    )
    sections.append(
        _section(
            "PLAN",
            ("TARGET", "LEVEL", "RATE", "MIN MS", "REASON"),
            [
                (t.pattern, t.level, f"{t.sample_rate:g}", f"{t.min_duration_ms:g}", t.reason)
                for t in plan.targets
            ],
        )
    )
    if plan.estimate is not None:
        sections.append(
            f"estimated overhead: {plan.estimate.mean_call_cost_us:g} µs per instrumented call on average, "
            f"{plan.estimate.max_call_cost_us:g} µs at most; basis: {plan.estimate.basis}"
        )
    if analysis.skipped:
        sections.append(
            _section("SKIPPED", ("PATH", "REASON"), [(s.path, s.reason) for s in analysis.skipped])
        )
    return "\n\n".join(section for section in sections if section)


def _section(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    if not rows:
        return ""
    shown = table(header, rows[:REPORT_ROWS])
    more = f"\n… {len(rows) - REPORT_ROWS} more (--json has all)" if len(rows) > REPORT_ROWS else ""
    return f"{title} ({len(rows)})\n{shown}{more}"
