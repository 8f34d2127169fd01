"""Prints a benchmark result as a text table or as JSON, headed by where the figures come from."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._harness import Figures, Result


@dataclass(frozen=True)
class Environment:
    """What a quoted figure needs next to it: how it was produced and on what."""

    command: str
    python: str
    machine: str

    @classmethod
    def current(cls, argv: list[str] | None = None) -> Environment:
        args = sys.argv[1:] if argv is None else argv
        python = f"{platform.python_implementation()} {platform.python_version()}"
        return cls(command=shlex.join(["python", "-m", "bench", *args]), python=python, machine=_machine())

    def header(self) -> str:
        return f"# {self.command} | {self.python} | {self.machine}"


def _machine() -> str:
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    core_text = f"{cores} cores" if usable == cores else f"{cores} cores ({usable} usable)"
    model = _cpu_model()
    return f"{platform.system()} {platform.machine()}, {core_text}" + (f", {model}" if model else "")


def _cpu_model() -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return " ".join(value.split())
    return platform.processor() or None


def render_text(result: Result, environment: Environment) -> str:
    benchmark = result.benchmark
    unit = f"µs/{benchmark.operation}"
    with_cpu = any(variant.cpu is not None for variant in result.variants)
    own_baselines = any(variant.baseline not in ("", benchmark.baseline) for variant in result.variants)
    versus = "vs baseline" if own_baselines else f"vs {benchmark.baseline}"
    lines = [
        environment.header(),
        f"{benchmark.name}: {benchmark.description}",
        f"{result.rounds} rounds (+{result.warmup} warm-up), variants alternating round-robin; "
        f"per-round time per {benchmark.operation}",
    ]
    if with_cpu:
        lines.append(
            "wall and thread cpu: the calling thread while it runs the operations; "
            "cpu: the whole process (all threads) until the round's background work is done"
        )
    if own_baselines:
        lines.append(
            f"ratios are to each variant's baseline: {benchmark.baseline}, or the one in the last column"
        )
    lines.append("")
    header = ["variant", f"median {unit}", "p10", "p90", versus]
    if with_cpu:
        header += [f"cpu {unit}", "vs", f"thread cpu {unit}", "vs"]
    header.append(f"{benchmark.operation}s")
    if own_baselines:
        header.append("baseline")
    rows = [header]
    for variant in result.variants:
        row = [
            variant.name,
            f"{variant.median_ns / 1000:.3f}",
            f"{variant.p10_ns / 1000:.3f}",
            f"{variant.p90_ns / 1000:.3f}",
            f"{variant.ratio:.2f}x",
        ]
        if with_cpu:
            for figures in (variant.cpu, variant.thread_cpu):
                row += [f"{figures.median_ns / 1000:.3f}", f"{figures.ratio:.2f}x"] if figures else ["", ""]
        row.append(f"{variant.operations:,}")
        if own_baselines:
            row.append(variant.baseline if variant.baseline != benchmark.baseline else "")
        rows.append(row)
    lines.extend(table(rows))
    extras = [variant for variant in result.variants if variant.metrics]
    if extras:
        lines.append("")
    for variant in extras:
        figures_text = "  ".join(f"{key}={_number(value)}" for key, value in variant.metrics.items())
        lines.append(f"{variant.name}: {figures_text}")
    notes = benchmark.notes(result) if benchmark.notes is not None else []
    if notes:
        lines.append("")
        lines.extend(notes)
    return "\n".join(lines)


def table(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Rows as aligned text: the first column to the left, the others to the right."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return [
        indent
        + "  ".join(
            [row[0].ljust(widths[0])]
            + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        ).rstrip()
        for row in rows
    ]


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def render_json(result: Result, environment: Environment) -> str:
    benchmark = result.benchmark
    document: dict[str, Any] = {
        "command": environment.command,
        "python": environment.python,
        "machine": environment.machine,
        "benchmark": benchmark.name,
        "description": benchmark.description,
        "operation": benchmark.operation,
        "baseline": benchmark.baseline,
        "rounds": result.rounds,
        "warmup": result.warmup,
        "variants": [
            {
                "name": variant.name,
                "baseline": variant.baseline or benchmark.baseline,
                "median_ns": variant.median_ns,
                "p10_ns": variant.p10_ns,
                "p90_ns": variant.p90_ns,
                "ratio_to_baseline": variant.ratio,
                "operations": variant.operations,
                "per_round_ns": list(variant.per_op_ns),
                "metrics": variant.metrics,
                **{
                    key: _figures(figures)
                    for key, figures in (("cpu", variant.cpu), ("thread_cpu", variant.thread_cpu))
                    if figures is not None
                },
            }
            for variant in result.variants
        ],
    }
    if benchmark.notes is not None:
        document["notes"] = benchmark.notes(result)
    return json.dumps(document, indent=2)


def _figures(figures: Figures) -> dict[str, Any]:
    return {
        "median_ns": figures.median_ns,
        "p10_ns": figures.p10_ns,
        "p90_ns": figures.p90_ns,
        "ratio_to_baseline": figures.ratio,
        "per_round_ns": list(figures.per_op_ns),
    }
