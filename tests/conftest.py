"""Shared fixtures: clean environments for subprocesses, and helpers to run the CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HELLO = REPO / "examples" / "hello" / "main.py"
#: The hand-made spans of examples/hello (OpenTelemetry API calls in its code).
HELLO_MANUAL_SPANS = (
    "hello.main",
    "nested calls",
    "stateful counter",
    "generator",
    "async call",
    "caught exception",
)
#: The calls of examples/hello that the auto-instrumentor records, once each per run.
HELLO_CALLS = (
    ("main", 1),
    ("sum_of_squares", 1),
    ("square", 3),
    ("Counter.__init__", 1),
    ("Counter.add", 3),
    ("countdown", 1),
    ("fetch_greeting", 1),
    ("parse_port", 1),
)
#: Every span name of one run of examples/hello under `execscope run`, sorted, with repeats.
HELLO_SPANS = sorted([*HELLO_MANUAL_SPANS, *(name for name, times in HELLO_CALLS for _ in range(times))])


def clean_environment(**extra: str) -> dict[str, str]:
    """The test process's environment without any OTEL_* / EXECSCOPE_* setting, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "EXECSCOPE_")) and key not in ("PYTHONPATH", "COLUMNS")
    }
    env.update(extra)
    return env


def run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def execscope(*args: str | Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "execscope"), *map(str, args)], env=env, cwd=cwd)


def execscope_json(*args: str | Path, env: dict[str, str], cwd: Path) -> Any:
    result = execscope(*args, "--json", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def env(store: Path) -> Iterator[dict[str, str]]:
    yield clean_environment(EXECSCOPE_STORE=str(store))


def require_service(name: str, port: int, host: str = "127.0.0.1") -> None:
    """Skip the test when the local service ``name`` is not listening, except in CI (``CI=true``),
    where an unreachable service fails the run: CI's machine is meant to have it."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as error:
        message = f"{name} is not reachable on {host}:{port} ({error})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
