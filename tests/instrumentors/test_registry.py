"""Loading execscope's instrumentors after contrib's: only under execscope, each one switchable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import BIN, clean_environment
from execscope.instrumentors import INSTRUMENTORS, instrument_all

PROGRAM = """
import json
from execscope.instrumentors import INSTRUMENTORS
loaded = [entry.name for entry in INSTRUMENTORS if entry.load().is_instrumented_by_opentelemetry]
print(json.dumps(loaded))
"""


def printed_under(launcher: list[str], tmp_path: Path, program: str, **env: str) -> Any:
    """What ``program`` printed last (as JSON), run under ``launcher``."""
    script = tmp_path / "program.py"
    script.write_text(program)
    result = subprocess.run(
        [*launcher, sys.executable, str(script)],
        env=clean_environment(EXECSCOPE_STORE=str(tmp_path / "store"), **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "execscope: instrumentor" not in result.stderr, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def loaded_under(launcher: list[str], tmp_path: Path, **env: str) -> list[str]:
    return list(printed_under(launcher, tmp_path, PROGRAM, **env))


def test_every_instrumentor_of_an_installed_library_loads_under_execscope(tmp_path: Path) -> None:
    loaded = loaded_under([str(BIN / "execscope"), "run", "--"], tmp_path)
    assert loaded == [entry.name for entry in INSTRUMENTORS]


def test_an_instrumentor_is_disabled_by_its_name_or_by_its_contrib_counterpart(tmp_path: Path) -> None:
    loaded = loaded_under(
        [str(BIN / "execscope"), "run", "--"],
        tmp_path,
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="execscope-pykka,redis",
    )
    assert loaded == [
        "execscope-starlette",
        "execscope-flask",
        "execscope-django",
        "execscope-celery",
        "execscope-subprocess",
    ]


def test_none_loads_when_another_distro_set_tracing_up(tmp_path: Path) -> None:
    loaded = loaded_under(
        [str(BIN / "opentelemetry-instrument")],
        tmp_path,
        OTEL_PYTHON_DISTRO="distro",
        OTEL_PYTHON_CONFIGURATOR="configurator",
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    assert loaded == []


def test_loading_without_execscope_tracing_is_a_no_op_unless_forced() -> None:
    assert instrument_all() == []


#: Instrumentors of standard-library modules: no distribution, so no versions to declare.
STANDARD_LIBRARY = {"execscope-subprocess": "subprocess"}


@pytest.mark.parametrize("entry", INSTRUMENTORS, ids=lambda entry: entry.name)
def test_each_instrumentor_declares_the_versions_it_supports(entry: object) -> None:
    instrumentor = entry.load()  # type: ignore[attr-defined]
    name = entry.name  # type: ignore[attr-defined]
    if name in STANDARD_LIBRARY:
        assert STANDARD_LIBRARY[name] in sys.stdlib_module_names
        assert not list(instrumentor.instrumentation_dependencies())
    else:
        assert list(instrumentor.instrumentation_dependencies())


DJANGO_PROGRAM = """
import json
from django.conf import settings
from opentelemetry.instrumentation.django import DjangoInstrumentor
print(json.dumps([settings.configured, DjangoInstrumentor().is_instrumented_by_opentelemetry]))
"""


@pytest.mark.parametrize(
    ("settings_module", "expected"),
    [(None, [False, False]), ("django_settings_for_tests", [True, True])],
    ids=["no settings named: Django left alone", "settings named: instrumented"],
)
def test_django_is_instrumented_only_when_its_settings_are_named(
    tmp_path: Path, settings_module: str | None, expected: list[bool]
) -> None:
    (tmp_path / "django_settings_for_tests.py").write_text('SECRET_KEY = "tests"\nMIDDLEWARE = []\n')
    env = {"PYTHONPATH": str(tmp_path)}
    if settings_module is not None:
        env["DJANGO_SETTINGS_MODULE"] = settings_module
    execscope_run = [str(BIN / "execscope"), "run", "--"]
    assert printed_under(execscope_run, tmp_path, DJANGO_PROGRAM, **env) == expected
