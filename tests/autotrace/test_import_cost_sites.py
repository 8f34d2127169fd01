"""Sites are built when their function is first called, not when their module is imported.

Importing a rewritten module registers its functions and builds nothing: the registry's list for
the module is made at the first lookup of its key, holding placeholders, and each function's
:class:`Site` replaces its placeholder at the function's first call. What the rewritten code
finds from then on, and what ``sites_of`` returns, are real sites; threads calling a function
for the first time together share one site; a site that cannot be built leaves its function
running unrecorded.
"""

from __future__ import annotations

import builtins
import importlib.util
import logging
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from autotrace_helpers import BYTECODE, import_source, recording, unique_module_name

from execscope.attributes import RETURN_VALUE
from execscope.autotrace import _runtime, sites_of
from execscope.autotrace._hook import RewritingFinder
from execscope.autotrace._levels import FULL
from execscope.autotrace._recorder import RECORDER
from execscope.autotrace._rewriter import module_key
from execscope.autotrace._runtime import Site, _PendingSite
from execscope.autotrace._selection import Selection

SOURCE = '''
"""Functions, methods and a generator."""


def first(n):
    return n + 1


def second(n):
    return n * 2


class Box:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


def count(n):
    for i in range(n):
        yield i
    return n


def meet(barrier, n):
    barrier.wait()
    return n * 2
'''
#: The sites' order: the rewriter numbers functions in the order it meets them.
ORDER = ("first", "second", "Box.__init__", "Box.get", "count", "meet")


def registry() -> types.ModuleType:
    found = builtins.__execscope_sites__  # type: ignore[attr-defined]
    assert isinstance(found, types.ModuleType)
    return found


def published(name: str, source: str = SOURCE) -> list[Any] | None:
    """The module's list in the registry, if its code looked it up already (without making it)."""
    found = vars(registry()).get(module_key(name, source.encode("utf-8")))
    return found if isinstance(found, list) else None


def built(name: str) -> list[str]:
    """The qualified names of the module's sites that are built."""
    sites = published(name) or []
    return [site.qualname for site in sites if type(site) is not _PendingSite]


def test_importing_a_module_builds_none_of_its_sites(tmp_path: Path) -> None:
    name = unique_module_name("lazy")
    with recording():
        module = import_source(tmp_path, SOURCE, name=name)
        assert published(name) is None  # not even the list

        assert module.second(4) == 8
        sites = published(name)
        assert sites is not None and len(sites) == len(ORDER)
        assert built(name) == ["second"]
        assert [type(site) is _PendingSite for site in sites] == [True, False, True, True, True, True]


def test_a_site_is_built_at_the_first_call_and_found_directly_after(tmp_path: Path) -> None:
    name = unique_module_name("lazy")
    with recording() as spans:
        module = import_source(tmp_path, SOURCE, name=name)
        box = module.Box(3)
        assert built(name) == ["Box.__init__"]
        assert box.get() == 3
        sites = published(name)
        assert sites is not None
        site = sites[ORDER.index("Box.get")]
        assert isinstance(site, Site) and site.qualname == "Box.get"
        # Later calls find the same site in the list: nothing is built again.
        assert box.get() == 3
        assert sites[ORDER.index("Box.get")] is site
        assert getattr(registry(), module_key(name, SOURCE.encode("utf-8"))) is sites
        assert list(module.count(3)) == [0, 1, 2]
        assert built(name) == ["Box.__init__", "Box.get", "count"]
        names = [span.name for span in spans.spans()]
    assert names.count("Box.get") == 2
    assert names.count("count") == 1
    assert names.count("Box.__init__") == 1


def test_sites_of_returns_every_site_built_in_the_list_the_code_uses(tmp_path: Path) -> None:
    name = unique_module_name("lazy")
    with recording() as spans:
        module = import_source(tmp_path, SOURCE, name=name)
        sites = sites_of(name)
        assert sites is not None
        assert all(isinstance(site, Site) for site in sites)
        assert [site.qualname for site in sites] == list(ORDER)
        assert module.first(1) == 2
        assert published(name) is sites  # what the code looks up
        assert built(name) == list(ORDER)
        assert sites_of(name) is sites
        assert spans.span("first").attributes is not None


def test_sites_keep_the_configuration_current_when_their_module_was_imported(tmp_path: Path) -> None:
    name = unique_module_name("lazy")
    with recording():
        module = import_source(tmp_path, SOURCE, name=name)
        at_import = _runtime.current_config()
    assert _runtime.current_config() is not at_import
    assert module.first(1) == 2  # the site is built now, after the configuration changed
    sites = sites_of(name)
    assert sites is not None
    assert {id(site.config) for site in sites} == {id(at_import)}
    assert all(site.level == FULL for site in sites)


def test_two_threads_calling_a_function_for_the_first_time_share_one_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both threads build a site at once (reading its descriptor waits for the other thread)
    and one wins: both calls must record into it. Each call returns only once both are
    inside the function, so a call whose ``with`` entered a site other than the one left in
    the list would hand its return value to a site that does not know the call."""
    name = unique_module_name("lazy")
    building = threading.Barrier(2, timeout=10)
    inside = threading.Barrier(2, timeout=10)
    read: list[str] = []
    real = _runtime._parse_descriptor

    def read_together(line: str) -> _runtime.Descriptor:
        building.wait()
        read.append(line)
        return real(line)

    results: list[int] = []
    with recording() as spans:
        module = import_source(tmp_path, SOURCE, name=name)
        monkeypatch.setattr(_runtime, "_parse_descriptor", read_together)
        threads = [
            threading.Thread(target=lambda n=n: results.append(module.meet(inside, n))) for n in (5, 6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        monkeypatch.setattr(_runtime, "_parse_descriptor", real)
        recorded = [span for span in spans.spans() if span.name == "meet"]
        sites = published(name)
    assert sorted(results) == [10, 12]
    assert len(read) == 2  # both built a site...
    assert sites is not None and built(name) == ["meet"]  # ...one is used
    assert sorted(dict(span.attributes or {}).get(RETURN_VALUE, "none") for span in recorded) == ["10", "12"]
    assert sites[ORDER.index("meet")].errors == 0


def test_a_site_that_cannot_be_built_leaves_its_function_running_unrecorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    name = unique_module_name("lazy")

    def broken(line: str) -> _runtime.Descriptor:
        raise RuntimeError("cannot build")

    with recording() as spans:
        module = import_source(tmp_path, SOURCE, name=name)
        monkeypatch.setattr(_runtime, "_parse_descriptor", broken)
        errors = RECORDER.stats.internal_errors
        with caplog.at_level(logging.WARNING, logger="execscope.autotrace"):
            assert module.first(1) == 2
            assert module.first(2) == 3
        assert RECORDER.stats.internal_errors == errors + 1  # built once, not at every call
        assert [span.name for span in spans.spans()] == []
    assert len(caplog.records) == 1
    assert name in caplog.records[0].getMessage()


def test_a_pending_site_answers_for_its_site(tmp_path: Path) -> None:
    name = unique_module_name("lazy")
    with recording():
        module = import_source(tmp_path, SOURCE, name=name)
        assert module.first(0) == 1
        sites = published(name)
        assert sites is not None
        pending = sites[ORDER.index("Box.get")]
        assert type(pending) is _PendingSite
        assert "Box.get" not in built(name)
        assert name in repr(pending)
        assert pending.qualname == "Box.get"  # any attribute builds the site
        assert "Box.get" in built(name)
        with pytest.raises(AttributeError):
            pending._private  # noqa: B018


def test_a_key_never_registered_gives_sites_that_record_nothing() -> None:
    sites = registry().m_never_registered_0000
    assert sites[3] is sites[0]
    assert sites[0].level == 0
    with pytest.raises(AttributeError):
        registry().__no_such_dunder__  # noqa: B018


def test_importing_the_same_source_again_gives_the_new_version_its_own_sites(tmp_path: Path) -> None:
    name = unique_module_name("lazy")
    with recording():
        old = import_source(tmp_path, SOURCE, name=name)
        assert old.first(1) == 2
        old_sites = published(name)
        new = import_source(tmp_path, SOURCE, name=name)  # same key: registered again
        assert published(name) is None
        assert new.first(1) == 2
        new_sites = published(name)
        assert old.first(2) == 3  # the old version's functions look the key up too
    assert old_sites is not None and new_sites is not None and new_sites is not old_sites
    assert new_sites[0] is not old_sites[0]


@pytest.fixture
def writes_bytecode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)


@pytest.mark.usefixtures("writes_bytecode")
def test_a_module_imported_from_its_cached_rewrite_builds_no_site_either(tmp_path: Path) -> None:
    name = unique_module_name("lazy")
    (tmp_path / f"{name}.py").write_text(SOURCE, encoding="utf-8")
    selection = Selection(roots=(str(tmp_path.resolve()),), default_level=FULL, never=())

    def hook_import() -> types.ModuleType:
        spec = RewritingFinder(selection, bytecode=BYTECODE).find_spec(name, [str(tmp_path)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    with recording():
        hook_import()  # compiles and caches the rewrite
        assert list((tmp_path / "__pycache__").glob(f"{name}.*.execscope-*.pyc"))
        vars(registry()).pop(module_key(name, SOURCE.encode("utf-8")), None)
        module = hook_import()  # from the cache
        assert published(name) is None
        assert module.second(2) == 4
        assert built(name) == ["second"]
