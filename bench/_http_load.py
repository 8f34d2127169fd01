"""An open-loop HTTP/1.1 load generator: ``python -m bench._http_load --url URL --rate R --seconds S``.

It is meant to run as a process of its own next to the server it measures (``bench/webapp.py``
starts one per measurement window), so its CPU is not the server's, and it is kept small: one
asyncio event loop, raw streams, a hand-written HTTP/1.1 exchange, no HTTP library.

The load is open-loop: request ``i`` is due at ``start + i / rate`` whatever happened to the
requests before it, so a slow response does not slow the load down (no coordinated omission).
Due requests go into one queue that ``--connections`` keep-alive connections take them from, one
request in flight per connection; when every connection is busy, requests wait in the queue.
A request's latency runs from its *due* time to the end of its response's body, so the time it
waited for a free connection or for this process's event loop counts; ``service_ms`` (from the
moment it was written to the socket) is reported beside it.

``{id}`` in the URL's path is replaced by a user id per request, spread over ``1..--users`` in a
fixed pseudo-random order. A response other than 200, a connection error or a request that has
not completed ``--timeout`` seconds after the last one was due counts as an error (by kind), and
its latency is left out of the figures. The result is one JSON document on stdout with every
latency in milliseconds (so a caller can merge windows) and their percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench._harness import percentile

#: Connections are opened before the first request is due; the load starts this long after.
_START_DELAY_S = 0.05


@dataclass
class _Tally:
    latency_ms: list[float] = field(default_factory=list)
    service_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    last_done: float = 0.0
    #: How late the scheduler put requests into the queue (its own event-loop lag), at most.
    max_lag_ms: float = 0.0


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    path: str
    host_header: str

    @classmethod
    def parse(cls, url: str) -> _Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected an http:// URL, got {url!r}")
        port = parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname, port, path, f"{parts.hostname}:{port}")

    def request(self, user_id: int) -> bytes:
        path = self.path.replace("{id}", str(user_id))
        return (
            f"GET {path} HTTP/1.1\r\nHost: {self.host_header}\r\nUser-Agent: bench-http-load\r\n\r\n".encode()
        )


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; its status and whether the server keeps the connection open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length: int | None = None
    chunked = False
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name == "connection":
            keep_alive = value.strip().lower() != "close"
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()  # no length: the body ends with the connection
        keep_alive = False
    return status, keep_alive


class _Connection:
    """One keep-alive connection taking due requests from the shared queue until it gets None."""

    def __init__(self, target: _Target, tally: _Tally) -> None:
        self._target = target
        self._tally = tally
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self._target.host, self._target.port)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def serve(self, queue: asyncio.Queue[tuple[float, int] | None]) -> None:
        tally = self._tally
        while (item := await queue.get()) is not None:
            due, user_id = item
            try:
                if self._reader is None or self._writer is None:
                    await self.connect()
                assert self._reader is not None and self._writer is not None
                sent = time.perf_counter()
                self._writer.write(self._target.request(user_id))
                status, keep_alive = await _read_response(self._reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
                tally.errors[type(error).__name__] += 1
                self.close()
                continue
            done = time.perf_counter()
            if not keep_alive:
                self.close()
            if status != 200:
                tally.errors[f"status {status}"] += 1
                continue
            tally.latency_ms.append(round((done - due) * 1000, 4))
            tally.service_ms.append(round((done - sent) * 1000, 4))
            tally.last_done = done
        self.close()


async def run_load(
    url: str,
    *,
    rate: float,
    seconds: float,
    connections: int,
    users: int,
    seed: int = 0,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Send ``rate * seconds`` requests at a fixed rate and return what happened (see the module doc)."""
    target = _Target.parse(url)
    tally = _Tally()
    count = max(1, round(rate * seconds))
    ids = random.Random(seed)
    queue: asyncio.Queue[tuple[float, int] | None] = asyncio.Queue()
    pool = [_Connection(target, tally) for _ in range(connections)]
    await asyncio.gather(*(connection.connect() for connection in pool))
    workers = [asyncio.create_task(connection.serve(queue)) for connection in pool]
    start = time.perf_counter() + _START_DELAY_S
    for index in range(count):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            tally.max_lag_ms = max(tally.max_lag_ms, -delay * 1000)
        queue.put_nowait((due, ids.randint(1, users)))
    last_due = start + (count - 1) / rate
    for _ in pool:
        queue.put_nowait(None)
    drain = max(0.0, last_due + timeout_s - time.perf_counter())
    _done, pending = await asyncio.wait(workers, timeout=drain)
    for worker in pending:
        worker.cancel()
    for connection in pool:
        connection.close()
    completed = len(tally.latency_ms)
    unfinished = count - completed - sum(tally.errors.values())
    if unfinished > 0:
        tally.errors["unfinished"] += unfinished
    duration = max(tally.last_done, last_due) - start if completed else 0.0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "url": url,
        "rate": rate,
        "seconds": seconds,
        "connections": connections,
        "scheduled": count,
        "completed": completed,
        "error_count": sum(tally.errors.values()),
        "errors": dict(sorted(tally.errors.items())),
        "duration_s": duration,
        "achieved_rps": completed / duration if duration > 0 else 0.0,
        "max_scheduler_lag_ms": round(tally.max_lag_ms, 3),
        "client_cpu_s": usage.ru_utime + usage.ru_stime,
        **{
            f"p{round(q * 100)}_ms": percentile(tally.latency_ms, q) if completed else None
            for q in (0.5, 0.9, 0.99)
        },
        "latency_ms": tally.latency_ms,
        "service_ms": tally.service_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench._http_load", description=__doc__.split("\n\n", 1)[0] if __doc__ else None
    )
    parser.add_argument("--url", required=True, help="http://host:port/path; {id} in the path is a user id")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the load lasts (default 10)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections (default 8)")
    parser.add_argument("--users", type=int, default=1000, help="{id} ranges over 1..USERS (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the order of the ids")
    parser.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        help="how long after the last request was due the responses may take (default 10 s)",
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.connections < 1 or args.users < 1:
        parser.error("--rate, --seconds, --connections and --users must be positive")
    load = run_load(
        args.url,
        rate=args.rate,
        seconds=args.seconds,
        connections=args.connections,
        users=args.users,
        seed=args.seed,
        timeout_s=args.timeout,
    )
    try:  # uvloop (uvicorn[standard]) costs this process less CPU per request; asyncio otherwise
        import uvloop
    except ImportError:
        result = asyncio.run(load)
    else:
        result = uvloop.run(load)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
