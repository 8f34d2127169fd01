"""The corpus report: one table row per library, then every regression and known difference.

The spans columns prove that rewriting happened: ``modules``/``functions`` are what the probe
found rewritten in the traced run, ``recorded`` is the recorder's count of finished calls, and
``stored`` is the store's own ``spans_written`` counter (spans the export pipeline dropped when
its queue was full are recorded but not stored).
"""

from __future__ import annotations

from bench.corpus._compare import Comparison
from bench.corpus._run import LibraryRun, SuiteRun


def _seconds(run: SuiteRun | None) -> str:
    if run is None:
        return "-"
    return f"{run.seconds:.1f}" + (" (timeout)" if run.timed_out else "")


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else "-"


def _row(run: LibraryRun, comparison: Comparison) -> tuple[str, ...]:
    library = run.library
    probe = run.traced.probe if run.traced is not None else {}
    stats = probe.get("stats", {})
    slowdown = (
        f"{run.traced.seconds / run.plain.seconds:.1f}x"
        if run.plain is not None and run.traced is not None and run.plain.seconds > 0
        else "-"
    )
    return (
        library.name,
        library.version,
        _count(comparison.tests),
        _count(comparison.passed_plain),
        _count(comparison.passed_traced),
        _count(len(comparison.regressions)),
        _count(len(comparison.known)),
        _seconds(run.plain),
        _seconds(run.traced),
        slowdown,
        _count(len(probe.get("rewritten_modules", [])) if probe else None),
        _count(probe.get("rewritten_functions")),
        _count(stats.get("submitted")),
        _count(run.stored_spans),
    )


_HEADER = (
    "library",
    "version",
    "tests",
    "pass plain",
    "pass traced",
    "regressions",
    "known",
    "plain s",
    "traced s",
    "slowdown",
    "modules",
    "functions",
    "spans recorded",
    "spans stored",
)


def table(runs: list[tuple[LibraryRun, Comparison]]) -> list[str]:
    rows = [_HEADER, *(_row(run, comparison) for run, comparison in runs)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(_HEADER))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def details(run: LibraryRun, comparison: Comparison, all_tests: bool = False) -> list[str]:
    """What a reader must look at for one library (empty when everything matched)."""
    name = run.library.name
    lines: list[str] = []
    if run.error is not None:
        lines.append(f"{name}: NOT RUN: {run.error}")
        return lines
    traced = run.traced
    if traced is not None and (traced.timed_out or traced.returncode not in (0, 1)):
        ended = "timed out" if traced.timed_out else f"ended with exit {traced.returncode}"
        lines.append(f"{name}: the traced run {ended} (tests missing from its report count as regressions)")
    for test, outcome in comparison.regressions:
        message = f": {outcome.message}" if outcome.message else ""
        lines.append(f"{name}: REGRESSION {test} ({outcome.status}{message})")
    if comparison.regressions and traced is not None:
        lines.append(f"{name}: the traced run's output: {traced.log} (kept with --keep)")
    for difference, outcome in comparison.known:
        lines.append(f"{name}: known difference {difference.test} ({outcome.status}): {difference.reason}")
    for difference in comparison.stale:
        lines.append(f"{name}: known difference {difference.test} did not show up (passed traced or absent)")
    for deselected in () if all_tests else run.library.deselected:
        lines.append(f"{name}: deselected in both runs: {deselected.node}: {deselected.reason}")
    for test in comparison.only_traced_pass:
        lines.append(f"{name}: failed plainly, passed traced (flaky?): {test}")
    if comparison.failed_plain:
        lines.append(f"{name}: {comparison.failed_plain} test(s) fail without execscope too (not counted)")
    lines.extend(f"{name}: FAILED TO PROVE TRACING: {problem}" for problem in unproven(run))
    lines.extend(f"{name}: note: {note}" for note in notes(run))
    return lines


def unproven(run: LibraryRun) -> list[str]:
    """Why the traced run proves nothing (fails the corpus): no probe report, nothing rewritten."""
    traced = run.traced
    if traced is None:
        return []
    probe = traced.probe
    if not probe:
        return [f"the traced run wrote no probe report (see {traced.log})"]
    found: list[str] = []
    if not probe.get("active"):
        found.append("the auto-instrumentor was not active in the traced run")
    if not probe.get("rewritten_modules"):
        found.append("no module of the library was rewritten")
    if not probe.get("stats", {}).get("submitted"):
        found.append("no call was recorded")
    return found


def notes(run: LibraryRun) -> list[str]:
    """What went wrong in recording without changing the program (printed, not a failure)."""
    probe = run.traced.probe if run.traced is not None else {}
    found: list[str] = []
    if probe.get("failed_modules"):
        found.append("modules that could not be rewritten: " + ", ".join(probe["failed_modules"]))
    stats = probe.get("stats", {})
    if stats.get("internal_errors"):
        found.append(f"{stats['internal_errors']:,} internal recording errors (those calls ran unrecorded)")
    if stats.get("conversion_errors"):
        found.append(f"{stats['conversion_errors']:,} recorded calls could not be turned into spans")
    if stats.get("dropped_queue_full"):
        found.append(f"{stats['dropped_queue_full']:,} calls dropped because the recorder's queue was full")
    return found
