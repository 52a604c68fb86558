"""The mlm evaluator's unigram baseline: what a model that only counted tokens would score."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from encoder_recipes.evaluation.context import EvalContext
from encoder_recipes.evaluation.mlm import MLMEvaluator, token_counts, unigram_loss


def test_without_a_reference_the_baseline_is_the_entropy_of_the_text(tokenizer):
    texts = ["the cat sat on the mat", "the dog sat"]
    counts = token_counts(texts, tokenizer)
    total = sum(counts.values())
    entropy = -sum(c / total * math.log(c / total) for c in counts.values())
    assert unigram_loss(texts, tokenizer) == pytest.approx(entropy)
    assert tokenizer.cls_token_id not in counts and tokenizer.mask_token_id not in counts  # no special tokens


def test_with_training_counts_it_is_their_smoothed_cross_entropy(tokenizer):
    texts = ["the cat sat on the mat"]
    reference = token_counts(["the cat sat on the mat"] * 3 + ["a dog ran"], tokenizer)
    counts = token_counts(texts, tokenizer)
    denominator = sum(reference.values()) + len(tokenizer)
    expected = -sum(c * math.log((reference[i] + 1) / denominator) for i, c in counts.items()) / sum(counts.values())
    assert unigram_loss(texts, tokenizer, reference) == pytest.approx(expected)
    # the text's own frequencies are the best a context-free model can do
    assert unigram_loss(texts, tokenizer, reference) > unigram_loss(texts, tokenizer)
    with pytest.raises(ValueError, match="no validation tokens"):
        unigram_loss([""], tokenizer, Counter())


def test_the_evaluator_reports_the_baseline_and_the_gain(tokenizer, model):
    validation = ["the cat sat on the mat and looked at the dog"] * 4
    train = ["the cat sat on the mat", "a dog ran in the park"] * 8
    context = EvalContext(language="en", documents=lambda: iter(validation), train_documents=lambda: iter(train),
                          seq_len=32, mask_rate=0.3)
    scores = MLMEvaluator(MLMEvaluator.Params(num_sequences=4, batch_size=4)).evaluate(
        model=model, tokenizer=tokenizer, context=context)
    reference = token_counts(train, tokenizer)
    assert scores["unigram_loss"] == pytest.approx(unigram_loss(validation, tokenizer, reference))
    assert scores["gain"] == pytest.approx(scores["unigram_loss"] - scores["loss"])
