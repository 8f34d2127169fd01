"""Running the corpus's subprocesses: a clean environment, output to a log, a time limit.

Why a scrubbed environment: the suites must run the same way wherever the corpus is started,
so the caller's ``EXECSCOPE_*``, ``OTEL_*``, ``PYTEST_*`` and ``PYTHON*`` variables (a stray
``PYTHONPATH``, ``PYTEST_ADDOPTS`` or exporter endpoint) are not passed on. ``PYTHONHASHSEED``
is fixed so set and dict orders match between the two runs of a suite.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_DROPPED_PREFIXES = ("EXECSCOPE_", "OTEL_", "PYTEST_", "PYTHON", "VIRTUAL_ENV", "HYPOTHESIS_")
#: Commands running now (several with --jobs), so an interrupted corpus can end them all.
_RUNNING: set[subprocess.Popen[bytes]] = set()
_RUNNING_LOCK = threading.Lock()
_STOPPING = threading.Event()


class SetupError(RuntimeError):
    """A step before the test runs failed (download, build, install)."""


@dataclass(frozen=True)
class Completed:
    returncode: int
    seconds: float
    timed_out: bool


def clean_environment(venv: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a command run inside ``venv``: the caller's, less what would steer it."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_DROPPED_PREFIXES)}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONHASHSEED"] = "0"
    env.update(extra or {})
    return env


def run_logged(
    command: Sequence[str], log: Path, *, env: Mapping[str, str], cwd: Path, timeout: float | None = None
) -> Completed:
    """Run ``command`` with its output appended to ``log``; on time-out its process group is killed."""
    if _STOPPING.is_set():
        raise SetupError("the corpus was interrupted")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        handle.write(f"$ {' '.join(command)}\n".encode())
        handle.flush()
        start = time.perf_counter()
        process = subprocess.Popen(
            list(command),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        with _RUNNING_LOCK:
            _RUNNING.add(process)
        timed_out = False
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(process)
            returncode = process.wait()
        except BaseException:  # Ctrl-C: the suite runs in its own session and would go on
            _kill(process)
            process.wait()
            raise
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(process)
        return Completed(returncode, time.perf_counter() - start, timed_out)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """End the command and everything it started (its own session), by its process group id."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def kill_running() -> None:
    """End every command still running, and start no new one (the corpus was interrupted)."""
    _STOPPING.set()
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for process in running:
        _kill(process)


def check_logged(command: Sequence[str], log: Path, *, env: Mapping[str, str], cwd: Path, what: str) -> None:
    """Like :func:`run_logged`, for a set-up step: a non-zero exit raises :class:`SetupError`."""
    completed = run_logged(command, log, env=env, cwd=cwd)
    if completed.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise SetupError(f"{what} failed (exit {completed.returncode}); end of {log}:\n" + "\n".join(tail))
