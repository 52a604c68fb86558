"""Recall/MRR on a 3×3 matrix by hand, Levenshtein and Jaccard against plain definitions, the evaluator end to end."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from encoder_recipes.evaluation.context import EvalContext
from encoder_recipes.evaluation.retrieval import (
    RetrievalEvaluator,
    edit_distance_matrix,
    jaccard_distance_matrix,
    levenshtein_to_many,
    rank_metrics,
)

from .conftest import help_pages

SIM = np.array([
    [0.9, 0.1, 0.3],  # query 0: its passage (0) is first          -> rank 1
    [0.8, 0.5, 0.2],  # query 1: passage 0 scores higher than 1      -> rank 2
    [0.4, 0.2, 0.3],  # query 2: passage 0 scores higher than 2      -> rank 2
])


def test_recall_and_mrr_on_a_3x3_matrix():
    # ranks 1, 2, 2
    assert rank_metrics(SIM, k=1) == {"recall@1": pytest.approx(1 / 3), "mrr@1": pytest.approx(1 / 3)}
    assert rank_metrics(SIM, k=2) == {"recall@2": pytest.approx(1.0), "mrr@2": pytest.approx((1 + 0.5 + 0.5) / 3)}
    # with explicit gold passages: query 1 -> passage 0 (rank 1), query 2 -> passage 1 (rank 3)
    assert rank_metrics(SIM, gold=[0, 0, 1], k=2) == {"recall@2": pytest.approx(2 / 3),
                                                      "mrr@2": pytest.approx((1 + 1) / 3)}


def test_ties_keep_the_passage_order():
    sim = np.array([[0.5, 0.5], [0.5, 0.5]])
    # query 0's passage is listed first (rank 1); query 1's second (rank 2)
    assert rank_metrics(sim, k=1)["recall@1"] == pytest.approx(0.5)


def plain_levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_levenshtein_matches_the_textbook_recurrence():
    assert levenshtein_to_many("kitten", ["sitting", "kitten", "", "kit"]).tolist() == [3, 0, 6, 3]
    assert levenshtein_to_many("", ["abc"]).tolist() == [3]
    rng = random.Random(0)
    words = ["".join(rng.choice("abcé日本") for _ in range(rng.randint(0, 12))) for _ in range(40)]
    for q in words[:10]:
        assert levenshtein_to_many(q, words).tolist() == [plain_levenshtein(q, w) for w in words]


def test_edit_and_jaccard_distances_by_hand():
    assert edit_distance_matrix(["abcd"], ["abcf", "ab"]).tolist() == [[0.25, 0.5]]  # 1/4, 2/4
    d = jaccard_distance_matrix([{"a", "b"}], [{"b", "c"}, {"a", "b"}, set()])
    assert d.tolist() == [[pytest.approx(1 - 1 / 3), 0.0, 1.0]]


def test_evaluator_scores_documents_and_baselines(tokenizer, model):
    docs = [p["text"] for p in help_pages()]
    ctx = EvalContext(language="en", documents=lambda: iter(docs), seed=0)
    out = RetrievalEvaluator(k=1).evaluate(model=model, tokenizer=tokenizer, context=ctx)
    assert out["queries"] == len(docs)
    for key in ("recall@1", "mrr@1", "edit_distance/recall@1", "jaccard/mrr@1"):
        assert 0.0 <= out[key] <= 1.0
    assert out["recall@1"] == pytest.approx(out["mrr@1"])  # at k = 1 they coincide


def test_baselines_solve_a_task_where_passages_echo_queries(tokenizer, model):
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
    docs = [f"{w} {w} {w} is here\n{w} {w} {w} is there" for w in words]
    ctx = EvalContext(language="en", documents=lambda: iter(docs), seed=0)
    out = RetrievalEvaluator(k=1).evaluate(model=model, tokenizer=tokenizer, context=ctx)
    assert out["edit_distance/recall@1"] == 1.0 and out["edit_distance/mrr@1"] == 1.0


def test_miracl_shaped_rows_from_a_local_file(tokenizer, model, tmp_path):
    rows = [{"query_id": str(i), "query": f"q{i}",
             "positive_passages": [{"docid": f"{i}#0", "title": "t", "text": p} for p in pair],
             "negative_passages": []}
            for i, pair in enumerate([["cells and formulas", "formulas in cells"], ["basic macros", "macro editor"],
                                      ["only one positive"], ["page margins", "margins of pages"]])]
    path = tmp_path / "miracl_ja_dev.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    ctx = EvalContext(language="ja", seed=0)
    out = RetrievalEvaluator(pairs="miracl", dataset=str(path), split="dev", k=2).evaluate(
        model=model, tokenizer=tokenizer, context=ctx)
    assert out["queries"] == 3  # the instance with one positive passage is left out
