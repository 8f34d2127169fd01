"""A small program to watch execscope record: nested calls, a stateful class, a generator,
an async function and an exception that is caught.

Run it with ``execscope run examples/hello/main.py`` and look at it with ``execscope show --last``.
It uses only the OpenTelemetry API for its few hand-made spans; everything else execscope adds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from opentelemetry import trace

tracer = trace.get_tracer("examples.hello")


class Counter:
    """A stateful object: its methods change ``self``."""

    def __init__(self) -> None:
        self.count = 0
        self.history: list[int] = []

    def add(self, amount: int) -> int:
        self.count += amount
        self.history.append(amount)
        return self.count


def square(value: int) -> int:
    return value * value


def sum_of_squares(values: list[int]) -> int:
    return sum(square(value) for value in values)


def countdown(start: int) -> Iterator[int]:
    while start > 0:
        yield start
        start -= 1


async def fetch_greeting(name: str) -> str:
    await asyncio.sleep(0.01)
    return f"hello, {name}"


def parse_port(text: str) -> int:
    return int(text)


def main() -> None:
    with tracer.start_as_current_span("hello.main"):
        with tracer.start_as_current_span("nested calls"):
            print("sum of squares:", sum_of_squares([1, 2, 3]))
        with tracer.start_as_current_span("stateful counter") as span:
            counter = Counter()
            for amount in (1, 2, 3):
                counter.add(amount)
            span.set_attribute("counter.count", counter.count)
            print("counter:", counter.count)
        with tracer.start_as_current_span("generator"):
            print("countdown:", list(countdown(3)))
        with tracer.start_as_current_span("async call"):
            print(asyncio.run(fetch_greeting("execscope")))
        with tracer.start_as_current_span("caught exception") as span:
            try:
                parse_port("eighty")
            except ValueError as error:
                span.record_exception(error)
                print("caught:", error)


if __name__ == "__main__":
    main()
