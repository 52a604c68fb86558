"""The plan: steps from tokens, token counts, parameter counts against real models, the clock."""

from __future__ import annotations

import pytest
import torch
from transformers import ModernBertConfig, ModernBertForMaskedLM

from encoder_recipes.modeling.build import model_config
from encoder_recipes.plan import build_plan, count_params
from encoder_recipes.schema import ModelConfig, Recipe

SPECIALS = {"pad": 0, "cls": 1, "sep": 2}


@pytest.mark.parametrize("fields", [
    {},  # ModernBERT-base
    {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 19, "num_attention_heads": 8},
    {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 2,
     "norm_bias": True, "attention_bias": True, "mlp_bias": True, "decoder_bias": False},
])
def test_count_params_matches_transformers(fields):
    model = ModelConfig(**fields)
    config = model_config(model, vocab_size=1000, special_ids=SPECIALS)
    with torch.device("meta"):
        real = ModernBertForMaskedLM(config)
    assert count_params(model, 1000)["total"] == sum(p.numel() for p in real.parameters())


def recipe(**stage_overrides) -> Recipe:
    stage = {"name": "s1", "context": {"name": "fixed", "seq_len": 1024}, "steps": 500_000, "batch_size": 3328,
             "lr": 5e-4, "masking": {"name": "mlm", "rate": 0.3}, **stage_overrides}
    return Recipe.model_validate({
        "metadata": {"name": "t", "language": "ja"}, "tokenizer": {"name": "bpe", "vocab_size": 1024},
        "data": {"sources": [{"name": "a", "paths": ["x.txt"]}]}, "stages": [stage],
    })


def test_tokens_are_sequences_times_length(registries):
    plan = build_plan(recipe(), registries)
    assert plan.stages[0].tokens == 500_000 * 3328 * 1024  # llm-jp stage 1, 001 §2.3: ≈ 1.7T
    assert f"{plan.stages[0].tokens / 1e12:.1f}" == "1.7"


def test_stage_given_in_tokens_gets_steps(registries):
    plan = build_plan(recipe(steps=None, tokens=1e9, batch_size=100), registries)
    assert plan.stages[0].steps == -(-int(1e9) // (100 * 1024))


def test_stepwise_context_mean_length(registries):
    plan = build_plan(recipe(steps=None, tokens=3_000_000, batch_size=1,
                             context={"name": "stepwise", "lengths": [1000, 2000, 3000]}), registries)
    assert plan.stages[0].mean_seq_len == pytest.approx(2000, rel=1e-3)
    assert plan.stages[0].steps == 1500


def test_clock_walks_through_stages(registries):
    r = recipe()
    r2 = Recipe.model_validate({**r.model_dump(), "stages": [
        {**r.stages[0].model_dump(), "steps": 10},
        {**r.stages[0].model_dump(), "name": "s2", "steps": 5}]})
    plan = build_plan(r2, registries)
    clock = plan.clock(12)
    assert (clock.stage, clock.stage_step, clock.stage_steps, clock.total_steps) == ("s2", 2, 5, 15)
    assert clock.stage_starts == {"s1": 0, "s2": 10}
