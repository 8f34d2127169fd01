"""Shared helpers for the auto-instrumentor's tests: import a module rewritten (or not) and
read the spans its calls recorded.

``Recording`` wires the process-wide recorder to an in-memory exporter and activates the
runtime; ``import_source`` writes a module into a temporary folder and imports it through the
real import hook (``RewritingFinder``), so the tests exercise exactly what a program gets.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from execscope.autotrace import _runtime, is_rewritten
from execscope.autotrace._hook import RewritingFinder
from execscope.autotrace._install import root_sampler
from execscope.autotrace._levels import FULL
from execscope.autotrace._recorder import RECORDER
from execscope.autotrace._selection import Selection
from execscope.capture import CaptureLimits, Redactor, default_redactor
from execscope.plan import Plan
from execscope.settings import load_settings

_counter = itertools.count()
#: Which core rewritten functions run on in these tests: the C one, unless the run asks for the
#: pure-Python one with ``EXECSCOPE_AUTOTRACE_ACCELERATOR=false`` (test_python_core.py does).
ACCELERATED: bool = load_settings({}, environ=dict(os.environ)).settings.autotrace_accelerator
#: Which rewrite selected modules go through in these tests: of their compiled code, unless the run
#: asks for the ``ast`` rewrite with ``EXECSCOPE_AUTOTRACE_BYTECODE=false`` (test_rewrite_paths.py does).
BYTECODE: bool = load_settings({}, environ=dict(os.environ)).settings.autotrace_bytecode


class Recording:
    """An in-memory span pipeline for rewritten code: ``spans()`` flushes and returns them."""

    def __init__(self, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
        self.provider = provider
        self.exporter = exporter
        self.tracer = provider.get_tracer("tests")

    def spans(self) -> list[ReadableSpan]:
        RECORDER.flush()
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        """The only span called ``name`` (fails if there are none or several)."""
        found = [s for s in self.spans() if s.name == name]
        assert len(found) == 1, f"expected one span {name!r}, got {[s.name for s in self.spans()]}"
        return found[0]

    def clear(self) -> None:
        RECORDER.flush()
        self.exporter.clear()


@contextmanager
def recording(
    sampler: Sampler | None = None,
    limits: CaptureLimits | None = None,
    redactor: Redactor | None = None,
) -> Iterator[Recording]:
    """Activate the runtime for modules imported inside the block, recording into memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    previous = _runtime.current_config()
    _runtime.configure(
        _runtime.RuntimeConfig(
            limits=limits,
            redactor=redactor or default_redactor(),
            root_sampled=root_sampler(provider.sampler),
            recorder=RECORDER,
            active=True,
            accelerated=ACCELERATED,
        )
    )
    RECORDER.start(provider._active_span_processor.on_end, provider.resource)
    try:
        yield Recording(provider, exporter)
    finally:
        RECORDER.flush()
        _runtime.configure(previous)
        provider.shutdown()


def assert_suite_passes_in_a_child(**environment: str) -> None:
    """This folder's tests, run again by a child interpreter with ``environment`` added (another
    core, another rewrite), all pass."""
    here = Path(__file__).resolve().parent
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(here)],
        cwd=here.parents[1],
        env={**os.environ, **environment},
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]


def unique_module_name(stem: str = "mod") -> str:
    return f"{stem}_{next(_counter)}_{id(_counter) % 10_000}"


def import_source(
    folder: Path,
    source: str,
    *,
    name: str | None = None,
    rewritten: bool = True,
    level: int = FULL,
    plan: Plan | None = None,
) -> ModuleType:
    """Write ``source`` to ``folder/<name>.py`` and import it, rewritten through the real
    import hook or plainly. The module is registered in ``sys.modules`` (pickle needs that)."""
    name = name or unique_module_name()
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    if rewritten:
        selection = Selection(roots=(str(folder.resolve()),), plan=plan, default_level=level, never=())
        finder = RewritingFinder(selection, bytecode=BYTECODE)
        spec = finder.find_spec(name, [str(folder)])
        assert spec is not None, f"{name} was not selected for rewriting"
    else:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if rewritten:
        assert is_rewritten(module), f"{name} was not rewritten"
    return module
