"""The reading commands: plain text when piped, one JSON document with --json, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import HELLO, execscope, execscope_json


def record_hello(env: dict[str, str], cwd: Path) -> str:
    assert execscope("run", HELLO, env=env, cwd=cwd).returncode == 0
    (listed,) = execscope_json("traces", env=env, cwd=cwd)
    return str(listed["trace_id"])


def test_show_prints_a_plain_span_tree_when_piped(env: dict[str, str], tmp_path: Path) -> None:
    trace_id = record_hello(env, tmp_path)

    result = execscope("show", trace_id[:10], env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"trace {trace_id}  hello  ")
    assert lines[1].startswith("`- main  ")
    assert lines[2].startswith("   `- hello.main  ")
    assert any(line.startswith("      |- nested calls  ") for line in lines)
    assert "         exception: ValueError: invalid literal for int() with base 10: 'eighty'" in lines
    assert "      |  |  state: count: 0 -> 1; history: [] -> [1]" in lines
    assert not any("counter.count" in line for line in lines)

    detailed = execscope("show", "--last", "--attributes", env=env, cwd=tmp_path).stdout.splitlines()
    assert "      |  counter.count: 6" in detailed


def test_traces_and_query_print_tables_and_json(env: dict[str, str], tmp_path: Path) -> None:
    trace_id = record_hello(env, tmp_path)

    table = execscope("traces", env=env, cwd=tmp_path).stdout.splitlines()
    assert table[0].split() == ["TRACE", "ID", "ROOT", "SERVICE", "START", "DURATION", "SPANS", "ERRORS"]
    assert table[1].startswith(trace_id)

    spans = execscope_json("query", "--name", "*call*", "--service", "hello", env=env, cwd=tmp_path)
    assert sorted(span["name"] for span in spans) == ["async call", "nested calls"]
    slow = execscope_json("query", "--min-duration", "5ms", env=env, cwd=tmp_path)
    assert "async call" in {span["name"] for span in slow}  # it sleeps 10ms
    errors = execscope_json("query", "--errors", env=env, cwd=tmp_path)
    assert [span["name"] for span in errors] == ["parse_port"]  # raised the error main() caught
    by_function = execscope_json("query", "--function", "__main__.Counter.*", env=env, cwd=tmp_path)
    assert sorted(span["name"] for span in by_function) == ["Counter.__init__"] + ["Counter.add"] * 3
    assert (
        execscope_json("query", "--trace-id", trace_id, "--limit", "2", env=env, cwd=tmp_path)[0]["trace_id"]
        == trace_id
    )
    assert execscope_json("traces", "--since", "1h", env=env, cwd=tmp_path)[0]["trace_id"] == trace_id


def test_reading_commands_take_a_store_option(env: dict[str, str], tmp_path: Path) -> None:
    record_hello(env, tmp_path)
    other_env = {**env, "EXECSCOPE_STORE": str(tmp_path / "elsewhere")}
    listed = execscope_json("traces", "--store", env["EXECSCOPE_STORE"], env=other_env, cwd=tmp_path)
    assert len(listed) == 1


def test_missing_store_and_unknown_trace_are_clear_errors(env: dict[str, str], tmp_path: Path) -> None:
    missing = execscope("traces", env=env, cwd=tmp_path)
    assert missing.returncode == 1
    assert "no trace store at" in missing.stderr

    record_hello(env, tmp_path)
    unknown = execscope("show", "ffffffff", env=env, cwd=tmp_path)
    assert unknown.returncode == 1
    assert "no trace ffffffff" in unknown.stderr


def test_config_shows_each_value_and_where_it_came_from(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "execscope.toml").write_text("log_level = 'info'\n")
    document = execscope_json("config", env={**env, "EXECSCOPE_SAMPLE_RATE": "abc"}, cwd=tmp_path)

    assert document["config_file"] == str(tmp_path / "execscope.toml")
    assert document["settings"]["log_level"] == {
        "value": "info",
        "source": "file",
        "detail": str(tmp_path / "execscope.toml"),
        "env": "EXECSCOPE_LOG_LEVEL",
    }
    assert document["settings"]["store"]["source"] == "env"
    assert document["settings"]["sample_rate"]["source"] == "default"
    (problem,) = document["problems"]
    assert "EXECSCOPE_SAMPLE_RATE='abc'" in problem

    text = execscope("config", env=env, cwd=tmp_path).stdout
    assert "log_level" in text and "file (" in text
    json.dumps(document)  # one JSON document


def test_config_tells_which_compiled_parts_this_installation_has(env: dict[str, str], tmp_path: Path) -> None:
    from execscope.autotrace import _code_rewrite, _runtime
    from execscope.processors import _compiled

    document = execscope_json("config", env=env, cwd=tmp_path)
    assert document["compiled"] == {
        "autotrace_core": _runtime.accelerated(),
        "autotrace_bytecode": _code_rewrite.AVAILABLE,
        "span_pipeline": _compiled.ACCELERATED,
    }
    text = execscope("config", env=env, cwd=tmp_path).stdout.splitlines()
    (core,) = [line for line in text if line.strip().startswith("autotrace_core")]
    assert ("not compiled" in core) is not _runtime.accelerated()
