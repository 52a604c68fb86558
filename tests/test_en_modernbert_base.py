"""en-modernbert-base holds exactly the values of its sources, and its plan reproduces their token budgets.

Each cited value is one parametrised case whose id names the field and the
citation, as the recipe's comments give it: ``pre:N``, ``ext:N``, ``dec:N``
for line N of ModernBERT's ``modernbert-base-{pretrain,context-extension,
learning-rate-decay}.yaml`` (branch ``pretraining_documentation``, commit
0e9dbe6), or a source file and its lines. The values are read from the
file as written (so ``betas`` is the YAML's list) and from the resolved
recipe (so the schema's defaults count).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import pytest
import yaml

from encoder_recipes.batch_warmup import BatchWarmup, TokenTimeline
from encoder_recipes.plan import build_plan
from encoder_recipes.testing import recipe_value as pick
from encoder_recipes.plugin_manager import load_plugins
from encoder_recipes.registry import build_registries
from encoder_recipes.recipes import recipe_path
from encoder_recipes.schema import Recipe
from encoder_recipes.validation import load_recipe

FILE = "en_modernbert_base.yaml"


@cache
def recipe() -> Recipe:
    return Recipe.model_validate(yaml.safe_load(recipe_path(FILE).read_text(encoding="utf-8")))




def case(path: str, expected: Any, ref: str) -> Any:
    return pytest.param(path, expected, id=f"{path} [{ref}]")


STAGES = ("pretrain", "context_extension", "decay")


def every_stage(key: str, values: tuple, refs: tuple[str, str, str]) -> list:
    return [case(f"stages.{stage}.{key}", value, ref) for stage, value, ref in zip(STAGES, values, refs)]


CITED = [
    case("metadata.language", "en", "model card: English and code"),
    # --- model: pre:18-60, and the model code where the YAMLs leave a default -------------
    case("model.vocab_size", 50368, "pre:19"),
    case("model.hidden_size", 768, "pre:22"),
    case("model.intermediate_size", 1152, "pre:23"),
    case("model.num_hidden_layers", 22, "pre:21"),
    case("model.num_attention_heads", 12, "pre:24"),
    case("model.local_attention", 128, "pre:56"),
    case("model.global_attn_every_n_layers", 3, "pre:57"),
    case("model.global_rope_theta", 160_000, "ext:56, dec:56"),
    case("model.local_rope_theta", 10_000, "ext:59, dec:59"),
    case("model.max_position_embeddings", 8192, "ext:7, dec:7"),
    case("model.norm", "layernorm", "pre:43"),
    case("model.norm_eps", 1e-5, "pre:45"),
    case("model.norm_bias", False, "pre:46"),
    case("model.hidden_activation", "gelu", "pre:47"),
    case("model.attention_bias", False, "pre:27, pre:29"),
    case("model.mlp_bias", False, "pre:40, pre:42"),
    case("model.decoder_bias", True, "configuration_bert.py:51"),
    case("model.embedding_dropout", 0.0, "pre:31"),
    case("model.mlp_dropout", 0.0, "pre:39"),
    case("model.attention_dropout", 0.0, "pre:26 (pre:28's output dropout not expressible)"),
    case("model.initializer_range", 0.02, "configuration_bert.py:83"),
    case("tokenizer.name", "pretrained", "pre:5"),
    case("tokenizer.path", "answerdotai/ModernBERT-base", "pre:5"),
    # --- optimizer: pre:104-112 ----------------------------------------------------------
    case("optimizer.name", "stable_adamw", "pre:105 decoupled_stableadamw"),
    case("optimizer.betas", [0.9, 0.98], "pre:107-109"),
    case("optimizer.eps", 1e-6, "pre:110"),
    case("optimizer.weight_decay", 1e-5, "pre:111"),
    case("optimizer.decouple_lr", True, "main.py:258"),
    case("optimizer.grad_clip", None, "no clipping configured; main.py:422-428"),
    # --- stages ------------------------------------------------------------------------------
    *every_stage("context.seq_len", (1024, 8192, 8192), ("pre:4", "ext:7", "dec:7")),
    *every_stage("tokens", (1.719e12, 250e9, 50e9), ("pre:115", "ext:118", "dec:119")),
    # Table 3's context-extension 72 is per GPU: 72 × 8 = 576, the YAMLs' global batch
    *every_stage("batch_size", (4608, 576, 576), ("pre:117", "ext:120", "dec:121")),
    case("stages.pretrain.batch_warmup.start", 768, "pre:77, pre:123: micro-batch 96 × 8 GPUs"),
    case("stages.pretrain.batch_warmup.tokens", 50e9, "pre:78"),
    case("stages.pretrain.batch_warmup.increment", None, "sequence_packer.py:20-61: one micro-batch per device"),
    case("stages.context_extension.batch_warmup", None, "ext: no batch_size_warmup"),
    case("stages.decay.batch_warmup", None, "dec: no batch_size_warmup"),
    *every_stage("lr", (8e-4, 3e-4, 3e-4), ("pre:106", "ext:109", "dec:110")),
    *every_stage("lr_schedule.name", ("wsd",) * 3, ("pre:99",) * 3),
    *every_stage("lr_schedule.warmup_tokens", (3e9,) * 3, ("pre:100",) * 3),
    *every_stage("lr_schedule.decay_start_stage", ("decay",) * 3, ("pre:102 t_decay 0tok; dec:105-106",) * 3),
    *every_stage("lr_schedule.decay_shape", ("1-sqrt",) * 3, ("dec:103",) * 3),
    *every_stage("lr_schedule.final_ratio", (0.001,) * 3, ("dec:104 alpha_f",) * 3),
    *every_stage("lr_schedule.scope", ("run",) * 3, ("ext:159, dec:160 restart_override",) * 3),
    *every_stage("masking.name", ("mlm",) * 3, ("token-level MLM",) * 3),
    *every_stage("masking.rate", (0.3,) * 3, ("pre:6", "ext:9", "dec:9")),
    *every_stage("masking.mask_replace_prob", (0.8,) * 3, ("sequence_packer.py:293-345",) * 3),
    *every_stage("masking.random_replace_prob", (0.1,) * 3, ("sequence_packer.py:293-345",) * 3),
    *every_stage("packing", ("best_fit",) * 3, ("pre:76", "ext:83", "dec:83")),
    *every_stage("rope.global_theta", (10_000, 160_000, 160_000), ("pre:52", "ext:56", "dec:56")),
    *every_stage("rope.local_theta", (10_000, 10_000, 10_000), ("pre:52", "ext:59", "dec:59")),
    case("evaluators.mlm.mask_rate", 0.15, "pre:90"),
    case("seed", 17, "pre:121"),
]


@pytest.mark.parametrize(("path", "expected"), CITED)
def test_cited_value(path, expected):
    assert pick(recipe(), path) == expected


def test_registered_by_the_en_plugin(registries):
    entry = registries.recipes.get("en-modernbert-base")
    assert entry.path == recipe_path(FILE)
    assert registries.loaded.plugins["en"]  # loaded through its entry point, like any outside plugin
    assert "en" in recipe().metadata.requires


@pytest.fixture(scope="module")
def loaded():
    """The registered recipe, its registries and its plan, made once for this module's plan tests."""
    registries = build_registries(load_plugins())
    resolved = load_recipe("en-modernbert-base", registries=registries)
    return registries, resolved, build_plan(resolved.recipe, registries)


@pytest.fixture
def plan(loaded):
    return loaded[2]


def test_plan_reproduces_the_published_token_budgets(plan):
    """pre:115, ext:118, dec:119: each stage ends at the first step whose tokens seen reach its budget."""
    for stage, budget in zip(plan.stages, (1.719e12, 250e9, 50e9)):
        assert stage.tokens >= budget > plan.timeline.stage_tokens_before(stage.start + stage.steps - 1), stage.name


def test_plan_in_steps(plan):
    """The step counts, through the batch warmup: 768 → 4,608 over 50B tokens (pre:77-78, 117)."""
    assert [s.steps for s in plan.stages] == [374_901, 52_982, 10_597]
    pretrain = plan.stages[0]
    assert pretrain.batch_sizes == [768, 1536, 2304, 3072, 3840, 4608]
    assert pretrain.batch_warmup_steps == 21_194
    assert pretrain.batch_warmup_tokens >= 50e9
    # without the warmup the same tokens take fewer steps
    assert TokenTimeline(4608, 1024).step_at_tokens(1.719e12) == 364_304
    # the 3B-token LR warmup (pre:100) ends inside the first batch size
    assert pretrain.lr_warmup_steps == math.ceil(3e9 / (768 * 1024)) == 3815
    assert [s.lr_warmup_steps for s in plan.stages[1:]] == [0, 0]
    assert plan.total_tokens == pytest.approx(2.019e12, rel=1e-5)  # the paper's "2 trillion tokens"


def test_lr_follows_the_three_phases(loaded):
    """3B-token warmup to 8e-4, hold; 3e-4 held through the extension; 1-sqrt decay to 0.001 × 3e-4."""
    registries, resolved, plan = loaded
    schedule = resolved.component(registries, "lr_schedule", resolved.recipe.stages[0].lr_schedule)

    def lr(step: int) -> float:
        return plan.stages[plan.clock(step).stage_index].lr * schedule.multiplier(plan.clock(step))

    assert lr(0) == 0.0
    assert lr(1000) == pytest.approx(8e-4 * 1000 * 768 * 1024 / 3e9)  # the ramp counts tokens seen
    assert lr(3815) == pytest.approx(8e-4) and lr(374_900) == pytest.approx(8e-4)
    ext = plan.stages[1].start
    assert lr(ext) == pytest.approx(3e-4) and lr(ext + 52_981) == pytest.approx(3e-4)
    decay = plan.stages[2]
    assert lr(decay.start) == pytest.approx(3e-4)
    half = decay.start + decay.steps // 2
    assert lr(half) == pytest.approx(3e-4 * (0.001 + 0.999 * (1 - math.sqrt((half - decay.start) / decay.steps))))
    assert lr(plan.total_steps - 1) < 3e-4 * 0.02


def test_batch_warmup_is_modernberts():
    """The ramp the stage declares is sequence_packer.py:20-61's with one micro-batch (96) per device on 8 GPUs."""
    spec = recipe().stages[0].batch_warmup
    ramp = BatchWarmup(start=spec.start, end=4608, tokens=spec.tokens, increment=spec.increment)
    assert ramp.sizes == tuple(96 * 8 * k for k in range(1, 6))


def test_smoke_lr_warmup_in_tokens_lasts_the_rule_minimum(registries):
    """The paper's 3B of 1.719T tokens would be 24 steps at smoke scale; the rule's minimum makes it 100."""
    from encoder_recipes.schema import ScaleRule

    recipe = load_recipe("en-modernbert-base", registries=registries, scale="smoke").recipe
    plan = build_plan(recipe, registries, vocab_size=4096)
    assert plan.stages[0].lr_warmup_steps == ScaleRule().min_warmup_steps
