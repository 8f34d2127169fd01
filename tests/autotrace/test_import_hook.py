"""The import hook in-process: its cache of rewritten code, its failure modes, the selection of
modules, and how the launcher turns a command line into one that runs the script rewritten."""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from autotrace_helpers import BYTECODE, recording, unique_module_name

import execscope.autotrace._hook as hook
from conftest import BIN
from execscope._launcher import command_line
from execscope.autotrace._code_rewrite import rewrite_code
from execscope.autotrace._hook import RewritingFinder, RewritingLoader, cache_tag, is_rewritten
from execscope.autotrace._levels import FULL, TIMING
from execscope.autotrace._rewriter import rewrite_tree
from execscope.autotrace._script import SCRIPT_RUNNER_MODULE, script_index
from execscope.autotrace._selection import Selection, default_roots
from execscope.plan import Plan, Target

MODULE_SOURCE = """
def double(n):
    return n * 2
"""


def hook_import(folder: Path, name: str, selection: Selection) -> ModuleType:
    """Import ``folder/<name>.py`` through a new ``RewritingFinder`` (as a new process would)."""
    spec = RewritingFinder(selection, bytecode=BYTECODE).find_spec(name, [str(folder)])
    assert spec is not None and isinstance(spec.loader, RewritingLoader), f"{name} was not selected"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain_import(folder: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rewritten(module: ModuleType) -> bool:
    return is_rewritten(module)


def cache_files(folder: Path) -> list[str]:
    cache = folder / "__pycache__"
    return sorted(path.name for path in cache.iterdir()) if cache.exists() else []


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture
def selection(project: Path) -> Selection:
    return Selection(roots=(str(project),), default_level=FULL)


@pytest.fixture
def writes_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytecode caches are written as in a normal start (the test run may have turned them off)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", False)


@pytest.fixture
def rewrites(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the modules the hook rewrites (compiles from source) from now on."""
    calls: list[str] = []
    original = RewritingFinder.rewrite

    def spy(self: RewritingFinder, module: str, *args: object, **kwargs: object) -> object:
        calls.append(module)
        return original(self, module, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(RewritingFinder, "rewrite", spy)
    yield calls


def module_in(project: Path, source: str = MODULE_SOURCE) -> str:
    name = unique_module_name("cached")
    (project / f"{name}.py").write_text(source, encoding="utf-8")
    return name


# --- the cache of rewritten code ------------------------------------------------------------


@pytest.mark.usefixtures("writes_bytecode")
def test_the_first_import_caches_the_rewrite_and_the_next_one_reads_it_without_rewriting(
    project: Path, selection: Selection, rewrites: list[str]
) -> None:
    name = module_in(project)

    first = hook_import(project, name, selection)
    assert rewrites == [name]
    tag = sys.implementation.cache_tag
    assert cache_files(project) == [
        f"{name}.{tag}.execscope-{cache_tag(selection.fingerprint(), name, True)}.pyc"
    ]

    with recording() as spans:
        second = hook_import(project, name, selection)
        assert second.double(21) == 42
        recorded = spans.span("double")
    assert rewrites == [name]  # read from the cache
    assert rewritten(first) and rewritten(second)
    assert dict(recorded.attributes or {})["execscope.args.n"] == "21"


@pytest.mark.usefixtures("writes_bytecode")
def test_the_plain_pyc_is_never_overwritten_with_rewritten_code(project: Path, selection: Selection) -> None:
    name = module_in(project)
    plain_pyc = Path(importlib.util.cache_from_source(str(project / f"{name}.py")))

    assert rewritten(hook_import(project, name, selection))
    assert not plain_pyc.exists()
    assert not rewritten(plain_import(project, name))
    plain_bytes = plain_pyc.read_bytes()

    assert rewritten(hook_import(project, name, selection))
    assert not rewritten(plain_import(project, name))
    assert plain_pyc.read_bytes() == plain_bytes
    assert len(cache_files(project)) == 2


@pytest.mark.usefixtures("writes_bytecode")
def test_editing_the_source_invalidates_the_cached_rewrite(
    project: Path, selection: Selection, rewrites: list[str]
) -> None:
    name = module_in(project)
    hook_import(project, name, selection)

    source = project / f"{name}.py"
    source.write_text(MODULE_SOURCE + "\n\ndef triple(n):\n    return n * 3\n", encoding="utf-8")
    with recording() as spans:
        edited = hook_import(project, name, selection)
        assert edited.triple(2) == 6
        assert spans.span("triple").attributes is not None
    assert rewrites == [name, name]
    assert len(cache_files(project)) == 1  # the new rewrite replaced the stale one


@pytest.mark.usefixtures("writes_bytecode")
def test_a_different_plan_or_level_uses_its_own_cache_file(
    project: Path, selection: Selection, rewrites: list[str]
) -> None:
    name = module_in(project)
    planned = Selection(roots=selection.roots, plan=Plan(targets=(Target(f"{name}:double", level="timing"),)))
    timing = Selection(roots=selection.roots, default_level=TIMING)
    fingerprints = {s.fingerprint() for s in (selection, planned, timing)}
    assert len(fingerprints) == 3

    for each in (selection, planned, timing, selection, planned, timing):
        hook_import(project, name, each)

    assert rewrites == [name] * 3  # each selection rewrote once, then read its own cache
    tag = sys.implementation.cache_tag
    assert cache_files(project) == sorted(
        f"{name}.{tag}.execscope-{cache_tag(fp, name, True)}.pyc" for fp in fingerprints
    )
    with recording() as spans:
        hook_import(project, name, planned).double(5)
        assert "execscope.args.n" not in dict(spans.span("double").attributes or {})  # timing level


@pytest.mark.usefixtures("writes_bytecode")
def test_a_file_imported_under_two_names_keeps_a_rewrite_for_each(
    project: Path, selection: Selection, rewrites: list[str]
) -> None:
    package = project / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "shared.py").write_text(MODULE_SOURCE, encoding="utf-8")
    finder = RewritingFinder(selection, bytecode=BYTECODE)

    def load(name: str, folder: Path) -> ModuleType:
        spec = finder.find_spec(name, [str(folder)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    # The same file as a submodule of its package and as a top-level module (both folders on
    # the path): its sites are keyed by the module's name, and the plan may treat them apart.
    load("pkg.shared", package)
    load("shared", package)
    assert len(cache_files(package)) == 2
    with recording() as spans:
        as_submodule, as_module = load("pkg.shared", package), load("shared", package)
        assert as_submodule.double(1) == as_module.double(1) == 2
        names = sorted(str(dict(span.attributes or {})["code.function.name"]) for span in spans.spans())
    assert rewrites == ["pkg.shared", "shared"]  # the second time, each from its own cache file
    assert names == ["pkg.shared.double", "shared.double"]


# --- what the hook cannot rewrite ------------------------------------------------------------


@pytest.mark.usefixtures("writes_bytecode")
def test_a_module_the_rewriter_cannot_handle_is_imported_unmodified_with_one_warning(
    project: Path, selection: Selection, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    name = module_in(project)

    def unsupported(*args: object, **kwargs: object) -> object:
        raise RuntimeError("unsupported construct")

    monkeypatch.setattr(hook, "rewrite_tree", unsupported)  # either rewrite: of the tree ...
    monkeypatch.setattr(hook._code_rewrite, "rewrite_code", unsupported)  # ... or of the compiled code
    with caplog.at_level(logging.WARNING, logger="execscope.autotrace"):
        module = hook_import(project, name, selection)

    assert module.double(4) == 8
    assert not rewritten(module)
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING
    assert name in warning.getMessage()
    assert "RuntimeError: unsupported construct" in warning.getMessage()

    # The unmodified code is not cached as if it were the rewrite: once the rewriter can handle
    # the module (a fixed execscope), the next start rewrites it.
    monkeypatch.setattr(hook, "rewrite_tree", rewrite_tree)
    monkeypatch.setattr(hook._code_rewrite, "rewrite_code", rewrite_code)
    assert rewritten(hook_import(project, name, selection))


@pytest.mark.parametrize("collecting", [True, False], ids=["collector on", "collector off"])
def test_the_cyclic_collector_pauses_while_a_module_is_rewritten_and_is_left_as_the_program_set_it(
    project: Path, selection: Selection, monkeypatch: pytest.MonkeyPatch, collecting: bool
) -> None:
    name = module_in(project)
    seen: list[bool] = []

    def observed(rewrite: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            seen.append(gc.isenabled())
            return rewrite(*args, **kwargs)

        return run

    # Whichever rewrite runs here: of the compiled code where that pass is compiled, else of the tree.
    monkeypatch.setattr(hook, "rewrite_tree", observed(rewrite_tree))
    monkeypatch.setattr(hook._code_rewrite, "rewrite_code", observed(hook._code_rewrite.rewrite_code))
    was = gc.isenabled()
    (gc.enable if collecting else gc.disable)()
    try:
        module = hook_import(project, name, selection)
        assert gc.isenabled() is collecting
    finally:
        (gc.enable if was else gc.disable)()
    assert seen == [False]
    assert rewritten(module)


def test_a_syntax_error_is_raised_as_without_execscope(
    project: Path, selection: Selection, caplog: pytest.LogCaptureFixture
) -> None:
    name = module_in(project, "def fine():\n    return 1\n\ndef broken(:\n    pass\n")

    def details(error: SyntaxError) -> tuple[object, ...]:
        return (type(error), error.msg, error.filename, error.lineno, error.offset, error.text)

    with pytest.raises(SyntaxError) as plain:
        plain_import(project, name)
    with caplog.at_level(logging.WARNING, logger="execscope.autotrace"), pytest.raises(SyntaxError) as hooked:
        hook_import(project, name, selection)

    assert details(hooked.value) == details(plain.value)
    assert hooked.value.filename == str(project / f"{name}.py")
    assert caplog.records == []  # not reported as a module execscope could not rewrite


# --- which modules are selected -------------------------------------------------------------

VENV_SITE = f".venv/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


@pytest.mark.parametrize(
    ("module", "location", "include", "exclude", "selected"),
    [
        ("app", "app.py", (), (), True),
        ("app.views", "app/views.py", (), (), True),
        ("dep", f"{VENV_SITE}/dep.py", (), (), False),
        ("dep", "vendor/dist-packages/dep.py", (), (), False),
        ("json", "<stdlib>", (), (), False),
        ("sortedcontainers.sortedlist", "<installed>", (), (), False),
        ("elsewhere", "<outside>", (), (), False),
        ("execscope._launcher", "<execscope>", (), (), False),
        ("dep", f"{VENV_SITE}/dep.py", ("dep",), (), True),
        ("sortedcontainers.sortedlist", "<installed>", ("sortedcontainers.*",), (), True),
        ("app", "app.py", ("dep",), (), False),
        ("execscope._launcher", "<execscope>", ("execscope", "execscope.*"), (), False),
        ("app.views", "app/views.py", (), ("app",), False),
        ("app_views", "app_views.py", (), ("app",), True),
    ],
)
def test_the_default_selection_is_the_applications_own_files(
    project: Path,
    module: str,
    location: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    selected: bool,
) -> None:
    import json.decoder

    import sortedcontainers.sortedlist

    import execscope._launcher

    files = {
        "<stdlib>": json.decoder.__file__,
        "<installed>": sortedcontainers.sortedlist.__file__,
        "<execscope>": execscope._launcher.__file__,
        "<outside>": str(project.parent / "elsewhere.py"),
    }
    filename = files.get(location, str(project / location))
    selection = Selection(roots=(str(project),), include=include, exclude=exclude)

    assert selection.selects(module, filename) is selected


def test_a_module_is_the_applications_where_its_links_lead_not_where_it_is_found(
    project: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "lib").mkdir(parents=True)
    (elsewhere / "lib" / "outside.py").write_text("x = 1\n")
    (project / "linked_lib").symlink_to(elsewhere / "lib", target_is_directory=True)
    (project / "linked_file.py").symlink_to(elsewhere / "lib" / "outside.py")
    (project / "own.py").write_text("x = 1\n")
    (elsewhere / "into_project.py").symlink_to(project / "own.py")
    selection = Selection(roots=(str(project),))

    assert selection.selects("own", str(project / "own.py"))
    assert not selection.selects("linked_lib.outside", str(project / "linked_lib" / "outside.py"))
    assert not selection.selects("linked_file", str(project / "linked_file.py"))
    assert selection.selects("into_project", str(elsewhere / "into_project.py"))
    # Asked again (the folder's real path is remembered), the answers are the same.
    assert not selection.selects("linked_lib.outside", str(project / "linked_lib" / "outside.py"))
    assert selection.selects("own", str(project / "own.py"))


@pytest.fixture
def searched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names ``PathFinder`` is asked to find, by the hook or by the import system."""
    names: list[str] = []
    search = hook.PathFinder.find_spec

    def counted(name: str, *args: Any, **kwargs: Any) -> Any:
        names.append(name)
        return search(name, *args, **kwargs)

    monkeypatch.setattr(hook.PathFinder, "find_spec", counted)
    return names


def test_a_submodule_of_an_installed_package_is_passed_over_without_searching_for_it(
    project: Path, tmp_path: Path, searched: list[str]
) -> None:
    installed = tmp_path / "site-packages" / "library"
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text("")
    (installed / "part.py").write_text("def f():\n    return 1\n")
    (project / "own").mkdir()
    (project / "own" / "__init__.py").write_text("")
    (project / "own" / "part.py").write_text("def f():\n    return 1\n")
    finder = RewritingFinder(Selection(roots=(str(project),), default_level=FULL), bytecode=BYTECODE)

    assert finder.find_spec("library.part", [str(installed)]) is None
    assert searched == []
    spec = finder.find_spec("own.part", [str(project / "own")])
    assert spec is not None and isinstance(spec.loader, RewritingLoader)
    assert searched == ["own.part"]


class _Elsewhere:
    """A finder of the program's own, that finds nothing."""

    def find_spec(self, *args: object) -> None:
        return None


def test_the_finder_sits_right_before_path_finder_and_hands_on_what_it_does_not_rewrite(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, searched: list[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    names = [unique_module_name("unselected") for _ in range(2)]
    for name in names:
        (elsewhere / f"{name}.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(elsewhere))
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    finder = hook.install_finder(Selection(roots=(str(project),), default_level=FULL), bytecode=BYTECODE)
    try:
        assert sys.meta_path[sys.meta_path.index(finder) + 1] is hook.PathFinder
        first = importlib.import_module(names[0])
        assert first.VALUE == 42 and not rewritten(first)
        assert searched.count(names[0]) == 1  # found once, by the hook, and handed on as found

        # With a finder of the program's between the hook and PathFinder, that finder is asked.
        sys.meta_path.insert(sys.meta_path.index(finder) + 1, _Elsewhere())
        assert finder.find_spec(names[1], None) is None
        second = importlib.import_module(names[1])
        assert second.VALUE == 42 and not rewritten(second)
    finally:
        for name in names:
            sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("include", "exclude", "planned", "folder", "may"),
    [
        ((), (), False, "<installed>", False),
        ((), (), False, "<project>", True),
        ((), (), False, "<stdlib>", False),
        ((), (), False, "relative/folder", True),
        (("library.*",), (), False, "<installed>", True),
        ((), (), True, "<installed>", True),
        ((), ("library.*",), False, "<project>", False),
    ],
    ids=[
        "installed",
        "the project's",
        "standard library",
        "relative folder: searched",
        "named by an include glob",
        "named by the plan",
        "excluded",
    ],
)
def test_whether_a_package_folder_may_hold_a_selected_module(
    project: Path,
    tmp_path: Path,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    planned: bool,
    folder: str,
    may: bool,
) -> None:
    import json

    folders = {
        "<installed>": str(tmp_path / "site-packages" / "library"),
        "<project>": str(project / "library"),
        "<stdlib>": str(Path(json.__file__).parent),
    }
    plan = Plan(targets=(Target("library.part", level="full"),)) if planned else None
    selection = Selection(roots=(str(project),), include=include, exclude=exclude, plan=plan)

    assert selection.may_select_in("library.part", [folders.get(folder, folder)]) is may


def test_execscope_itself_is_never_found_for_rewriting(project: Path) -> None:
    finder = RewritingFinder(
        Selection(roots=(str(project),), include=("execscope", "execscope.*", "*")), bytecode=BYTECODE
    )
    assert finder.find_spec("execscope._launcher") is None
    assert finder.find_spec("execscope") is None


def test_the_application_root_of_a_script_started_by_the_runner_is_the_scripts_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At start-up ``sys.argv`` of ``python -m execscope.autotrace app.py`` is still ``['-m', ...]``."""
    script = tmp_path / "project" / "app.py"
    script.parent.mkdir()
    script.write_text("")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    monkeypatch.setattr(sys, "argv", ["-m", "one"])
    monkeypatch.setattr(
        sys, "orig_argv", [sys.executable, "-X", "dev", "-m", SCRIPT_RUNNER_MODULE, str(script), "one"]
    )
    assert default_roots() == (str(script.parent.resolve()),)

    monkeypatch.setattr(sys, "orig_argv", [sys.executable, "-m", "pkg", "one"])
    assert default_roots() == (str(elsewhere.resolve()),)


# --- command lines -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "position"),
    [
        (["app.py", "-c", "x"], 0),
        (["-X", "dev", "app.py"], 2),
        (["-Xdev", "app.py"], 1),
        (["-W", "error", "app.py"], 2),
        (["-Werror", "app.py"], 1),
        (["-uB", "app.py"], 1),
        (["-uX", "dev", "app.py"], 2),
        (["-E", "-s", "-O", "app.py", "-m"], 3),
        (["--check-hash-based-pycs", "always", "app.py"], 2),
        (["--", "app.py"], 1),
        (["-u", "--", "-app.py"], 2),
        (["-c", "print(1)", "app.py"], None),
        (["-uc", "print(1)"], None),
        (["-m", "pkg", "app.py"], None),
        (["-Bm", "pkg"], None),
        (["-"], None),
        (["-u", "-", "app.py"], None),
        (["--", "-"], None),  # "--" then "-": the program is read from standard input
        (["--version"], None),
        ([], None),
    ],
)
def test_script_index_finds_the_script_among_the_interpreters_arguments(
    args: list[str], position: int | None
) -> None:
    assert script_index(args) == position


PY = str(BIN / "python")
RUNNER = ["-m", SCRIPT_RUNNER_MODULE]


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ([PY, "app.py", "a"], [PY, *RUNNER, "app.py", "a"]),
        ([PY, "-X", "dev", "app.py", "a"], [PY, "-X", "dev", *RUNNER, "app.py", "a"]),
        ([PY, "-W", "error", "app.py"], [PY, "-W", "error", *RUNNER, "app.py"]),
        ([PY, "-uB", "app.py", "-v"], [PY, "-uB", *RUNNER, "app.py", "-v"]),
        ([PY, "--", "app.py", "--", "x"], [PY, *RUNNER, "app.py", "--", "x"]),
        (["python", "-u", "app.py"], ["python", "-u", *RUNNER, "app.py"]),  # this environment's, on PATH
        ([PY, "-c", "print(1)"], [PY, "-c", "print(1)"]),
        ([PY, "-m", "pkg", "app.py"], [PY, "-m", "pkg", "app.py"]),
        ([PY, "-"], [PY, "-"]),
        ([PY, "--", "-"], [PY, "--", "-"]),
        (["<other>/python", "app.py"], ["<other>/python", "app.py"]),  # another environment's python
        (["node", "app.js"], ["node", "app.js"]),
    ],
)
def test_the_launcher_starts_scripts_of_this_environments_python_through_the_runner(
    program: list[str], expected: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "python").write_text("#!/bin/sh\n")
    (other / "python").chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))

    def resolved(args: list[str]) -> list[str]:
        return [arg.replace("<other>", str(other)) for arg in args]

    assert command_line(None, resolved(program)) == resolved(expected)


def test_the_launcher_runs_a_script_or_a_module_with_this_interpreter() -> None:
    assert command_line(None, ["app.py", "a"]) == [sys.executable, *RUNNER, "app.py", "a"]
    assert command_line("pkg", ["a"]) == [sys.executable, "-m", "pkg", "a"]
    with pytest.raises(ValueError, match="nothing to run"):
        command_line(None, [])
