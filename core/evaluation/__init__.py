"""Evaluators: the papers' evaluation protocols as registered components."""
