"""Settings resolve with one precedence rule, and a bad value is one warning, never a failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from execscope.settings import load_settings, setting_specs
from execscope.settings._model import EXPLICIT_ENV


def test_defaults_apply_when_nothing_is_set(tmp_path: Path) -> None:
    loaded = load_settings(environ={}, cwd=tmp_path)
    assert loaded.settings.sample_rate == 1.0
    assert loaded.settings.store == tmp_path / ".execscope"
    assert loaded.origins["sample_rate"].kind == "default"
    assert loaded.problems == ()
    assert loaded.config_file is None


def test_explicit_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.execscope]\nsample_rate = 0.25\nlog_level = 'info'\n")
    environ = {"EXECSCOPE_SAMPLE_RATE": "0.5", "EXECSCOPE_LOG_LEVEL": "error"}

    from_file = load_settings(environ={}, cwd=tmp_path)
    from_env = load_settings(environ=environ, cwd=tmp_path)
    explicit = load_settings({"sample_rate": 0.75}, environ=environ, cwd=tmp_path)

    assert from_file.settings.sample_rate == 0.25
    assert from_file.origins["sample_rate"].kind == "file"
    assert from_env.settings.sample_rate == 0.5
    assert from_env.origins["sample_rate"].kind == "env"
    assert explicit.settings.sample_rate == 0.75
    assert explicit.origins["sample_rate"].kind == "explicit"
    assert explicit.settings.log_level == "error"  # the other settings keep their own precedence


def test_a_bad_environment_value_falls_back_to_the_next_source_with_one_problem(tmp_path: Path) -> None:
    (tmp_path / "execscope.toml").write_text("sample_rate = 0.3\n")

    loaded = load_settings(environ={"EXECSCOPE_SAMPLE_RATE": "abc"}, cwd=tmp_path)

    assert loaded.settings.sample_rate == 0.3
    (problem,) = loaded.problems
    assert problem.message() == (
        "execscope: EXECSCOPE_SAMPLE_RATE='abc' is not valid: expected a number between 0 and 1; "
        f"using 0.3 (file ({tmp_path / 'execscope.toml'}))"
    )


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("EXECSCOPE_SAMPLE_RATE", "1.5", "between 0 and 1"),
        ("EXECSCOPE_ENABLED", "maybe", "true or false"),
        ("EXECSCOPE_STORE_MAX_SIZE_MB", "-3", "greater than 0"),
        ("EXECSCOPE_STORE_MAX_AGE", "soon", "duration"),
        ("EXECSCOPE_STORE_EXPORT", "sometimes", "auto, always, never"),
        ("EXECSCOPE_LOG_LEVEL", "loud", "debug"),
        ("EXECSCOPE_PLAN", "/no/such/plan.toml", "cannot be read"),
    ],
)
def test_each_bad_value_names_the_setting_the_value_and_the_value_used(
    tmp_path: Path, variable: str, value: str, reason: str
) -> None:
    loaded = load_settings(environ={variable: value}, cwd=tmp_path)
    (problem,) = loaded.problems
    message = problem.message()
    assert variable in message
    assert repr(value) in message
    assert reason in message
    assert "(default)" in message


def test_durations_and_paths_are_parsed_into_typed_values(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text("")
    loaded = load_settings(
        environ={"EXECSCOPE_STORE_MAX_AGE": "12h", "EXECSCOPE_STORE": "traces", "EXECSCOPE_PLAN": str(plan)},
        cwd=tmp_path,
    )
    assert loaded.settings.store_max_age == 12 * 3600
    assert loaded.settings.store == tmp_path / "traces"
    assert loaded.settings.plan == plan


def test_relative_paths_in_a_settings_file_are_taken_from_the_files_folder(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[tool.execscope]\nstore = 'var/traces'\n")

    loaded = load_settings(environ={}, cwd=project / "src")

    assert loaded.config_file == project / "pyproject.toml"
    assert loaded.settings.store == project / "var" / "traces"


def test_a_pyproject_without_an_execscope_table_is_not_a_settings_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert load_settings(environ={}, cwd=tmp_path).config_file is None


def test_a_named_settings_file_wins_over_discovery_and_a_broken_one_is_reported(tmp_path: Path) -> None:
    (tmp_path / "execscope.toml").write_text("sample_rate = 0.1\n")
    named = tmp_path / "other.toml"
    named.write_text("sample_rate = 0.9\n")
    assert load_settings(environ={"EXECSCOPE_CONFIG": str(named)}, cwd=tmp_path).settings.sample_rate == 0.9

    named.write_text("sample_rate = = nonsense")
    broken = load_settings(environ={"EXECSCOPE_CONFIG": str(named)}, cwd=tmp_path)
    assert broken.settings.sample_rate == 1.0
    (problem,) = broken.problems
    assert "cannot be read as TOML" in problem.message()


def test_unknown_settings_are_reported_not_silently_ignored(tmp_path: Path) -> None:
    (tmp_path / "execscope.toml").write_text("sampel_rate = 0.5\n")
    loaded = load_settings(environ={"EXECSCOPE_SAMPLERATE": "0.5"}, cwd=tmp_path)
    messages = [problem.message() for problem in loaded.problems]
    assert len(messages) == 2
    assert any(
        "EXECSCOPE_SAMPLERATE='0.5'" in line and line.endswith("unknown setting; ignored")
        for line in messages
    )
    assert any("key sampel_rate=" in line and line.endswith("unknown setting; ignored") for line in messages)


def test_explicit_values_reach_a_launched_program_through_one_variable(tmp_path: Path) -> None:
    environ = {EXPLICIT_ENV: json.dumps({"sample_rate": "0.2"}), "EXECSCOPE_SAMPLE_RATE": "0.6"}
    loaded = load_settings(environ=environ, cwd=tmp_path)
    assert loaded.settings.sample_rate == 0.2
    assert loaded.origins["sample_rate"].describe() == "explicit (--sample-rate)"


def test_every_setting_has_an_execscope_variable_and_documentation() -> None:
    for spec in setting_specs():
        assert spec.env == "EXECSCOPE_" + spec.name.upper()
        assert spec.doc.strip()


def test_a_secret_setting_is_never_shown(tmp_path: Path) -> None:
    from execscope.settings import format_setting

    loaded = load_settings(environ={"EXECSCOPE_LLM_API_KEY": "sk-very-secret"}, cwd=tmp_path)
    assert loaded.settings.llm_api_key == "sk-very-secret"
    assert format_setting("llm_api_key", loaded.settings.llm_api_key) == "(set)"
    bad = load_settings(environ={"EXECSCOPE_LLM_API_KEY": "   "}, cwd=tmp_path)
    (problem,) = bad.problems
    assert "(hidden)" in problem.message()
