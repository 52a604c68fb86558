"""Fine-tuning: correlations by hand, a separable task is learnt, the grid runs end to end on CPU."""

from __future__ import annotations

import json
import random

import pytest
import torch

from encoder_recipes.evaluation.context import EvalContext
from encoder_recipes.evaluation.finetune import (
    FinetuneEvaluator,
    TaskSpec,
    average_ranks,
    examples_from_rows,
    pearson,
    spearman,
    train_and_score,
)
from encoder_recipes.evaluation.offline_data import Example, section_of


def test_correlations_by_hand():
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0)
    assert pearson([1, 1, 1], [1, 2, 3]) == 0.0  # undefined for a constant side: reported as 0
    # x = 1, 2, 3 against y = 1, 3, 2: dx = (-1, 0, 1), dy = (-1, 1, 0) -> 1 / sqrt(2 · 2) = 0.5
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert average_ranks([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    # ranks (1, 2.5, 2.5, 4) against (1, 2, 3, 4): 4.5 / sqrt(4.5 · 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / (4.5 * 5) ** 0.5)
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)  # monotone, not linear


def test_rows_to_examples_map_string_labels_and_drop_unlabelled():
    spec = TaskSpec("x", None, ("sentence1", "sentence2"))
    rows = [{"sentence1": "a", "sentence2": "b", "label": "neutral"},
            {"sentence1": "c", "sentence2": "d", "label": "entailment"},
            {"sentence1": "e", "sentence2": "f", "label": None}]
    examples, labels = examples_from_rows(rows, spec)
    assert labels == ["entailment", "neutral"]
    assert examples == [Example(("a", "b"), 1), Example(("c", "d"), 0)]
    ints, labels = examples_from_rows([{"sentence": "x", "label": 2}, {"sentence": "y", "label": -1}],
                                      TaskSpec("x", None, ("sentence",)))
    assert labels == [0, 1, 2] and ints == [Example(("x",), 2)]


def test_section_of_a_help_page():
    assert section_of("text/swriter/01/04250000.html") == "swriter"
    assert section_of("text/sbasic/shared/03/lib_tools.html") == "sbasic"


def separable(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    fillers = ["the page", "a cell", "the menu", "this dialog", "your text"]
    return [Example((f"{rng.choice(fillers)} {word} {rng.choice(fillers)}",), label)
            for label, word in [(i % 2, ("margins", "formulas")[i % 2]) for i in range(n)]]


def test_a_separable_task_is_learnt_and_the_model_is_left_untouched(tokenizer, model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_state = torch.get_rng_state()
    scores = train_and_score(model, tokenizer, separable(64, 0), separable(32, 1), problem="classification",
                             num_outputs=2, lr=2e-3, epochs=6, batch_size=8)
    assert scores["accuracy"] >= 0.9
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert torch.equal(torch.get_rng_state(), rng_state)  # training runs continue as if nothing happened


def test_offline_grid_runs_end_to_end(tokenizer, model, use_sample_cache, tmp_path):
    ctx = EvalContext(language="en", seed=0, step=5, out_dir=tmp_path)
    evaluator = FinetuneEvaluator(task="section", learning_rates=[1e-4, 1e-3], epochs=[1, 2], max_train_examples=48,
                                  max_eval_examples=24, batch_size=8, max_length=32)
    out = evaluator.evaluate(model=model, tokenizer=tokenizer, context=ctx)
    grid = out["details"]["grid"]
    assert [(g["lr"], g["epochs"]) for g in grid] == [(1e-4, 1), (1e-4, 2), (1e-3, 1), (1e-3, 2)]
    assert out["section/accuracy"] == max(g["accuracy"] for g in grid)
    best = max(grid, key=lambda g: g["accuracy"])
    assert (out["section/best_lr"], out["section/best_epochs"]) == (best["lr"], best["epochs"])
    assert out["section/train_examples"] == 48 and out["section/eval_examples"] == 24
    assert out["section/majority_accuracy"] >= 1 / 3  # three sections
    assert (tmp_path / "eval" / "details" / "finetune_section_step_00000005.json").exists()


@pytest.mark.parametrize("task, key", [("same_page", "same_page/accuracy"), ("length", "length/spearman")])
def test_pair_and_regression_tasks_run(tokenizer, model, use_sample_cache, task, key):
    out = FinetuneEvaluator(task=task, learning_rates=[1e-3], epochs=[1], max_train_examples=24,
                            max_eval_examples=16, batch_size=8, max_length=48).evaluate(
        model=model, tokenizer=tokenizer, context=EvalContext(language="en"))
    assert -1.0 <= out[key] <= 1.0
    if task == "length":
        assert "length/pearson" in out


def test_custom_pair_regression_from_local_files(tokenizer, model, tmp_path):
    for split, n in (("train", 20), ("validation", 12)):
        rows = [{"sentence1": f"the page {i}", "sentence2": f"a cell {i}", "label": float(i % 5)} for i in range(n)]
        (tmp_path / f"sts-{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    out = FinetuneEvaluator(task="custom", dataset=str(tmp_path / "sts-{split}.jsonl"),
                            text_fields=["sentence1", "sentence2"], problem="regression", learning_rates=[1e-3],
                            epochs=[1], batch_size=8).evaluate(model=model, tokenizer=tokenizer,
                                                               context=EvalContext(language="ja"))
    assert out["custom/train_examples"] == 20 and out["custom/eval_examples"] == 12
    assert "custom/spearman" in out
