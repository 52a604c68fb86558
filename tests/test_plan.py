"""The plan: steps from tokens, token counts, parameter counts against real models, the clock."""

from __future__ import annotations

import pytest
import torch
from transformers import ModernBertConfig, ModernBertForMaskedLM

from encoder_recipes.batch_warmup import BatchWarmup, TokenTimeline
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


# --- time in tokens, batch warmup ------------------------------------------------------------


def test_stage_in_tokens_counts_through_the_batch_warmup(registries):
    """A stage of 1e6 tokens at 128 with a batch warming up 4 → 16 over 2e5 tokens: the steps a
    step-by-step count takes, each step's batch from the ramp, and the tokens reached."""
    warmup = {"start": 4, "tokens": 200_000}
    plan = build_plan(recipe(steps=None, tokens=1e6, batch_size=16, batch_warmup=warmup,
                             context={"name": "fixed", "seq_len": 128}), registries)
    stage = plan.stages[0]
    batches, seen = [], 0
    while seen < 1e6:
        batches.append(BatchWarmup(start=4, end=16, tokens=200_000).batch_size(seen))
        seen += batches[-1] * 128
    assert stage.steps == len(batches)
    assert [plan.batch_at(s) for s in range(stage.steps)] == batches
    assert stage.tokens == seen and stage.sequences == sum(batches)
    assert stage.batch_sizes == [4, 8, 12, 16]
    assert stage.batch_warmup_steps == batches.index(16)
    # without the warmup the same tokens take fewer, larger steps
    assert build_plan(recipe(steps=None, tokens=1e6, batch_size=16, context={"name": "fixed", "seq_len": 128}),
                      registries).stages[0].steps == -(-1_000_000 // (16 * 128)) < stage.steps


def test_lr_warmup_in_tokens_is_shown_in_both_units(registries):
    plan = build_plan(recipe(steps=None, tokens=1e6, batch_size=16, batch_warmup={"start": 4, "tokens": 200_000},
                             context={"name": "fixed", "seq_len": 128},
                             lr_schedule={"name": "linear_warmup_decay", "warmup_tokens": 10_000}), registries)
    stage = plan.stages[0]
    assert stage.lr_warmup_steps == -(-10_000 // (4 * 128))  # inside the first size
    assert stage.lr_warmup_tokens == stage.lr_warmup_steps * 4 * 128


@pytest.mark.parametrize(("warmup", "message"), [
    ({"start": 32, "tokens": 1e6}, "start <= end"),
    ({"start": 3, "tokens": 1e6}, "multiples"),
    ({"start": 4, "tokens": 1e6, "increment": 3}, "multiples"),
])
def test_bad_batch_warmups_are_refused(warmup, message):
    with pytest.raises(ValueError, match=message):
        recipe(batch_size=16, batch_warmup=warmup)


def test_smoke_scale_keeps_the_batch_warmups_shape(registries):
    """768 → 4,608 (a sixth, rising by a sixth) over 50B of 1.719T tokens becomes 2 → 16 by 2 over the same
    fraction of the stage's smoke tokens; the stage's steps come from its token share through the ramp."""
    from encoder_recipes.scale import apply_scale

    full = recipe(steps=None, tokens=1.719e12, batch_size=4608, batch_warmup={"start": 768, "tokens": 50e9})
    small = apply_scale(full, "smoke", registries)
    stage = small.stages[0]
    assert (stage.batch_warmup.start, stage.batch_warmup.increment, stage.batch_size) == (2, 2, 16)
    share = small.scales["smoke"].total_tokens  # one stage: the whole budget
    assert stage.batch_warmup.tokens == pytest.approx(50e9 * share / build_plan(full, registries).stages[0].tokens)
    assert stage.steps == TokenTimeline(16, 128, BatchWarmup(start=2, end=16, tokens=stage.batch_warmup.tokens,
                                                             increment=2)).step_at_tokens(share)
