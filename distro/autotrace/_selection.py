"""Which modules are rewritten, and how each of their functions is recorded.

Default selection: the application's own modules, i.e. source files under one of the
application roots (the entry script's folder, or the working directory for ``-m``/``-c``),
never the standard library, an installed package or execscope itself, even when the virtual
environment lives inside the project. ``EXECSCOPE_AUTOTRACE_MODULES`` (dotted globs) selects
modules by name wherever they are installed; ``EXECSCOPE_AUTOTRACE_EXCLUDE`` removes modules;
plan targets select modules too and set per-function levels.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import site
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from execscope.autotrace._levels import OFF, level_number
from execscope.autotrace._rewriter import REWRITER_VERSION, Decision
from execscope.plan import Plan, covers_module, dump_plan, match_target, name_covered

_INSTALLED_PARTS = frozenset({"site-packages", "dist-packages"})


def _normalise(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def _real_path(path: str) -> str:
    """:func:`_normalise`, found from the real path of ``path``'s folder, which is remembered
    (:data:`_real_folder`; a package's modules share it, and resolving it is most of the cost of
    deciding whether a module is the application's): one ``lstat`` for ``path`` itself where
    resolving it afresh is one per component of the path. A folder that becomes a link to
    elsewhere while the program runs keeps its old real path here. (``os.path`` on strings,
    here and in :class:`Selection`: a ``Path`` object per module would cost as much as the
    remembering saves.)"""
    parent, name = os.path.split(path)
    if (
        parent == path
        or name in ("", ".", "..")
        or not os.path.isabs(parent)  # noqa: PTH117
        or os.path.islink(path)  # noqa: PTH114
    ):
        return _normalise(path)
    return os.path.join(_real_folder(parent), os.path.normcase(name))  # noqa: PTH118


#: :func:`_real_path` of folders, remembered (a module's file is checked afresh each time).
_real_folder = functools.lru_cache(maxsize=4096)(_real_path)


def installed_dirs() -> tuple[str, ...]:
    """Folders whose modules are never the application's: stdlib, site-packages, execscope."""
    candidates: set[str] = set()
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if key in paths:
            candidates.add(paths[key])
    with contextlib.suppress(AttributeError):  # virtualenv's old site.py has no getsitepackages
        candidates.update(site.getsitepackages())
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    if isinstance(user_site, str):
        candidates.add(user_site)
    import execscope

    candidates.add(str(Path(execscope.__file__).resolve().parent))
    return tuple(sorted(_normalise(path) for path in candidates if path))


def _entry_script() -> str:
    """``sys.argv[0]``, or the script given to the script runner: at start-up under
    ``python [options] -m execscope.autotrace script.py`` sys.argv is still ``['-m', ...]``."""
    if sys.argv and sys.argv[0] == "-m":
        args: list[str] = list(getattr(sys, "orig_argv", []))
        for index in range(1, len(args) - 2):
            if args[index] == "-m" and args[index + 1] == "execscope.autotrace":
                return args[index + 2]
    return sys.argv[0] if sys.argv else ""


def default_roots(argv0: str | None = None) -> tuple[str, ...]:
    """The application's folder: the entry script's, or the working directory when there is
    no script (``-m``, ``-c``) or the script is an installed command (``pytest``, ``gunicorn``,
    ``execscope`` itself live in the environment's ``bin`` folder)."""
    script = argv0 if argv0 is not None else _entry_script()
    if script and script not in ("-c", "-m") and Path(script).is_file():
        folder = _normalise(str(Path(script).absolute().parent))
        environments = {_normalise(sys.prefix), _normalise(sys.base_prefix)}
        if folder not in _Folders(tuple(environments)):
            return (folder,)
    return (_normalise(str(Path.cwd())),)


class _Folders:
    """Folders to test paths against, prepared once: ``path in folders`` when ``path`` is one
    of them or under one, with one ``startswith`` (this runs for every module imported)."""

    __slots__ = ("_exact", "_prefixes")

    def __init__(self, folders: tuple[str, ...]) -> None:
        self._exact = frozenset(folders)
        self._prefixes = tuple(folder.rstrip(os.sep) + os.sep for folder in folders)

    def __contains__(self, path: str) -> bool:
        return path in self._exact or path.startswith(self._prefixes)


@dataclass(frozen=True)
class Selection:
    roots: tuple[str, ...]
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    plan: Plan | None = None
    default_level: int = 3
    never: tuple[str, ...] = field(default_factory=installed_dirs)

    def _installed(self, path: str) -> bool:
        """Is ``path`` (a real, normalised path) in an installed package's folder or in one
        that is never the application's?"""
        if any(part in _INSTALLED_PARTS for part in path.split(os.sep)):  # noqa: PTH206 (see _real_path)
            return True
        return path in self._never_folders

    @functools.cached_property
    def _never_folders(self) -> _Folders:
        return _Folders(self.never)

    @functools.cached_property
    def _root_folders(self) -> _Folders:
        return _Folders(self.roots)

    def is_application_file(self, filename: str) -> bool:
        path = _real_path(filename)
        return not self._installed(path) and path in self._root_folders

    def may_select_in(self, module: str, folders: Iterable[str]) -> bool:
        """Could a module named ``module`` be selected if it were found in one of ``folders``
        (a package's ``__path__``)? No when nothing names it (no include glob, no plan target
        covers it) and every folder is installed (site-packages, the standard library): then
        a library's submodule is passed over without searching for its file, which the import
        system is about to do anyway. A module is judged by its folder here, not by where a
        link of its own file may lead."""
        if module == "execscope" or module.startswith("execscope."):
            return False
        if self.exclude and name_covered(self.exclude, module):
            return False
        if self.include or self.plan is not None:
            return True  # decided by name (and where the file is): asked once it is found
        for folder in folders:
            if not isinstance(folder, str) or not os.path.isabs(folder):  # noqa: PTH117
                return True
            if not self._installed(_real_folder(folder)):
                return True
        return False

    def by_default(self, module: str, filename: str | None) -> bool:
        """Selected without the plan: named by the include globs, or an application file."""
        if self.include:
            return name_covered(self.include, module)
        return filename is not None and self.is_application_file(filename)

    def selects(self, module: str, filename: str | None) -> bool:
        if module == "execscope" or module.startswith("execscope."):
            return False
        if self.exclude and name_covered(self.exclude, module):
            return False
        if self.plan is not None and any(
            covers_module(target, module) and target.level != "off" for target in self.plan.targets
        ):
            return True
        return self.by_default(module, filename)

    def decide(self, module: str, qualname: str, default_selected: bool) -> Decision:
        target = match_target(self.plan, module, qualname) if self.plan is not None else None
        if target is not None:
            return Decision(
                level_number(target.level),
                target.stateful,
                target.sample_rate,
                target.min_duration_ms / 1000.0,
            )
        return Decision(self.default_level if default_selected else OFF)

    def fingerprint(self) -> str:
        """Names the cached rewrites: a different plan or level must not reuse them."""
        parts = [
            f"rewriter={REWRITER_VERSION}",
            f"level={self.default_level}",
            f"include={self.include}",
            f"plan={dump_plan(self.plan) if self.plan is not None else ''}",
        ]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]
