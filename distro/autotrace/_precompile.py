"""Filling the cache of rewritten code ahead of a start (``execscope compile``), as ``python -m
compileall`` fills the bytecode cache.

Why: a module's first import under execscope parses, rewrites and compiles it, which costs about
2.5 times a plain compile (README, "import of a generated 2,020-line module"); every later start
reads the cached rewrite. Run once where the application is deployed (an image build, a release
step), this moves that first cost out of the program's start.

What is cached is exactly what the import hook would cache for the same settings: each file is
loaded by the hook's own loader (read, rewrite, compile, write; never executed), under the
module name its package folders give it (``app/models.py`` in a folder with ``__init__.py`` is
``app.models``). The cache name includes the module's name, the selection and whether the
module is selected by default (see :mod:`._hook`), so a file the program imports under another
name, or with other settings, is rewritten then as without this step, never read wrong.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from execscope.autotrace._hook import RewritingFinder, RewritingLoader, selected_by_default

#: Folders never searched: caches, version control, virtual environments' contents.
_SKIPPED_FOLDERS = frozenset({"__pycache__", "node_modules", "site-packages", "dist-packages"})


@dataclass
class PrecompileReport:
    """What one run did, by module name."""

    rewritten: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    not_selected: list[str] = field(default_factory=list)
    #: Files no module name can be given ("my-script.py"), by path.
    not_importable: list[str] = field(default_factory=list)
    #: Modules the rewriter could not handle (imported unmodified at run time, with a warning).
    unmodified: list[str] = field(default_factory=list)
    #: (module, error) of files that do not compile at all.
    errors: list[tuple[str, str]] = field(default_factory=list)


def module_name(path: Path) -> str:
    """The name ``path`` is imported under from the first folder above it that is not a package
    (has no ``__init__.py``)."""
    parts = [] if path.stem == "__init__" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def source_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The ``.py`` files in ``paths`` (files, or folders searched below), in a stable order;
    hidden folders, caches and virtual environments are skipped."""
    for path in paths:
        if path.is_file():
            if path.suffix == ".py":
                yield path
            continue
        for folder, folders, files in os.walk(path):
            folders[:] = sorted(
                name
                for name in folders
                if not name.startswith(".")
                and name not in _SKIPPED_FOLDERS
                and not (Path(folder) / name / "pyvenv.cfg").exists()
            )
            for name in sorted(files):
                if name.endswith(".py"):
                    yield Path(folder) / name


def precompile(paths: Iterable[Path], finder: RewritingFinder) -> PrecompileReport:
    """Write the rewrite of every selected module in ``paths`` to the cache ``finder`` reads."""
    report = PrecompileReport()
    selection = finder.selection
    writes = sys.dont_write_bytecode
    sys.dont_write_bytecode = False  # the point of the command, whatever the environment says
    try:
        for path in source_files(paths):
            filename = str(path.absolute())
            name = module_name(path)
            if not name or not all(part.isidentifier() for part in name.split(".")):
                report.not_importable.append(filename)
                continue
            if not selection.selects(name, filename):
                report.not_selected.append(name)
                continue
            loader = RewritingLoader(name, filename, finder, selected_by_default(selection, name, filename))
            rewritten, failed = len(finder.rewritten), len(finder.failed)
            try:
                loader.get_code(name)
            except (SyntaxError, ValueError, UnicodeDecodeError, OSError) as error:
                report.errors.append((name, f"{type(error).__name__}: {error}"))
                continue
            if len(finder.failed) > failed:
                report.unmodified.append(name)
            elif len(finder.rewritten) > rewritten:
                report.rewritten.append(name)
            else:
                report.up_to_date.append(name)
    finally:
        sys.dont_write_bytecode = writes
    return report
