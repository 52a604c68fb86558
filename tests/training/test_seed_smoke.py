"""Each seed recipe runs end to end at smoke scale on real text in its language (slow: minutes each).

Every stage must run with the sequence length, RoPE thetas, masking rate and
LR the plan gives for that step (the metrics log shows it), the final
validation loss must beat the unigram baseline of the same text (a model
that only counted tokens) by :data:`MIN_GAIN` nats, and ``final/`` must load
in stock transformers and fill a mask in the recipe's language. The run is
deterministic on CPU with the recipe's seed.
"""

from __future__ import annotations

import math

import pytest
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

from encoder_recipes.data.samples import SampleCorpusMissing, sample_files
from encoder_recipes.plan import build_plan
from encoder_recipes.training.metrics import read_metrics
from encoder_recipes.training.trainer import RunOptions, train
from encoder_recipes.validation import load_recipe

RECIPES = ["ja-llmjp", "ja-modernbert-ja", "fi-modernbert", "zh-modernbert-wwm"]
#: the final validation MLM loss must beat the unigram baseline by this many nats per token, and predict
#: this share of the masked tokens exactly: issue 12's goals (1.5 nats and 20% for ja-llmjp). Measured
#: on 2 CPU cores with the 5M-token smoke rule (nats, accuracy): ja-llmjp 2.61, 23.0%; ja-modernbert-ja
#: 3.86, 36.6%; fi-modernbert 3.03, 32.9%; zh-modernbert-wwm 2.72, 36.0%. The 2.5M-token rule with the
#: paper's warmup fraction reached 1.34 / 2.32 / 2.33 / 0.51 nats. ja-llmjp's accuracy moved between 23.0%
#: and 25.8% with the thread count and a 86- or 100-step warmup, so the accuracy floor sits a little under the
#: issue's 20%, leaving room for another machine's float arithmetic; the README table gives what was measured.
MIN_GAIN = 2.0
MIN_ACCURACY = 0.18
#: the summary's three in-domain probes (the sample corpus's own) that must have an expected answer in the
#: top 5: most of them (every one hit in the measured runs)
MIN_PROBE_HITS = 2


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_seed_recipe_smoke_run(name, registries, tmp_path):
    resolved = load_recipe(name, registries=registries, scale="smoke")
    recipe = resolved.recipe
    try:
        sample_files(recipe.metadata.language)
    except SampleCorpusMissing as exc:  # scripts/setup.sh fetches it; CI runs that first
        pytest.fail(str(exc))
    final = train(resolved, registries, RunOptions(output=tmp_path / "run", progress=False))
    assert final is not None

    tokenizer = AutoTokenizer.from_pretrained(final)
    plan = build_plan(recipe, registries, vocab_size=len(tokenizer))
    records = read_metrics(tmp_path / "run")
    steps = [r for r in records if r.get("event") is None]
    assert {r["stage"] for r in steps} == {s.name for s in recipe.stages}
    for r in steps:
        clock = plan.clock(r["step"] - 1)
        spec = recipe.stages[clock.stage_index]
        stage = plan.stages[clock.stage_index]
        assert r["stage"] == stage.name
        assert r["seq_len"] == resolved.component(registries, "context", spec.context).seq_len(clock)
        assert r["mask_rate"] == pytest.approx(resolved.component(registries, "masking", spec.masking).rate(clock))
        multiplier = resolved.component(registries, "lr_schedule", spec.lr_schedule).multiplier(clock)
        assert r["lr"] == pytest.approx(spec.lr * multiplier)
        assert (r["global_rope_theta"], r["local_rope_theta"]) == (stage.global_rope_theta, stage.local_rope_theta)

    evals = [r for r in records if r.get("event") == "eval"]
    assert [e["stage"] for e in evals] == [s.name for s in recipe.stages]  # one at each stage end
    untrained = math.log(len(tokenizer))  # an untrained model's loss is about ln(vocab)
    assert all(e["mlm/loss"] < untrained - 0.5 for e in evals), (untrained, evals)
    final_eval = evals[-1]
    assert final_eval["mlm/unigram_loss"] - final_eval["mlm/loss"] >= MIN_GAIN, final_eval
    assert final_eval["mlm/accuracy"] >= MIN_ACCURACY, final_eval

    # the end-of-run summary carries the same numbers as the last evaluation, and the card shows them
    summary = [r for r in records if r.get("event") == "summary"][-1]
    assert summary["mlm/loss"] == final_eval["mlm/loss"] and summary["mlm/accuracy"] == final_eval["mlm/accuracy"]
    assert len(summary["probes"]) == 3 and all(len(p["predictions"]) == 5 for p in summary["probes"])
    in_domain = registries.sample_corpora.get(recipe.data.sources[0].sample).probes
    assert [p["text"] for p in summary["probes"]] == [p["text"] for p in in_domain[:3]]  # the corpus's own
    hits = [p["rank"] is not None for p in summary["probes"]]
    assert sum(hits) >= MIN_PROBE_HITS, summary["probes"]
    assert f"{final_eval['mlm/loss']:.3f}" in (final / "README.md").read_text(encoding="utf-8")

    remote = recipe.model.norm == "rmsnorm"  # shipped modelling code (auto_map)
    model = AutoModelForMaskedLM.from_pretrained(final, trust_remote_code=remote)
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)
    probe = registries.fill_mask_probes(recipe.metadata.language)[0]["text"].replace("{mask}", tokenizer.mask_token)
    answers = fill(probe)
    assert len(answers) == 5 and all(a["sequence"] for a in answers)
