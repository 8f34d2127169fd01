"""Child processes get the current trace context and correlation id in their environment, and a
child running under execscope continues that trace."""

from __future__ import annotations

import contextvars
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from instrumentor_helpers import Traced, correlation_of, traced
from opentelemetry import propagate, trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from conftest import BIN, clean_environment, execscope_json
from execscope.instrumentors.subprocess import SubprocessInstrumentor, continue_from_environment
from execscope.processors import CorrelationPropagator

#: Prints the context variables of its own environment as JSON.
SHOW_ENVIRONMENT = (
    "import json, os; print(json.dumps({name: os.environ.get(name) for name in "
    "('TRACEPARENT', 'TRACESTATE', 'BAGGAGE', 'X_CORRELATION_ID', 'KEPT')}))"
)


@pytest.fixture
def instrumented(tmp_path: Path) -> Iterator[Traced]:
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), CorrelationPropagator()])
    )
    instrumentor = SubprocessInstrumentor()
    with traced(tmp_path) as active:
        instrumentor.instrument()
        try:
            yield active
        finally:
            instrumentor.uninstrument()
            propagate.set_global_textmap(previous)


def child_sees(*popen_args: Any, **popen_kwargs: Any) -> dict[str, str | None]:
    output = subprocess.run(
        [sys.executable, "-c", SHOW_ENVIRONMENT], *popen_args, capture_output=True, text=True, check=True,
        **popen_kwargs,
    ).stdout  # fmt: skip
    return dict(json.loads(output))


def traceparent_of(span: trace.Span) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def test_a_child_started_inside_a_span_gets_its_context_and_correlation_id(instrumented: Traced) -> None:
    tracer = instrumented.provider.get_tracer("tests")
    with tracer.start_as_current_span("starts a child") as span:
        seen = child_sees()
        expected_parent = traceparent_of(span)
    correlation = correlation_of(instrumented.one("starts a child"))
    assert seen["TRACEPARENT"] == expected_parent
    assert seen["X_CORRELATION_ID"] == correlation
    assert f"execscope.correlation_id={correlation}" in (seen["BAGGAGE"] or "")


def test_the_callers_env_is_copied_not_changed_and_its_own_variables_win(instrumented: Traced) -> None:
    tracer = instrumented.provider.get_tracer("tests")
    explicit = {**os.environ, "KEPT": "yes", "TRACESTATE": "mine=1"}
    before = dict(explicit)
    with tracer.start_as_current_span("explicit env") as span:
        seen = child_sees(env=explicit)
    assert explicit == before
    assert seen["KEPT"] == "yes"
    assert seen["TRACEPARENT"] == traceparent_of(span)
    assert seen["TRACESTATE"] == "mine=1"


def test_an_inherited_variable_is_replaced_by_the_current_context(
    instrumented: Traced, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    monkeypatch.setenv("TRACEPARENT", stale)  # what this process's own parent gave it
    with instrumented.provider.get_tracer("tests").start_as_current_span("current") as span:
        seen = child_sees()
    assert seen["TRACEPARENT"] == traceparent_of(span)


def test_env_given_by_position_and_with_bytes_keys_gets_the_context(instrumented: Traced) -> None:
    base = {os.fsencode(key): os.fsencode(value) for key, value in os.environ.items()}
    base[b"TRACEPARENT"] = b"00-" + b"3" * 32 + b"-" + b"4" * 16 + b"-01"
    command = [sys.executable, "-c", SHOW_ENVIRONMENT]
    with instrumented.provider.get_tracer("tests").start_as_current_span("positional") as span:
        # Popen(args, bufsize, executable, stdin, stdout, stderr, preexec_fn, close_fds, shell, cwd, env)
        process = subprocess.Popen(
            command, -1, None, None, subprocess.PIPE, None, None, True, False, None, base
        )
        output, _ = process.communicate(timeout=30)
    seen = json.loads(output)
    assert seen["TRACEPARENT"] == "00-" + "3" * 32 + "-" + "4" * 16 + "-01"  # set by the caller: kept
    assert seen["X_CORRELATION_ID"] == correlation_of(instrumented.one("positional"))
    assert seen["BAGGAGE"] is not None and span.get_span_context().is_valid


def test_outside_any_span_nothing_is_added(instrumented: Traced, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACEPARENT", raising=False)
    monkeypatch.delenv("BAGGAGE", raising=False)
    assert child_sees()["TRACEPARENT"] is None


def test_uninstrument_removes_the_wrapper(tmp_path: Path) -> None:
    original = vars(subprocess.Popen)["__init__"]
    with traced(tmp_path):
        instrumentor = SubprocessInstrumentor()
        instrumentor.instrument()
        assert vars(subprocess.Popen)["__init__"] is not original
        instrumentor.uninstrument()
    assert vars(subprocess.Popen)["__init__"] is original


def test_the_setting_turns_it_off(tmp_path: Path) -> None:
    original = vars(subprocess.Popen)["__init__"]
    with traced(tmp_path, subprocess_context=False):
        instrumentor = SubprocessInstrumentor()
        instrumentor.instrument()
        try:
            assert vars(subprocess.Popen)["__init__"] is original
        finally:
            instrumentor.uninstrument()


def test_a_context_in_the_environment_becomes_the_processs_context() -> None:
    environ = {
        "TRACEPARENT": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        "BAGGAGE": "execscope.correlation_id=from-the-parent",
    }

    def start_up() -> tuple[bool, trace.SpanContext]:
        continued = continue_from_environment(environ)
        return continued, trace.get_current_span().get_span_context()

    continued, parent = contextvars.copy_context().run(start_up)
    assert continued
    assert (parent.trace_id, parent.span_id, parent.is_remote) == (int("a" * 32, 16), int("b" * 16, 16), True)


def test_an_invalid_context_in_the_environment_is_ignored() -> None:
    def start_up() -> tuple[bool, bool]:
        continued = continue_from_environment({"TRACEPARENT": "not a traceparent"})
        return continued, trace.get_current_span().get_span_context().is_valid

    assert contextvars.copy_context().run(start_up) == (False, False)


PARENT = textwrap.dedent(
    """
    import subprocess, sys
    from opentelemetry import trace

    with trace.get_tracer("parent").start_as_current_span("parent work"):
        subprocess.run([sys.executable, sys.argv[1]], check=True)
    """
)
CHILD = textwrap.dedent(
    """
    from opentelemetry import trace

    with trace.get_tracer("child").start_as_current_span("child work"):
        pass
    """
)


def test_a_child_under_execscope_continues_the_parents_trace(tmp_path: Path) -> None:
    (tmp_path / "parent.py").write_text(PARENT)
    (tmp_path / "child.py").write_text(CHILD)
    env = clean_environment(EXECSCOPE_STORE=str(tmp_path / "store"), EXECSCOPE_AUTOTRACE="false")
    result = subprocess.run(
        [str(BIN / "execscope"), "run", "--", sys.executable, "parent.py", "child.py"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    spans = {span["name"]: span for span in execscope_json("query", "--limit", "50", env=env, cwd=tmp_path)}
    parent, child = spans["parent work"], spans["child work"]
    assert child["trace_id"] == parent["trace_id"]
    assert child["parent_span_id"] == parent["span_id"]
    assert child["correlation_id"] == parent["correlation_id"]
    assert (parent["service"], child["service"]) == ("parent", "child")
