"""The ``execscope`` command line."""

from execscope.cli._main import main

__all__ = ["main"]
