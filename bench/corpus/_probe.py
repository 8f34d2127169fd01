"""A pytest plugin loaded into both runs of a library's suite (``-p execscope_corpus_probe``).

It is copied next to the run (it is not importable from the library's virtual environment
otherwise) and does two things, identically with and without execscope:

* Hypothesis tests get no deadline, no too-slow health check, no example database and
  derandomized examples. A traced run is several times slower, and a 200 ms deadline turns
  that into failures that say nothing about behaviour; derandomizing makes both runs try the
  same examples, so a difference is a difference of behaviour, not of luck.
* At the end of the session it writes what the auto-instrumentor did to the JSON file named
  by ``EXECSCOPE_CORPUS_PROBE``: the rewritten modules of the library and the recorder's
  counters. It never imports execscope itself, so the plain run stays plain.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest

# Not EXECSCOPE_*: execscope reads that prefix as its settings and warns about unknown ones.
PROBE_ENV = "CORPUS_PROBE_REPORT"
PACKAGES_ENV = "CORPUS_PROBE_PACKAGES"


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # trylast: after the library's own conftest has loaded its profile, which is kept as the parent.
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:
        return
    current = settings()
    suppressed = [*current.suppress_health_check, HealthCheck.too_slow]
    settings.register_profile(
        "execscope-corpus",
        current,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=suppressed,
    )
    settings.load_profile("execscope-corpus")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get(PROBE_ENV)
    if target:
        with open(target, "w", encoding="utf-8") as handle:
            json.dump(autotrace_report(), handle, indent=2)


def _covered(name: str, packages: list[str]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def _sites(name: str, module: object) -> list[Any] | None:
    """The rewritten functions of a module: from the runtime's registry, or a module global."""
    runtime = sys.modules.get("execscope.autotrace._runtime")
    sites_of = getattr(runtime, "sites_of", None)
    sites = sites_of(name) if callable(sites_of) else None
    if not isinstance(sites, list):
        sites = getattr(module, "__execscope_sites__", None)
    return sites if isinstance(sites, list) else None


def autotrace_report() -> dict[str, Any]:
    """What the auto-instrumentor did in this process (``active`` is False without it)."""
    packages = [p for p in os.environ.get(PACKAGES_ENV, "").split(",") if p]
    report: dict[str, Any] = {
        "active": False,
        "rewritten_modules": [],
        "rewritten_functions": 0,
        "failed_modules": [],
        "stats": {},
    }
    autotrace = sys.modules.get("execscope.autotrace")
    if autotrace is None:
        return report
    modules = {
        name: len(sites)
        for name, module in list(sys.modules.items())
        if _covered(name, packages) and (sites := _sites(name, module)) is not None
    }
    report["rewritten_modules"] = sorted(modules)
    report["rewritten_functions"] = sum(modules.values())
    finder = autotrace.active_finder()
    report["active"] = finder is not None
    if finder is not None:
        report["failed_modules"] = list(finder.failed)
    report["stats"] = autotrace.stats().as_dict()
    return report
