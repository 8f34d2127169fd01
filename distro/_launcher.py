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
from execscope.autotrace._script import SCRIPT_RUNNER_MODULE, script_index
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
    """``-m mod args`` and ``script.py args`` run under this interpreter; anything else as given.

    A script run by this environment's interpreter (``script.py`` or ``python [options]
    script.py``) is started through the script runner so that its own code is rewritten too.
    """
    if module:
        return [sys.executable, "-m", module, *program]
    if not program:
        raise ValueError("nothing to run: give a program, a script or -m MODULE")
    if program[0].endswith(".py"):
        return [sys.executable, "-m", SCRIPT_RUNNER_MODULE, *program]
    command = list(program)
    if _is_this_environments_python(command[0]):
        position = script_index(command[1:])
        if position is not None:
            at = position + 1
            script = command[at]
            # "python -- app.py": the runner takes the script as its own first argument.
            options = [arg for arg in command[1:at] if arg != "--"]
            return [command[0], *options, "-m", SCRIPT_RUNNER_MODULE, script, *command[at + 1 :]]
    return command


def _is_this_environments_python(program: str) -> bool:
    """``python``/``python3``... from the folder of this interpreter (the environment that has execscope)."""
    if not Path(program).name.startswith("python"):
        return False
    found = shutil.which(program)
    if found is None:
        return False
    return Path(found).absolute().parent == Path(sys.executable).absolute().parent


def exec_program(argv: list[str], env: dict[str, str]) -> None:
    executable = shutil.which(argv[0], path=env.get("PATH")) or argv[0]
    os.execve(executable, argv, env)
