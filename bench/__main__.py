"""``python -m bench NAME [--rounds N] [--warmup N] [--json]`` and ``python -m bench --list``."""

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
        description="Run one benchmark; its variants alternate round-robin. Prints figures, never pass/fail.",
    )
    parser.add_argument("name", nargs="?", help="benchmark to run (module bench/NAME.py)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--rounds", type=int, default=15, help="measured rounds per variant (default 15)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="unmeasured rounds per variant first (default 1)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(args_list)

    if args.list:
        for name, benchmark in _registry.discover().items():
            print(f"{name:<20} {benchmark.description}")
        return 0
    if args.name is None:
        parser.error("name a benchmark, or use --list")
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be at least 1 and --warmup at least 0")
    try:
        benchmark = _registry.load(args.name)
    except KeyError:
        parser.error(f"no benchmark {args.name!r}; available: {', '.join(_registry.discover())}")
    result = run_benchmark(benchmark, args.rounds, warmup=args.warmup)
    environment = Environment.current(args_list)
    print(render_json(result, environment) if args.json else render_text(result, environment))
    return 0


if __name__ == "__main__":
    sys.exit(main())
