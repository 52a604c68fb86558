"""Hookspec contracts: every hook follows the template, is documented, and has a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from encoder_recipes import hookspecs
from encoder_recipes.docs import hook_specs, hooks_markdown

REPO = Path(__file__).resolve().parents[1]
HOOKS = [name for name, *_ in hook_specs()]


def test_there_are_hooks_for_each_kind_and_lookups():
    assert {
        "encoder_recipes_register_tokenizers",
        "encoder_recipes_register_maskings",
        "encoder_recipes_register_context_schedules",
        "encoder_recipes_register_lr_schedules",
        "encoder_recipes_register_evaluators",
        "encoder_recipes_register_recipes",
        "encoder_recipes_word_segmenter",
    } <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_follows_the_template(name):
    func = getattr(hookspecs, name)
    doc = inspect.getdoc(func) or ""
    summary = doc.splitlines()[0] if doc else ""
    assert summary.endswith("."), f"{name}: first line must be a one-sentence summary"
    assert "Return contract:" in doc, f"{name}: say what the host does with the results"
    for arg in inspect.signature(func).parameters:
        assert f":param {arg}:" in doc, f"{name}: document parameter {arg!r}"
    if getattr(func, "encoder_recipes_spec", {}).get("firstresult"):
        assert "stops at the first non-None result" in doc


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_test(name):
    """Some test other than this file calls or implements the hook."""
    users = [p for p in REPO.joinpath("tests").rglob("test_*.py")
             if p.name != Path(__file__).name and re.search(rf"\b{name}\b", p.read_text(encoding="utf-8"))]
    assert users, f"no test exercises {name}"


def test_hook_reference_is_current():
    page = REPO / "docs" / "hooks.md"
    assert page.read_text(encoding="utf-8") == hooks_markdown(), (
        "docs/hooks.md is stale: run `python -m encoder_recipes.docs hooks > docs/hooks.md`"
    )
