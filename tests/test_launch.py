"""Programs run under `execscope run` and `opentelemetry-instrument` are recorded and behave as before."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conftest import BIN, HELLO, HELLO_MANUAL_SPANS, HELLO_SPANS, execscope, execscope_json, run


def hello_lines() -> list[str]:
    return [
        "sum of squares: 14",
        "counter: 6",
        "countdown: [3, 2, 1]",
        "hello, execscope",
        "caught: invalid literal for int() with base 10: 'eighty'",
    ]


def test_execscope_run_records_the_hello_example_in_the_store(env: dict[str, str], tmp_path: Path) -> None:
    result = execscope("run", HELLO, env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == hello_lines()
    assert result.stderr == ""
    (listed,) = execscope_json("traces", env=env, cwd=tmp_path)
    assert listed["root_name"] == "main"
    assert listed["service"] == "hello"
    assert listed["span_count"] == len(HELLO_SPANS)
    assert listed["error_count"] == 1  # parse_port raised; main caught it
    shown = execscope_json("show", listed["trace_id"], env=env, cwd=tmp_path)
    assert sorted(span["name"] for span in shown["spans"]) == HELLO_SPANS
    by_name = {span["name"]: span for span in shown["spans"]}
    # The script's own main() is the root; the hand-made spans nest under the call that made them.
    assert by_name["hello.main"]["parent_span_id"] == by_name["main"]["span_id"]
    manual_parent = by_name["hello.main"]["span_id"]
    assert all(by_name[name]["parent_span_id"] == manual_parent for name in HELLO_MANUAL_SPANS[1:])
    (exception,) = by_name["caught exception"]["events"]
    assert exception["attributes"]["exception.type"] == "ValueError"
    assert by_name["parse_port"]["parent_span_id"] == by_name["caught exception"]["span_id"]
    assert by_name["parse_port"]["status"]["code"] == "ERROR"
    assert by_name["parse_port"]["attributes"]["execscope.args.text"] == "'eighty'"
    for span in shown["spans"]:
        assert {
            "trace_id",
            "span_id",
            "parent_span_id",
            "name",
            "start_ns",
            "end_ns",
            "status",
            "attributes",
            "events",
        } <= set(span)


def test_opentelemetry_instrument_selects_the_execscope_distro(env: dict[str, str], tmp_path: Path) -> None:
    plain = run(
        [str(BIN / "opentelemetry-instrument"), str(BIN / "python"), str(HELLO)], env=env, cwd=tmp_path
    )
    chosen = run(
        [str(BIN / "opentelemetry-instrument"), str(BIN / "python"), str(HELLO)],
        env={**env, "OTEL_PYTHON_DISTRO": "execscope", "OTEL_PYTHON_CONFIGURATOR": "execscope"},
        cwd=tmp_path,
    )

    assert plain.returncode == chosen.returncode == 0, plain.stderr + chosen.stderr
    assert plain.stdout.splitlines() == chosen.stdout.splitlines() == hello_lines()
    listed = execscope_json("traces", env=env, cwd=tmp_path)
    # Under opentelemetry-instrument too the script's own main() is rewritten and is the root.
    assert [trace["root_name"] for trace in listed] == ["main", "main"]
    assert [trace["span_count"] for trace in listed] == [len(HELLO_SPANS)] * 2


def test_execscope_run_dash_m_runs_a_module_and_keeps_its_arguments_and_exit_code(
    env: dict[str, str], tmp_path: Path
) -> None:
    package = tmp_path / "tool"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        textwrap.dedent(
            """
            import sys
            from opentelemetry import trace
            with trace.get_tracer("tool").start_as_current_span("tool.main"):
                print("args:", sys.argv[1:])
            sys.exit(3)
            """
        )
    )
    result = execscope("run", "-m", "tool", "--flag", "value", env=env, cwd=tmp_path)

    assert result.returncode == 3
    assert result.stdout == "args: ['--flag', 'value']\n"
    (listed,) = execscope_json("traces", env=env, cwd=tmp_path)
    assert (listed["root_name"], listed["service"]) == ("tool.main", "tool")


def test_the_applications_own_sitecustomize_still_runs(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text("import os\nos.environ['APP_SITECUSTOMIZE'] = 'ran'\n")
    (tmp_path / "app.py").write_text(
        "import os\nfrom opentelemetry import trace\n"
        "with trace.get_tracer('app').start_as_current_span('app.main'):\n"
        "    print(os.environ.get('APP_SITECUSTOMIZE'))\n"
    )
    result = execscope("run", "--", str(BIN / "python"), "app.py", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran\n"
    assert [trace["root_name"] for trace in execscope_json("traces", env=env, cwd=tmp_path)] == ["app.main"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EXECSCOPE_SAMPLE_RATE", "abc"),
        ("OTEL_TRACES_EXPORTER", "bogus"),
        ("EXECSCOPE_PLAN", "/no/such/plan.toml"),
        ("EXECSCOPE_STORE_MAX_AGE", "forever"),
    ],
)
def test_a_bad_setting_gives_one_warning_and_the_program_runs_as_without_execscope(
    env: dict[str, str], tmp_path: Path, variable: str, value: str
) -> None:
    result = execscope("run", HELLO, env={**env, variable: value}, cwd=tmp_path)

    assert result.returncode == 0
    assert result.stdout.splitlines() == hello_lines()
    (warning,) = result.stderr.splitlines()
    assert variable in warning
    assert repr(value) in warning
    assert "using" in warning
    assert len(execscope_json("traces", env=env, cwd=tmp_path)) == 1  # still recorded, to the store


def test_a_failing_program_fails_exactly_as_it_would_without_execscope(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "crash.py").write_text("print('before')\nraise SystemExit('fatal: no config')\n")
    bare = run([str(BIN / "python"), "crash.py"], env=env, cwd=tmp_path)
    traced = execscope("run", "crash.py", env=env, cwd=tmp_path)
    assert (traced.returncode, traced.stdout, traced.stderr) == (bare.returncode, bare.stdout, bare.stderr)


def test_disabled_execscope_records_nothing(env: dict[str, str], tmp_path: Path) -> None:
    result = execscope("run", "--enabled", "false", HELLO, env=env, cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.splitlines() == hello_lines()
    assert not Path(env["EXECSCOPE_STORE"]).exists()


def test_an_instrumentation_that_fails_to_load_is_reported_once_and_the_others_still_load(
    env: dict[str, str], tmp_path: Path
) -> None:
    plugins = tmp_path / "plugins"
    info = plugins / "fake_instrumentations-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-instrumentations\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[opentelemetry_instrumentor]\n"
        "broken = fake_instrumentations:Broken\n"
        "working = fake_instrumentations:Working\n"
    )
    (plugins / "fake_instrumentations.py").write_text(
        textwrap.dedent(
            """
            import os
            from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

            class Broken(BaseInstrumentor):
                def instrumentation_dependencies(self):
                    return []
                def _instrument(self, **kwargs):
                    raise RuntimeError("boom")
                def _uninstrument(self, **kwargs):
                    pass

            class Working(BaseInstrumentor):
                def instrumentation_dependencies(self):
                    return []
                def _instrument(self, **kwargs):
                    os.environ["WORKING_INSTRUMENTED"] = "yes"
                def _uninstrument(self, **kwargs):
                    pass
            """
        )
    )
    (tmp_path / "app.py").write_text("import os\nprint(os.environ.get('WORKING_INSTRUMENTED'))\n")

    result = execscope("run", "app.py", env={**env, "PYTHONPATH": str(plugins)}, cwd=tmp_path)

    assert result.returncode == 0
    assert result.stdout == "yes\n"
    (warning,) = result.stderr.splitlines()
    assert "'broken' failed to load (RuntimeError: boom)" in warning


def test_configure_from_code_takes_explicit_settings_over_the_environment(
    env: dict[str, str], tmp_path: Path
) -> None:
    explicit_store = tmp_path / "explicit-store"
    (tmp_path / "app.py").write_text(
        "import execscope\n"
        f"assert execscope.configure(store={str(explicit_store)!r}, sample_rate=1.0)\n"
        "assert execscope.configure()  # a second call changes nothing\n"
        "from opentelemetry import trace\n"
        "trace.get_tracer('app').start_span('configured').end()\n"
    )
    result = run([str(BIN / "python"), "app.py"], env={**env, "EXECSCOPE_SAMPLE_RATE": "0"}, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    listed = execscope_json("traces", "--store", explicit_store, env=env, cwd=tmp_path)
    assert [trace["root_name"] for trace in listed] == ["configured"]
    assert not Path(env["EXECSCOPE_STORE"]).exists()
