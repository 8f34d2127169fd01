"""Prints a benchmark result as a text table or as JSON, headed by where the figures come from."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._harness import Result


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
    lines = [
        environment.header(),
        f"{benchmark.name}: {benchmark.description}",
        f"{result.rounds} rounds (+{result.warmup} warm-up), variants alternating round-robin; "
        f"per-round time per {benchmark.operation}",
        "",
    ]
    rows = [
        ("variant", f"median {unit}", "p10", "p90", f"vs {benchmark.baseline}", f"{benchmark.operation}s")
    ]
    for variant in result.variants:
        rows.append(
            (
                variant.name,
                f"{variant.median_ns / 1000:.3f}",
                f"{variant.p10_ns / 1000:.3f}",
                f"{variant.p90_ns / 1000:.3f}",
                f"{variant.ratio:.2f}x",
                f"{variant.operations:,}",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    extras = [variant for variant in result.variants if variant.metrics]
    if extras:
        lines.append("")
    for variant in extras:
        figures = "  ".join(f"{key}={_number(value)}" for key, value in variant.metrics.items())
        lines.append(f"{variant.name}: {figures}")
    return "\n".join(lines)


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
                "median_ns": variant.median_ns,
                "p10_ns": variant.p10_ns,
                "p90_ns": variant.p90_ns,
                "ratio_to_baseline": variant.ratio,
                "operations": variant.operations,
                "per_round_ns": list(variant.per_op_ns),
                "metrics": variant.metrics,
            }
            for variant in result.variants
        ],
    }
    return json.dumps(document, indent=2)
