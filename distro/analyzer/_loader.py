"""Finding and parsing the project's own Python files.

Only first-party code is worth instrumenting, so vendored and generated trees are pruned
while walking rather than parsed and discarded. A file that cannot be read or parsed is
reported once as ``Skipped`` and the walk goes on: one bad file must not hide the rest.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from importlib.util import decode_source
from pathlib import Path
from typing import Final

from ._model import Skipped

# Directories whose contents are other people's code or build output.
VENDORED_DIRS: Final = frozenset(
    {
        "site-packages",
        "dist-packages",
        "node_modules",
        ".venv",
        "venv",
        "build",
        "dist",
        "vendor",
        "third_party",
    }
)
# Directories that never hold source worth reporting as skipped.
SILENT_DIRS: Final = frozenset({".git", "__pycache__", ".hg", ".svn", ".tox", ".nox", ".mypy_cache"})
MAX_FILE_BYTES: Final = 1 << 20  # 1 MiB: larger .py files are almost always generated


@dataclass(frozen=True)
class SourceModule:
    name: str
    path: str  # relative to the project root, POSIX separators
    tree: ast.Module
    is_package: bool


def module_name(relative: Path) -> str:
    """Dotted module name for a path relative to the root (``src/`` layouts are unwrapped)."""
    parts = list(relative.with_suffix("").parts)
    if len(parts) > 1 and parts[0] == "src":
        parts = parts[1:]
    if len(parts) > 1 and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _parse(path: Path, rel: str) -> ast.Module | Skipped:
    try:
        size = path.stat().st_size
    except OSError as exc:
        return Skipped(rel, f"unreadable: {exc.strerror or exc}")
    if size > MAX_FILE_BYTES:
        return Skipped(rel, f"huge generated file ({size} bytes > {MAX_FILE_BYTES})")
    try:
        source = decode_source(path.read_bytes())
    except OSError as exc:
        return Skipped(rel, f"unreadable: {exc.strerror or exc}")
    except (UnicodeDecodeError, SyntaxError, LookupError) as exc:
        return Skipped(rel, f"undecodable: {exc}")
    try:
        return ast.parse(source, filename=rel)
    except SyntaxError as exc:
        return Skipped(rel, f"syntax error: {exc.msg} (line {exc.lineno})")
    except (ValueError, RecursionError, MemoryError) as exc:
        return Skipped(rel, f"unparsable: {type(exc).__name__}")


def _python_files(root: Path, skipped: list[Skipped]) -> list[Path]:
    files: list[Path] = []
    for current, dirs, names in os.walk(root, onerror=lambda e: skipped.append(_walk_error(root, e))):
        here = Path(current)
        kept = []
        for d in sorted(dirs):
            if d in SILENT_DIRS or d.endswith(".egg-info"):
                continue
            if d in VENDORED_DIRS:
                skipped.append(Skipped((here / d).relative_to(root).as_posix(), f"vendored tree ({d})"))
                continue
            kept.append(d)
        dirs[:] = kept
        files.extend(here / n for n in sorted(names) if n.endswith(".py"))
    return files


def _walk_error(root: Path, error: OSError) -> Skipped:
    where = Path(error.filename).relative_to(root).as_posix() if error.filename else "."
    return Skipped(where, f"unreadable: {error.strerror or error}")


def load_project(root: Path) -> tuple[list[SourceModule], list[Skipped]]:
    """Parse every first-party ``.py`` file under ``root``.

    Returns the parsed modules sorted by name, and what was skipped, sorted by path.
    """
    skipped: list[Skipped] = []
    modules: dict[str, SourceModule] = {}
    if root.is_file():
        candidates, root = [root], root.parent
    else:
        candidates = _python_files(root, skipped)
    for path in candidates:
        relative = path.relative_to(root)
        rel = relative.as_posix()
        parsed = _parse(path, rel)
        if isinstance(parsed, Skipped):
            skipped.append(parsed)
            continue
        name = module_name(relative)
        if name in modules:
            skipped.append(Skipped(rel, f"duplicate module name {name!r} (also {modules[name].path})"))
            continue
        modules[name] = SourceModule(name, rel, parsed, relative.name == "__init__.py")
    return [modules[n] for n in sorted(modules)], sorted(set(skipped))
