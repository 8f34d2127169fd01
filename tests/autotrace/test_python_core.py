"""The two cores of a rewritten function's site: C (compiled at install) and pure Python.

Both must behave identically; the C one exists only because it is faster. The whole
auto-instrumentor suite runs on the C core in this process, and once more on the Python core in
a child process (``EXECSCOPE_AUTOTRACE_ACCELERATOR=false``), so every behaviour is specified for
both. In CI the C core must have been built: a silent fallback would hide a slow product.
"""

from __future__ import annotations

import os

import pytest
from autotrace_helpers import ACCELERATED, BYTECODE, assert_suite_passes_in_a_child

from execscope.autotrace import _runtime
from execscope.autotrace._levels import ARGS
from execscope.autotrace._recorder import Recorder


def site(*, accelerated: bool, recorder: Recorder | None = None) -> _runtime.Site:
    config = _runtime.RuntimeConfig(active=True, accelerated=accelerated, recorder=recorder or Recorder())
    return _runtime.Site("shop", "total", "shop.py", 3, ("prices",), 0, ARGS, 1.0, 0.0, config)


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="only CI must have a compiler")
def test_ci_builds_the_c_core() -> None:
    assert _runtime.accelerated(), "execscope.autotrace._speedups was not compiled or does not load"


@pytest.mark.skipif(not _runtime.accelerated(), reason="the C core is not compiled here")
def test_a_site_runs_on_the_c_core_unless_the_configuration_says_otherwise() -> None:
    assert isinstance(site(accelerated=True), _runtime.AcceleratedSite)
    assert type(site(accelerated=False)) is _runtime.PythonSite
    for each in (site(accelerated=True), site(accelerated=False)):
        assert isinstance(each, _runtime.Site)
        assert (each.level, each.frames, each.qualname) == (ARGS, {}, "total")


def test_a_site_runs_on_the_python_core_when_asked() -> None:
    recorder = Recorder()
    python_site = site(accelerated=False, recorder=recorder)

    assert type(python_site) is _runtime.PythonSite
    with python_site:  # a local root: recorded
        assert python_site.ret(3) == 3

    assert recorder.pending() == 1
    assert python_site.frames == {}


@pytest.mark.skipif(not ACCELERATED, reason="this run is the Python core's already")
@pytest.mark.skipif(not BYTECODE, reason="the ast rewrite's run: the main run starts the Python core's")
def test_the_whole_suite_passes_on_the_python_core_too() -> None:
    assert_suite_passes_in_a_child(EXECSCOPE_AUTOTRACE_ACCELERATOR="false")
