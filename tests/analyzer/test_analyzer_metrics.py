"""Per-function complexity, nesting, size, loops, recursion and I/O indicators."""

from __future__ import annotations

from pathlib import Path

from analyzer_helpers import fixture_path

from execscope.analyzer import FunctionMetrics, analyze_project

SOURCE = """\
import socket
import subprocess

import requests


def branchy(items, flag):
    total = 0
    for item in items:
        if item > 0 and flag:
            total += item
        elif item < 0 or not flag:
            while total > 100:
                total -= 1
        else:
            try:
                total /= item
            except ZeroDivisionError:
                pass
    return total


def walk(node):
    return [walk(child) for child in node.children]


def fetch(url):
    with open("cache.txt") as fh:
        fh.read()
    requests.get(url)
    socket.create_connection(("h", 1))
    subprocess.run(["ls"])


async def pull(client):
    return await client.get("/x")


def nested():
    def inner():
        if True:
            return 1
    return inner
"""


def _metrics(tmp_path: Path, name: str) -> FunctionMetrics:
    (tmp_path / "m.py").write_text(SOURCE)
    found = analyze_project(tmp_path).function(f"m:{name}")
    assert found is not None
    return found


def test_cyclomatic_complexity_counts_branches_loops_handlers_and_boolean_operands(tmp_path: Path) -> None:
    # 1 + for + if + and + elif + or + while + except = 8
    assert _metrics(tmp_path, "branchy").cyclomatic == 8


def test_max_nesting_depth_counts_nested_blocks(tmp_path: Path) -> None:
    assert _metrics(tmp_path, "branchy").max_nesting == 4  # for > if/elif > while|try > ...


def test_size_is_reported_in_lines_and_statements(tmp_path: Path) -> None:
    metrics = _metrics(tmp_path, "branchy")
    assert metrics.lines == 14
    assert metrics.statements == 11


def test_loops_include_comprehensions(tmp_path: Path) -> None:
    assert _metrics(tmp_path, "branchy").loops == 2
    assert _metrics(tmp_path, "walk").loops == 1


def test_direct_self_call_is_recursion(tmp_path: Path) -> None:
    assert _metrics(tmp_path, "walk").recursive
    assert not _metrics(tmp_path, "branchy").recursive


def test_io_indicators_name_each_kind_of_io(tmp_path: Path) -> None:
    assert _metrics(tmp_path, "fetch").io == ("file", "http", "socket", "subprocess")
    assert _metrics(tmp_path, "branchy").io == ()


def test_awaited_network_style_call_on_an_unknown_client_is_io(tmp_path: Path) -> None:
    assert _metrics(tmp_path, "pull").io == ("await-network",)


def test_nested_function_is_measured_separately_from_its_parent(tmp_path: Path) -> None:
    assert _metrics(tmp_path, "nested").cyclomatic == 1
    assert _metrics(tmp_path, "nested.<locals>.inner").cyclomatic == 2


def test_call_sites_inside_loops_are_counted_for_the_callee() -> None:
    analysis = analyze_project(fixture_path("library"))
    square = analysis.function("mathlib.vectors:square")
    assert square is not None
    assert (square.loop_call_sites, square.call_sites) == (2, 2)
    norms = analysis.function("mathlib.vectors:norms")
    assert norms is not None and norms.callees == ("mathlib.vectors:square",)


def test_db_access_is_an_io_indicator() -> None:
    metrics = analyze_project(fixture_path("db_module")).function("store.db:raw_count")
    assert metrics is not None and metrics.io == ("db",)
