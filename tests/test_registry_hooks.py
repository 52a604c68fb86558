"""Each hook, implemented by an outside plugin, reaches the host (one test per hook)."""

from __future__ import annotations

import textwrap

import pytest

from encoder_recipes.clock import Clock
from encoder_recipes.validation import load_recipe

PLUGIN = '''
from pathlib import Path
from typing import ClassVar
from encoder_recipes.hookspecs import hookimpl
from encoder_recipes.components.base import Params
from encoder_recipes.components.kinds import ContextSchedule, Evaluator, Tokenizer
from encoder_recipes.components.segmenters import WordSegmenter


class Doubling(ContextSchedule):
    """Doubles the length halfway through the stage."""
    name = "doubling"
    class Params(Params):
        seq_len: int = 64
    def seq_len(self, clock):
        return self.params.seq_len * (2 if clock.stage_step * 2 >= clock.stage_steps else 1)
    def lengths(self):
        return [self.params.seq_len, 2 * self.params.seq_len]


class Count(Evaluator):
    """Counts parameters."""
    name = "count"
    def evaluate(self, *, model, tokenizer, context):
        return {"params": sum(p.numel() for p in model.parameters())}


class Chars(Tokenizer):
    """Loads nothing; only here to be registered."""
    name = "chars"
    def build(self, *, texts, vocab_size, language, segmenter):
        raise NotImplementedError


class Syllables(WordSegmenter):
    name = "syllables"
    def spans(self, text):
        return [(i, i + 2) for i in range(0, len(text), 2)]


@hookimpl
def encoder_recipes_register_context_schedules():
    return [Doubling]

@hookimpl
def encoder_recipes_register_evaluators():
    return [Count]

@hookimpl
def encoder_recipes_register_tokenizers():
    return [Chars]

@hookimpl
def encoder_recipes_register_maskings():
    return []

@hookimpl
def encoder_recipes_register_lr_schedules():
    return []

@hookimpl
def encoder_recipes_register_recipes():
    return [Path(__file__).with_name("tplug_outside.yaml")]

@hookimpl
def encoder_recipes_word_segmenter(language):
    return Syllables() if language == "xx" else None

@hookimpl
def encoder_recipes_fill_mask_probes(language):
    return [{"text": "a {mask} b", "answers": ["c"]}] if language == "xx" else None
'''

RECIPE = """\
metadata: {name: outside-xx, language: xx, description: from an outside plugin}
tokenizer: {name: bpe, vocab_size: 256}
data: {sources: [{name: d, paths: [x.txt]}]}
evaluators: [{name: count}]
stages:
  - {name: s, context: {name: doubling, seq_len: 32}, steps: 4, batch_size: 2, lr: 1.0e-3,
     masking: {name: whole_word}}
"""


@pytest.fixture
def outside(write_plugin, plugin_dir, registries_with):
    (plugin_dir / "tplug_outside.yaml").write_text(RECIPE, encoding="utf-8")
    return registries_with(write_plugin("tplug_outside", PLUGIN), strict=True)


def test_encoder_recipes_register_context_schedules(outside):
    cls = outside.component("context", "doubling")
    schedule = cls(seq_len=32)
    assert [schedule.seq_len(Clock(s, 4, "s", 0, s, 4)) for s in range(4)] == [32, 32, 64, 64]


def test_encoder_recipes_register_evaluators(outside):
    assert outside.component("evaluator", "count").summary() == "Counts parameters."
    assert outside.contributions("outside")["evaluator"] == ["count"]


def test_encoder_recipes_register_tokenizers(outside):
    assert "chars" in outside.components["tokenizer"]
    assert "bpe" in outside.components["tokenizer"]  # built-ins stay


def test_encoder_recipes_register_maskings_and_lr_schedules_accept_empty_lists(outside):
    assert {"mlm", "whole_word"} <= set(outside.components["masking"].names())
    assert "constant" in outside.components["lr_schedule"]


def test_encoder_recipes_register_recipes(outside):
    entry = outside.recipes.get("outside-xx")
    assert entry.plugin == "outside"
    recipe = load_recipe("outside-xx", registries=outside).recipe  # by registered name
    assert recipe.stages[0].context.name == "doubling"


def test_encoder_recipes_word_segmenter(outside):
    assert outside.word_segmenter("xx").words("abcdef") == ["ab", "cd", "ef"]
    assert outside.word_segmenter("ja").name != "syllables"  # the ja plugin answers for ja


def test_encoder_recipes_fill_mask_probes(outside):
    assert {"text": "a {mask} b", "answers": ["c"]} in outside.fill_mask_probes("xx")
    assert outside.fill_mask_probes("ja")  # the ja plugin's probes
    assert all(p["text"] != "a {mask} b" for p in outside.fill_mask_probes("ja"))


def test_whole_word_needs_a_segmenter(outside, tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.replace("language: xx", "language: qq").replace("outside-xx", "r"), encoding="utf-8")
    from encoder_recipes.recipe_files import RecipeError

    with pytest.raises(RecipeError, match="needs a word segmenter for language 'qq'"):
        load_recipe(str(path), registries=outside)
