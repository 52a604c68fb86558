"""Packed documents kept apart: a document's logits are the same packed with others as alone."""

from __future__ import annotations

import pytest
import torch

from encoder_recipes.modeling.build import build_model
from encoder_recipes.modeling.isolation import cu_seqlens, document_ids, isolated_inputs, position_ids
from encoder_recipes.schema import ModelConfig

CLS, SEP, PAD = 0, 1, 3


def tiny_model(attn: str) -> torch.nn.Module:
    # local_attention 8: the sliding window (4 each side) is shorter than the documents,
    # so the local layers' window and the document rule both matter
    config = ModelConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=2,
                         local_attention=8, global_attn_every_n_layers=2, max_position_embeddings=256,
                         sparse_prediction=False)
    return build_model(config, vocab_size=300, special_ids={"pad": PAD, "cls": CLS, "sep": SEP},
                       attn_implementation=attn, seed=0).eval()


def docs(seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(5, 300, (n,), generator=g).tolist() for n in (13, 21, 9, 17)]


def packed_batch(documents):
    """Two rows: [CLS] d0 [SEP] d1 [SEP] d2 [SEP] and [CLS] d3 [SEP] + padding."""
    row0 = [CLS, *documents[0], SEP, *documents[1], SEP, *documents[2], SEP]
    row1 = [CLS, *documents[3], SEP]
    lengths = [[len(documents[0]) + 2, len(documents[1]) + 1, len(documents[2]) + 1], [len(documents[3]) + 2]]
    width = len(row0)
    ids = torch.full((2, width), PAD)
    mask = torch.zeros((2, width), dtype=torch.long)
    for r, row in enumerate((row0, row1)):
        ids[r, : len(row)] = torch.tensor(row)
        mask[r, : len(row)] = 1
    return ids, mask, lengths


def alone_logits(model, segment: list[int]) -> torch.Tensor:
    ids = torch.tensor([segment])
    return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("restart", [True, False])
def test_each_document_sees_only_itself(attn, restart):
    model = tiny_model(attn)
    documents = docs()
    ids, mask, lengths = packed_batch(documents)
    with torch.no_grad():
        kwargs = isolated_inputs(model, input_ids=ids, attention_mask=mask, doc_lengths=lengths,
                                 restart_positions=restart)
        logits = model(**kwargs).logits
        segments = [(0, 0, [CLS, *documents[0], SEP]), (0, lengths[0][0], [*documents[1], SEP]),
                    (0, lengths[0][0] + lengths[0][1], [*documents[2], SEP]), (1, 0, [CLS, *documents[3], SEP])]
        for row, start, segment in segments:
            alone = alone_logits(model, segment)
            here = logits[row, start : start + len(segment)]
            # batched matmuls round differently from single-row ones; without restarting positions
            # RoPE still sees the same relative positions, so only rounding differs (a little more)
            tol = dict(rtol=1e-5, atol=1e-6) if restart else dict(rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(here, alone, **tol)


def test_without_isolation_documents_attend_to_each_other():
    """The property above is not automatic: plain packing changes a later document's logits."""
    model = tiny_model("sdpa")
    documents = docs()
    ids, mask, lengths = packed_batch(documents)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
        segment = [*documents[1], SEP]
        here = logits[0, lengths[0][0] : lengths[0][0] + len(segment)]
        # a freshly initialised model mixes weakly, but far above the rounding the test above allows
        assert (here - alone_logits(model, segment)).abs().max() > 1e-3


def test_isolated_loss_equals_the_documents_losses_alone():
    """With labels, the isolated packed loss is the masked-token mean of the documents' own losses."""
    model = tiny_model("sdpa")
    model.config.sparse_prediction = model.sparse_prediction = True
    documents = docs(1)
    ids, mask, lengths = packed_batch(documents)
    labels = torch.full_like(ids, -100)
    labels[0, 3], labels[0, 20], labels[0, 40], labels[1, 5] = ids[0, 3], ids[0, 20], ids[0, 40], ids[1, 5]
    with torch.no_grad():
        packed = model(**isolated_inputs(model, input_ids=ids, attention_mask=mask, doc_lengths=lengths,
                                         labels=labels, restart_positions=True)).loss
        losses = []
        for row, row_lengths in enumerate(lengths):
            start = 0
            for n in row_lengths:
                seg_labels = labels[row, start : start + n]
                if (seg_labels != -100).any():
                    seg = ids[row, start : start + n].unsqueeze(0)
                    out = model(input_ids=seg, attention_mask=torch.ones_like(seg), labels=seg_labels.unsqueeze(0))
                    losses.append(out.loss * (seg_labels != -100).sum())
                start += n
    torch.testing.assert_close(packed, torch.stack(losses).sum() / (labels != -100).sum(), rtol=1e-5, atol=1e-6)


def test_lengths_become_ids_positions_and_cu_seqlens():
    lengths = [[3, 2], [4]]
    assert document_ids(lengths, 5).tolist() == [[0, 0, 0, 1, 1], [0, 0, 0, 0, -1]]
    assert position_ids(lengths, 5, restart=True).tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 4]]
    assert position_ids(lengths, 5, restart=False).tolist() == [[0, 1, 2, 3, 4]] * 2
    cu, longest = cu_seqlens(lengths)
    assert cu.tolist() == [0, 3, 5, 9] and cu.dtype == torch.int32 and longest == 4


def test_lengths_that_do_not_cover_the_row_are_refused():
    model = tiny_model("sdpa")
    ids, mask, lengths = packed_batch(docs())
    lengths[1] = [5]
    with pytest.raises(ValueError, match="row 1: document lengths sum to 5"):
        isolated_inputs(model, input_ids=ids, attention_mask=mask, doc_lengths=lengths)


def test_flash_attention_inputs_are_flat_varlen():
    """The FlashAttention 2 form (checked on CPU for shape; the kernel itself needs a GPU)."""
    model = tiny_model("sdpa")
    model.config._attn_implementation = "flash_attention_2"
    ids, mask, lengths = packed_batch(docs())
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    out = isolated_inputs(model, input_ids=ids, attention_mask=mask, doc_lengths=lengths, labels=labels,
                          restart_positions=True)
    real = int(mask.sum())
    assert out["input_ids"].shape == (1, real) and out["attention_mask"] is None
    assert out["input_ids"][0].tolist() == ids[mask.bool()].tolist() == out["labels"][0].tolist()
    assert out["cu_seq_lens_q"].tolist() == [0, 15, 37, 47, 66] and out["max_length_q"] == 22
    assert out["position_ids"][0, 15:18].tolist() == [0, 1, 2]


def test_recipe_refuses_restarted_positions_without_isolation():
    from pydantic import ValidationError

    from encoder_recipes.schema import Stage

    stage = dict(name="s", context={"name": "fixed", "seq_len": 128}, steps=1, batch_size=1, lr=1e-3,
                 masking={"name": "mlm"}, packing="best_fit")
    assert Stage(**stage, document_isolation=True, restart_positions=True).restart_positions
    with pytest.raises(ValidationError, match="restart_positions needs document_isolation"):
        Stage(**stage, restart_positions=True)
