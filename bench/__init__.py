"""Benchmarks of encoder-recipes: ``python -m bench`` runs them all and prints one table.

Not a test suite and not part of the installed package: run from a checkout
(see ``bench/README.md``). Each benchmark is a module of its own; every
measurement that could disturb another (training, memory) runs in a child
process of its own, started through :func:`bench.common.run_child`.
"""
