"""mmbert-base trains at smoke scale offline, and its metrics show the schedules it declares (slow).

One short run (the smoke rule's stages, cut to 40 + 3 + 3 steps (80k + 98k token positions) and without
the stage-end evaluators, with a 1,024-token BPE, so it stays under a minute on 2 CPU cores): every
metrics line has the plan's mask rate (30% → 15% → 5%), the stage's τ
(0.7 → 0.5 → 0.3) and each language's probability; over each stage the
languages' shares of the documents read match those probabilities, and a
language outside the stage's set is never read.
"""

from __future__ import annotations

import pytest

from encoder_recipes.data.mixing import source_sizes, stage_mixture
from encoder_recipes.plan import build_plan
from encoder_recipes.training.metrics import read_metrics
from encoder_recipes.training.trainer import RunOptions, train
from encoder_recipes.validation import load_recipe

LANGUAGES = ["en", "fi", "ja", "zh"]


@pytest.mark.slow
def test_mmbert_smoke_run_logs_mask_rate_tau_and_language_shares(registries, tmp_path):
    resolved = load_recipe("mmbert-base", registries=registries, scale="smoke", overrides=[
        "stages.pretrain.steps=40", "stages.mid_training.steps=3", "stages.decay.steps=3",
        "evaluators=[]", "log_every=1", "tokenizer.vocab_size=1024"])
    recipe = resolved.recipe
    final = train(resolved, registries, RunOptions(output=tmp_path / "run", progress=False))
    assert final is not None

    plan = build_plan(recipe, registries)
    sizes = source_sizes(recipe.data)
    lines = [r for r in read_metrics(tmp_path / "run") if r.get("event") is None]
    assert {r["stage"] for r in lines} == {"pretrain", "mid_training", "decay"}
    for stage_index, (tau, rate, languages) in enumerate([(0.7, 0.3, {"en", "zh"}), (0.5, 0.15, {"en", "zh", "ja"}),
                                                          (0.3, 0.05, set(LANGUAGES))]):
        stage = recipe.stages[stage_index]
        here = [r for r in lines if r["stage"] == stage.name]
        mixture = stage_mixture(resolved, registries, stage_index)
        expected = mixture.probabilities(plan.clock(plan.stages[stage_index].start), sources=LANGUAGES, sizes=sizes)
        for r in here:
            assert r["mask_rate"] == pytest.approx(rate)
            assert r["mixture/tau"] == pytest.approx(tau)
            assert {k: r[f"mixture/p/{k}"] for k in LANGUAGES} == pytest.approx(expected)
        # the shares of the documents read over the stage, weighing each line by its documents
        documents = sum(r["mixture/documents"] for r in here)
        shares = {k: sum(r[f"mixture/docs/{k}"] * r["mixture/documents"] for r in here) / documents
                  for k in LANGUAGES}
        assert documents > 150, (stage.name, documents)  # the batch warmup keeps the first steps small
        for k in LANGUAGES:
            if k in languages:
                assert shares[k] == pytest.approx(expected[k], abs=0.08), (stage.name, shares, expected)
            else:
                assert expected[k] == 0.0 and shares[k] == 0.0
    # the smoke scale's θ schedule is the full recipe's: 10k for 1,024 tokens, 160k after
    assert {(r["stage"], r["global_rope_theta"]) for r in lines} == {
        ("pretrain", 10000), ("mid_training", 160000), ("decay", 160000)}
