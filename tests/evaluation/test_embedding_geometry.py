"""Alignment/uniformity on vectors whose answer is known; mean pooling ignores padding; the evaluator end to end."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from encoder_recipes.evaluation.context import EvalContext
from encoder_recipes.evaluation.embeddings import (
    AlignmentUniformityEvaluator,
    alignment,
    embed,
    histogram,
    mean_pool,
    uniformity,
)
from encoder_recipes.evaluation.offline_data import consecutive_pairs, random_pairs

from .conftest import help_pages

DOCS = [p["text"] for p in help_pages()]


def test_orthonormal_vectors():
    e = torch.eye(4)
    x, y = e[[0, 1, 2]], e[[1, 2, 3]]
    # ||a - b||² = 2 for distinct orthonormal vectors: uniform = log(e^(-2·2)) = -4
    assert uniformity(e) == pytest.approx(-4.0)
    assert alignment(x, y) == pytest.approx(2.0)
    assert alignment(x, x) == 0.0
    assert uniformity(torch.ones(3, 2) / math.sqrt(2)) == pytest.approx(0.0)  # all at one point: the maximum, 0


def test_uniformity_counts_every_off_diagonal_pair_by_hand():
    # rows a, a, b with a ⟂ b: of the 6 ordered pairs of distinct rows, 2 are at distance 0 and 4 at 2
    e = torch.eye(2)[[0, 0, 1]]
    assert uniformity(e) == pytest.approx(math.log((2 + 4 * math.exp(-4)) / 6))
    # opposite unit vectors: squared distance 4; with t = 1, uniform = -4
    assert uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]), t=1.0) == pytest.approx(-4.0)
    with pytest.raises(ValueError, match="at least two"):
        uniformity(torch.eye(2)[:1])


def llm_jp_uniformity(embeddings: torch.Tensor, t: float = 2.0) -> float:
    """llm-jp's compute_uniformity, written out independently
    (llm-jp/llm-jp-modernbert, src/eval/alignment_and_uniformity.py lines 20-30)."""
    e = torch.nn.functional.normalize(embeddings.double(), dim=1)
    total, count = 0.0, 0
    for i in range(len(e)):
        for j in range(len(e)):
            if i != j:
                total += math.exp(-t * float((e[i] - e[j]).pow(2).sum()))
                count += 1
    return math.log(total / count)


def test_uniformity_matches_llm_jp_over_all_pairs_not_only_the_pairings():
    g = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(12, 5, generator=g), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(12, 5, generator=g), dim=-1)
    pooled = torch.cat([a, b])
    assert uniformity(pooled) == pytest.approx(llm_jp_uniformity(pooled), rel=1e-6)
    # the pairings alone (row i of a with row i of b) give a different number
    pairings_only = math.log(float(torch.exp(-2 * (a - b).pow(2).sum(-1)).mean()))
    assert abs(uniformity(pooled) - pairings_only) > 1e-3


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 3.0]]


def test_embedding_does_not_depend_on_batch_padding(tokenizer, model):
    short, long = "page margins", DOCS[0]
    alone = embed(model, tokenizer, [short])
    padded = embed(model, tokenizer, [long, short])[1:]
    torch.testing.assert_close(alone, padded, rtol=1e-4, atol=1e-5)
    assert torch.linalg.norm(alone, dim=-1).item() == pytest.approx(1.0)


def test_histogram_counts_every_value_in_its_bin():
    h = histogram(torch.tensor([-1.0, -0.2, 0.1, 0.2, 0.99]), bins=4)
    assert h["edges"] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert h["counts"] == [1, 1, 2, 1]


def test_pairs_are_consecutive_paragraphs_and_random_pairs_cross_documents():
    rng = random.Random(0)
    pos = consecutive_pairs(DOCS, 1000, rng)
    assert len(pos) == len(DOCS) * 3  # four paragraphs a page: three consecutive pairs
    for a, b in pos:
        assert any(f"{a}\n{b}" in d for d in DOCS)
    for a, b in random_pairs(DOCS, 50, rng):
        # every paragraph names its page's topic, so it belongs to one page only
        assert not any(a in d.split("\n") and b in d.split("\n") for d in DOCS)


def test_evaluator_end_to_end_writes_histograms(tokenizer, model, tmp_path):
    ctx = EvalContext(language="en", documents=lambda: iter(DOCS), seed=0, step=12, out_dir=tmp_path)
    out = AlignmentUniformityEvaluator(num_positive=20, num_random=30, histogram_bins=10).evaluate(
        model=model, tokenizer=tokenizer, context=ctx)
    assert out["positive_pairs"] == 20 and out["random_pairs"] == 30
    assert 0.0 <= out["alignment"] <= 4.0 and -4.0 <= out["uniformity"] <= 0.0
    assert sum(out["details"]["positive"]["counts"]) == 20
    saved = json.loads((tmp_path / "eval" / "details" / "alignment_uniformity_step_00000012.json").read_text())
    assert saved["step"] == 12 and sum(saved["random"]["counts"]) == 30
    # alignment is the mean of 2 - 2·cos over the positive pairs (unit vectors)
    assert out["alignment"] == pytest.approx(2 - 2 * out["positive_cos_mean"], abs=1e-5)


def test_crosslingual_pairs_come_from_the_pairs_file(tokenizer, model, use_sample_cache):
    ctx = EvalContext(language="fi", documents=lambda: iter(DOCS), seed=0)
    out = AlignmentUniformityEvaluator(pairs="crosslingual", num_positive=8, num_random=8).evaluate(
        model=model, tokenizer=tokenizer, context=ctx)
    assert out["positive_pairs"] == 8
