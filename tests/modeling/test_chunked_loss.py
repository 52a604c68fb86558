"""The chunked head loss gives the unchunked loss and gradients (CPU, real tiny ModernBERT)."""

from __future__ import annotations

import pytest
import torch
from transformers import ModernBertConfig, ModernBertForMaskedLM

from encoder_recipes.modeling.chunked_loss import ChunkedHeadLoss, chunked_cross_entropy


def test_chunked_cross_entropy_equals_the_whole_loss_and_its_gradients():
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(37, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(50, generator=generator, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (37,), generator=generator)

    whole = torch.nn.functional.cross_entropy(torch.nn.functional.linear(rows, weight, bias), targets)
    expected = torch.autograd.grad(whole, (rows, weight, bias))
    for chunk in (1, 5, 36, 37, 100):  # uneven last chunk, one row short, exactly one chunk, larger
        loss = chunked_cross_entropy(rows, weight, bias, targets, chunk_rows=chunk)
        grads = torch.autograd.grad(loss, (rows, weight, bias))
        torch.testing.assert_close(loss, whole, rtol=1e-12, atol=0)
        for got, want in zip(grads, expected):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="chunk_rows"):
        chunked_cross_entropy(rows, weight, bias, targets, chunk_rows=0)


def _model() -> ModernBertForMaskedLM:
    torch.manual_seed(0)
    config = ModernBertConfig(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                              num_attention_heads=2, max_position_embeddings=64, local_attention=16,
                              pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2,
                              sparse_prediction=True)
    return ModernBertForMaskedLM(config)


def _loss_and_grads(model, forward, inputs):
    model.zero_grad(set_to_none=True)
    out = forward(**inputs)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_the_wrapped_model_trains_with_the_models_own_loss_and_gradients():
    model = _model()
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 96, (4, 24), generator=generator)
    labels = torch.where(torch.rand(4, 24, generator=generator) < 0.3, ids, torch.full_like(ids, -100))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    rows = int((labels != -100).sum())
    assert rows > 8

    want_loss, want = _loss_and_grads(model, model, inputs)
    # no more rows than a chunk: transformers' own computation, to the bit
    same_loss, same = _loss_and_grads(model, ChunkedHeadLoss(model, chunk_rows=rows), inputs)
    assert torch.equal(same_loss, want_loss) and all(torch.equal(same[n], want[n]) for n in want)
    # in chunks of 7 rows: the same sums, grouped otherwise
    got_loss, got = _loss_and_grads(model, ChunkedHeadLoss(model, chunk_rows=7), inputs)
    torch.testing.assert_close(got_loss, want_loss)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-7, msg=name)


def test_a_batch_without_targets_gives_logits_to_backpropagate_through():
    model = _model()
    ids = torch.randint(3, 96, (2, 8))
    out = ChunkedHeadLoss(model, chunk_rows=4)(input_ids=ids, attention_mask=torch.ones_like(ids),
                                                labels=torch.full_like(ids, -100))
    assert out.loss is None and out.logits.shape == (0, 96)
    (out.logits.sum() * 0.0).backward()  # what the trainer does on such a micro-batch, so DDP sees every rank
