"""Helpers shared by the analyzer tests: fixture projects, their labels, generated projects."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

from execscope.analyzer import Analysis, analyze_project

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE_NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "labels.toml").is_file())

_SYNTHETIC_TEMPLATE = """\
import asyncio
import sqlite3

from fastapi import APIRouter
from celery import shared_task

from {pkg}.m{prev:04d} import helper_{prev:04d}

router = APIRouter(prefix="/r{i}")


@router.get("/items/{{item_id}}")
async def get_item_{i:04d}(item_id: int):
    total = 0
    for n in range(item_id):
        if n % 3 == 0 and n % 5 == 0:
            total += helper_{prev:04d}(n)
        elif n % 7:
            total -= 1
    return {{"total": total}}


@shared_task
def task_{i:04d}(x):
    conn = sqlite3.connect(":memory:")
    conn.execute("SELECT 1")
    return x


class State{i:04d}:
    def __init__(self):
        self.n = 0

    def bump(self):
        self.n += 1


def helper_{i:04d}(x):
    return x + 1


async def worker_{i:04d}(q: asyncio.Queue):
    while True:
        item = await q.get()
        task_{i:04d}.delay(item)
"""


def write_synthetic_project(root: Path, modules: int, package: str = "synth") -> Path:
    """A generated project of ``modules`` modules, each with a route, task, stateful class and worker."""
    pkg = root / package
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for i in range(modules):
        source = _SYNTHETIC_TEMPLATE.format(pkg=package, i=i, prev=(i - 1) % modules)
        (pkg / f"m{i:04d}.py").write_text(source)
    return root


def fixture_path(name: str) -> Path:
    return FIXTURES / name


def fixture_labels(name: str) -> dict[str, set[str]]:
    data = tomllib.loads((FIXTURES / name / "labels.toml").read_text(encoding="utf-8"))
    return {role: set(names) for role, names in data.get("roles", {}).items()}


def analyze_files(root: Path, files: dict[str, str]) -> Analysis:
    """Write ``files`` (relative path -> source) under ``root`` and analyse that project."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return analyze_project(root)
