"""One library: fetch its sdist, make its environment, run its suite plainly and under execscope.

The plain run goes first and the traced run second, one after the other, so the wall times
compare like with like. Both start from a fresh copy of the extracted sdist (a suite may write
into its tree, and the rewritten bytecode is cached there), with the same pytest arguments and
the same probe plugin; the traced run differs only by ``execscope run --`` in front and the
``EXECSCOPE_*`` variables that select the library at level ``full``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.analyzer_eval._fetch import fetch
from bench.corpus import _probe
from bench.corpus._commands import SetupError, clean_environment, run_logged
from bench.corpus._environment import create_environment
from bench.corpus._junit import Outcome, read_outcomes
from bench.corpus._libraries import Library

PROBE_MODULE = "execscope_corpus_probe"
#: pytest's exit statuses of a session that ran its tests (all passed / some failed).
_RAN = (0, 1)
#: Where the traced run's spans go: the embedded store in the run's folder, or nowhere.
EXPORTERS = ("store", "none")


@dataclass(frozen=True)
class Options:
    cache: Path
    workdir: Path
    wheel: Path
    exporter: str
    timeout: float
    #: Run the tests a library's table deselects for time, too.
    all_tests: bool = False


@dataclass
class SuiteRun:
    """One run of a suite."""

    outcomes: dict[str, Outcome]
    seconds: float
    returncode: int
    timed_out: bool
    log: Path
    #: What the probe plugin wrote: the auto-instrumentor's modules and counters.
    probe: dict[str, Any] = field(default_factory=dict)


@dataclass
class LibraryRun:
    library: Library
    folder: Path
    plain: SuiteRun | None = None
    traced: SuiteRun | None = None
    #: Spans the embedded store holds a count of (``spans_written``), when the store was used.
    stored_spans: int | None = None
    #: Why the suite could not be run at all (a set-up failure).
    error: str | None = None


def run_library(library: Library, options: Options) -> LibraryRun:
    folder = options.workdir / library.name
    result = LibraryRun(library, folder)
    try:
        source = fetch(library.requirement, options.cache / "sdists")
        folder.mkdir(parents=True, exist_ok=True)
        # Installed from a copy: pip builds in place and would leave build/ in the cached sdist.
        install_tree = folder / "src-install"
        if install_tree.exists():
            shutil.rmtree(install_tree)
        shutil.copytree(source, install_tree)
        python = create_environment(
            folder / "venv",
            list(library.test_requirements),
            folder / "setup.log",
            extra_paths=[options.wheel, install_tree],
        )
        probe_dir = folder / "probe"
        probe_dir.mkdir(exist_ok=True)
        shutil.copy2(Path(_probe.__file__), probe_dir / f"{PROBE_MODULE}.py")
        result.plain = _run_suite(library, options, python, source, "plain", traced=False)
        if result.plain.timed_out or result.plain.returncode not in _RAN:
            # Without a clean plain run there is nothing to compare the traced run with.
            result.error = (
                f"the suite did not run plainly (exit {result.plain.returncode}); see {result.plain.log}"
            )
            return result
        result.traced = _run_suite(library, options, python, source, "traced", traced=True)
        if options.exporter == "store":
            result.stored_spans = _stored_spans(folder / "store")
    except (SetupError, OSError, RuntimeError, ValueError) as error:
        result.error = f"{type(error).__name__}: {error}"
    return result


def _run_suite(
    library: Library, options: Options, python: Path, source: Path, name: str, *, traced: bool
) -> SuiteRun:
    folder = options.workdir / library.name
    tree = folder / f"src-{name}"
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(source, tree)
    report = folder / f"{name}.xml"
    probe = folder / f"{name}-probe.json"
    command = [
        str(python),
        "-m",
        "pytest",
        "-p",
        PROBE_MODULE,
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        "-q",
        *(f"--deselect={item.node}" for item in library.deselected if not options.all_tests),
        *library.pytest_args,
    ]
    variables = {
        "PYTHONPATH": str(folder / "probe"),
        _probe.PROBE_ENV: str(probe),
        _probe.PACKAGES_ENV: ",".join(library.packages),
    }
    if traced:
        command = [str(python.parent / "execscope"), "run", "--", *command]
        variables.update(
            {
                "EXECSCOPE_AUTOTRACE_MODULES": ",".join(library.packages),
                "EXECSCOPE_AUTOTRACE_LEVEL": "full",
                "EXECSCOPE_STORE": str(folder / "store"),
                "OTEL_SERVICE_NAME": f"corpus-{library.name}",
            }
        )
        if library.exclude:
            variables["EXECSCOPE_AUTOTRACE_EXCLUDE"] = ",".join(library.exclude)
        if options.exporter == "none":
            # No exporter, but the recorder still builds every span and hands it to the
            # provider's (empty) span processor: the whole recording path runs.
            variables.update({"OTEL_TRACES_EXPORTER": "none", "EXECSCOPE_STORE_EXPORT": "never"})
    env = clean_environment(python.parent.parent, variables)
    log = folder / f"{name}.log"
    completed = run_logged(command, log, env=env, cwd=tree, timeout=options.timeout)
    probe_data: dict[str, Any] = {}
    if probe.is_file():
        probe_data = json.loads(probe.read_text(encoding="utf-8"))
    return SuiteRun(
        read_outcomes(report), completed.seconds, completed.returncode, completed.timed_out, log, probe_data
    )


def _stored_spans(store: Path) -> int | None:
    from execscope.store import TraceStore

    try:
        with TraceStore(store) as reader:
            return reader.counters().get("spans_written", 0)
    except FileNotFoundError:
        return None
