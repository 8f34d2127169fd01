"""Accuracy and speed of ``execscope.analyzer`` on real open-source projects it has never seen.

``python -m bench.analyzer_eval`` (from the repository root) downloads the pinned sdists listed
in ``projects.toml`` into a cache outside the repository, analyses each, restricts the
recognitions to the hand-labelled sampled modules of ``labels/<project>.toml`` and prints
per-role precision, recall and false-positive rate. ``--scale`` times one large real tree.
See README.md for the labelling conventions.
"""
