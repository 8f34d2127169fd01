"""What rewriting costs at import: a generated module of about 2,000 lines (functions, classes,
methods, properties, generators, coroutines) imported plainly and through execscope's import
hook, each from a cold cache (the source is compiled, or parsed, rewritten and compiled, and the
``.pyc`` written) and from a warm one (the ``.pyc`` is read).

Each variant has its own copy of the module, imported in this process through the same steps
as ``import`` takes (``find_spec``, ``module_from_spec``, ``exec_module``); between rounds the
module leaves ``sys.modules``, a cold variant's cached bytecode is deleted, and
``importlib.invalidate_caches()`` runs, all outside the timed region. The rewritten module runs
its own first statement, which registers its functions' sites, so that cost is included;
importing execscope itself is not (the distro has done that before the application imports),
nor is the check that a rewritten variant's module was rewritten (made after the timed import).

``libraries_plain`` and ``libraries_hooked`` measure what the hook costs the modules it does not
rewrite: each round a new interpreter imports a fixed set of installed libraries (FastAPI,
pydantic, httpx, Celery, redis, psycopg and the standard library modules they pull in, about 800
modules), the second with the import hook installed first (selecting the application's own
folder, as the distro does). Both import the hook's own modules before the libraries, so the
difference is the finder's work on each library module. The timed region holds the interpreter's
start too (and execscope's own import), so the note compares what the new interpreter timed
around the libraries' imports alone (``imports_ms``, the median over the rounds).

``roundtrip_cold`` parses the module into Python ``ast`` objects and compiles that tree back,
rewriting nothing (with the cyclic collector paused as the hook pauses it): the floor under
any rewrite that works on the tree, shown beside the target it is measured against.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from importlib.machinery import ModuleSpec, PathFinder, SourceFileLoader
from pathlib import Path
from types import CodeType

from bench._harness import Benchmark, Result, Variant
from execscope.autotrace import is_rewritten
from execscope.autotrace._hook import RewritingFinder, _no_cyclic_collection
from execscope.autotrace._levels import FULL
from execscope.autotrace._selection import Selection

#: Classes and functions in the generated module: about 2,000 lines with the defaults.
CLASSES = 22
FUNCTIONS = 64
TARGET_COLD = 2.0
TARGET_WARM = 1.1

_CLASS = '''

class Model{i}:
    """Model {i}: a small stateful class."""

    limit = {i}

    def __init__(self, name, size=0):
        self.name = name
        self.size = size
        self.items = []

    def add(self, item, *, weight=1):
        """Add one item."""
        self.items.append((item, weight))
        self.size += weight
        return self.size

    @property
    def label(self):
        return f"{{self.name}}-{{self.size}}"

    @classmethod
    def build(cls, name):
        return cls(name, cls.limit)

    @staticmethod
    def check(value):
        if value > {i}:
            raise ValueError(value)
        return value

    def walk(self):
        for item, weight in self.items:
            if weight:
                yield item

    async def fetch(self, key, default=None):
        try:
            return self.items[key]
        except IndexError:
            return default

    def __repr__(self):
        return f"Model{i}({{self.name!r}})"
'''

_FUNCTION = '''

def function_{i}(a, b=2, *args, key=None, **kwargs):
    """Function {i}."""
    total = a + b
    for item in args:
        if item is None:
            continue
        total += item
    value = kwargs.get("value", {i})
    result = [x * {i} for x in range(total % 5)]

    def inner(y):
        return y + value

    return inner(total) + len(result) + (key or 0)
'''


def generate_module(classes: int = CLASSES, functions: int = FUNCTIONS) -> str:
    parts = ['"""A generated module for the import-time benchmark."""\n\nimport math\n']
    for index in range(max(classes, functions)):
        if index < classes:
            parts.append(_CLASS.format(i=index))
        if index < functions:
            parts.append(_FUNCTION.format(i=index))
    parts.append("\n\nCONSTANT = math.pi\n")
    return "".join(parts)


class _RoundTripLoader(SourceFileLoader):
    """Compiles the module's ``ast`` tree, unchanged, instead of its source."""

    def source_to_code(  # type: ignore[override]
        self, data: bytes | str, path: str, *, _optimize: int = -1
    ) -> CodeType:
        with _no_cyclic_collection():
            tree = ast.parse(importlib.util.decode_source(data) if isinstance(data, bytes) else data, path)
            return compile(tree, path, "exec", dont_inherit=True, optimize=_optimize)


#: What ``libraries_*`` import: installed libraries of the test extra, with what they import.
LIBRARIES = ("fastapi", "pydantic", "httpx", "celery", "redis", "psycopg", "email.mime.text", "decimal")

_IMPORT_LIBRARIES = """
import sys
import execscope.autotrace._hook as hook
from execscope.autotrace._levels import FULL
from execscope.autotrace._selection import Selection
import time
if sys.argv[1] == "hooked":
    hook.install_finder(Selection(roots=(sys.argv[2],), default_level=FULL))
start = time.perf_counter()
import {modules}
print(time.perf_counter() - start)
"""


class ImportLibraries(Variant):
    """A new interpreter importing :data:`LIBRARIES`, with or without the import hook."""

    def __init__(self, *, hooked: bool) -> None:
        self.hooked = hooked
        self._imports_s: list[float] = []

    def setup(self) -> None:
        self._folder = tempfile.mkdtemp(prefix="execscope-bench-app-")
        self._command = [
            sys.executable,
            "-c",
            _IMPORT_LIBRARIES.format(modules=", ".join(LIBRARIES)),
            "hooked" if self.hooked else "plain",
            self._folder,
        ]
        self.run_once()  # fails here, not in a round, if a library is missing
        self._imports_s.clear()

    def run_once(self) -> int:
        # No timeout: waiting with one polls in steps of up to 50 ms, coarser than the difference.
        completed = subprocess.run(
            self._command,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""},
        )
        self._imports_s.append(float(completed.stdout.split()[-1]))
        return 1

    def metrics(self) -> dict[str, float]:
        """The libraries' imports alone, as the new interpreter timed them (median, ms)."""
        return {"imports_ms": statistics.median(self._imports_s) * 1e3} if self._imports_s else {}

    def teardown(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)


class Import(Variant):
    """Imports its own copy of the generated module, plainly or rewritten, from a cold or warm
    cache; or (``round_trip``) through the parse to ``ast`` objects and back, rewriting nothing."""

    def __init__(
        self,
        label: str,
        source: str,
        *,
        rewritten: bool,
        cold: bool,
        round_trip: bool = False,
        bytecode: bool = True,
    ) -> None:
        self.name = "execscope_bench_import_" + label
        self.source = source
        self.rewritten = rewritten
        self.bytecode = bytecode
        self.cold = cold
        self.round_trip = round_trip

    def setup(self) -> None:
        # Caching is what is measured: write .pyc files even under PYTHONDONTWRITEBYTECODE.
        self._wrote_bytecode = sys.dont_write_bytecode
        sys.dont_write_bytecode = False
        self._folder = Path(tempfile.mkdtemp(prefix="execscope-bench-"))
        try:
            (self._folder / f"{self.name}.py").write_text(self.source, encoding="utf-8")
            # Every function at the default level, as the hook selects the application's modules.
            roots = (str(self._folder.resolve()),)
            self._finder = RewritingFinder(Selection(roots=roots, default_level=FULL), bytecode=self.bytecode)
            self._import()  # writes the cache a warm variant reads
            if not self.cold and not list((self._folder / "__pycache__").glob(f"{self.name}.*.pyc")):
                raise RuntimeError(f"no bytecode cache was written in {self._folder}: warm imports are cold")
            self.end_round()
        except BaseException:
            self.teardown()  # the harness tears down only variants whose setup finished
            raise

    def _spec(self) -> ModuleSpec | None:
        if self.rewritten:
            return self._finder.find_spec(self.name, [str(self._folder)])
        spec = PathFinder.find_spec(self.name, [str(self._folder)])
        if self.round_trip and spec is not None and spec.origin is not None:
            spec.loader = _RoundTripLoader(self.name, spec.origin)
        return spec

    def _import(self) -> None:
        spec = self._spec()
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot find {self.name}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[self.name] = module
        spec.loader.exec_module(module)

    def run_once(self) -> int:
        self._import()
        return 1

    def end_round(self) -> None:
        module = sys.modules.pop(self.name, None)
        if self.rewritten and module is not None and not is_rewritten(module):
            raise RuntimeError(f"{self.name} was not rewritten")
        if self.cold:
            for cached in (self._folder / "__pycache__").glob(f"{self.name}.*.pyc"):
                cached.unlink()
        importlib.invalidate_caches()

    def teardown(self) -> None:
        sys.modules.pop(self.name, None)
        shutil.rmtree(self._folder, ignore_errors=True)
        sys.dont_write_bytecode = self._wrote_bytecode


def _verdict(result: Result, name: str, target: float) -> str:
    """Wall and calling-thread CPU ratios to the baseline; met only when both are within ``target``
    (the CPU figure leaves out what other processes on the machine took from the import)."""
    variant = result.variant(name)
    ratios = [variant.ratio]
    text = f"{variant.ratio:.2f}x wall"
    if variant.thread_cpu is not None:
        ratios.append(variant.thread_cpu.ratio)
        text += f", {variant.thread_cpu.ratio:.2f}x thread cpu"
    return f"{text}: {'met' if max(ratios) <= target else 'MISSED'}"


def notes(result: Result) -> list[str]:
    names = {variant.name for variant in result.variants}
    lines = ["targets (product spec):"]
    if {"rewritten_cold", "plain_cold"} <= names:
        verdict = _verdict(result, "rewritten_cold", TARGET_COLD)
        lines.append(f"  rewriting, cold cache <= {TARGET_COLD:g}x a plain import compiling: {verdict}")
    if {"rewritten_warm", "plain_warm"} <= names:
        verdict = _verdict(result, "rewritten_warm", TARGET_WARM)
        lines.append(f"  rewriting, warm cache <= {TARGET_WARM:g}x a plain import from .pyc: {verdict}")
    if {"libraries_hooked", "libraries_plain"} <= names:
        hooked = result.variant("libraries_hooked").metrics.get("imports_ms", 0.0)
        plain = result.variant("libraries_plain").metrics.get("imports_ms", 0.0)
        if plain > 0:
            lines.append(
                f"  (installed libraries imported by a new interpreter, the imports alone: {hooked:.1f} ms"
                f" with the hook vs {plain:.1f} ms without = {hooked / plain:.3f}x)"
            )
    if {"roundtrip_cold", "plain_cold"} <= names:
        round_trip = result.variant("roundtrip_cold")
        cpu = f", {round_trip.thread_cpu.ratio:.2f}x thread cpu" if round_trip.thread_cpu is not None else ""
        lines.append(
            "  (parsing to ast objects and compiling them back, no rewrite: "
            f"{round_trip.ratio:.2f}x wall{cpu} a plain import)"
        )
    if {"rewritten_cold", "plain_warm"} <= names:
        ratio = result.variant("rewritten_cold").median_ns / result.variant("plain_warm").median_ns
        lines.append(f"  (rewriting with a cold cache vs a plain import from its .pyc: {ratio:.2f}x)")
    return lines


def make_benchmark(classes: int = CLASSES, functions: int = FUNCTIONS) -> Benchmark:
    """The benchmark on a module of ``classes`` classes and ``functions`` functions (small in the test)."""
    source = generate_module(classes, functions)
    variants: dict[str, Callable[[], Variant]] = {
        label: partial(Import, label, source, rewritten=rewritten, cold=cold, bytecode=bytecode)
        for label, rewritten, cold, bytecode in (
            ("plain_cold", False, True, True),
            ("rewritten_cold", True, True, True),
            ("ast_rewritten_cold", True, True, False),
            ("plain_warm", False, False, True),
            ("rewritten_warm", True, False, True),
            ("ast_rewritten_warm", True, False, False),
        )
    }
    variants["libraries_plain"] = partial(ImportLibraries, hooked=False)
    variants["libraries_hooked"] = partial(ImportLibraries, hooked=True)
    variants["roundtrip_cold"] = partial(
        Import, "roundtrip_cold", source, rewritten=False, cold=True, round_trip=True
    )
    return Benchmark(
        name="autotrace_import",
        description=f"importing a generated {source.count(chr(10)):,}-line module, plainly and rewritten",
        variants=variants,
        baseline="plain_warm",
        operation="import",
        baselines={
            "rewritten_cold": "plain_cold",
            "ast_rewritten_cold": "plain_cold",
            "plain_cold": "plain_cold",
            "roundtrip_cold": "plain_cold",
            "libraries_plain": "libraries_plain",
            "libraries_hooked": "libraries_plain",
        },
        notes=notes,
        # The imports run on the calling thread: its CPU is the import's cost without what other
        # processes took meanwhile. (A ``libraries_*`` variant's work is in a new interpreter,
        # its own figure.)
        measure_cpu=True,
    )


BENCHMARK = make_benchmark()
