"""``python -m bench.corpus [--only NAME] [--jobs N] [--keep] [--exporter store|none] [--all-tests]``."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from bench._report import Environment
from bench.corpus._commands import SetupError, kill_running
from bench.corpus._compare import Comparison, compare
from bench.corpus._environment import REPO, build_execscope_wheel
from bench.corpus._libraries import LIBRARIES, Library
from bench.corpus._report import details, table, unproven
from bench.corpus._run import EXPORTERS, LibraryRun, Options, run_library

CACHE_ENV = "EXECSCOPE_CORPUS_CACHE"
DEFAULT_CACHE = Path("~/.cache/execscope-corpus").expanduser()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.corpus",
        description="Run third-party test suites plainly and under execscope; fail on any regression.",
    )
    names = [library.name for library in LIBRARIES]
    parser.add_argument("--only", action="append", choices=names, help="run only this library (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the libraries and exit")
    parser.add_argument("--jobs", type=int, default=1, help="libraries run at once (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the environments, logs and stores")
    parser.add_argument(
        "--exporter",
        choices=EXPORTERS,
        default="store",
        help="where the traced run's spans go: the embedded store (default) or no exporter",
    )
    parser.add_argument(
        "--all-tests", action="store_true", help="also run the tests deselected for time (see _libraries.py)"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per suite run (default 3600)")
    parser.add_argument(
        "--cache", help=f"sdist cache (default ${CACHE_ENV} or {DEFAULT_CACHE}); never inside the repo"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    args = _parse(args_list)
    if args.list:
        for library in LIBRARIES:
            print(f"{library.requirement:<26} {library.kind}")
        return 0
    if args.jobs < 1:
        print("--jobs must be at least 1", file=sys.stderr)
        return 2
    selected = [library for library in LIBRARIES if not args.only or library.name in args.only]
    cache = Path(args.cache or os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser().resolve()
    if cache.is_relative_to(REPO):
        print(f"--cache {cache} is inside the repository; downloads are never kept there", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="execscope-corpus-"))
    environment = replace(
        Environment.current(args_list), command=shlex.join(["python", "-m", "bench.corpus", *args_list])
    )
    print(environment.header(), flush=True)
    # SIGTERM (a time limit, a CI runner) unwinds like Ctrl-C: the running suite's process
    # group is killed and the work folder removed, instead of orphaning a long traced run.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        try:
            wheel = build_execscope_wheel(workdir, workdir / "execscope-wheel.log")
        except (SetupError, OSError) as error:
            print(f"could not build execscope: {error}", file=sys.stderr)
            return 2
        options = Options(cache, workdir, wheel, args.exporter, args.timeout, args.all_tests)
        runs = _run_all(selected, options, args.jobs)
        status = _report(runs, args.exporter, args.all_tests)
    finally:
        kill_running()
        if args.keep:
            print(f"kept (environments, logs, JUnit reports, stores): {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _run_all(libraries: list[Library], options: Options, jobs: int) -> list[LibraryRun]:
    def one(library: Library) -> LibraryRun:
        print(f"{library.requirement}: running its suite plainly, then under execscope ...", flush=True)
        run = run_library(library, options)
        print(f"{library.requirement}: done", flush=True)
        return run

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        return list(pool.map(one, libraries))
    except BaseException:
        kill_running()  # before the pool waits for its threads, which wait for their suites
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _report(runs: list[LibraryRun], exporter: str, all_tests: bool) -> int:
    compared: list[tuple[LibraryRun, Comparison]] = [(run, compare(run)) for run in runs]
    print()
    print(f"traced: EXECSCOPE_AUTOTRACE_LEVEL=full, the library's packages selected; exporter: {exporter}")
    for line in table(compared):
        print(line)
    lines = [line for run, comparison in compared for line in details(run, comparison, all_tests)]
    if lines:
        print()
        for line in lines:
            print(line)
    regressions = sum(len(comparison.regressions) for _, comparison in compared)
    broken = [run.library.name for run in runs if run.error is not None or unproven(run)]
    print()
    print(
        f"{regressions} regression(s) in {len(runs)} libraries"
        + (f"; not run or not traced: {', '.join(broken)}" if broken else "")
    )
    if broken:
        return 2
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
