"""Turning tokenized documents into training sequences: none, naive and best-fit packing.

Documents come in as lists of token ids *without* special tokens; every
sequence goes out as ``[CLS] ... [SEP]``-framed token ids, unpadded (the
collator pads per batch). The three modes are the recipe's ``packing`` key:

* ``none`` — one document per sequence, cut at the maximum length ("line by
  line"; llm-jp-modernbert discards the part beyond the maximum length).
* ``naive`` — concatenate documents, each followed by ``[SEP]``, and cut the
  stream into sequences of exactly ``seq_len`` tokens, each opened by
  ``[CLS]``; the remainder carries over to the next sequence.
* ``best_fit`` — best-fit-decreasing bin packing of whole documents over a
  window of documents: ``[CLS] d1 [SEP] d2 [SEP] ...``. Documents longer than
  a sequence are first split into chunks of ``seq_len - 2`` tokens (room for
  ``[CLS]`` and ``[SEP]``).

Each packed sequence comes with ``doc_lengths``: the length of each document's
segment in it, delimiters included (``[CLS]`` counts with the first segment,
each ``[SEP]`` with the document it closes), so they sum to the sequence
length and their cumulative sum is a ``cu_seqlens``.

How attention treats document boundaries: stock transformers ModernBERT
unpads per *sequence* (from ``attention_mask``), so documents packed into one
sequence attend to each other on every backend (SDPA, eager, FA2). That is
*not* what ModernBERT's own training does: its packer emits per-document
``cu_seqlens`` and its FlashAttention varlen path keeps documents apart
(AnswerDotAI/ModernBERT#229). ``doc_lengths`` travel with every batch
(:class:`encoder_recipes.training.batches.Batch`) so the model side can do
the same without repacking.

Every packer's :meth:`state_dict` is a copy taken by value: the buffers it
holds keep changing in place as documents arrive, and a checkpoint must hold
them as they were after the step it belongs to.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

__all__ = [
    "PackedSequence",
    "Packer",
    "NonePacker",
    "NaivePacker",
    "BestFitPacker",
    "make_packer",
    "pack_none",
    "pack_naive",
    "pack_best_fit",
    "DEFAULT_WINDOW",
]

#: Documents collected before a best-fit round: larger packs tighter, costs memory and latency.
DEFAULT_WINDOW = 1000


class PackedSequence(NamedTuple):
    input_ids: list[int]  #: ``[CLS] ... [SEP]``, at most ``seq_len`` long
    doc_lengths: list[int]  #: segment length per document, delimiters included; sums to len(input_ids)


class Packer(Protocol):
    """A streaming packer: feed documents, collect finished sequences, flush at the end."""

    def add(self, doc: Sequence[int]) -> list[PackedSequence]: ...

    def flush(self) -> list[PackedSequence]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def _check(seq_len: int, minimum: int) -> None:
    if seq_len < minimum:
        raise ValueError(f"seq_len must be at least {minimum} (room for [CLS], [SEP] and a token), got {seq_len}")


class NonePacker:
    """One document per sequence, truncated to ``seq_len`` (the tail is discarded)."""

    def __init__(self, seq_len: int, cls_id: int, sep_id: int) -> None:
        _check(seq_len, 3)
        self.seq_len, self.cls_id, self.sep_id = seq_len, cls_id, sep_id

    def add(self, doc: Sequence[int]) -> list[PackedSequence]:
        ids = [self.cls_id, *doc[: self.seq_len - 2], self.sep_id]
        return [PackedSequence(ids, [len(ids)])]

    def flush(self) -> list[PackedSequence]:
        return []

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class NaivePacker:
    """Concatenate documents (each closed by ``[SEP]``) and cut every ``seq_len`` tokens.

    Every sequence opens with ``[CLS]`` and is exactly ``seq_len`` long except
    the last one :meth:`flush` returns; no token is dropped.
    """

    def __init__(self, seq_len: int, cls_id: int, sep_id: int) -> None:
        _check(seq_len, 2)
        self.seq_len, self.cls_id, self.sep_id = seq_len, cls_id, sep_id
        self._buffer: list[int] = []  # stream tokens not yet emitted
        self._segments: list[int] = []  # lengths of the buffer's document pieces, in order

    def add(self, doc: Sequence[int]) -> list[PackedSequence]:
        self._buffer.extend(doc)
        self._buffer.append(self.sep_id)
        self._segments.append(len(doc) + 1)
        out: list[PackedSequence] = []
        body = self.seq_len - 1  # tokens after [CLS]
        while len(self._buffer) >= body:
            out.append(self._emit(body))
        return out

    def flush(self) -> list[PackedSequence]:
        return [self._emit(len(self._buffer))] if self._buffer else []

    def state_dict(self) -> dict:
        # copies: _buffer and _segments are changed in place by every add()
        return {"buffer": list(self._buffer), "segments": list(self._segments)}

    def load_state_dict(self, state: dict) -> None:
        self._buffer, self._segments = list(state["buffer"]), list(state["segments"])

    def _emit(self, n: int) -> PackedSequence:
        ids = [self.cls_id, *self._buffer[:n]]
        del self._buffer[:n]
        lengths: list[int] = []
        left = n
        while left:
            take = min(left, self._segments[0])
            lengths.append(take)
            left -= take
            if take == self._segments[0]:
                self._segments.pop(0)
            else:  # the document continues in the next sequence
                self._segments[0] -= take
        lengths[0] += 1  # [CLS]
        return PackedSequence(ids, lengths)


class BestFitPacker:
    """Best-fit-decreasing bin packing of whole documents over a window of documents.

    Documents are collected until ``window`` of them are waiting, then packed:
    longest first, each into the fullest sequence it still fits in, else a new
    one. A document longer than ``seq_len - 2`` tokens is split into chunks of
    that size first. Every sequence of a window is emitted when it is packed.
    """

    def __init__(self, seq_len: int, cls_id: int, sep_id: int, window: int = DEFAULT_WINDOW) -> None:
        _check(seq_len, 3)
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.seq_len, self.cls_id, self.sep_id, self.window = seq_len, cls_id, sep_id, window
        self._pending: list[Sequence[int]] = []

    def add(self, doc: Sequence[int]) -> list[PackedSequence]:
        chunk = self.seq_len - 2
        # Empty documents still carry a [SEP]; long ones become several items.
        self._pending.extend(doc[i : i + chunk] for i in range(0, max(len(doc), 1), chunk))
        if len(self._pending) >= self.window:
            return self.flush()
        return []

    def flush(self) -> list[PackedSequence]:
        items, self._pending = self._pending, []
        # Each item takes its tokens plus its [SEP]; [CLS] takes one place per sequence.
        bins = best_fit_decreasing([len(d) + 1 for d in items], self.seq_len - 1)
        return [self._frame([items[i] for i in b]) for b in bins]

    def state_dict(self) -> dict:
        # a copy of the list, which add() extends in place; the chunks in it are new lists never changed
        return {"pending": list(self._pending)}

    def load_state_dict(self, state: dict) -> None:
        self._pending = [list(d) for d in state["pending"]]

    def _frame(self, docs: list[Sequence[int]]) -> PackedSequence:
        ids = [self.cls_id]
        lengths = []
        for doc in docs:
            ids.extend(doc)
            ids.append(self.sep_id)
            lengths.append(len(doc) + 1)
        lengths[0] += 1  # [CLS]
        return PackedSequence(ids, lengths)


def best_fit_decreasing(sizes: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of ``sizes`` grouped into bins of ``capacity``, best fit decreasing.

    Items are placed longest first into the bin whose remaining room is the
    smallest that still holds them. Bins come out in the order they were opened.
    """
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])
    bins: list[list[int]] = []
    room: list[tuple[int, int]] = []  # (remaining capacity, bin index), kept sorted
    for i in order:
        size = sizes[i]
        if size > capacity:
            raise ValueError(f"item of size {size} exceeds the bin capacity {capacity}")
        at = bisect.bisect_left(room, (size, -1))
        if at < len(room):
            left, b = room.pop(at)
        else:
            left, b = capacity, len(bins)
            bins.append([])
        bins[b].append(i)
        if left - size > 0:
            bisect.insort(room, (left - size, b))
    return bins


def make_packer(mode: str, seq_len: int, cls_id: int, sep_id: int, *, window: int = DEFAULT_WINDOW) -> Packer:
    """The streaming packer for a recipe's ``packing`` mode: ``none``, ``naive`` or ``best_fit``."""
    if mode == "none":
        return NonePacker(seq_len, cls_id, sep_id)
    if mode == "naive":
        return NaivePacker(seq_len, cls_id, sep_id)
    if mode == "best_fit":
        return BestFitPacker(seq_len, cls_id, sep_id, window=window)
    raise ValueError(f"unknown packing mode {mode!r}; known: none, naive, best_fit")


def _run(packer: Packer, docs: Iterable[Sequence[int]]) -> list[PackedSequence]:
    out: list[PackedSequence] = []
    for doc in docs:
        out.extend(packer.add(doc))
    out.extend(packer.flush())
    return out


def pack_none(docs: Iterable[Sequence[int]], seq_len: int, cls_id: int, sep_id: int) -> list[list[int]]:
    """One document per sequence, ``[CLS] doc [SEP]``, cut to ``seq_len`` tokens."""
    return [p.input_ids for p in _run(NonePacker(seq_len, cls_id, sep_id), docs)]


def pack_naive(
    docs: Iterable[Sequence[int]], seq_len: int, cls_id: int, sep_id: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Concatenate and cut; returns ``(sequences, doc_lengths)``."""
    packed = _run(NaivePacker(seq_len, cls_id, sep_id), docs)
    return [p.input_ids for p in packed], [p.doc_lengths for p in packed]


def pack_best_fit(
    docs: Iterable[Sequence[int]], seq_len: int, cls_id: int, sep_id: int, window: int = DEFAULT_WINDOW
) -> tuple[list[list[int]], list[list[int]]]:
    """Best-fit-decreasing packing of whole documents; returns ``(sequences, doc_lengths)``."""
    packed = _run(BestFitPacker(seq_len, cls_id, sep_id, window=window), docs)
    return [p.input_ids for p in packed], [p.doc_lengths for p in packed]
