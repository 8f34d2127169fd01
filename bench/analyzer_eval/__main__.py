"""``python -m bench.analyzer_eval [--scale] [--details] [--project NAME] [--cache DIR]``."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from execscope.analyzer import ROLES, Analysis, Role, analyze_project

from ._fetch import cache_dir, fetch
from ._score import Counts, check_labels, load_labels, load_toml, module_files, module_names, score

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Project:
    name: str
    kind: str
    requirement: str
    root: str


def _load_config() -> tuple[list[Project], Project]:
    data = load_toml(HERE / "projects.toml")
    projects = [
        Project(p["name"], p.get("kind", ""), p["requirement"], p.get("root", ".")) for p in data["project"]
    ]
    s = data["scale"]
    return projects, Project(s["name"], s.get("kind", ""), s["requirement"], s.get("root", "."))


def _ratio(num: int, den: int) -> str:
    return f"{num / den:6.1%}" if den else "     -"


def _table(title: str, counts: dict[Role, Counts]) -> None:
    print(f"\n{title}")
    head = f"{'TP':>4} {'FP':>4} {'FN':>4} {'TN':>5}  {'precision':>9} {'recall':>7} {'FP rate':>7}"
    print(f"  {'role':<10} {head}")
    total = Counts()
    for role in ROLES:
        c = counts[role]
        total.add(c)
        if c.tp + c.fp + c.fn == 0:
            continue
        print(
            f"  {role:<10} {c.tp:>4} {c.fp:>4} {c.fn:>4} {c.tn:>5}  {_ratio(c.tp, c.tp + c.fp):>9}"
            f" {_ratio(c.tp, c.tp + c.fn):>7} {_ratio(c.fp, c.fp + c.tn):>7}"
        )
    print(
        f"  {'all':<10} {total.tp:>4} {total.fp:>4} {total.fn:>4} {total.tn:>5}  "
        f"{_ratio(total.tp, total.tp + total.fp):>9} {_ratio(total.tp, total.tp + total.fn):>7}"
        f" {_ratio(total.fp, total.fp + total.tn):>7}"
        f"   (FP share of recognitions: {_ratio(total.fp, total.tp + total.fp).strip()})"
    )


def _details(counts: dict[Role, Counts]) -> None:
    for role in ROLES:
        for name in counts[role].fp_names:
            print(f"    FP {role:<9} {name}")
        for name in counts[role].fn_names:
            print(f"    FN {role:<9} {name}")


def _analyse(root: Path) -> tuple[Analysis, float]:
    start = time.perf_counter()
    analysis = analyze_project(root)
    return analysis, time.perf_counter() - start


def _header(argv: list[str]) -> None:
    print("command: python -m bench.analyzer_eval " + " ".join(argv))
    print(
        f"machine: {platform.machine()} {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}"
        f" usable), Python {platform.python_version()} ({platform.python_implementation()})"
    )


def run_accuracy(projects: list[Project], cache: Path, details: bool) -> int:
    overall: dict[Role, Counts] = {role: Counts() for role in ROLES}
    failed = False
    for project in projects:
        top = fetch(project.requirement, cache)
        root = top / project.root
        labels = load_labels(HERE / "labels" / f"{project.name}.toml")
        files = module_files(root)
        names = {m: module_names(m, files[m]) for m in labels.sampled_modules if m in files}
        problems = check_labels(labels, names)
        if problems:
            failed = True
            print(f"\n{project.name}: label file problems:")
            for problem in problems:
                print(f"  - {problem}")
        analysis, seconds = _analyse(root)
        counts = score(analysis, labels, names)
        labelled = sum(len(v) for v in labels.roles.values())
        _table(
            f"{project.name} ({project.requirement}, root {project.root}/): {len(analysis.modules)} modules "
            f"analysed in {seconds:.2f} s, {len(labels.sampled_modules)} sampled modules, "
            f"{labelled} labelled (name, role) pairs",
            counts,
        )
        if details:
            _details(counts)
        for role in ROLES:
            overall[role].add(counts[role])
    _table(f"OVERALL ({len(projects)} projects)", overall)
    return 1 if failed else 0


def run_scale(project: Project, cache: Path) -> int:
    root = fetch(project.requirement, cache) / project.root
    analysis, seconds = _analyse(root)
    modules = len(analysis.modules)
    print(
        f"\nscale: {project.requirement} (root {project.root}/): {modules} modules, "
        f"{len(analysis.skipped)} skipped, {len(analysis.recognitions)} recognitions, "
        f"{seconds:.1f} s, {modules / seconds:.0f} modules/s"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m bench.analyzer_eval", description=__doc__)
    parser.add_argument("--scale", action="store_true", help="time the analysis of one large real project")
    parser.add_argument("--details", action="store_true", help="list every false positive and negative")
    parser.add_argument("--project", action="append", help="only this project (repeatable)")
    parser.add_argument("--cache", help="download cache (default ~/.cache/execscope-analyzer-eval)")
    args = parser.parse_args(args_list)
    _header(args_list)
    projects, scale = _load_config()
    cache = cache_dir(args.cache)
    if args.scale:
        return run_scale(scale, cache)
    if args.project:
        unknown = set(args.project) - {p.name for p in projects}
        if unknown:
            parser.error(f"unknown project(s): {', '.join(sorted(unknown))}")
        projects = [p for p in projects if p.name in args.project]
    return run_accuracy(projects, cache, args.details)


if __name__ == "__main__":
    sys.exit(main())
