"""The data worker's state for step N is the in-process stream's state right after batch N, exactly.

Documents here are longer than a sequence (standard-library docstrings of
about 100 tokens against 32-token sequences), so the packers' buffers carry
over from step to step, and a step needs new documents every few steps: a
snapshot that shares a list with a packer, or one taken later than its step,
shows up as a difference.
"""

from __future__ import annotations

import json

import pytest
import torch

from encoder_recipes.components.masking import TokenMasking
from encoder_recipes.components.tokenizers import BPE
from encoder_recipes.data.sources import DocumentStream
from encoder_recipes.schema import DataSource
from encoder_recipes.training.prefetch import PipelineSpec, PrefetchedBatches

SEQ_LEN, BATCH, STEPS = 32, 64, 40


@pytest.fixture(scope="module")
def long_documents(tmp_path_factory, stdlib_docstrings):
    texts = stdlib_docstrings
    folder = tmp_path_factory.mktemp("long")
    (folder / "docs.txt").write_text("\n".join(texts), encoding="utf-8")
    tokenizer = BPE(BPE.Params(vocab_size=512)).build(texts=iter(texts), vocab_size=None, language="en", segmenter=None)
    return DataSource(name="docs", paths=[str(folder / "docs.txt")]), tokenizer


def spec(source, tokenizer, packing) -> PipelineSpec:
    return PipelineSpec(streams={"docs": DocumentStream(source, "train", validation_fraction=0.05)},
                        weights={"docs": 1.0}, mixture_seed=1, tokenizer=tokenizer, segmenter=None,
                        packing=packing, masking=TokenMasking(TokenMasking.Params(rate=0.3)), seed=5)


def by_value(state):
    return json.loads(json.dumps(state))


@pytest.mark.parametrize("packing", ["naive", "best_fit"])
def test_worker_state_for_each_step_is_the_in_process_state_after_that_step(long_documents, packing):
    source, tokenizer = long_documents
    schedule = [(step, BATCH, SEQ_LEN, 0.3) for step in range(STEPS)]
    maker = spec(source, tokenizer, packing).build()
    expected = []
    for step, batch_size, seq_len, rate in schedule:
        maker.next(step=step, batch_size=batch_size, seq_len=seq_len, rate=rate)
        expected.append(by_value(maker.state_after(step)))
    # the buffers really carry over between steps (else this test could not fail)
    key = "buffer" if packing == "naive" else "pending"
    assert sum(bool(s["ids_packer"][key]) for s in expected) > STEPS // 2

    batches = PrefetchedBatches(spec(source, tokenizer, packing), schedule, depth=4)
    try:
        got = []
        for step, batch_size, seq_len, rate in schedule:
            batches.next(step=step, batch_size=batch_size, seq_len=seq_len, rate=rate)
            got.append(by_value(batches.state_after(step)))
    finally:
        batches.close()
    wrong = [step for step, (a, b) in enumerate(zip(expected, got)) if a != b]
    assert wrong == [], f"{packing}: the worker's state differs from the in-process one after steps {wrong}"


@pytest.mark.parametrize("packing", ["none", "naive", "best_fit"])
def test_batches_carry_each_rows_document_lengths(long_documents, packing):
    source, tokenizer = long_documents
    maker = spec(source, tokenizer, packing).build()
    batch = maker.next(step=0, batch_size=BATCH, seq_len=128, rate=0.3)  # room for several whole documents
    rows = batch.attention_mask.sum(1).tolist()
    assert [sum(lengths) for lengths in batch.doc_lengths] == rows
    if packing != "none":  # best-fit opens its bins longest first: rows of several documents come later
        most = max(len(lengths) for step in range(1, 30)
                   for lengths in maker.next(step=step, batch_size=BATCH, seq_len=128, rate=0.3).doc_lengths)
        assert most > 1
    for row, lengths in enumerate(batch.doc_lengths):
        ends = torch.tensor(lengths).cumsum(0) - 1
        if packing == "naive":  # the row's last document may go on in the next row, without its [SEP] yet
            ends = ends[:-1]
        # each document's segment closes with [SEP] (special tokens are never masked)
        assert (batch.input_ids[row, ends] == tokenizer.sep_token_id).all(), (row, lengths)
    part = batch.slice(4, 8)
    assert part.doc_lengths == batch.doc_lengths[4:8]
    cu = part.cu_seqlens()
    assert cu[0] == 0 and cu[-1] == part.tokens and cu.dtype == torch.int32
