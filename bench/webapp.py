"""The example web application under load: uninstrumented, plain ``opentelemetry-instrument`` and execscope.

The issue's measurement ("Framework instrumentors"): requests per second and p50/p99 latency of
``GET /users/{id}`` of ``examples/webapp`` (FastAPI, psycopg_pool on PostgreSQL) under a bounded
load from a second process on loopback, without instrumentation, with plain
``opentelemetry-instrument`` and with execscope at default settings and at full capture, in the
same run. Targets: execscope's default adds at most 5% p50 latency over uninstrumented and is no
slower than plain ``opentelemetry-instrument``; full capture adds at most 15%.

Variants, each a real ``uvicorn app:app --port P --no-access-log`` process (one worker, the
``uvicorn`` script of this environment, working directory ``examples/webapp``) on a port of its
own, all started at the beginning and kept running until the end:

- ``uninstrumented``: ``uvicorn`` alone.
- ``opentelemetry_instrument``: ``opentelemetry-instrument uvicorn ...`` with the upstream distro
  and configurator (``OTEL_PYTHON_DISTRO=distro OTEL_PYTHON_CONFIGURATOR=configurator``, the
  ``opentelemetry-distro`` package, installed by the benchmark into a folder of its own and put
  on that server's ``PYTHONPATH`` only: installed beside execscope's distro it would make every
  other program's start-up warn that one of the two configurators was not loaded): every installed contrib
  instrumentation (asgi, fastapi, starlette, psycopg, redis, celery, httpx, threading), the SDK's
  ``BatchSpanProcessor`` and OTLP exporter with their defaults.
- ``execscope_default``: ``execscope run -- uvicorn ...`` and nothing else: the same contrib
  instrumentations plus execscope's framework instrumentors, its auto-instrumentor rewriting the
  application's own modules at level ``full``, request bodies captured up to 4 KB, its own span
  pipeline (redaction, governor, OTLP export).
- ``execscope_full``: the same with every capture switched on or up: ``EXECSCOPE_DB_PARAMETERS=true``,
  ``EXECSCOPE_CAPTURE_MAX_ITEMS=100``, ``EXECSCOPE_CAPTURE_MAX_STRING=1000``,
  ``EXECSCOPE_CAPTURE_SPAN_BUDGET=16384``, ``EXECSCOPE_HTTP_CAPTURE_BODY=65536`` and
  ``EXECSCOPE_AUTOTRACE_LEVEL=full``. The shipped default level is already ``full``, so what
  differs from ``execscope_default`` is the volume captured, not which calls are recorded.

The instrumented variants export over OTLP/gRPC (``OTEL_TRACES_EXPORTER=otlp``,
``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``, metrics and logs exporters ``none``), each to a counting
receiver process of its own (``bench._otlp_receiver``), so what receiving costs is not the
server's and each variant's spans are counted apart. With an OTLP exporter configured execscope
does not write its embedded store; the benchmark checks it in each execscope server's status file
(the exporters its pipeline built, also its governor's level and its drops) and reports an error
when a store is among them, when an instrumented variant's receiver got no span, or when a
request failed. The environment is otherwise this one without ``OTEL_*``/``EXECSCOPE_*``
variables; ``WEBAPP_SCHEMA`` names a schema made for the run, seeded with ``--users`` users
(1,000 by default) and dropped at the end.

Method. Each server is warmed up with ``--warmup-requests`` requests (400 by default). Then, for
``--rounds`` rounds (5), every variant gets one measurement window of ``--seconds`` (10) in turn,
the order rotating by one each round, so drift on the machine hits all variants alike. A window
is one run of ``python -m bench._http_load`` (``bench/_http_load.py``), a process of its own: an
open-loop load at a fixed ``--rate`` (200 requests/s by default, well under what one uvicorn
worker serves) over ``--connections`` (8) keep-alive HTTP/1.1 connections, the ids spread over
the seeded users (the same sequence for every variant of a round). A request's latency runs from
the time it was due, not from when it could be sent, so queueing counts (no coordinated
omission). After the load, the window waits for the variant's export to finish: until its
receiver has counted 99% of the spans expected (the requests served times the spans per request
counted during the warm-up) or, failing that, until the exporter's schedule delay (the SDK's 5 s,
execscope's 1 s) has passed and the count stands still. So a window's export work is done inside
its own window, never during another variant's. The server's CPU (``utime+stime`` of
``/proc/<pid>/stat``, all its threads) is read before the load process starts and after that wait.

Reading the figures. ``req/s`` is what was served (it should equal ``--rate``: the load is
bounded); p50/p90/p99 are over every request of every round; ``/uninstr`` divides by the
``uninstrumented`` variant's same percentile, and the p50 of each execscope variant is also
divided by ``opentelemetry_instrument``'s (``/otel-instr``). ``cpu ms/req`` is the server's CPU
per request: on a two-core machine shared with the load process, the receivers and PostgreSQL,
latency percentiles move with whatever else runs, while CPU per request is the steadier figure
of what the instrumentation costs; it is printed with its ratios too. The targets are read on
p50 as the issue states them. The p50 of each round is listed so the spread between rounds is
visible.

``python -m bench.webapp [--rate R] [--seconds S] [--rounds N] [--variants a,b] [--json]`` runs it
(exit status 1 when a variant failed as described above, never because of a target).
``python -m bench webapp --rounds 1 --warmup 0`` runs it through the common harness, in which
each harness round is one window per variant (in a fixed order) and all servers are started at
the first variant's set-up (``EXECSCOPE_BENCH_WEBAPP_SECONDS`` and ``..._RATE`` set the window).
It needs PostgreSQL (``WEBAPP_DATABASE_URL``, by default the local ``test`` database as user
``postgres``); Redis and RabbitMQ are not used by ``GET /users/{id}``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import importlib.metadata
import json
import math
import os
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

from bench._harness import Benchmark, Result, Variant, percentile
from bench._otlp_receiver import Receiver
from bench._processes import stop
from bench._report import Environment, table

VARIANTS: tuple[str, ...] = (
    "uninstrumented",
    "opentelemetry_instrument",
    "execscope_default",
    "execscope_full",
)
BASELINE = "uninstrumented"
UPSTREAM = "opentelemetry_instrument"
EXECSCOPE_VARIANTS = ("execscope_default", "execscope_full")
#: Every capture switched on or up; the shipped ``autotrace_level`` default is already ``full``.
FULL_CAPTURE: dict[str, str] = {
    "EXECSCOPE_DB_PARAMETERS": "true",
    "EXECSCOPE_CAPTURE_MAX_ITEMS": "100",
    "EXECSCOPE_CAPTURE_MAX_STRING": "1000",
    "EXECSCOPE_CAPTURE_SPAN_BUDGET": "16384",
    "EXECSCOPE_HTTP_CAPTURE_BODY": "65536",
    "EXECSCOPE_AUTOTRACE_LEVEL": "full",
}
#: How long a partial batch waits for export: the SDK's default ``OTEL_BSP_SCHEDULE_DELAY``, and execscope's.
SCHEDULE_DELAY_S: dict[str, float] = {
    "opentelemetry_instrument": 5.0,
    "execscope_default": 1.0,
    "execscope_full": 1.0,
}

RATE = 200.0
SECONDS = 10.0
ROUNDS = 5
USERS = 1000
WARMUP_REQUESTS = 400
CONNECTIONS = 8
RATE_ENV = "EXECSCOPE_BENCH_WEBAPP_RATE"
SECONDS_ENV = "EXECSCOPE_BENCH_WEBAPP_SECONDS"

#: The issue's targets: p50 ratios to ``uninstrumented``.
TARGET_DEFAULT_P50 = 1.05
TARGET_FULL_P50 = 1.15

_REPOSITORY = Path(__file__).resolve().parents[1]
WEBAPP_DIR = _REPOSITORY / "examples" / "webapp"
_BIN = Path(sys.executable).parent
_DATABASE_URL = "host=127.0.0.1 port=5432 user=postgres dbname=test"
_STARTUP_TIMEOUT_S = 90.0
_POLL_S = 0.1
#: The wait for export after a load ends at the latest this long after the exporter's schedule delay
#: has passed, once the receiver's count stood still for ``_STILL_S`` (at most ``_SETTLE_EXTRA_S`` more).
_QUIET_MARGIN_S = 0.5
_STILL_S = 0.3
_SETTLE_EXTRA_S = 10.0
#: A window's wait ends early once this share of its expected spans (requests x the spans per
#: request counted during the warm-up) has arrived: the last partial batch is in.
_EXPECTED_SHARE = 0.99
#: Idle time after a window of the uninstrumented variant (it exports nothing).
_PAUSE_S = 0.2
_LOG_TAIL = 3000


@dataclass(frozen=True)
class Config:
    rate: float = RATE
    seconds: float = SECONDS
    rounds: int = ROUNDS
    users: int = USERS
    warmup_requests: int = WARMUP_REQUESTS
    connections: int = CONNECTIONS
    variants: tuple[str, ...] = VARIANTS


# -- the database ------------------------------------------------------------------------------


def database_url() -> str:
    return os.environ.get("WEBAPP_DATABASE_URL", _DATABASE_URL)


def seed_schema(schema: str, users: int) -> None:
    """Create ``schema`` with the application's ``users`` table (as ``db.SCHEMA_SQL``) and ``users`` rows."""
    import psycopg
    from psycopg import sql

    name = sql.Identifier(schema)
    with psycopg.connect(database_url(), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(name))
        connection.execute(
            sql.SQL(
                "CREATE TABLE {}.users (id SERIAL PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL "
                "UNIQUE, password_hash TEXT NOT NULL, welcomed_at TIMESTAMPTZ)"
            ).format(name)
        )
        connection.execute(
            sql.SQL(
                "INSERT INTO {}.users (name, email, password_hash) SELECT 'user ' || i, "
                "'user' || i || '@example.org', md5(i::text) FROM generate_series(1, %s) AS i"
            ).format(name),
            (users,),
        )


def drop_schema(schema: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(database_url(), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


# -- one server ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def clean_environment() -> dict[str, str]:
    """This environment without OTEL_* / EXECSCOPE_* settings, with this environment's scripts first."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "EXECSCOPE_")) and key != "PYTHONPATH"
    }
    env["PATH"] = os.pathsep.join([str(_BIN), env.get("PATH", "")])
    return env


def upstream_distro_folder() -> Path:
    """A folder holding ``opentelemetry-distro`` of this environment's instrumentation release
    (installed once with pip, without dependencies: everything else comes from this environment)."""
    version = importlib.metadata.version("opentelemetry-instrumentation")
    folder = Path(tempfile.gettempdir()) / "execscope-bench" / f"opentelemetry-distro-{version}"
    if not (folder / "opentelemetry" / "distro").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(folder),
             f"opentelemetry-distro=={version}"],
            check=True,
        )  # fmt: skip
    return folder


def server_environment(variant: str, schema: str, endpoint: str | None) -> dict[str, str]:
    env = clean_environment()
    env.update(WEBAPP_SCHEMA=schema, WEBAPP_QUEUE=schema, WEBAPP_CHANNEL=f"{schema}:user-events")
    if variant == BASELINE:
        return env
    assert endpoint is not None
    env.update(
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{endpoint}",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    if variant == UPSTREAM:
        env.update(
            OTEL_PYTHON_DISTRO="distro",
            OTEL_PYTHON_CONFIGURATOR="configurator",
            PYTHONPATH=str(upstream_distro_folder()),
        )
    elif variant == "execscope_full":
        env.update(FULL_CAPTURE)
    return env


def server_command(variant: str, port: int) -> list[str]:
    uvicorn = ["uvicorn", "app:app", "--port", str(port), "--no-access-log"]
    if variant == BASELINE:
        return [str(_BIN / "uvicorn"), *uvicorn[1:]]
    if variant == UPSTREAM:
        return [str(_BIN / "opentelemetry-instrument"), *uvicorn]
    return [str(_BIN / "execscope"), "run", "--", *uvicorn]


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU of process ``pid``, all its threads (``/proc/<pid>/stat``)."""
    text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    fields = text.rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / _clock_ticks()


def process_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


class Server:
    """One variant's uvicorn process, and the receiver its spans go to (None: uninstrumented)."""

    def __init__(self, variant: str, schema: str, folder: Path) -> None:
        self.variant = variant
        self.receiver: Receiver | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.log_path = folder / f"{variant}.log"
        self.port = 0
        try:
            if variant != BASELINE:
                self.receiver = Receiver(max_seconds=6 * 3600.0)
            endpoint = self.receiver.endpoint if self.receiver is not None else None
            self.port = _free_port()
            self._log = self.log_path.open("wb")
            self._process = subprocess.Popen(
                server_command(variant, self.port),
                cwd=WEBAPP_DIR,
                env=server_environment(variant, schema, endpoint),
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/users/{{id}}"

    def log_tail(self) -> str:
        if self._log is not None:
            self._log.flush()
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-_LOG_TAIL:]
        except OSError:
            return ""

    def wait_ready(self, deadline: float) -> None:
        """Return once ``GET /users/1`` answers 200; raise if the process exits or ``deadline`` passes."""
        assert self._process is not None
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.variant}: the server exited with {self._process.returncode}; its output:\n"
                    + self.log_tail()
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                try:
                    connection.request("GET", "/users/1")
                    if connection.getresponse().status == 200:
                        return
                finally:
                    connection.close()
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.variant}: the server did not answer; its output:\n" + self.log_tail()
                )
            time.sleep(_POLL_S)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def cpu_s(self) -> float:
        return process_cpu_s(self.pid)

    def spans(self) -> int:
        return self.receiver.spans_received() if self.receiver is not None else 0

    def settle(self, since: float, expected: int | None = None) -> float:
        """Wait until the export of what this server did up to ``since`` (a ``time.monotonic()``) is
        done; how long that took. Done: the receiver has counted ``expected`` spans, or the
        exporter's schedule delay (plus a margin) has passed since ``since`` and the count stands
        still. A worker wakes at least once per schedule delay and then exports all it holds."""
        started = time.monotonic()
        if self.receiver is None:
            time.sleep(_PAUSE_S)
            return time.monotonic() - started
        delay = SCHEDULE_DELAY_S.get(self.variant, 5.0) + _QUIET_MARGIN_S
        count, changed = self.spans(), started
        while True:
            now = time.monotonic()
            if expected is not None and count >= expected:
                break
            if now - since >= delay and now - changed >= _STILL_S:
                break
            if now - since >= delay + _SETTLE_EXTRA_S:
                break
            time.sleep(_POLL_S)
            latest = self.spans()
            if latest != count:
                count, changed = latest, time.monotonic()
        return time.monotonic() - started

    def execscope_status(self) -> dict[str, Any] | None:
        """The status file execscope's pipeline publishes for ``execscope status`` (None: none yet)."""
        from execscope.processors._build import status_folder

        try:
            status: dict[str, Any] = json.loads(
                (status_folder() / f"{self.pid}.json").read_text(encoding="utf-8")
            )
        except (OSError, ValueError):
            return None
        return status

    def close(self) -> None:
        try:
            process, self._process = self._process, None
            if process is not None:
                stop(process, timeout_s=20)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            if self.receiver is not None:
                self.receiver.close()


# -- the load -----------------------------------------------------------------------------------


def run_load(
    url: str, *, rate: float, seconds: float, connections: int, users: int, seed: int
) -> dict[str, Any]:
    """One run of ``python -m bench._http_load``, in a process of its own; its JSON document."""
    command = [sys.executable, "-m", "bench._http_load", "--url", url, "--rate", str(rate)]
    command += ["--seconds", str(seconds), "--connections", str(connections)]
    command += ["--users", str(users), "--seed", str(seed)]
    env = clean_environment()
    completed = subprocess.run(
        command, cwd=_REPOSITORY, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"the load generator failed ({completed.returncode}):\n{completed.stderr[-_LOG_TAIL:]}"
        )
    document: dict[str, Any] = json.loads(completed.stdout)
    return document


# -- the measurements -----------------------------------------------------------------------------


@dataclass
class Window:
    """One measurement window of one variant."""

    variant: str
    round: int
    #: Position of the window in the whole run (0: the first window of the first round).
    position: int
    scheduled: int
    completed: int
    errors: dict[str, int]
    duration_s: float
    cpu_s: float
    spans: int
    settle_s: float
    client_cpu_s: float
    max_scheduler_lag_ms: float
    latency_ms: list[float] = field(repr=False)
    service_ms: list[float] = field(repr=False)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latency_ms, 0.5) if self.latency_ms else math.nan

    def document(self) -> dict[str, Any]:
        document = dataclasses.asdict(self)
        del document["latency_ms"], document["service_ms"]
        quantiles = (0.5, 0.9, 0.99)
        document.update({f"p{round(q * 100)}_ms": _quantile(self.latency_ms, q) for q in quantiles})
        return document


def _quantile(values: Sequence[float], fraction: float) -> float:
    return percentile(values, fraction) if values else math.nan


@dataclass
class Figures:
    """One variant over all its windows."""

    variant: str
    windows: int
    scheduled: int
    completed: int
    errors: dict[str, int]
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    service_p50_ms: float
    round_p50_ms: list[float]
    cpu_ms_per_request: float
    client_cpu_ms_per_request: float
    spans: int
    spans_per_request: float
    settle_s: float
    #: Filled in at the end of the run.
    spans_total: int = 0
    rss_mb: float = math.nan
    #: execscope's status file: exporters, governor level and its changes, drops.
    exporters: list[str] | None = None
    governor_level: str | None = None
    level_changes: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def summarise(variant: str, windows: Sequence[Window]) -> Figures:
    mine = [window for window in windows if window.variant == variant]
    latencies = [value for window in mine for value in window.latency_ms]
    service = [value for window in mine for value in window.service_ms]
    completed = sum(window.completed for window in mine)
    errors: Counter[str] = Counter()
    for window in mine:
        errors.update(window.errors)
    duration = sum(window.duration_s for window in mine)
    spans = sum(window.spans for window in mine)
    return Figures(
        variant=variant,
        windows=len(mine),
        scheduled=sum(window.scheduled for window in mine),
        completed=completed,
        errors=dict(errors),
        requests_per_s=completed / duration if duration > 0 else 0.0,
        p50_ms=_quantile(latencies, 0.5),
        p90_ms=_quantile(latencies, 0.9),
        p99_ms=_quantile(latencies, 0.99),
        service_p50_ms=_quantile(service, 0.5),
        round_p50_ms=[window.p50_ms for window in sorted(mine, key=lambda window: window.round)],
        cpu_ms_per_request=sum(window.cpu_s for window in mine) * 1000 / completed if completed else math.nan,
        client_cpu_ms_per_request=sum(window.client_cpu_s for window in mine) * 1000 / completed
        if completed
        else math.nan,
        spans=spans,
        spans_per_request=spans / completed if completed else math.nan,
        settle_s=sum(window.settle_s for window in mine),
    )


class Session:
    """The servers of one run: started together, measured window by window, stopped together."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.schema = f"bench_webapp_{os.getpid()}_{secrets.token_hex(3)}"
        self.servers: dict[str, Server] = {}
        self.windows: list[Window] = []
        self.figures: dict[str, Figures] = {}
        self.problems: list[str] = []
        #: Spans per request of each instrumented variant, counted during the warm-up.
        self.spans_per_request: dict[str, float] = {}
        self._folder: Path | None = None
        self._seeded = False

    def start(self) -> None:
        config = self.config
        self._folder = Path(tempfile.mkdtemp(prefix="execscope-bench-webapp-"))
        _progress(f"seeding schema {self.schema} with {config.users:,} users")
        seed_schema(self.schema, config.users)
        self._seeded = True
        folder = self._folder
        # Started side by side: each receiver takes a second to start on its own.
        with ThreadPoolExecutor(max_workers=len(config.variants)) as pool:
            starting = {
                variant: pool.submit(Server, variant, self.schema, folder) for variant in config.variants
            }
        failures = []
        for variant, future in starting.items():
            try:
                self.servers[variant] = future.result()
            except Exception as error:
                failures.append(error)
        if failures:
            raise failures[0]
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        for variant, server in self.servers.items():
            server.wait_ready(deadline)
            _progress(f"{variant} serving on port {server.port} (pid {server.pid})")
        if config.warmup_requests > 0:
            self._warm_up()

    def _warm_up(self) -> None:
        """Warm every server up, then learn how many spans each instrumented one makes per request."""
        config = self.config
        warmup_s = max(config.warmup_requests / config.rate, 0.5)
        counts: dict[str, tuple[int, int, float]] = {}
        for variant, server in self.servers.items():
            _progress(f"warming up {variant} ({config.warmup_requests} requests)")
            before = server.spans()
            load = run_load(
                server.url,
                rate=config.rate,
                seconds=warmup_s,
                connections=config.connections,
                users=config.users,
                seed=999,
            )
            counts[variant] = (before, load["completed"], time.monotonic())
            if load["error_count"]:
                self.problems.append(
                    f"{variant}: {load['error_count']} failed warm-up requests {load['errors']}"
                )
        for variant, server in self.servers.items():
            before, completed, ended = counts[variant]
            server.settle(ended)
            if server.receiver is not None and completed:
                self.spans_per_request[variant] = (server.spans() - before) / completed

    def measure(self, variant: str, round_index: int) -> Window:
        config = self.config
        server = self.servers[variant]
        if not server.running():
            raise RuntimeError(f"{variant}: the server is not running; its output:\n{server.log_tail()}")
        spans_before, cpu_before = server.spans(), server.cpu_s()
        load = run_load(
            server.url,
            rate=config.rate,
            seconds=config.seconds,
            connections=config.connections,
            users=config.users,
            seed=round_index,
        )
        per_request = self.spans_per_request.get(variant)
        expected = None
        if per_request:
            expected = spans_before + math.floor(load["completed"] * per_request * _EXPECTED_SHARE)
        settle_s = server.settle(time.monotonic(), expected)
        cpu_after, spans_after = server.cpu_s(), server.spans()
        window = Window(
            variant=variant,
            round=round_index,
            position=len(self.windows),
            scheduled=load["scheduled"],
            completed=load["completed"],
            errors=load["errors"],
            duration_s=load["duration_s"],
            cpu_s=cpu_after - cpu_before,
            spans=spans_after - spans_before,
            settle_s=settle_s,
            client_cpu_s=load["client_cpu_s"],
            max_scheduler_lag_ms=load["max_scheduler_lag_ms"],
            latency_ms=load["latency_ms"],
            service_ms=load["service_ms"],
        )
        self.windows.append(window)
        _progress(
            f"round {round_index + 1} {variant}: p50 {window.p50_ms:.2f} ms, "
            f"{window.cpu_s * 1000 / max(window.completed, 1):.2f} ms cpu/req, {window.spans:,} spans"
        )
        return window

    def finish(self) -> None:
        """Summarise every variant and check what each server did (while they still run)."""
        for variant in self.config.variants:
            figures = summarise(variant, self.windows)
            server = self.servers.get(variant)
            if server is not None and server.running():
                figures.rss_mb = process_rss_mb(server.pid)
                figures.spans_total = server.spans()
                if variant in EXECSCOPE_VARIANTS:
                    self._read_status(server, figures)
            elif server is not None:
                self.problems.append(f"{variant}: the server exited early; its output:\n{server.log_tail()}")
            if figures.error_count:
                self.problems.append(f"{variant}: {figures.error_count} failed requests {figures.errors}")
            if variant != BASELINE and figures.windows and figures.spans == 0:
                self.problems.append(f"{variant}: its receiver got no span: the variant recorded nothing")
            self.figures[variant] = figures

    def _read_status(self, server: Server, figures: Figures) -> None:
        status = server.execscope_status()
        deadline = time.monotonic() + 5.0
        while status is None and time.monotonic() < deadline:  # published every 2 s
            time.sleep(_POLL_S)
            status = server.execscope_status()
        if status is None:
            self.problems.append(f"{server.variant}: no execscope status file: its exporters are not known")
            return
        figures.exporters = [str(sink.get("name")) for sink in status.get("sinks", [])]
        figures.governor_level = str(status.get("level"))
        figures.level_changes = {
            str(key): int(value) for key, value in status.get("level_changes", {}).items()
        }
        spans = status.get("spans", {})
        figures.dropped = {str(key): int(value) for key, value in spans.get("dropped", {}).items() if value}
        otlp = [name for name in figures.exporters if name.startswith("OTLP/")]
        if not otlp or len(otlp) != len(figures.exporters):
            self.problems.append(
                f"{server.variant}: exports to {figures.exporters}, expected the OTLP exporter only "
                "(no embedded store)"
            )

    def close(self) -> None:
        try:
            for server in self.servers.values():
                server.close()
        finally:
            self.servers.clear()
            if self._seeded:
                self._seeded = False
                with contextlib.suppress(Exception):
                    drop_schema(self.schema)
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
                self._folder = None


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rotated(variants: Sequence[str], round_index: int) -> list[str]:
    """The order of round ``round_index``: the variants rotated by one per round."""
    shift = round_index % len(variants)
    return [*variants[shift:], *variants[:shift]]


def run(config: Config) -> Session:
    """The whole benchmark: start, warm up, measure ``config.rounds`` rounds, summarise, stop."""
    session = Session(config)
    try:
        session.start()
        for round_index in range(config.rounds):
            for variant in rotated(config.variants, round_index):
                session.measure(variant, round_index)
        session.finish()
    finally:
        session.close()
    return session


# -- the report ----------------------------------------------------------------------------------


def _ratio(value: float, reference: Figures | None, name: str) -> float:
    if reference is None:
        return math.nan
    base = float(getattr(reference, name))
    return value / base if base > 0 and not math.isnan(base) else math.nan


def _times(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def _ms(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report_lines(session: Session) -> list[str]:
    config = session.config
    figures = [session.figures[variant] for variant in config.variants if variant in session.figures]
    by_name = {item.variant: item for item in figures}
    base, upstream = by_name.get(BASELINE), by_name.get(UPSTREAM)
    lines = [
        f"GET /users/{{id}} of examples/webapp, {config.rate:g} req/s open-loop over {config.connections} "
        f"keep-alive connections, {config.rounds} rounds x {config.seconds:g} s per variant (order "
        "rotating), "
        f"{config.users:,} users, {config.warmup_requests} warm-up requests per server",
        "latency from each request's due time (queueing counts), over all rounds; cpu: the server process, "
        f"all threads, per request served; ratios to {BASELINE} (uninstr) and {UPSTREAM} (otel-instr)",
        "",
    ]
    header = ["variant", "req/s", "p50 ms", "p90 ms", "p99 ms", "p50/uninstr", "p99/uninstr"]
    header += ["p50/otel-instr", "cpu ms/req", "cpu/uninstr", "cpu/otel-instr", "spans/req", "errors"]
    rows = [header]
    for item in figures:
        rows.append(
            [
                item.variant,
                f"{item.requests_per_s:.1f}",
                _ms(item.p50_ms),
                _ms(item.p90_ms),
                _ms(item.p99_ms),
                _times(_ratio(item.p50_ms, base, "p50_ms")),
                _times(_ratio(item.p99_ms, base, "p99_ms")),
                _times(_ratio(item.p50_ms, upstream, "p50_ms")) if item.variant in EXECSCOPE_VARIANTS else "",
                _ms(item.cpu_ms_per_request, 3),
                _times(_ratio(item.cpu_ms_per_request, base, "cpu_ms_per_request")),
                _times(_ratio(item.cpu_ms_per_request, upstream, "cpu_ms_per_request"))
                if item.variant in EXECSCOPE_VARIANTS
                else "",
                "" if item.variant == BASELINE else _ms(item.spans_per_request, 1),
                str(item.error_count),
            ]
        )
    lines.extend(table(rows))
    lines.append("")
    for item in figures:
        lines.extend(_details(item, base))
    lines.append("")
    lines.extend(_targets(by_name))
    if session.problems:
        lines.append("")
        lines.extend(f"ERROR: {problem}" for problem in session.problems)
    return lines


def _details(item: Figures, base: Figures | None) -> list[str]:
    rounds = " ".join(_ms(value) for value in item.round_p50_ms)
    parts = [f"p50 by round {rounds} ms", f"service-time p50 {_ms(item.service_p50_ms)} ms"]
    if base is not None and item is not base:
        parts.append(
            f"added p50 {item.p50_ms - base.p50_ms:+.2f} ms, "
            f"cpu {item.cpu_ms_per_request - base.cpu_ms_per_request:+.3f} ms/req"
        )
    parts.append(f"rss {_ms(item.rss_mb, 0)} MB")
    parts.append(f"load process cpu {_ms(item.client_cpu_ms_per_request, 3)} ms/req")
    lines = [f"{item.variant}: " + ", ".join(parts)]
    if item.variant != BASELINE:
        lines.append(
            f"  spans received: {item.spans:,} in the windows, {item.spans_total:,} in the whole run "
            f"(with warm-up); waited {item.settle_s:.1f} s in all for exports to finish"
        )
    if item.exporters is not None:
        changes = ", ".join(f"{level} x{count}" for level, count in item.level_changes.items() if count)
        changes = changes or "none"
        dropped = ", ".join(f"{reason} {count:,}" for reason, count in item.dropped.items()) or "none"
        lines.append(
            f"  execscope exports to {', '.join(item.exporters) or 'nothing'} (no embedded store); governor "
            f"level {item.governor_level}, level changes {changes}; dropped {dropped}"
        )
    return lines


def _targets(by_name: dict[str, Figures]) -> list[str]:
    base, upstream = by_name.get(BASELINE), by_name.get(UPSTREAM)
    default, full = by_name.get("execscope_default"), by_name.get("execscope_full")
    lines = ["targets (the issue's, on p50; cpu per request beside them):"]
    if base is None:
        return [*lines, f"  not measured: {BASELINE} was not run"]
    for item, limit in ((default, TARGET_DEFAULT_P50), (full, TARGET_FULL_P50)):
        if item is None:
            continue
        ratio = _ratio(item.p50_ms, base, "p50_ms")
        cpu = _ratio(item.cpu_ms_per_request, base, "cpu_ms_per_request")
        lines.append(
            f"  {item.variant} p50 <= {limit:.2f}x {BASELINE}: {item.p50_ms:.2f} vs {base.p50_ms:.2f} ms = "
            f"{_times(ratio)} (+{(ratio - 1) * 100:.0f}%): {_verdict(ratio <= limit)}; cpu/req {_times(cpu)}"
        )
    if default is not None and upstream is not None:
        ratio = _ratio(default.p50_ms, upstream, "p50_ms")
        cpu = _ratio(default.cpu_ms_per_request, upstream, "cpu_ms_per_request")
        lines.append(
            f"  execscope_default p50 no slower than {UPSTREAM}: {default.p50_ms:.2f} vs "
            f"{upstream.p50_ms:.2f} ms = {_times(ratio)}: {_verdict(ratio <= 1.0)}; cpu/req {_times(cpu)}"
        )
    return lines


def document(session: Session, environment: Environment) -> dict[str, Any]:
    return {
        "command": environment.command,
        "python": environment.python,
        "machine": environment.machine,
        "config": dataclasses.asdict(session.config),
        "variants": [
            {**dataclasses.asdict(item), "error_count": item.error_count}
            for variant in session.config.variants
            if (item := session.figures.get(variant)) is not None
        ],
        "warmup_spans_per_request": session.spans_per_request,
        "windows": [window.document() for window in session.windows],
        "targets": _targets(session.figures),
        "problems": session.problems,
    }


# -- the common harness -------------------------------------------------------------------------


class _Shared:
    """One session for all the harness's variants: started at the first set-up, closed at the last
    teardown."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.session: Session | None = None
        self.users = 0
        self.rounds: Counter[str] = Counter()

    def acquire(self) -> Session:
        if self.users == 0:  # the first set-up of a run (a benchmark object may be run again)
            self.session = Session(self.config)
            self.rounds.clear()
            try:
                self.session.start()
            except BaseException:
                self.session.close()
                self.session = None
                raise
        self.users += 1
        assert self.session is not None
        return self.session

    def release(self) -> None:
        self.users -= 1
        if self.users == 0 and self.session is not None:
            try:
                self.session.finish()
            finally:
                self.session.close()


class WebappVariant(Variant):
    """One variant for ``python -m bench webapp``: each round is one measurement window."""

    def __init__(self, name: str, shared: _Shared) -> None:
        self.name = name
        self.shared = shared

    def setup(self) -> None:
        self.session = self.shared.acquire()

    def run_once(self) -> int:
        round_index = self.shared.rounds[self.name]
        self.shared.rounds[self.name] += 1
        return max(1, self.session.measure(self.name, round_index).completed)

    def metrics(self) -> dict[str, float]:
        figures = summarise(self.name, self.session.windows)
        return {
            "p50_ms": figures.p50_ms,
            "p99_ms": figures.p99_ms,
            "cpu_ms_per_request": figures.cpu_ms_per_request,
            "requests_per_s": figures.requests_per_s,
            "errors": float(figures.error_count),
        }

    def teardown(self) -> None:
        self.shared.release()


def _notes(result: Result, *, shared: _Shared) -> list[str]:
    session = shared.session
    if session is None:
        return []
    session.config = dataclasses.replace(session.config, rounds=result.rounds)
    if result.warmup:
        # The harness's warm-up rounds ran windows too: the figures are of the measured rounds only.
        measured = [window for window in session.windows if window.round >= result.warmup]
        for variant, old in list(session.figures.items()):
            session.figures[variant] = dataclasses.replace(
                summarise(variant, measured),
                spans_total=old.spans_total,
                rss_mb=old.rss_mb,
                exporters=old.exporters,
                governor_level=old.governor_level,
                level_changes=old.level_changes,
                dropped=old.dropped,
            )
    return [
        "",
        "the harness's times above are whole windows per request served (the rate's inverse plus the "
        "load process's start and the wait for exports); the variant's own figures, every window:",
        "",
        *report_lines(session),
    ]


def _float_from_environment(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def make_benchmark(config: Config | None = None) -> Benchmark:
    if config is None:
        config = Config(
            rate=_float_from_environment(RATE_ENV, RATE),
            seconds=_float_from_environment(SECONDS_ENV, SECONDS),
        )
    shared = _Shared(config)
    return Benchmark(
        name="webapp",
        description="GET /users/{id} of examples/webapp under a fixed open-loop load: uninstrumented, "
        "opentelemetry-instrument, execscope default and full capture (run with --rounds 5 --warmup 0)",
        variants={name: partial(WebappVariant, name, shared) for name in config.variants},
        baseline=BASELINE if BASELINE in config.variants else config.variants[0],
        operation="request",
        notes=partial(_notes, shared=shared),
    )


BENCHMARK = make_benchmark()


# -- the command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.webapp",
        description="Serve examples/webapp in each variant and measure GET /users/{id} under a fixed load.",
    )
    parser.add_argument("--rate", type=float, default=RATE, help=f"requests per second (default {RATE:g})")
    parser.add_argument("--seconds", type=float, default=SECONDS, help=f"per window (default {SECONDS:g})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"windows per variant (default {ROUNDS})")
    parser.add_argument("--users", type=int, default=USERS, help=f"seeded users (default {USERS:,})")
    parser.add_argument(
        "--warmup-requests", type=int, default=WARMUP_REQUESTS, help=f"per server (default {WARMUP_REQUESTS})"
    )
    parser.add_argument(
        "--connections", type=int, default=CONNECTIONS, help=f"keep-alive connections (default {CONNECTIONS})"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated (default: all)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    variants = tuple(name.strip() for name in args.variants.split(",") if name.strip())
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or not variants or len(set(variants)) != len(variants):
        parser.error(
            f"unknown or repeated variants {unknown or list(variants)}; "
            f"the variants are {', '.join(VARIANTS)}"
        )
    if args.rate <= 0 or args.seconds <= 0 or args.rounds < 1 or args.users < 1 or args.connections < 1:
        parser.error("--rate, --seconds, --rounds, --users and --connections must be positive")
    if args.warmup_requests < 0:
        parser.error("--warmup-requests must not be negative")
    config = Config(
        rate=args.rate,
        seconds=args.seconds,
        rounds=args.rounds,
        users=args.users,
        warmup_requests=args.warmup_requests,
        connections=args.connections,
        variants=variants,
    )
    session = run(config)
    command = shlex.join(["python", "-m", "bench.webapp", *(sys.argv[1:] if argv is None else argv)])
    environment = dataclasses.replace(Environment.current(argv), command=command)
    if args.json:
        print(json.dumps(document(session, environment), indent=2))
    else:
        print("\n".join([environment.header(), *report_lines(session)]))
    return 1 if session.problems else 0


if __name__ == "__main__":
    sys.exit(main())
