"""The import hook: a ``sys.meta_path`` finder whose loader rewrites selected modules.

Only the step from source to code changes. Finding a module is left to the standard
``PathFinder`` (so packages, namespace packages, ``importlib.import_module``, ``reload`` and
``importlib.resources`` behave as usual), and the loader is the standard
``SourceFileLoader`` with ``source_to_code`` overridden. The finder sits right before
``PathFinder`` and hands on, as found, the modules it does not rewrite, so that the import system
does not search for them again: the libraries a program imports are not searched for twice.
Rewritten bytecode is cached next to the normal ``.pyc`` under its own name
(``mod.cpython-311.execscope-<tag>.pyc``), so a second start does not rewrite again and the
plain cache is never overwritten. The tag names what the rewrite depends on besides the source:
the selection's fingerprint (plan, level, rewriter version), the module's name (its sites' key,
the plan's targets) and whether it is selected by default; a file imported under two names
keeps a rewrite for each.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import hashlib
import importlib.util
import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from importlib.machinery import ModuleSpec, PathFinder, SourceFileLoader
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

from execscope.autotrace import _code_rewrite
from execscope.autotrace._rewriter import Decision, module_key, rewrite_tree
from execscope.autotrace._selection import Selection

_logger = logging.getLogger("execscope.autotrace")


def _cache_path(standard: str, tag: str) -> str:
    # mod.cpython-311.pyc -> mod.cpython-311.execscope-<tag>.pyc (opt-1 etc. kept before it)
    stem, _, suffix = standard.rpartition(".")
    return f"{stem}.execscope-{tag}.{suffix}"


def cache_tag(fingerprint: str, module: str, default_selected: bool) -> str:
    """What names one module's cached rewrite (see the module docstring)."""
    key = f"{fingerprint}\0{module}\0{int(default_selected)}".encode("utf-8", "surrogateescape")
    return hashlib.sha256(key).hexdigest()[:12]


def selected_by_default(selection: Selection, module: str, filename: str) -> bool:
    """Whether a module ``selection.selects`` is selected by default too (its functions no plan
    target covers are recorded at the default level). Without a plan, what ``selects`` tells
    once past the exclusions is ``by_default``: not asked twice (it reads the file's real path,
    half the cost of finding a module)."""
    return selection.plan is None or selection.by_default(module, filename)


@contextlib.contextmanager
def _no_cyclic_collection() -> Iterator[None]:
    """The cyclic garbage collector paused while a module is parsed, rewritten and compiled.

    The parse makes tens of thousands of AST objects (about 15 per line), all alive until the
    compile is done: the collections their allocation triggers find no garbage, yet each
    traverses them, and they made up ~10% of a cold import's time. A collector the program
    had disabled stays disabled; one disabled by another thread during this window (a few
    milliseconds per module) is enabled again at its end.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class RewritingLoader(SourceFileLoader):
    """A ``SourceFileLoader`` whose code is the rewritten module's (see ``RewritingFinder.rewrite``)."""

    def __init__(self, fullname: str, path: str, finder: RewritingFinder, default_selected: bool) -> None:
        super().__init__(fullname, path)
        self._finder = finder
        self._default_selected = default_selected
        self._tag = cache_tag(finder.fingerprint(), fullname, default_selected)
        self._unmodified = False  # the last compile fell back to the source as written
        try:
            self._standard_cache: str | None = importlib.util.cache_from_source(path)
        except (NotImplementedError, ValueError):
            self._standard_cache = None

    def _redirect(self, path: str) -> str:
        if self._standard_cache is not None and path == self._standard_cache:
            return _cache_path(path, self._tag)
        return path

    def get_data(self, path: str) -> bytes:
        return super().get_data(self._redirect(path))

    def set_data(self, path: str, data: Any, *, _mode: int = 0o666) -> None:
        if self._unmodified and path == self._standard_cache:
            return  # not cached as the rewrite: the next start tries (and warns) again
        super().set_data(self._redirect(path), data, _mode=_mode)

    def source_to_code(  # type: ignore[override]
        self, data: bytes | str, path: str, *, _optimize: int = -1
    ) -> CodeType:
        code = self._finder.rewrite(self.name, data, path, self._default_selected, _optimize)
        self._unmodified = code is None
        if code is not None:
            return code
        return super().source_to_code(data, path, _optimize=_optimize)


class RewritingFinder:
    """Finds selected modules with ``PathFinder`` and gives them a :class:`RewritingLoader`."""

    def __init__(self, selection: Selection, *, bytecode: bool = True) -> None:
        self.selection = selection
        #: Rewrite the compiled code (``_code_rewrite``) where that pass is compiled, else the
        #: ``ast`` tree (the ``autotrace_bytecode`` setting).
        self.bytecode = bytecode
        self.rewritten: list[str] = []
        self.failed: list[str] = []
        self._local = threading.local()
        self._fingerprint: tuple[Selection, str] | None = None

    def fingerprint(self) -> str:
        """The selection's fingerprint (names the cached rewrites), computed once per selection
        rather than once per module found."""
        selection = self.selection
        known = self._fingerprint
        if known is None or known[0] is not selection:
            known = self._fingerprint = (selection, selection.fingerprint())
        return known[1]

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if getattr(self._local, "busy", False):
            return None
        self._local.busy = True
        try:
            return self._find_spec(fullname, path, target)
        except Exception:  # fail open: the normal finders take over
            _logger.debug("execscope: could not look up %s for rewriting", fullname, exc_info=True)
            return None
        finally:
            self._local.busy = False

    def _find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None
    ) -> ModuleSpec | None:
        selection = self.selection
        if fullname == "execscope" or fullname.startswith("execscope."):
            return None
        if selection.exclude and not selection.plan:
            from execscope.plan import name_covered

            if name_covered(selection.exclude, fullname):
                return None
        if path is not None and not selection.may_select_in(fullname, path):
            return None
        spec = PathFinder.find_spec(fullname, path, target)
        if spec is None:
            return None
        if type(spec.loader) is not SourceFileLoader or not spec.origin:
            return self._passed_on(spec)
        if not selection.selects(fullname, spec.origin):
            return self._passed_on(spec)
        spec.loader = RewritingLoader(
            fullname, spec.origin, self, selected_by_default(selection, fullname, spec.origin)
        )
        return spec

    def _passed_on(self, spec: ModuleSpec) -> ModuleSpec | None:
        """A module found but not rewritten: its spec as found when ``PathFinder``, which found
        it, is the next finder (where :func:`install_finder` puts this one), so that the import
        system does not search for the module a second time; else None, and the finders after
        this one decide as without it."""
        meta_path = sys.meta_path
        try:
            index = meta_path.index(self)
        except ValueError:
            return None
        return spec if index + 1 < len(meta_path) and meta_path[index + 1] is PathFinder else None

    def invalidate_caches(self) -> None:
        pass

    def rewrite(
        self, module: str, data: bytes | str, path: str, default_selected: bool, optimize: int = -1
    ) -> CodeType | None:
        """Compiled rewritten code, or None (after one warning) when the module cannot be rewritten:
        the source compiled, then its code rewritten (``_code_rewrite``), where that pass is
        compiled and ``bytecode`` is set; else the source parsed, its tree rewritten
        (``_rewriter``), then compiled."""
        with _no_cyclic_collection():
            return self._rewrite(module, data, path, default_selected, optimize)

    def _rewrite(
        self, module: str, data: bytes | str, path: str, default_selected: bool, optimize: int
    ) -> CodeType | None:
        try:
            source = importlib.util.decode_source(data) if isinstance(data, bytes) else data
            if self.bytecode and _code_rewrite.AVAILABLE:
                compiled: CodeType | ast.Module = compile(
                    source, path, "exec", dont_inherit=True, optimize=optimize
                )
            else:
                compiled = ast.parse(source, path)
        except (SyntaxError, ValueError, UnicodeDecodeError):
            return None  # the normal compile reports the error exactly as without execscope
        selection = self.selection
        try:
            # Without a plan every function of a module is decided alike (by the level, and
            # whether the module is selected by default): once, not once per function.
            alike = selection.decide(module, "", default_selected) if selection.plan is None else None

            def level_for(qualname: str) -> Decision:
                return alike or selection.decide(module, qualname, default_selected)

            filename, key = str(Path(path).absolute()), module_key(module, data)
            if isinstance(compiled, CodeType):
                code = _code_rewrite.rewrite_code(compiled, source, filename, level_for, key).code
            else:
                result = rewrite_tree(compiled, filename, level_for, key, source=source)
                code = compile(result.tree, path, "exec", dont_inherit=True, optimize=optimize)
        except Exception as error:
            self.failed.append(module)
            _logger.warning(
                "execscope: %s could not be rewritten (%s: %s); it is imported unmodified",
                module,
                type(error).__name__,
                error,
            )
            return None
        self.rewritten.append(module)
        return code


def is_rewritten(module: ModuleType) -> bool:
    """Whether ``module``'s functions run rewritten code (they look their sites up)."""
    from execscope.autotrace._rewriter import SITES_NAME

    def rewritten(value: object) -> bool:
        code = getattr(value, "__code__", None)
        return isinstance(code, CodeType) and SITES_NAME in code.co_names

    for value in list(vars(module).values()):
        if rewritten(value):
            return True
        if isinstance(value, type) and getattr(value, "__module__", None) == module.__name__:
            for member in list(vars(value).values()):
                if rewritten(getattr(member, "__func__", member)) or rewritten(getattr(member, "fget", None)):
                    return True
    return False


def install_finder(selection: Selection, *, bytecode: bool = True) -> RewritingFinder:
    """Puts the finder right before ``PathFinder`` (first when there is none): it takes over
    only what ``PathFinder`` would find, after the finders that come before it (built-in and
    frozen modules, and any a tool installed ahead of it) have passed."""
    finder = RewritingFinder(selection, bytecode=bytecode)
    try:
        sys.meta_path.insert(sys.meta_path.index(PathFinder), finder)
    except ValueError:
        sys.meta_path.insert(0, finder)
    importlib.invalidate_caches()
    return finder


def remove_finder(finder: Any) -> None:
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(finder)


def imported_too_early(selection: Selection) -> list[str]:
    """Selected modules that were already imported, so their code was not rewritten."""
    found = []
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None)
        if name == "__main__" or not isinstance(filename, str) or not filename.endswith(".py"):
            continue
        try:
            if selection.selects(name, filename) and not is_rewritten(module):
                found.append(name)
        except Exception:
            continue
    return sorted(found)


__all__ = ["RewritingFinder", "RewritingLoader", "imported_too_early", "install_finder", "remove_finder"]
