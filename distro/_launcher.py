"""``execscope run``: start a program with execscope's start-up hook, like ``opentelemetry-instrument``."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from opentelemetry.instrumentation.environment_variables import OTEL_PYTHON_CONFIGURATOR, OTEL_PYTHON_DISTRO

import execscope._bootstrap
from execscope.settings._loader import explicit_from_environment
from execscope.settings._model import EXPLICIT_ENV

BOOTSTRAP_DIR = str(Path(execscope._bootstrap.__file__).resolve().parent)


def child_environment(
    base: Mapping[str, str], explicit: Mapping[str, str], otel: Mapping[str, str], cwd: str
) -> dict[str, str]:
    env = dict(base)
    env[OTEL_PYTHON_DISTRO] = "execscope"
    env[OTEL_PYTHON_CONFIGURATOR] = "execscope"
    env.update(otel)
    if explicit:
        # Options of an enclosing `execscope run` are kept unless this run sets them again.
        previous = explicit_from_environment(env, [])
        env[EXPLICIT_ENV] = json.dumps({**previous, **explicit}, sort_keys=True)
    path = [
        entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry and entry != BOOTSTRAP_DIR
    ]
    # Like opentelemetry-instrument, the working directory is importable (programs such as Django's
    # manage.py rely on it), and the start-up hook comes first.
    if cwd not in path:
        path.insert(0, cwd)
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *path])
    return env


def command_line(module: str | None, program: Sequence[str]) -> list[str]:
    """``-m mod args`` and ``script.py args`` run under this interpreter; anything else as given."""
    if module:
        return [sys.executable, "-m", module, *program]
    if not program:
        raise ValueError("nothing to run: give a program, a script or -m MODULE")
    if program[0].endswith(".py"):
        return [sys.executable, *program]
    return list(program)


def exec_program(argv: list[str], env: dict[str, str]) -> None:
    executable = shutil.which(argv[0], path=env.get("PATH")) or argv[0]
    os.execve(executable, argv, env)
