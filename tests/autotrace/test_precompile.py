"""``execscope compile``: the application's modules rewritten into the cache ahead of a start,
exactly as the import hook would cache them, so that the first start reads them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from autotrace_helpers import BYTECODE

import execscope.autotrace._hook as hook
from conftest import clean_environment, execscope, execscope_json
from execscope.autotrace._hook import RewritingFinder
from execscope.autotrace._levels import FULL
from execscope.autotrace._precompile import module_name, precompile, source_files
from execscope.autotrace._selection import Selection

UTIL = "def increment(n):\n    return n + 1\n"


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write(root / "app" / "__init__.py")
    write(root / "app" / "util.py", UTIL)
    write(root / "app" / "sub" / "__init__.py")
    write(root / "app" / "sub" / "deep.py", UTIL)
    write(root / "main.py", "from app.util import increment\nprint(increment(41))\n")
    return root


def finder_for(root: Path, **options: object) -> RewritingFinder:
    return RewritingFinder(Selection(roots=(str(root),), default_level=FULL, **options), bytecode=BYTECODE)  # type: ignore[arg-type]


def cache_files(folder: Path) -> dict[str, tuple[int, int]]:
    """The rewrite cache files under ``folder``: name -> (inode, modification time)."""
    return {
        str(path.relative_to(folder)): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in folder.rglob("*.execscope-*.pyc")
    }


def test_a_module_is_named_by_the_package_folders_above_it(project: Path) -> None:
    assert module_name(project / "app" / "sub" / "deep.py") == "app.sub.deep"
    assert module_name(project / "app" / "__init__.py") == "app"
    assert module_name(project / "main.py") == "main"


def test_hidden_folders_caches_and_virtual_environments_are_not_searched(project: Path) -> None:
    write(project / ".git" / "hook.py")
    write(project / "app" / "__pycache__" / "stray.py")
    write(project / "venv" / "pyvenv.cfg")
    write(project / "venv" / "lib" / "library.py")
    write(project / "notes.txt")

    found = [str(path.relative_to(project)) for path in source_files([project])]

    assert found == ["main.py", "app/__init__.py", "app/util.py", "app/sub/__init__.py", "app/sub/deep.py"]


def test_each_selected_module_is_rewritten_once_then_found_up_to_date(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # the command writes regardless
    finder = finder_for(project, exclude=("app.sub.*",))

    first = precompile([project], finder)
    second = precompile([project], finder)

    assert sorted(first.rewritten) == ["app", "app.sub", "app.util", "main"]
    assert first.not_selected == ["app.sub.deep"]
    assert sorted(second.up_to_date) == sorted(first.rewritten) and not second.rewritten
    assert sys.dont_write_bytecode is True


def test_what_cannot_be_rewritten_or_compiled_is_reported_by_module(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project / "app" / "broken.py", "def broken(:\n")

    def unsupported(*args: object, **kwargs: object) -> object:
        raise RuntimeError("unsupported construct")

    report = precompile([project / "app" / "broken.py"], finder_for(project))
    (name, error), *_ = report.errors
    assert name == "app.broken" and error.startswith("SyntaxError")

    monkeypatch.setattr(hook, "rewrite_tree", unsupported)
    monkeypatch.setattr(hook._code_rewrite, "rewrite_code", unsupported)
    report = precompile([project / "app" / "util.py"], finder_for(project))
    assert report.unmodified == ["app.util"]
    assert not cache_files(project)  # unmodified code is not cached as the rewrite


def test_a_program_started_after_compile_reads_every_rewrite_from_the_cache(
    project: Path, tmp_path: Path
) -> None:
    env = clean_environment(EXECSCOPE_STORE=str(tmp_path / "store"))

    compiled = execscope("compile", env=env, cwd=project)
    assert compiled.returncode == 0, compiled.stderr
    assert compiled.stdout.startswith("rewrote 5 modules into the cache; 0 up to date")
    cached = cache_files(project)
    assert sorted(name.split(".")[0] for name in cached) == [
        "__pycache__/main",
        "app/__pycache__/__init__",
        "app/__pycache__/util",
        "app/sub/__pycache__/__init__",
        "app/sub/__pycache__/deep",
    ]

    ran = execscope("run", "main.py", env=env, cwd=project)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "42\n"
    # app.util was imported from its cached rewrite: the file is the one compile wrote (a
    # rewrite at run time would have replaced it) and no other rewrite was cached.
    assert cache_files(project) == cached
    (span,) = execscope_json("query", "--function", "app.util.increment", env=env, cwd=project)
    assert span["name"] == "increment"

    again = execscope("compile", "--quiet", env=env, cwd=project)
    assert again.returncode == 0 and again.stdout == ""


def test_compile_fails_when_a_module_would_run_unmodified_or_does_not_compile(
    project: Path, tmp_path: Path
) -> None:
    write(project / "app" / "broken.py", "def broken(:\n")
    env = clean_environment(EXECSCOPE_STORE=str(tmp_path / "store"))

    result = execscope("compile", project / "app", env=env, cwd=tmp_path)

    assert result.returncode == 1
    assert "app.broken: SyntaxError" in result.stderr
