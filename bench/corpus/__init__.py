"""The third-party corpus: real libraries' own test suites, with and without execscope.

``python -m bench.corpus [--only NAME] [--jobs N] [--keep] [--exporter store|none] [--all-tests]``
(from the repository root, with the project venv) downloads the pinned sdists of ``_libraries.py`` with
``pip download --no-binary :all: --no-deps``, builds execscope's wheel from this checkout, makes
one throwaway virtual environment per library outside the repository, and runs the library's
suite twice: plainly, and under ``execscope run`` with the library's modules rewritten at level
``full`` and every span exported (to an embedded store in the run's folder by default).

Why: the rewriter promises that a rewritten module behaves exactly as written. Our own tests
check the cases we thought of; thousands of tests written by other people, against code with
generators, descriptors, metaclasses, decorators and seeded randomness, check the ones we did
not. Unlike the benchmarks this is a gate: the exit status is 1 when any test that passes
without execscope fails with it (and is not a documented known difference), 2 when a suite
could not be run or its traced run shows no rewriting.
"""
