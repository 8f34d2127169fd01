"""``python -m execscope.autotrace SCRIPT ARGS...``: run a script with its own code rewritten."""

import sys

from execscope.autotrace._script import run

sys.exit(run(sys.argv[1:]))
