"""The folder ``execscope run`` puts first on ``PYTHONPATH``; see ``sitecustomize.py`` beside it."""
