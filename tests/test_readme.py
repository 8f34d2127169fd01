"""The README is the truth about installing and testing: CI runs its command, and its settings
table is the one the code declares."""

from __future__ import annotations

import re

from conftest import REPO
from execscope.settings import settings_table_markdown


def quick_start_commands() -> list[str]:
    section = REPO.joinpath("README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_the_quick_start_has_exactly_two_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    assert "execscope run examples/hello/main.py" in commands[0]
    assert "execscope show" in commands[0]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci_lines = REPO.joinpath(".ci", "run").read_text().splitlines()
    assert quick_start_commands()[1] in ci_lines


def test_the_readme_settings_table_is_generated_from_the_settings_table() -> None:
    assert settings_table_markdown() in REPO.joinpath("README.md").read_text()
