"""Resolves the settings table from its sources with one precedence rule.

explicit argument > ``EXECSCOPE_*`` environment variable > settings file > default.

A value that does not parse is skipped in favour of the next source, and produces exactly one
:class:`Problem` naming the setting, the bad value and the value used instead. Loading never
raises: execscope runs inside other people's programs, and a typo in a setting must not stop them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from execscope.settings import _parsers
from execscope.settings._model import (
    CONFIG_FILE_ENV,
    ENV_PREFIX,
    EXPLICIT_ENV,
    Settings,
    SettingSpec,
    format_setting,
    format_value,
    setting_specs,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

_logger = logging.getLogger("execscope.settings")

SourceKind = Literal["explicit", "env", "file", "default"]
_PATH_PARSERS = (_parsers.parse_path, _parsers.parse_readable_file)
#: Variables with the prefix that are not settings but are still ours (so not "unknown").
_KNOWN_NON_SETTINGS = frozenset({CONFIG_FILE_ENV})
_INTERNAL_PREFIX = "EXECSCOPE__"


@dataclass(frozen=True)
class Origin:
    """Where an effective value came from: ``kind`` plus the variable name or file."""

    kind: SourceKind
    detail: str = ""

    def describe(self) -> str:
        return f"{self.kind} ({self.detail})" if self.detail else self.kind


@dataclass(frozen=True)
class Problem:
    """One bad input, reported as exactly one warning line."""

    where: str
    value: str
    reason: str
    used_instead: str

    def message(self) -> str:
        if not self.used_instead:
            return f"execscope: {self.where}={self.value!r} is not valid: {self.reason}; ignored"
        return (
            f"execscope: {self.where}={self.value!r} is not valid: {self.reason}; using {self.used_instead}"
        )


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    origins: Mapping[str, Origin]
    problems: tuple[Problem, ...]
    config_file: Path | None


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> LoadedSettings:
    """Resolve every setting. ``overrides`` are explicit values keyed by setting name."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    problems: list[Problem] = []
    specs = setting_specs()
    by_name = {spec.name: spec for spec in specs}

    config_file, file_values = _read_config_file(environ, cwd, problems)
    explicit = dict(overrides) if overrides is not None else explicit_from_environment(environ, problems)
    for name in sorted(set(explicit) - set(by_name)):
        problems.append(Problem(f"setting {name}", format_value(explicit[name]), "unknown setting", ""))
    for name in sorted(set(file_values) - set(by_name)):
        problems.append(
            Problem(f"{config_file} key {name}", format_value(file_values[name]), "unknown setting", "")
        )
    for name in sorted(environ):
        known = name[len(ENV_PREFIX) :].lower() in by_name or name in _KNOWN_NON_SETTINGS
        if name.startswith(ENV_PREFIX) and not name.startswith(_INTERNAL_PREFIX) and not known:
            problems.append(Problem(name, environ[name], "unknown setting", ""))

    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    for spec in specs:
        candidates: list[tuple[Origin, Any, Path]] = []
        if spec.name in explicit:
            candidates.append(
                (Origin("explicit", f"--{spec.name.replace('_', '-')}"), explicit[spec.name], cwd)
            )
        if spec.env in environ:
            candidates.append((Origin("env", spec.env), environ[spec.env], cwd))
        if spec.name in file_values and config_file is not None:
            candidates.append((Origin("file", str(config_file)), file_values[spec.name], config_file.parent))
        value, origin, rejected = _resolve(spec, candidates, cwd)
        values[spec.name] = value
        origins[spec.name] = origin
        used = f"{format_setting(spec.name, value)} ({origin.describe()})"
        for bad_origin, raw, reason in rejected:
            where = spec.env if bad_origin.kind == "env" else f"{spec.name} ({bad_origin.describe()})"
            shown = "(hidden)" if spec.secret else format_value(raw)
            problems.append(Problem(where, shown, reason, used))
    return LoadedSettings(Settings(**values), origins, tuple(problems), config_file)


def explicit_from_environment(environ: Mapping[str, str], problems: list[Problem]) -> dict[str, Any]:
    """Explicit options of ``execscope run`` reach the program it starts through one variable."""
    text = environ.get(EXPLICIT_ENV)
    if not text:
        return {}
    try:
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("not an object")
    except ValueError:
        problems.append(Problem(EXPLICIT_ENV, text, "expected a JSON object", "no explicit settings"))
        return {}
    return value


def _resolve(
    spec: SettingSpec, candidates: list[tuple[Origin, Any, Path]], cwd: Path
) -> tuple[Any, Origin, list[tuple[Origin, Any, str]]]:
    rejected: list[tuple[Origin, Any, str]] = []
    for origin, raw, base in candidates:
        try:
            value = spec.parse(_anchor(spec, raw, base))
        except ValueError as error:
            rejected.append((origin, raw, str(error)))
            continue
        return _absolute(value, cwd), origin, rejected
    return _absolute(spec.default, cwd), Origin("default"), rejected


def _anchor(spec: SettingSpec, raw: Any, base: Path) -> Any:
    """Relative paths in a settings file are taken from the file's folder, not the working directory."""
    if spec.parse in _PATH_PARSERS and isinstance(raw, str) and raw.strip():
        path = Path(raw.strip()).expanduser()
        return str(path if path.is_absolute() else base / path)
    return raw


def _absolute(value: Any, cwd: Path) -> Any:
    if isinstance(value, Path) and not value.is_absolute():
        return cwd / value
    return value


def _read_config_file(
    environ: Mapping[str, str], cwd: Path, problems: list[Problem]
) -> tuple[Path | None, dict[str, Any]]:
    named = environ.get(CONFIG_FILE_ENV, "").strip()
    if named:
        path = Path(named).expanduser()
        path = path if path.is_absolute() else cwd / path
        table = _read_table(path, problems, CONFIG_FILE_ENV)
        return (path, table) if table is not None else (None, {})
    for folder in (cwd, *cwd.parents):
        own = folder / "execscope.toml"
        if own.is_file():
            table = _read_table(own, problems, str(own))
            return (own, table) if table is not None else (None, {})
        project = folder / "pyproject.toml"
        if project.is_file():
            table = _read_table(project, problems, str(project))
            if table is not None and table:
                return project, table
    return None, {}


def _read_table(path: Path, problems: list[Problem], where: str) -> dict[str, Any] | None:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        problems.append(Problem(where, str(path), f"cannot be read as TOML ({error})", "no settings file"))
        return None
    if path.name == "pyproject.toml":
        table = document.get("tool", {}).get("execscope", {})
    else:
        table = document.get("tool", {}).get("execscope", document)
    if not isinstance(table, dict):
        problems.append(Problem(where, str(path), "[tool.execscope] is not a table", "no settings file"))
        return None
    return dict(table)


_state_lock = threading.Lock()
_current: LoadedSettings | None = None
_reported: set[str] = set()


def get_settings() -> LoadedSettings:
    """The process's settings, loaded once; its problems are logged once per process."""
    global _current
    with _state_lock:
        if _current is None:
            _current = load_settings()
            report_problems(_current.problems)
        return _current


def use_settings(loaded: LoadedSettings) -> None:
    """Make ``loaded`` the process's settings (explicit configuration), reporting its problems once."""
    global _current
    with _state_lock:
        _current = loaded
        report_problems(loaded.problems)


def report_problems(problems: Iterable[Problem]) -> None:
    """Log each problem as one warning line, once per process however often it is found."""
    for problem in problems:
        line = problem.message()
        if line not in _reported:
            _reported.add(line)
            _logger.warning(line)


def settings_as_dict(settings: Settings) -> dict[str, Any]:
    return {item.name: getattr(settings, item.name) for item in dataclasses.fields(settings)}
