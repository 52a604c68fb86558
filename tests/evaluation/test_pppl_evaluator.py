"""Pseudo-perplexity: exact on models whose loss is known, batching equals one-at-a-time, bins as specified."""

from __future__ import annotations

import math
import random

import pytest
import torch
from pydantic import ValidationError

from encoder_recipes.evaluation.context import EvalContext
from encoder_recipes.evaluation.offline_data import binned_sequences
from encoder_recipes.evaluation.pppl import (
    PseudoPerplexityEvaluator,
    default_bins,
    logits_at,
    masked_position_losses,
)

from .conftest import help_pages, tiny_modernbert

DOCS = [p["text"] for p in help_pages()]


def context(docs=DOCS, **kw) -> EvalContext:
    return EvalContext(language="en", documents=lambda: iter(docs), seed=1, **kw)


def constant_logits_model(tokenizer, bias: torch.Tensor):
    """A model whose logits are ``bias`` at every position: zero decoder weights, untied."""
    model = tiny_modernbert(tokenizer, tie_word_embeddings=False)
    with torch.no_grad():
        model.decoder.weight.zero_()
        model.decoder.bias.copy_(bias)
    return model


def test_uniform_logits_give_the_vocabulary_size(tokenizer):
    vocab = len(tokenizer)
    model = constant_logits_model(tokenizer, torch.zeros(vocab))
    evaluator = PseudoPerplexityEvaluator(bins=[[0, 32], [32, 64]], sequences_per_bin=3, positions=7)
    out = evaluator.evaluate(model=model, tokenizer=tokenizer, context=context())
    # every position's loss is ln V, so PPPL = exp(ln V) = V exactly
    assert out["0-32"] == pytest.approx(vocab, rel=1e-5)
    assert out["32-64"] == pytest.approx(vocab, rel=1e-5)
    assert out["0-32/sequences"] == 3 and out["32-64/sequences"] == 3
    assert 32 < out["32-64/mean_length"] <= 64


def test_all_positions_with_known_logits_match_a_hand_computation(tokenizer):
    vocab = len(tokenizer)
    gen = torch.Generator().manual_seed(0)
    bias = torch.randn(vocab, generator=gen) * 3
    model = constant_logits_model(tokenizer, bias)
    docs = DOCS[:4]
    evaluator = PseudoPerplexityEvaluator(bins=[[0, 200]], sequences_per_bin=10, mode="all", fill="natural")
    out = evaluator.evaluate(model=model, tokenizer=tokenizer, context=context(docs))

    # by hand: the loss of true token t is logsumexp(bias) - bias[t], for every token of every document
    lse = math.log(sum(math.exp(float(b)) for b in bias))
    losses = [lse - float(bias[t]) for d in docs for t in tokenizer(d, add_special_tokens=False)["input_ids"]]
    assert out["0-200/sequences"] == 4
    assert out["0-200"] == pytest.approx(math.exp(sum(losses) / len(losses)), rel=1e-4)


def test_batched_single_masks_equal_one_forward_per_position(tokenizer, model):
    ids = tokenizer(DOCS[0])["input_ids"]
    positions = [1, 3, 3, len(ids) - 2, 5]
    batched = masked_position_losses(model, ids, positions, mask_token_id=tokenizer.mask_token_id, batch_size=2)
    one_by_one = []
    with torch.no_grad():
        for pos in positions:
            inputs = torch.tensor([ids])
            inputs[0, pos] = tokenizer.mask_token_id
            logits = model(input_ids=inputs).logits[0, pos]  # the ordinary full forward
            one_by_one.append(float(torch.nn.functional.cross_entropy(logits[None], torch.tensor([ids[pos]]))))
    assert batched == pytest.approx(one_by_one, rel=1e-4, abs=1e-5)


def test_head_on_chosen_positions_equals_the_full_forward(tokenizer, model):
    inputs = torch.tensor([tokenizer(DOCS[1])["input_ids"]] * 3)
    positions = torch.tensor([2, 4, 9])
    fast = logits_at(model, inputs, torch.ones_like(inputs), positions)
    full = model(input_ids=inputs).logits[torch.arange(3), positions]
    torch.testing.assert_close(fast, full, rtol=1e-4, atol=1e-5)


def test_default_bins_are_the_papers_for_an_8192_token_model():
    assert default_bins(8192) == [(0, 1024), (1024, 2048), (2048, 4096), (4096, 8192)]
    assert default_bins(512) == [(0, 64), (64, 128), (128, 256), (256, 512)]


def test_bins_beyond_the_model_are_skipped_with_a_note(tokenizer):
    model = tiny_modernbert(tokenizer, max_positions=64)
    out = PseudoPerplexityEvaluator(bins=[[0, 32], [32, 128]], sequences_per_bin=1, positions=2).evaluate(
        model=model, tokenizer=tokenizer, context=context())
    assert "0-32" in out and "32-128" not in out
    assert "64" in out["32-128/note"]


def test_overlapping_or_unordered_bins_are_refused():
    with pytest.raises(ValidationError):
        PseudoPerplexityEvaluator(bins=[[0, 100], [50, 200]])
    with pytest.raises(ValidationError):
        PseudoPerplexityEvaluator(bins=[[10, 5]])


def test_concatenated_sequences_join_consecutive_documents_and_fit_the_bin():
    docs = [[10, 11, 12], [20, 21], [30, 31, 32, 33]]
    rng = random.Random(0)
    seqs = binned_sequences(docs, 5, 9, 20, rng, cls_id=1, sep_id=2)
    assert len(seqs) == 20
    for seq in seqs:
        assert 5 <= len(seq) <= 9 and seq[0] == 1 and seq[-1] == 2
        body = seq[1:-1]
        # the body is a prefix of consecutive documents (wrapping around), starting at a document start
        start = next(i for i, d in enumerate(docs) if d[0] == body[0])
        joined = [t for k in range(3) for t in docs[(start + k) % 3]]
        assert body == joined[: len(body)]
    # longer than all documents together (9 tokens + 2): nothing can be made
    assert binned_sequences(docs, 12, 20, 5, rng, cls_id=1, sep_id=2) == []


def test_natural_fill_keeps_whole_documents_of_the_bins_length():
    docs = [[5] * 3, [6] * 10, [7] * 4]
    seqs = binned_sequences(docs, 4, 6, 5, random.Random(0), cls_id=1, sep_id=2, fill="natural")
    assert sorted(seqs) == [[1, 5, 5, 5, 2], [1, 7, 7, 7, 7, 2]]
