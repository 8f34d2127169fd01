"""``python -m bench NAME [NAME ...] [--rounds N] [--warmup N] [--only GLOB] [--json]`` and
``python -m bench --list``."""

from __future__ import annotations

import argparse
import sys

from bench import _registry
from bench._harness import run_benchmark
from bench._report import Environment, render_json, render_text


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run benchmarks one after the other; each one's variants alternate round-robin. "
        "Prints figures, never pass/fail.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmark to run (module bench/NAME.py)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--rounds", type=int, default=15, help="measured rounds per variant (default 15)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="unmeasured rounds per variant first (default 1)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--only",
        action="append",
        metavar="GLOB",
        help="run only the variants matching GLOB (repeatable), with the baselines they compare to",
    )
    args = parser.parse_args(args_list)

    if args.list:
        for name, benchmark in _registry.discover().items():
            print(f"{name:<20} {benchmark.description}")
        return 0
    if not args.names:
        parser.error("name a benchmark, or use --list")
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be at least 1 and --warmup at least 0")
    benchmarks = []
    for name in args.names:
        try:
            benchmark = _registry.load(name)
        except KeyError:
            parser.error(f"no benchmark {name!r}; available: {', '.join(_registry.discover())}")
        try:
            benchmarks.append(benchmark.only(args.only) if args.only else benchmark)
        except ValueError as error:
            parser.error(str(error))
    environment = Environment.current(args_list)
    documents = []
    for index, benchmark in enumerate(benchmarks):
        result = run_benchmark(benchmark, args.rounds, warmup=args.warmup)
        if args.json:
            documents.append(render_json(result, environment))
        else:
            # Each table is printed as soon as it is ready: a long run shows progress.
            print(("\n" if index else "") + render_text(result, environment), flush=True)
    if args.json:
        # One benchmark: its document, as before; several: a JSON array of them.
        print(documents[0] if len(documents) == 1 else "[\n" + ",\n".join(documents) + "\n]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
