"""Walking a project: what is analysed, what is skipped, and that skipping never aborts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from analyzer_helpers import fixture_path

from execscope.analyzer import analyze_project


def test_syntax_error_is_skipped_once_and_the_rest_is_still_analysed() -> None:
    analysis = analyze_project(fixture_path("broken"))
    assert [s.path for s in analysis.skipped] == ["pkg/bad.py"]
    assert analysis.skipped[0].reason.startswith("syntax error")
    assert analysis.modules == ("pkg.ok",)
    assert analysis.function("pkg.ok:still_analysed") is not None


def test_huge_generated_file_is_skipped_without_parsing(tmp_path: Path) -> None:
    (tmp_path / "small.py").write_text("def f():\n    return 1\n")
    huge = tmp_path / "generated_pb2.py"
    line = "CONSTANT_{0} = {0}\n"
    with huge.open("w") as out:
        i = 0
        while out.tell() <= (1 << 20):
            out.write(line.format(i))
            i += 1
    analysis = analyze_project(tmp_path)
    assert analysis.modules == ("small",)
    (skipped,) = analysis.skipped
    assert skipped.path == "generated_pb2.py"
    assert "huge generated file" in skipped.reason


def test_vendored_trees_are_pruned_and_reported(tmp_path: Path) -> None:
    project = tmp_path / "vendored"
    shutil.copytree(fixture_path("vendored"), project)
    # Names that .gitignore would drop from the fixture are created here instead.
    for extra in (".venv/lib/python3.11/site-packages/pkg", "build/lib", "dist/pkg"):
        (project / extra).mkdir(parents=True)
        (project / extra / "routes.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    (project / ".git").mkdir()
    (project / ".git" / "hook.py").write_text("def hook(): pass\n")
    analysis = analyze_project(project)
    assert analysis.modules == ("app.core",)
    reported = {s.path for s in analysis.skipped}
    assert reported == {
        ".venv",
        "build",
        "dist",
        "lib/site-packages",
        "node_modules",
        "third_party",
        "vendor",
        "venv",
    }
    assert all(s.reason.startswith("vendored tree") for s in analysis.skipped)
    assert analysis.names_with_role("web_entry") == frozenset()


def test_undecodable_file_is_skipped_and_reported(tmp_path: Path) -> None:
    (tmp_path / "latin.py").write_bytes(b"# -*- coding: utf-8 -*-\nx = '\xff\xfe'\n")
    (tmp_path / "ok.py").write_text("def f():\n    return 1\n")
    analysis = analyze_project(tmp_path)
    assert analysis.modules == ("ok",)
    assert [s.path for s in analysis.skipped] == ["latin.py"]


def test_src_layout_packages_get_their_import_names(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "__init__.py").write_text("")
    (tmp_path / "src" / "pkg" / "core.py").write_text("def f():\n    return 1\n")
    assert analyze_project(tmp_path).modules == ("pkg", "pkg.core")


def test_a_single_file_can_be_analysed(tmp_path: Path) -> None:
    script = tmp_path / "tool.py"
    script.write_text("if __name__ == '__main__':\n    print('hi')\n")
    assert analyze_project(script).names_with_role("cli") == {"tool"}


def test_a_missing_project_path_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        analyze_project(tmp_path / "nope")
