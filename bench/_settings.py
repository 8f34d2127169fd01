"""Settings for a benchmark's execscope pipeline, isolated from the machine it runs on."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def isolated_settings(folder: Path, overrides: dict[str, Any] | None = None) -> Any:
    """Default settings plus ``overrides``, with the store (and so the spool) inside ``folder``.

    No environment and ``folder`` as the working directory: no settings file or ``EXECSCOPE_*``
    variable of the machine applies. execscope is imported here, not at module import, so that a
    benchmark's parent process can start its children without loading it.
    """
    from execscope.settings import load_settings

    loaded = load_settings({"store": str(folder / "store"), **(overrides or {})}, environ={}, cwd=folder)
    if loaded.problems:
        raise RuntimeError(f"settings problems: {loaded.problems}")
    return loaded.settings
