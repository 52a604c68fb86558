"""Hookspec contracts: every hook follows the template, is documented, and is called as declared."""

from __future__ import annotations

import importlib.metadata as md
import inspect
from pathlib import Path

import pytest

from encoder_recipes import hookspecs
from encoder_recipes.docs import hook_specs, hooks_markdown
from encoder_recipes.plugin_manager import load_plugins
from encoder_recipes.registry import build_registries
from encoder_recipes.validation import load_recipe

REPO = Path(__file__).resolve().parents[1]
HOOKS = [name for name, *_ in hook_specs()]


def test_there_are_hooks_for_each_kind_and_lookups():
    assert {
        "encoder_recipes_register_tokenizers",
        "encoder_recipes_register_maskings",
        "encoder_recipes_register_context_schedules",
        "encoder_recipes_register_lr_schedules",
        "encoder_recipes_register_evaluators",
        "encoder_recipes_register_optimizers",
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


RECORDER = """
from encoder_recipes.hookspecs import hookimpl
{impls}
"""


def _recording_plugin() -> str:
    """A plugin implementing every hook with every argument its spec declares (answering nothing)."""
    impls = []
    for name in HOOKS:
        args = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        impls.append(f"@hookimpl\ndef {name}({args}):\n    return None\n")
    return RECORDER.format(impls="\n".join(impls))


WHOLE_WORD = """\
metadata: {name: ww, language: zh}
tokenizer: {name: bpe, vocab_size: 512}
data: {sources: [{name: d, paths: [x.txt]}]}
stages:
  - {name: s, context: {name: fixed, seq_len: 64}, steps: 2, batch_size: 2, lr: 1.0e-3,
     masking: {name: whole_word, segmenter: jieba}}
"""


def test_the_engine_calls_every_hook_with_exactly_its_declared_arguments(write_plugin, tmp_path):
    """Every hookspec is called by the engine, by keyword, with exactly the arguments the spec declares.

    pluggy's monitoring sees each call as the engine made it. Registering,
    validating a recipe (the segmenter look-up) and the fill-mask evaluator's
    probe look-up between them make every call the engine has.
    """
    calls: dict[str, list[set[str]]] = {}
    recorder = write_plugin("tplug_recorder", _recording_plugin())

    loaded = load_plugins([*md.entry_points(group="encoder_recipes"), recorder], strict=True)
    undo = loaded.pm.add_hookcall_monitoring(
        lambda hook_name, impls, kwargs: calls.setdefault(hook_name, []).append(set(kwargs)), lambda *a: None)
    registries = build_registries(loaded)
    recipe = tmp_path / "ww.yaml"
    recipe.write_text(WHOLE_WORD, encoding="utf-8")
    load_recipe(str(recipe), registries=registries)
    registries.fill_mask_probes("zh")
    undo()

    for name in HOOKS:
        spec = getattr(loaded.pm.hook, name).spec
        declared = set(spec.argnames) | set(spec.kwargnames)
        assert calls.get(name), f"the engine never calls {name}"
        for kwargs in calls[name]:
            assert kwargs == declared, f"{name} called with {sorted(kwargs)}, but its spec declares {sorted(declared)}"


def test_every_kind_in_the_table_has_its_register_hook_and_every_register_hook_a_kind():
    from encoder_recipes.components.kinds import KINDS

    register_hooks = {name for name in HOOKS if name.startswith("encoder_recipes_register_")}
    # recipes and sample corpora are registered data, not component kinds
    not_kinds = {"encoder_recipes_register_recipes", "encoder_recipes_register_sample_corpora"}
    assert {kind.hook for kind in KINDS.values()} == register_hooks - not_kinds


def test_every_method_the_engine_calls_on_a_base_class_is_documented():
    from encoder_recipes.components.base import Component
    from encoder_recipes.components.kinds import KINDS
    from encoder_recipes.docs import _engine_methods

    for base in (Component, *(kind.base for kind in KINDS.values())):
        methods = _engine_methods(base)
        assert methods, f"{base.__name__} declares nothing for the engine to call"
        for name, method in methods:
            assert inspect.getdoc(method), f"{base.__name__}.{name} has no docstring"


def test_hook_reference_is_current():
    page = REPO / "docs" / "hooks.md"
    assert page.read_text(encoding="utf-8") == hooks_markdown(), (
        "docs/hooks.md is stale: run `python -m encoder_recipes.docs hooks > docs/hooks.md`"
    )
