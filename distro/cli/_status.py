"""``execscope status``: what the pipeline of each traced process on this host is doing.

Every traced process publishes a small JSON status file every two seconds (and once more at
exit) in a per-user folder of the temporary directory; this command reads them. Files of
processes that are gone are shown as exited, and removed after a day.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import click

from execscope.processors._build import status_folder

_FORGET_AFTER_S = 86_400


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_statuses(folder: Path) -> list[dict[str, Any]]:
    statuses = []
    now = time.time()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            status = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        running = not status.get("exited") and _alive(int(status.get("pid", 0)))
        status["running"] = running
        if not running and now - float(status.get("updated_at", 0)) > _FORGET_AFTER_S:
            path.unlink(missing_ok=True)
            continue
        statuses.append(status)
    return statuses


def _line(status: dict[str, Any]) -> str:
    spans = status.get("spans", {})
    dropped = {reason: count for reason, count in spans.get("dropped", {}).items() if count}
    queued = sum(sink.get("queue_depth", 0) for sink in status.get("sinks", []))
    spooled = sum(sink.get("spool_spans", 0) for sink in status.get("sinks", []))
    failing = [sink["name"] for sink in status.get("sinks", []) if sink.get("exporter_failing")]
    unrecorded = {reason: count for reason, count in status.get("calls_not_recorded", {}).items() if count}
    state = "running" if status["running"] else "exited"
    parts = [
        f"{status.get('pid')}  {status.get('service', '?')}  {state}  level {status.get('level', '?')}",
        f"  spans: {spans.get('ended', 0)} ended, {spans.get('exported', 0)} exported, "
        f"{queued} queued, {spooled} spooled on disk, {status.get('spans_per_s', 0)}/s",
        "  dropped: "
        + (
            ", ".join(f"{count} {reason}" for reason, count in sorted(dropped.items())) if dropped else "none"
        ),
        f"  execscope cpu: {100 * float(status.get('cpu_share', 0)):.1f}% of a core, "
        f"memory {int(status.get('memory_bytes', 0)) / 2**20:.0f} MiB",
    ]
    if "calls_not_recorded" in status:  # a process whose functions the auto-instrumentor rewrites
        parts.insert(
            3,
            "  calls of traced functions not recorded: "
            + (
                ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in unrecorded.items())
                if unrecorded
                else "none"
            ),
        )
    if failing:
        parts.append("  exporter failing: " + ", ".join(failing))
    return "\n".join(parts)


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Also processes that have exited (kept for a day).")
@click.option("--json", "as_json", is_flag=True, help="Print the status documents as one JSON list.")
def status(show_all: bool, as_json: bool) -> None:
    """Show the span pipeline of each traced process on this host: level, counts, drops by reason."""
    statuses = [s for s in read_statuses(status_folder()) if show_all or s["running"]]
    if as_json:
        click.echo(json.dumps(statuses, indent=2))
        return
    if not statuses:
        click.echo("no traced process is running" + ("" if show_all else " (--all shows exited ones)"))
        return
    click.echo("\n\n".join(_line(s) for s in statuses))
