"""Programs started with ``execscope run`` have their own functions traced and behave as without it.

Each test writes a small project into a temporary folder, starts it as a user would (``execscope
run app.py``, ``execscope run -- python [options] app.py``, ``execscope run -m pkg``), compares what
the program saw with a plain ``python`` start, and reads the recorded calls back from the store.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import BIN, execscope, execscope_json, run

PYTHON = str(BIN / "python")
SITE_PACKAGES = f".venv/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"

Call = tuple[str, str, dict[str, str]]


def write_project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return root


def traced_calls(env: dict[str, str], cwd: Path) -> list[Call]:
    """(module, function, captured values) of each call the auto-instrumentor recorded, in order."""
    if not Path(env["EXECSCOPE_STORE"]).exists():
        return []
    spans = execscope_json("query", "--limit", "10000", env=env, cwd=cwd)
    calls = []
    for span in sorted(spans, key=lambda span: span["start_ns"]):
        if span["scope"]["name"] != "execscope.autotrace":
            continue
        attributes = span["attributes"]
        values = {
            key.removeprefix("execscope."): value
            for key, value in attributes.items()
            if key.startswith(("execscope.args.", "execscope.return"))
        }
        qualname = span["name"]
        module = attributes["code.function.name"].removesuffix("." + qualname)
        calls.append((module, qualname, values))
    return calls


def traced_modules(calls: list[Call]) -> set[str]:
    return {module for module, _, _ in calls}


# --- the main script ---------------------------------------------------------------------

FACTS_SCRIPT = """
    import json
    import pickle
    import sys


    class Point:
        def __init__(self, x, y):
            self.x = x
            self.y = y


    def add(a, b):
        return a + b


    copy = pickle.loads(pickle.dumps(Point(1, 2)))
    facts = {
        "argv": sys.argv,
        "path0": sys.path[0],
        "name": __name__,
        "file": __file__,
        "dev_mode": sys.flags.dev_mode,
        "sum": add(2, 3),
        "copy": [type(copy).__qualname__, copy.x, copy.y],
    }
    print(json.dumps(facts))
"""


@pytest.mark.parametrize(
    ("options", "where", "script"),
    [
        pytest.param(None, "project", "app.py", id="execscope run app.py"),
        pytest.param([], "project", "app.py", id="execscope run -- python app.py"),
        pytest.param(["-X", "dev", "-u"], "project", "app.py", id="execscope run -- python -X dev -u app.py"),
        pytest.param(None, "elsewhere", "<absolute>", id="execscope run /elsewhere/app.py"),
        pytest.param(
            ["-W", "error"], ".", "./project/app.py", id="execscope run -- python -W error ./project/app.py"
        ),
    ],
)
def test_the_main_script_is_traced_and_sees_what_plain_python_gives_it(
    env: dict[str, str], tmp_path: Path, options: list[str] | None, where: str, script: str
) -> None:
    project = write_project(tmp_path / "project", {"app.py": FACTS_SCRIPT})
    cwd = tmp_path / where
    cwd.mkdir(exist_ok=True)
    script = str(project / "app.py") if script == "<absolute>" else script
    args = [script, "one", "--two"]

    plain = run([PYTHON, *(options or []), *args], env=env, cwd=cwd)
    if options is None:
        traced = execscope("run", *args, env=env, cwd=cwd)
    else:
        traced = execscope("run", "--", PYTHON, *options, *args, env=env, cwd=cwd)

    assert plain.returncode == traced.returncode == 0, plain.stderr + traced.stderr
    assert traced.stderr == plain.stderr == ""
    facts = json.loads(traced.stdout)
    assert facts == json.loads(plain.stdout)
    assert facts["argv"] == args
    assert facts["path0"] == str(project)
    # __file__ is absolute: the working directory joined to the script as given.
    expected_file = script if Path(script).is_absolute() else f"{cwd}/{script}"
    assert (facts["name"], facts["file"]) == ("__main__", expected_file)
    assert facts["dev_mode"] == ("dev" in (options or []))
    assert facts["copy"] == ["Point", 1, 2]  # a class of the main script pickles by reference
    calls = traced_calls(env, cwd)
    assert [(module, function) for module, function, _ in calls] == [
        ("__main__", "Point.__init__"),  # unpickling does not call __init__
        ("__main__", "add"),
    ]
    assert calls[1][2] == {"args.a": "2", "args.b": "3", "return": "5"}


FAILING_SCRIPT = """
    import sys


    def parse(text):
        return int(text)


    def main(mode):
        print("starting", mode)
        if mode == "exit":
            sys.exit(3)
        return parse(mode)


    main(sys.argv[1])
"""


@pytest.mark.parametrize(
    ("source", "argument", "status"),
    [
        pytest.param(FAILING_SCRIPT, "eighty", 1, id="uncaught exception"),
        pytest.param(FAILING_SCRIPT, "exit", 3, id="sys.exit(3)"),
        pytest.param("print('never')\ndef broken(:\n    pass\n", "x", 1, id="syntax error"),
    ],
)
def test_a_failing_script_fails_exactly_as_under_plain_python(
    env: dict[str, str], tmp_path: Path, source: str, argument: str, status: int
) -> None:
    project = write_project(tmp_path / "project", {"app.py": source})

    plain = run([PYTHON, "app.py", argument], env=env, cwd=project)
    traced = execscope("run", "app.py", argument, env=env, cwd=project)

    assert (traced.returncode, traced.stdout, traced.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    assert traced.returncode == status
    if argument == "eighty":
        # The traceback starts at the script: no frame of the runner or of runpy.
        assert traced.stderr.splitlines()[:2] == [
            "Traceback (most recent call last):",
            f'  File "{project / "app.py"}", line 15, in <module>',
        ]
        assert traced.stderr.endswith("ValueError: invalid literal for int() with base 10: 'eighty'\n")
    if source == FAILING_SCRIPT:  # it ran rewritten all the same
        assert ("__main__", "main", {"args.mode": repr(argument)}) in traced_calls(env, project)


# --- packages run with -m ------------------------------------------------------------------

PACKAGE = {
    "shop/__init__.py": """
        def open_shop(name):
            return f"{name} is open"
    """,
    "shop/__main__.py": """
        import importlib
        import importlib.resources
        import json
        import sys

        import shop
        from catalog.items import lookup
        from shop.cart.totals import total


        def rewritten(module):
            from execscope.autotrace import is_rewritten

            return is_rewritten(module)


        def main(args):
            pricing = importlib.import_module("shop.pricing")
            before = pricing.price(2)
            pricing = importlib.reload(pricing)
            after = pricing.price(3)
            return {
                "argv": sys.argv,
                "file": __file__,
                "results": [shop.open_shop("corner"), total([1, 2]), lookup("tea"), before, after],
                "data": importlib.resources.files("shop").joinpath("data.txt").read_text(),
                "rewritten": [
                    rewritten(module)
                    for module in (sys.modules[__name__], shop, pricing, sys.modules["catalog.items"])
                ],
            }


        print(json.dumps(main(sys.argv[1:])))
    """,
    "shop/data.txt": "a resource next to the code\n",
    "shop/pricing.py": """
        def price(quantity):
            return quantity * 10
    """,
    "shop/cart/__init__.py": "",
    "shop/cart/totals.py": """
        def total(items):
            return sum(items)
    """,
    "catalog/items.py": """
        def lookup(item):
            return item.upper()
    """,
}


def test_execscope_run_dash_m_traces_packages_subpackages_namespace_packages_and_reloads(
    env: dict[str, str], tmp_path: Path
) -> None:
    project = write_project(tmp_path / "project", PACKAGE)

    plain = run([PYTHON, "-m", "shop", "--flag"], env=env, cwd=project)
    traced = execscope("run", "-m", "shop", "--flag", env=env, cwd=project)

    assert plain.returncode == traced.returncode == 0, plain.stderr + traced.stderr
    assert traced.stderr == ""
    facts = json.loads(traced.stdout)
    plain_facts = json.loads(plain.stdout)
    assert plain_facts["rewritten"] == [False, False, False, False]
    assert {**facts, "rewritten": None} == {**plain_facts, "rewritten": None}
    assert facts["argv"] == [str(project / "shop" / "__main__.py"), "--flag"]
    assert facts["results"] == ["corner is open", 3, "TEA", 20, 30]
    assert facts["data"] == "a resource next to the code\n"
    assert facts["rewritten"] == [True, True, True, True]
    calls = traced_calls(env, project)
    assert [(module, function) for module, function, _ in calls] == [
        ("__main__", "main"),
        ("shop.pricing", "price"),
        ("shop.pricing", "price"),  # the reloaded module is rewritten again
        ("shop", "open_shop"),
        ("shop.cart.totals", "total"),
        ("catalog.items", "lookup"),
        ("__main__", "rewritten"),
        ("__main__", "rewritten"),
        ("__main__", "rewritten"),
        ("__main__", "rewritten"),
    ]
    assert [values for module, _, values in calls if module == "shop.pricing"] == [
        {"args.quantity": "2", "return": "20"},
        {"args.quantity": "3", "return": "30"},
    ]


# --- which modules are rewritten -----------------------------------------------------------

SELECTION_PROJECT = {
    "app.py": """
        import json
        import sys

        already = [name for name in ("sortedcontainers", "execscope._launcher") if name in sys.modules]

        import app_core
        import other
        import dep
        import sortedcontainers
        import execscope._launcher


        def main():
            return [app_core.work(1), other.work(2), dep.work(3), len(sortedcontainers.SortedList([3]))]


        main()
        names = ["app_core", "other", "dep", "execscope._launcher"]
        from execscope.autotrace import is_rewritten

        rewritten = {name: is_rewritten(sys.modules[name]) for name in names}
        rewritten["__main__"] = is_rewritten(sys.modules["__main__"])
        rewritten["sortedcontainers"] = any(
            is_rewritten(module)
            for name, module in list(sys.modules.items())
            if name.partition(".")[0] == "sortedcontainers"
        )
        print(json.dumps({"already imported": already, "rewritten": rewritten}))
    """,
    "app_core.py": """
        def work(n):
            return n
    """,
    "other.py": """
        def work(n):
            return n
    """,
    f"{SITE_PACKAGES}/dep.py": """
        def work(n):
            return n
    """,
}


@pytest.mark.parametrize(
    ("settings", "selected"),
    [
        pytest.param({}, {"__main__", "app_core", "other"}, id="default: the application's own files"),
        pytest.param(
            {"EXECSCOPE_AUTOTRACE_MODULES": "app_core,dep,execscope,execscope.*"},
            {"app_core", "dep"},
            id="modules by name",
        ),
        pytest.param({"EXECSCOPE_AUTOTRACE_EXCLUDE": "other"}, {"__main__", "app_core"}, id="exclude"),
        pytest.param({"EXECSCOPE_AUTOTRACE": "false"}, set(), id="autotrace off"),
    ],
)
def test_the_selection_settings_decide_which_modules_are_rewritten(
    env: dict[str, str], tmp_path: Path, settings: dict[str, str], selected: set[str]
) -> None:
    """By default only the application's files, never a virtual environment inside the project,
    an installed package (sortedcontainers) or execscope itself, even when named."""
    project = write_project(tmp_path / "project", SELECTION_PROJECT)
    run_env = {**env, **settings, "PYTHONPATH": str(project / SITE_PACKAGES)}

    result = execscope("run", "app.py", env=run_env, cwd=project)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report["already imported"] == []
    everything = {"__main__", "app_core", "other", "dep", "sortedcontainers", "execscope._launcher"}
    assert report["rewritten"] == {name: name in selected for name in everything}
    assert traced_modules(traced_calls(env, project)) == selected


PLAN = """
    version = 1

    [[targets]]
    pattern = "app_core:summary"
    level = "timing"

    [[targets]]
    pattern = "noisy"
    level = "off"

    [[targets]]
    pattern = "dep"
    level = "args"
"""


def test_a_plan_sets_levels_per_function_turns_modules_off_and_selects_modules(
    env: dict[str, str], tmp_path: Path
) -> None:
    project = write_project(
        tmp_path / "project",
        {
            "plan.toml": PLAN,
            "app.py": """
                import app_core
                import dep
                import noisy

                app_core.add(1, 2)
                app_core.summary([1, 2, 3])
                noisy.chatter("loud")
                dep.work(4)
                from execscope.autotrace import is_rewritten

                print(is_rewritten(noisy))
            """,
            "app_core.py": """
                def add(a, b):
                    return a + b


                def summary(items):
                    return len(items)
            """,
            "noisy.py": """
                def chatter(text):
                    return text
            """,
            f"{SITE_PACKAGES}/dep.py": """
                def work(n):
                    return n * 2
            """,
        },
    )
    run_env = {
        **env,
        "EXECSCOPE_PLAN": str(project / "plan.toml"),
        "PYTHONPATH": str(project / SITE_PACKAGES),
    }

    result = execscope("run", "app.py", env=run_env, cwd=project)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "False\n"  # a module the plan turns off is not rewritten
    assert traced_calls(env, project) == [
        ("app_core", "add", {"args.a": "1", "args.b": "2", "return": "3"}),  # the default level, full
        ("app_core", "summary", {}),  # timing: the call only
        ("dep", "work", {"args.n": "4", "return": "8"}),  # selected by the plan though installed
    ]


# --- start-up order and caching --------------------------------------------------------------


def test_modules_imported_before_tracing_starts_are_named_in_one_warning(
    env: dict[str, str], tmp_path: Path
) -> None:
    function = """
        def work(n):
            return n
    """
    project = write_project(
        tmp_path / "project",
        {
            "early_one.py": function,
            "early_two.py": function,
            "late.py": function,
            "app.py": """
                import json

                import early_one
                import early_two
                import execscope

                execscope.configure()
                import late

                late.work(1)
                from execscope.autotrace import is_rewritten

                print(json.dumps([is_rewritten(m) for m in (early_one, early_two, late)]))
            """,
        },
    )

    result = run([PYTHON, "app.py"], env=env, cwd=project)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "[false, false, true]\n"
    early, main_script = result.stderr.splitlines()
    assert early == (
        "execscope: these modules were imported before auto-tracing started and are not traced: "
        "early_one, early_two"
    )
    assert main_script.startswith("execscope: app.py runs as the main script and is not rewritten")
    assert "`execscope run app.py`" in main_script
    assert traced_calls(env, project) == [("late", "work", {"args.n": "1", "return": "1"})]


def test_rewritten_code_is_cached_under_its_own_name_and_the_plain_pyc_stays_plain(
    env: dict[str, str], tmp_path: Path
) -> None:
    writing_env = {key: value for key, value in env.items() if key != "PYTHONDONTWRITEBYTECODE"}
    project = write_project(
        tmp_path / "project",
        {
            "app.py": "import helper\n\nprint(helper.double(21))\n",
            "helper.py": """
                def double(n):
                    return n * 2
            """,
        },
    )
    cache = project / "__pycache__"
    tag = sys.implementation.cache_tag

    first = execscope("run", "app.py", env=writing_env, cwd=project)
    assert (first.returncode, first.stdout) == (0, "42\n"), first.stderr
    (rewritten,) = cache.iterdir()  # only the rewrite: the plain pyc is not written
    assert re.fullmatch(rf"helper\.{tag}\.execscope-[0-9a-f]{{12}}\.pyc", rewritten.name)
    written = rewritten.stat().st_mtime_ns

    plain = run(
        [PYTHON, "-c", "import helper, execscope.autotrace as a; print(a.is_rewritten(helper))"],
        writing_env,
        project,
    )
    assert (plain.returncode, plain.stdout) == (0, "False\n"), plain.stderr
    plain_pyc = cache / f"helper.{tag}.pyc"
    assert sorted(cache.iterdir()) == sorted([plain_pyc, rewritten])
    plain_bytes = plain_pyc.read_bytes()

    second = execscope("run", "app.py", env=writing_env, cwd=project)
    assert (second.returncode, second.stdout) == (0, "42\n"), second.stderr
    assert rewritten.stat().st_mtime_ns == written  # read from the cache, not rewritten again
    assert plain_pyc.read_bytes() == plain_bytes
    assert traced_calls(env, project) == [("helper", "double", {"args.n": "21", "return": "42"})] * 2
