"""Packing tokenized documents into sequences: none, naive and best-fit."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from encoder_recipes.data.packing import (
    BestFitPacker,
    NaivePacker,
    best_fit_decreasing,
    make_packer,
    pack_best_fit,
    pack_naive,
    pack_none,
)

CLS, SEP = 1, 2


def random_docs(n: int, seed: int, max_len: int = 300) -> list[list[int]]:
    rng = random.Random(seed)
    # Mostly short documents with a long tail, like web text; ids >= 10 never collide with CLS/SEP.
    lengths = [min(max_len, int(rng.expovariate(1 / 60)) + 1) for _ in range(n)]
    return [[rng.randrange(10, 1000) for _ in range(k)] for k in lengths]


def content(seqs: list[list[int]]) -> Counter:
    return Counter(t for s in seqs for t in s if t not in (CLS, SEP))


def test_pack_none_truncates_one_document_per_sequence():
    docs = [[10, 11, 12], list(range(100, 120)), []]
    seqs = pack_none(docs, seq_len=8, cls_id=CLS, sep_id=SEP)
    assert seqs == [[CLS, 10, 11, 12, SEP], [CLS, *range(100, 106), SEP], [CLS, SEP]]


def test_pack_none_keeps_everything_that_fits():
    docs = random_docs(200, seed=0)
    seqs = pack_none(docs, 128, CLS, SEP)
    assert len(seqs) == len(docs)
    assert content(seqs) == content([d[:126] for d in docs])
    assert all(s[0] == CLS and s[-1] == SEP and len(s) <= 128 for s in seqs)


def test_pack_naive_cuts_exact_lengths_and_loses_nothing():
    docs = random_docs(300, seed=1)
    seqs, doc_lengths = pack_naive(docs, 64, CLS, SEP)
    assert all(len(s) == 64 for s in seqs[:-1]) and 0 < len(seqs[-1]) <= 64
    assert all(s[0] == CLS for s in seqs)
    assert content(seqs) == content(docs)
    # The stream without [CLS] is the documents joined by [SEP], in order.
    stream = [t for s in seqs for t in s[1:]]
    assert stream == [t for d in docs for t in (*d, SEP)]
    assert [sum(lengths) for lengths in doc_lengths] == [len(s) for s in seqs]


def test_naive_doc_lengths_mark_document_pieces():
    packer = NaivePacker(seq_len=6, cls_id=CLS, sep_id=SEP)
    out = packer.add([10, 11, 12]) + packer.add([20, 21, 22, 23, 24])
    out += packer.flush()
    assert [p.input_ids for p in out] == [[CLS, 10, 11, 12, SEP, 20], [CLS, 21, 22, 23, 24, SEP]]
    # [CLS] counts with the first piece: (CLS 10 11 12 SEP)(20) then (CLS 21 22 23 24 SEP).
    assert [p.doc_lengths for p in out] == [[5, 1], [6]]
    assert packer.flush() == []


def test_naive_streams_carry_the_remainder():
    packer = NaivePacker(seq_len=10, cls_id=CLS, sep_id=SEP)
    assert packer.add([10, 11]) == []  # 3 of 9 body tokens buffered
    (first,) = packer.add(list(range(20, 30)))
    assert first.input_ids == [CLS, 10, 11, SEP, 20, 21, 22, 23, 24, 25]
    (last,) = packer.flush()
    assert last.input_ids == [CLS, 26, 27, 28, 29, SEP]


def first_fit_count(sizes: list[int], capacity: int) -> int:
    """Bins first-fit needs, taking items in arrival order."""
    bins: list[int] = []
    for size in sizes:
        for i, used in enumerate(bins):
            if used + size <= capacity:
                bins[i] += size
                break
        else:
            bins.append(size)
    return len(bins)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_best_fit_keeps_documents_whole_and_packs_tighter(seed):
    docs = random_docs(400, seed=seed, max_len=120)
    seq_len = 128
    seqs, doc_lengths = pack_best_fit(docs, seq_len, CLS, SEP, window=400)
    assert all(len(s) <= seq_len and s[0] == CLS and s[-1] == SEP for s in seqs)
    assert content(seqs) == content(docs)
    assert [sum(lengths) for lengths in doc_lengths] == [len(s) for s in seqs]
    # Every document appears whole, between two delimiters.
    pieces = Counter(tuple(p) for s in seqs for p in _split(s[1:-1]))
    assert pieces == Counter(tuple(d) for d in docs)
    # The doc_lengths match the [SEP] positions.
    for s, lengths in zip(seqs, doc_lengths):
        ends = [i + 1 for i, t in enumerate(s) if t == SEP]
        assert ends == [sum(lengths[: k + 1]) for k in range(len(lengths))]
    assert len(seqs) <= first_fit_count([len(d) + 1 for d in docs], seq_len - 1)
    # Near the lower bound on sequences.
    assert len(seqs) <= 1.05 * sum(len(d) + 1 for d in docs) / (seq_len - 1) + 1


def _split(body: list[int]) -> list[list[int]]:
    out, cur = [], []
    for t in body:
        if t == SEP:
            out.append(cur)
            cur = []
        else:
            cur.append(t)
    out.append(cur)
    return out


def test_best_fit_splits_long_documents_into_chunks():
    long_doc = list(range(100, 125))  # 25 tokens, seq_len 10 -> chunks of 8
    seqs, doc_lengths = pack_best_fit([long_doc, [10]], seq_len=10, cls_id=CLS, sep_id=SEP)
    assert all(len(s) <= 10 for s in seqs)
    assert content(seqs) == content([long_doc, [10]])
    assert sorted(len(s) for s in seqs) == [5, 10, 10, 10]  # 8+8+8 in full sequences, 1 + [10] together


def test_best_fit_window_streams():
    packer = BestFitPacker(seq_len=32, cls_id=CLS, sep_id=SEP, window=5)
    docs = random_docs(12, seed=5, max_len=30)
    emitted = [len(packer.add(d)) > 0 for d in docs]
    assert emitted == [False] * 4 + [True] + [False] * 4 + [True] + [False] * 2
    rest = packer.flush()
    assert rest and content([p.input_ids for p in rest]) == content(docs[10:])


def test_best_fit_decreasing_chooses_the_tightest_bin():
    # Items 6, 5, 4, 3, 2 into bins of 10: BFD gives (6, 4) and (5, 3, 2).
    bins = best_fit_decreasing([3, 6, 2, 5, 4], capacity=10)
    assert sorted(sorted([3, 6, 2, 5, 4][i] for i in b) for b in bins) == [[2, 3, 5], [4, 6]]


def test_make_packer_and_bad_arguments():
    assert isinstance(make_packer("naive", 16, CLS, SEP), NaivePacker)
    assert make_packer("none", 16, CLS, SEP).add([10] * 20)[0].input_ids == [CLS, *[10] * 14, SEP]
    with pytest.raises(ValueError, match="known: none, naive, best_fit"):
        make_packer("greedy", 16, CLS, SEP)
    with pytest.raises(ValueError, match="seq_len"):
        BestFitPacker(2, CLS, SEP)
