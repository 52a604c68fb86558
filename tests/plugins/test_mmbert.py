"""mmbert-base (plugin ``mul``) holds the values of its sources, and ``plan`` gives their token budgets.

Each case names the recipe field and where the value comes from (``base:N``,
``ext:N``, ``decay:N``: lines of JHU-CLSP/mmBERT ``configs/mmBERT-base{,-ext,-decay}.yaml``
at 108ffb3; ``README:N``; the paper, arXiv 2509.06888). Where the sources
disagree the case says which one the recipe follows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from encoder_recipes.plan import build_plan
from encoder_recipes.testing import recipe_value as pick
from encoder_recipes.validation import load_recipe

RECIPE = Path(__file__).resolve().parents[2] / "plugins" / "mul" / "recipes" / "mmbert_base.yaml"




CITED = [
    ("model.vocab_size", 256000, "base:24; README:243 Gemma 2 tokenizer"),
    ("model.hidden_size", 768, "base:21; README:237"),
    ("model.intermediate_size", 1152, "base:22; README:238"),
    ("model.num_hidden_layers", 22, "base:20; README:236"),
    ("model.num_attention_heads", 12, "base:23; README:239"),
    ("model.local_attention", 128, "base:41"),
    ("model.global_attn_every_n_layers", 3, "base:55"),
    ("model.global_rope_theta", 160000, "ext:46, decay:43"),
    ("model.local_rope_theta", 160000, "ext:58, decay:55"),
    ("model.max_position_embeddings", 8192, "ext:89; README:242"),
    ("tokenizer.name", "pretrained", "the released Gemma 2 tokenizer (base:17)"),
    ("tokenizer.path", "jhu-clsp/mmBERT-base", "the released model's tokenizer"),
    ("optimizer.name", "stable_adamw", "base:65 decoupled_stableadamw"),
    ("optimizer.betas", (0.9, 0.95), "base:68"),
    ("optimizer.eps", 1e-8, "base:67"),
    ("optimizer.weight_decay", 8e-5, "base:69"),
    ("optimizer.decouple_lr", True, "ModernBERT main.py:258"),
    ("optimizer.grad_clip", None, "no clipping in the configs"),
    ("seed", 21, "base:1"),
    # three phases: tokens (phase 1: the paper's 2.3T, not base:9's 400B nor README:91's 2.0T)
    ("stages.pretrain.tokens", 2.3e12, "the paper; makes README:7's 3T"),
    ("stages.mid_training.tokens", 6e11, "ext:10; README:92"),
    ("stages.decay.tokens", 1e11, "decay:7; README:93"),
    # 1,024 tokens, then 8,192 with θ 10k -> 160k
    ("stages.pretrain.context.seq_len", 1024, "base:87"),
    ("stages.mid_training.context.seq_len", 8192, "ext:89"),
    ("stages.decay.context.seq_len", 8192, "decay:87"),
    ("stages.pretrain.rope.global_theta", 10000, "base:44"),
    ("stages.pretrain.rope.local_theta", 10000, "base:56"),
    ("stages.mid_training.rope.global_theta", 160000, "ext:46"),
    ("stages.decay.rope.global_theta", 160000, "decay:43"),
    # inverse masking 30% -> 15% -> 5% (phase 1: README:225/259 and the paper, not base:90's 0.25)
    ("stages.pretrain.masking.rate", 0.3, "README:225, README:259, the paper"),
    ("stages.mid_training.masking.rate", 0.15, "ext:92; README:260"),
    ("stages.decay.masking.rate", 0.05, "decay:90; README:261"),
    # annealed language learning: τ 0.7 -> 0.5 -> 0.3 over 60 -> 110 -> 1,833 languages
    ("stages.pretrain.mixture.tau", 0.7, "README:226-227"),
    ("stages.mid_training.mixture.tau", 0.5, "README:226-227"),
    ("stages.decay.mixture.tau", 0.3, "README:226-227"),
    ("stages.pretrain.mixture.languages", 60, "README:91"),
    ("stages.mid_training.mixture.languages", 110, "README:92"),
    ("stages.decay.mixture.languages", 1833, "README:93"),
    ("stages.pretrain.mixture.premixed", "pretrain_mix", "README:91 the released phase-1 mixture"),
    ("stages.mid_training.mixture.premixed", "midtraining_mix", "README:92"),
    ("stages.decay.mixture.premixed", "decay_mix", "README:93"),
    ("stages.pretrain.batch_size", 4608, "base:103"),
    ("stages.mid_training.batch_size", 4608, "ext:105"),
    ("stages.decay.batch_size", 4608, "decay:103"),
    ("stages.pretrain.lr", 8e-4, "base:66"),
    ("stages.pretrain.batch_warmup.start", 384, "base:100, base:102: 48 per device × 8 GPUs"),
    ("stages.pretrain.batch_warmup.tokens", 6e10, "base:99"),
    ("stages.pretrain.lr_schedule.warmup_tokens", 3e9, "base:76"),
    ("stages.decay.lr_schedule.decay_shape", "1-sqrt", "decay:73"),
    ("stages.decay.lr_schedule.final_ratio", 0.02, "decay:74"),
    ("stages.pretrain.packing", "best_fit", "base:98"),
]


@pytest.fixture(scope="module")
def recipe(request):
    from encoder_recipes.plugin_manager import load_plugins
    from encoder_recipes.registry import build_registries

    registries = build_registries(load_plugins())
    return load_recipe("mmbert-base", registries=registries).recipe, registries


@pytest.mark.parametrize("path, expected, ref", CITED, ids=[f"{p} [{r}]" for p, _, r in CITED])
def test_cited_value(recipe, path, expected, ref):
    got = pick(recipe[0], path)
    if isinstance(expected, bool) or expected is None:
        assert got is expected
    else:
        assert got == expected, f"{path}: {got!r}, {ref} says {expected!r}"


def test_plan_reproduces_the_published_token_budgets(recipe):
    r, registries = recipe
    plan = build_plan(r, registries)
    # 2.3T + 600B + 100B = 3T (README:7, the paper); whole steps of 4,608 × seq len round each up
    for stage, published, seq_len in zip(plan.stages, (2.3e12, 6e11, 1e11), (1024, 8192, 8192)):
        per_step = 4608 * seq_len
        assert published <= stage.tokens < published + per_step, (stage.name, stage.tokens)
    # phase 1: 384 -> 4,608 in rises of 384 over 60B tokens (25,432 steps), then the full batch
    assert [s.steps for s in plan.stages] == [500_150, 15_895, 2_650]
    assert sum(s.tokens for s in plan.stages) == pytest.approx(3e12, rel=1e-4)


def test_every_number_in_the_file_has_a_comment():
    bare = []
    for n, line in enumerate(RECIPE.read_text(encoding="utf-8").splitlines(), 1):
        code, hash_, _ = line.partition("#")
        value = code.split(":", 1)[1].strip() if ":" in code else code.strip().lstrip("- ")
        try:
            parsed = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            continue
        numeric = isinstance(parsed, (int, float)) and not isinstance(parsed, bool)
        numeric |= isinstance(parsed, (dict, list)) and any(
            isinstance(v, (int, float)) and not isinstance(v, bool)
            for v in (parsed.values() if isinstance(parsed, dict) else parsed))
        if numeric and not hash_:
            bare.append(f"{n}: {line.strip()}")
    assert not bare, bare


def test_the_conflicts_are_cited_in_the_file():
    text = RECIPE.read_text(encoding="utf-8")
    assert "base:9 max_duration 400B" in text and "README:91" in text  # phase-1 tokens
    assert "base:90" in text and "0.25" in text  # phase-1 masking
    assert "encoder-recipes run mmbert-base --scale smoke" in text


def test_smoke_scale_mixes_four_offline_languages_with_a_trained_tokenizer(recipe):
    _, registries = recipe
    smoke = load_recipe("mmbert-base", registries=registries, scale="smoke").recipe
    assert smoke.tokenizer.name == "bpe"  # Gemma 2's tokenizer cannot be downloaded offline
    assert sorted(s.sample for s in smoke.data.sources) == ["en", "fi", "ja", "zh"]
    assert [s.masking.params["rate"] for s in smoke.stages] == [0.3, 0.15, 0.05]
    assert [s.mixture.params["tau"] for s in smoke.stages] == [0.7, 0.5, 0.3]
