"""``execscope plan show`` and ``execscope rewrite``: what the auto-instrumentor will do, in advance."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import clean_environment, execscope, execscope_json
from execscope.autotrace import _code_rewrite
from execscope.plan import Plan, Target, dump_plan

MODULE = '''"""A module."""
import functools


class Cart:
    def add(self, item):
        self.items = [*getattr(self, "items", []), item]
        return len(self.items)

    def __repr__(self):
        return "Cart()"


def total(prices):
    return sum(prices)


def hot(x):
    return x
'''


def write_plan(path: Path) -> Path:
    plan = Plan(
        targets=(
            Target("shop", level="args", reason="default for the module"),
            Target("shop:hot", level="off", reason="hot and trivial"),
            Target("shop:Cart", level="full", sample_rate=0.5, min_duration_ms=2.0, stateful=True),
        )
    )
    path.write_text(dump_plan(plan), encoding="utf-8")
    return path


def test_rewrite_prints_the_module_as_it_will_run(tmp_path: Path) -> None:
    source = tmp_path / "shop.py"
    source.write_text(MODULE, encoding="utf-8")

    result = execscope("rewrite", source, env=clean_environment(), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    printed = result.stdout
    ast.parse(printed)  # valid Python
    assert "with __execscope_sites__" in printed
    assert ".ret(sum(prices))" in printed
    assert "return 'Cart()'" in printed  # __repr__ is never rewritten
    assert printed.startswith('"""A module."""')  # the docstring stays first


@pytest.mark.skipif(not _code_rewrite.AVAILABLE, reason="the bytecode rewrite is not compiled here")
def test_rewrite_prints_the_rewritten_compiled_code_on_request(tmp_path: Path) -> None:
    source = tmp_path / "shop.py"
    source.write_text(MODULE, encoding="utf-8")

    result = execscope("rewrite", "--bytecode", source, env=clean_environment(), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    total = result.stdout.split("Disassembly of <code object total")[1].split("Disassembly of")[0]
    assert "(__execscope_sites__)" in total and "BEFORE_WITH" in total  # the site's __enter__
    assert "(ret_leave)" in total  # the return value kept, the call ended
    assert "WITH_EXCEPT_START" in total  # the exception handed to __exit__
    repr_code = result.stdout.split("Disassembly of <code object __repr__")[1].split("Disassembly of")[0]
    assert "__execscope_sites__" not in repr_code  # __repr__ is never rewritten


def test_rewrite_follows_the_configured_plan(tmp_path: Path) -> None:
    source = tmp_path / "shop.py"
    source.write_text(MODULE, encoding="utf-8")
    env = clean_environment(EXECSCOPE_PLAN=str(write_plan(tmp_path / "plan.toml")))

    printed = execscope("rewrite", source, env=env, cwd=tmp_path).stdout

    tree = ast.parse(printed)
    hot = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "hot")
    assert ast.unparse(hot.body[0]) == "return x"  # level off: left as written
    assert "'Cart.add', 6, ('self', 'item')" in printed
    assert ", 3, 0.5, 0.002)" in printed  # Cart.add: full, sampled at 0.5, 2 ms minimum


def test_rewrite_reports_a_file_that_does_not_parse(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n", encoding="utf-8")

    result = execscope("rewrite", broken, env=clean_environment(), cwd=tmp_path)

    assert result.returncode == 1
    assert "broken.py cannot be parsed" in result.stderr


def test_plan_show_prints_the_selection_and_every_target(tmp_path: Path) -> None:
    env = clean_environment(
        EXECSCOPE_PLAN=str(write_plan(tmp_path / "plan.toml")),
        EXECSCOPE_AUTOTRACE_EXCLUDE="shop.vendor",
        EXECSCOPE_AUTOTRACE_LEVEL="timing",
    )

    text = execscope("plan", "show", env=env, cwd=tmp_path).stdout
    document = execscope_json("plan", "show", env=env, cwd=tmp_path)

    assert f"plan: {tmp_path / 'plan.toml'}" in text
    assert "excluded: shop.vendor" in text
    assert "level of functions no target covers: timing" in text
    assert "hot and trivial" in text
    assert document["default_level"] == "timing"
    assert document["exclude"] == ["shop.vendor"]
    assert document["application_roots"] == [str(tmp_path.resolve())]
    assert [t["pattern"] for t in document["targets"]] == ["shop", "shop:Cart", "shop:hot"]
    cart = document["targets"][1]
    assert (cart["level"], cart["sample_rate"], cart["min_duration_ms"], cart["stateful"]) == (
        "full",
        0.5,
        2.0,
        True,
    )


def test_plan_show_without_a_plan_says_what_is_selected(tmp_path: Path) -> None:
    text = execscope("plan", "show", env=clean_environment(), cwd=tmp_path).stdout

    assert "plan: (none" in text
    assert f"application files under {tmp_path.resolve()}" in text
    assert "level of functions no target covers: full" in text


def test_plan_show_names_a_broken_plan_file(tmp_path: Path) -> None:
    broken = tmp_path / "plan.toml"
    broken.write_text("version = 1\n[[targets]]\npattern = 'app'\nlevel = 'loud'\n", encoding="utf-8")

    result = execscope("plan", "show", "--plan", broken, env=clean_environment(), cwd=tmp_path)

    assert result.returncode == 1
    assert "cannot be used" in result.stderr and "loud" in result.stderr
