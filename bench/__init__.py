"""execscope's benchmarks: ``python -m bench NAME [--rounds N] [--json]`` from the repository root.

Benchmarks are not tests: they never decide pass or fail, they print figures. The variants of
one benchmark run alternately (A, B, C, A, B, C, ...) in one process, so machine noise hits all
of them alike, and each is reported as a ratio to the benchmark's baseline variant.
"""
