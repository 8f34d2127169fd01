"""Span processors of execscope's pipeline."""
