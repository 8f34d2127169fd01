"""The pinned libraries whose own test suites the corpus runs, and the known differences.

Why these four: each is pure Python, ships its test suite in its sdist, runs it in well under
two minutes, and stresses a different part of the rewriter and the runtime:

* more-itertools: generators everywhere (``yield``/``yield from``, abandoned and closed
  generators, ``send``), iterator classes with state, ``random``-seeded algorithms.
* attrs: classes built by decorators, generated ``__init__``/``__eq__`` code, descriptors,
  ``__slots__`` classes rebuilt after creation, ``__class__`` cells and ``super()``.
* python-dateutil: stateful parser and rrule classes, ``tzinfo`` subclasses with caches,
  singletons via metaclasses, and a suite that turns every warning into an error.
* toolz: ``curry`` objects wrapping functions (signatures, ``__name__``, pickling), and the
  ``tlz`` package, which imports through a ``sys.meta_path`` finder of its own.

Every version is exact, for the libraries and for their test requirements, so a result can
be reproduced; a newer release is a deliberate change of this table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The test runner and the property-testing library, shared by every suite.
PYTEST = "pytest==9.2.0"
HYPOTHESIS = "hypothesis==6.170.15"


@dataclass(frozen=True)
class KnownDifference:
    """A test that passes plainly and fails under execscope for a documented, legitimate reason.

    It is still run and still reported; it only does not count as a regression.
    """

    test: str
    reason: str


@dataclass(frozen=True)
class Deselected:
    """Tests left out of both runs (``pytest --deselect``, a node id prefix), with why.

    Only for run time, never for a result: a deselected test is not run with or without
    execscope, and the report prints every one with its reason.
    """

    node: str
    reason: str


@dataclass(frozen=True)
class Library:
    name: str
    version: str
    #: Top-level packages rewritten (``EXECSCOPE_AUTOTRACE_MODULES``).
    packages: tuple[str, ...]
    #: What the library is and what of the rewriter it exercises, for the report.
    kind: str
    #: Test requirements installed next to the library (exact versions).
    test_requirements: tuple[str, ...]
    #: pytest arguments, run from the top folder of the extracted sdist.
    pytest_args: tuple[str, ...]
    #: Modules inside ``packages`` that are the library's tests, not the library: not rewritten.
    exclude: tuple[str, ...] = ()
    known_differences: tuple[KnownDifference, ...] = field(default_factory=tuple)
    deselected: tuple[Deselected, ...] = field(default_factory=tuple)

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


LIBRARIES: tuple[Library, ...] = (
    Library(
        name="more-itertools",
        version="11.2.1",
        packages=("more_itertools",),
        kind="generators, iterator classes with state, seeded random algorithms",
        test_requirements=(PYTEST,),
        pytest_args=("tests",),
        known_differences=(
            KnownDifference(
                "tests.test_more.SeekableTest::test_repeated_zero_cache_peek_has_bounded_memory",
                "asserts that the whole process holds < 256 KiB more (tracemalloc) after 10,000 "
                "peek() calls; under execscope each call is a span, and the spans not yet exported "
                "(recorder queue, the SDK's BatchSpanProcessor queue of up to 2,048, the store's "
                "batch being written) are counted: 0.6-3 MB here. They are freed once exported "
                "(back to ~30 KiB after a flush), so it is in-flight telemetry, not a leak",
            ),
        ),
    ),
    Library(
        name="attrs",
        version="26.1.0",
        packages=("attr", "attrs"),
        kind="class decorators, generated methods, descriptors, slotted classes rebuilt",
        test_requirements=(PYTEST, HYPOTHESIS, "pympler==1.1", "cloudpickle==3.1.2"),
        pytest_args=("tests",),
    ),
    Library(
        name="python-dateutil",
        version="4.0.0",
        packages=("dateutil",),
        kind="stateful parser/rrule classes, tzinfo caches, warnings are errors",
        # pytest-cov for its no_cover mark, attrs for the tzfile tests' helpers.
        test_requirements=(PYTEST, HYPOTHESIS, "freezegun==1.5.5", "pytest-cov==7.1.0", "attrs==26.1.0"),
        pytest_args=("tests",),
        deselected=tuple(
            Deselected(
                f"tests/test_tzpath_data.py::{test}",
                "sweeps every IANA zone through tzfile's tiny methods (millions of calls, each "
                "snapshotting the zone's state twice at level full): the 8 sweeps take 9 s plainly "
                "and 43 min traced; run with --all-tests they pass both ways",
            )
            for test in (
                "test_ambiguous_and_imaginary",
                "test_matches_zoneinfo",
                "test_dst_matches_tzdata_zi",
                "test_utc_round_trip",
            )
        ),
    ),
    Library(
        name="toolz",
        version="1.2.0",
        packages=("toolz", "tlz"),
        kind="curry wrappers, signatures, pickling, an import hook of its own (tlz)",
        test_requirements=(PYTEST,),
        pytest_args=("toolz",),
        exclude=("toolz.tests", "toolz.sandbox.tests"),
    ),
)


def by_name(name: str) -> Library:
    for library in LIBRARIES:
        if library.name == name:
            return library
    raise KeyError(name)
