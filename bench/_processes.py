"""Stopping the helper processes benchmarks and tests start (servers, collectors)."""

from __future__ import annotations

import subprocess
from typing import Any


def stop(process: subprocess.Popen[Any], timeout_s: float) -> None:
    """Terminate ``process`` if it still runs; kill it if it has not exited after ``timeout_s``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
