"""execscope's benchmarks: ``python -m bench NAME [NAME ...] [--rounds N] [--json]`` from the repository root.

Benchmarks are not tests: they print figures and never fail a run (one may print how its figures
compare with a target the product has set, but the exit status never depends on that). The
variants of one benchmark run alternately (A, B, C, A, B, C, ...) in one process, so machine
noise hits all of them alike, and each is reported as a ratio to its baseline variant.
"""
