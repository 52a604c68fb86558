"""The recipe hash that guards --resume: the schema marks what does not change a run's identity."""

from __future__ import annotations

import pytest

from encoder_recipes.schema import identity
from encoder_recipes.training.trainer import recipe_hash
from encoder_recipes.validation import load_recipe


@pytest.mark.parametrize("override", [
    "prefetch=2", "data_workers=0", "log_every=3", "checkpoint_every=7", "keep_checkpoints=5", "evaluators=[]",
    "metadata.description=another line", "metadata.sources=[]",
])
def test_what_does_not_change_the_run_leaves_the_hash(registries, override):
    base = load_recipe("ja-llmjp", scale="smoke", registries=registries)
    changed = load_recipe("ja-llmjp", scale="smoke", registries=registries, overrides=[override])
    assert changed.recipe != base.recipe
    assert recipe_hash(changed) == recipe_hash(base)


@pytest.mark.parametrize("override", [
    "seed=1", "stages.stage1.lr=1.0e-4", "stages.stage1.masking.rate=0.2", "tokenizer.vocab_size=2048",
    "model.num_hidden_layers=2", "data.validation_fraction=0.05",
])
def test_what_changes_the_run_changes_the_hash(registries, override):
    base = load_recipe("ja-llmjp", scale="smoke", registries=registries)
    changed = load_recipe("ja-llmjp", scale="smoke", registries=registries, overrides=[override])
    assert recipe_hash(changed) != recipe_hash(base)


def test_identity_keeps_component_params(registries):
    recipe = load_recipe("ja-llmjp", registries=registries).recipe
    data = identity(recipe)
    assert data["stages"][0]["masking"]["rate"] == recipe.stages[0].masking.params["rate"]
    assert "evaluators" not in data and "prefetch" not in data and "description" not in data["metadata"]
