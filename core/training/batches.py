"""From documents to masked batches: tokenize, find words, pack, pad, mask.

The stream is deterministic and resumable: its state (the mixture's position,
the packers' buffers and the sequences already packed but not yet used) goes
into every checkpoint, and masking draws from a generator seeded by the
global step, so a resumed run sees exactly the batches an uninterrupted run
would have seen.

Every rank builds the whole global batch and keeps its own slice. That makes
N processes train exactly like one process with the same global batch (the
test of distributed training relies on it) at the cost of tokenizing the
global batch on every rank.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

from encoder_recipes.components.kinds import Masking
from encoder_recipes.components.masking import word_ids_from_offsets
from encoder_recipes.data.sources import MAX_DOCUMENT_CHARS
from encoder_recipes.data.packing import make_packer

#: documents tokenized per call to the fast tokenizer (batching amortises its overhead)
TOKENIZE_CHUNK = 64


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L) after masking
    attention_mask: torch.Tensor  # (B, L)
    labels: torch.Tensor  # (B, L), -100 where nothing is predicted
    tokens: int  # non-padding tokens
    #: per row, the lengths of the documents packed into it (delimiters included; they sum to the
    #: row's non-padding length), so attention can keep packed documents apart
    doc_lengths: list[list[int]]
    #: documents and their tokens read from each source while this batch was made, ``{name: (docs,
    #: tokens)}``: the mixture's draws (documents are read in chunks, so a batch may read none)
    sources: dict[str, tuple[int, int]] | None = None

    def slice(self, start: int, stop: int) -> Batch:
        mask = self.attention_mask[start:stop]
        # trim the padding columns this slice does not need
        width = int(mask.sum(1).max()) if len(mask) else 0
        return Batch(self.input_ids[start:stop, :width], mask[:, :width], self.labels[start:stop, :width],
                     int(mask.sum()), self.doc_lengths[start:stop])

    def cu_seqlens(self) -> torch.Tensor:
        """Cumulative document boundaries over the unpadded rows, FlashAttention varlen's ``cu_seqlens`` (int32)."""
        lengths = [n for row in self.doc_lengths for n in row]
        return torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)

    @property
    def masked(self) -> int:
        return int((self.labels != -100).sum())


class DocumentTokenizer:
    """Token ids of documents without special tokens, plus word ids when a segmenter is given."""

    def __init__(self, tokenizer: Any, segmenter: Any = None, max_chars: int | None = MAX_DOCUMENT_CHARS) -> None:
        self.tokenizer, self.segmenter, self.max_chars = tokenizer, segmenter, max_chars

    def __call__(self, texts: list[str]) -> list[tuple[list[int], list[int] | None]]:
        if self.max_chars:
            # the same cap as the data sources (one source of truth), for documents that come from elsewhere
            texts = [t[: self.max_chars] for t in texts]
        enc = self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=self.segmenter is not None,
                             return_attention_mask=False, return_token_type_ids=False)
        if self.segmenter is None:
            return [(ids, None) for ids in enc["input_ids"]]
        out = []
        for text, ids, offsets in zip(texts, enc["input_ids"], enc["offset_mapping"]):
            out.append((ids, word_ids_from_offsets(offsets, self.segmenter.spans(text))))
        return out


#: a packed sequence on its way to a batch: token ids, word ids (or None), document lengths
Sequence = tuple[list[int], "list[int] | None", list[int]]


class SequenceStream:
    """Packed sequences of the requested length, from a document stream."""

    def __init__(self, documents: Any, doc_tokenizer: DocumentTokenizer, packing: str, cls_id: int, sep_id: int) -> None:
        self.documents, self.doc_tokenizer, self.packing = documents, doc_tokenizer, packing
        self.cls_id, self.sep_id = cls_id, sep_id
        self.with_words = doc_tokenizer.segmenter is not None
        self.seq_len = 0
        self.pending: deque[Sequence] = deque()
        self._iter = iter(documents)
        self._ids_packer = self._words_packer = None
        #: documents and tokens read from each source so far, {name: [docs, tokens]} (for the metrics,
        #: which log differences, so it is not part of the state)
        self.read: dict[str, list[int]] = {}

    def _new_packers(self, seq_len: int) -> None:
        # Word ids are packed by a twin packer fed the same lengths, so they
        # land on exactly the same positions; [CLS]/[SEP] get word id -1.
        self.seq_len = seq_len
        self._ids_packer = make_packer(self.packing, seq_len, self.cls_id, self.sep_id)
        self._words_packer = make_packer(self.packing, seq_len, -1, -1) if self.with_words else None

    def take(self, n: int, seq_len: int) -> list[Sequence]:
        if seq_len != self.seq_len:
            # a new length (next stage or extension step): sequences packed for the old one are dropped
            self.pending.clear()
            self._new_packers(seq_len)
        while len(self.pending) < n:
            names, texts = [], []
            for _ in range(TOKENIZE_CHUNK):
                try:
                    name, text = next(self._iter)
                except StopIteration:
                    break
                names.append(name)
                texts.append(text)
            if not texts:
                raise RuntimeError("the data ran out (every source is exhausted)")
            for name, (ids, words) in zip(names, self.doc_tokenizer(texts)):
                counts = self.read.setdefault(name, [0, 0])
                counts[0] += 1
                counts[1] += len(ids)
                packed = self._ids_packer.add(ids)
                packed_words = self._words_packer.add(words) if words is not None else [None] * len(packed)
                for seq, wseq in zip(packed, packed_words):
                    self.pending.append((seq.input_ids, wseq.input_ids if wseq is not None else None,
                                         seq.doc_lengths))
        return [self.pending.popleft() for _ in range(n)]

    def state_dict(self) -> dict[str, Any]:
        """The stream's state by value, as it is now: nothing in it changes when the stream moves on.

        The data worker snapshots it after every batch and hands over the one a
        checkpoint asks for later, so it must not share a list with the packers.
        """
        return {
            "documents": self.documents.state_dict(),
            "seq_len": self.seq_len,
            "pending": [list(p) for p in self.pending],  # the sequences themselves are never changed
            "ids_packer": self._ids_packer.state_dict() if self._ids_packer is not None else None,
            "words_packer": self._words_packer.state_dict() if self._words_packer is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.documents.load_state_dict(state["documents"])
        self._iter = iter(self.documents)
        self._new_packers(state["seq_len"]) if state["seq_len"] else None
        # a checkpoint from before document lengths were kept: one segment per sequence
        self.pending = deque((p[0], p[1], p[2] if len(p) > 2 else [len(p[0])]) for p in state["pending"])
        for packer, saved in ((self._ids_packer, state["ids_packer"]), (self._words_packer, state["words_packer"])):
            if packer is not None and saved:
                # older checkpoints named the packers' private attributes ("_buffer")
                packer.load_state_dict({key.lstrip("_"): value for key, value in saved.items()})


def collate(seqs: list[Sequence], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Pad to the longest sequence of the batch: (input_ids, attention_mask, word_ids)."""
    width = max(len(seq[0]) for seq in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(seqs), width), dtype=torch.long)
    with_words = seqs[0][1] is not None
    word_ids = torch.full((len(seqs), width), -1, dtype=torch.long) if with_words else None
    for row, (ids, words, _) in enumerate(seqs):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[row, : len(ids)] = 1
        if with_words:
            word_ids[row, : len(words)] = _compact(torch.tensor(words, dtype=torch.long))
    return input_ids, attention, word_ids


def _compact(words: torch.Tensor) -> torch.Tensor:
    """Renumber a row's word ids 0..k-1 (documents packed together restart their numbering).

    A word is a run of equal ids; a token without a word (-1: [CLS], [SEP]
    between documents) ends the run, so equal ids in two documents stay apart.
    """
    valid = words >= 0
    starts = valid.clone()
    starts[1:] &= (words[1:] != words[:-1]) | ~valid[:-1]
    out = torch.cumsum(starts.long(), 0) - 1
    return torch.where(valid, out, torch.full_like(out, -1))


class BatchMaker:
    """Global batches for the trainer: pack, collate, and mask with a step-seeded generator."""

    def __init__(self, sequences: SequenceStream, masking: Masking, tokenizer: Any, seed: int) -> None:
        self.sequences, self.masking, self.seed = sequences, masking, seed
        self.pad_id = tokenizer.pad_token_id
        self.mask_id = tokenizer.mask_token_id
        self.vocab_size = len(tokenizer)
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)

    def next(self, *, step: int, batch_size: int, seq_len: int, rate: float) -> Batch:
        documents = self.sequences.documents
        if hasattr(documents, "set_step"):
            documents.set_step(step)  # a mixture whose probabilities change with the step
        before = {name: tuple(counts) for name, counts in self.sequences.read.items()}
        seqs = self.sequences.take(batch_size, seq_len)
        read = {name: (docs - before.get(name, (0, 0))[0], tokens - before.get(name, (0, 0))[1])
                for name, (docs, tokens) in self.sequences.read.items()}
        input_ids, attention, word_ids = collate(seqs, self.pad_id)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        special = torch.isin(input_ids, self.special_ids)
        inputs, labels = self.masking.mask(
            input_ids, rate=rate, special_tokens_mask=special, mask_token_id=self.mask_id,
            vocab_size=self.vocab_size, generator=generator, word_ids=word_ids, special_ids=self.special_ids,
        )
        return Batch(inputs, attention, labels, int(attention.sum()), [list(lengths) for _, _, lengths in seqs],
                     sources=read)

    def state_after(self, step: int) -> dict[str, Any]:
        """The stream state right after the batch of ``step`` (the last one made, in process)."""
        return self.sequences.state_dict()

    def close(self) -> None:
        pass
