"""The packing plan over a store: which document pieces make each sequence of the global stream.

Every rank (and every data worker of every rank) runs the same plan, from
document *lengths* only, so the global sequence stream — sequence ``k`` of
step ``s`` — is one and the same whatever the number of processes; each then
reads the tokens of only the sequences it trains on. The plan reproduces
:mod:`encoder_recipes.data.packing` exactly (``none``, ``naive``,
``best_fit`` with the same window, framing and ``doc_lengths``; a test holds
the two side by side) and :class:`~encoder_recipes.training.batches.SequenceStream`'s
rule that a new sequence length drops what was packed for the old one.

Documents come from the store's sources in a mixture order that depends only
on the seed and the document count: draw ``g`` picks its source from block
``g // BLOCK`` of draws seeded by ``(seed, block)``. The plan's state — draws
made, each source's position and passes, the pieces not yet emitted — is
small plain data saved in checkpoints, so a resumed run (on any number of
processes) continues with the next sequence and never replays one.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np

from encoder_recipes.data.packing import DEFAULT_WINDOW, best_fit_decreasing
from encoder_recipes.data.store import Store
from encoder_recipes.data.store_format import StoreError

#: mixture draws made per seeded block
BLOCK = 4096
#: document lengths read ahead per source at a time
LENGTHS_AHEAD = 4096


class Piece(NamedTuple):
    """Tokens ``[start, stop)`` of one document, followed by ``[SEP]`` when ``sep``."""

    source: int
    doc: int
    start: int
    stop: int
    sep: bool


def doc_lengths(pieces: list[Piece]) -> list[int]:
    """Segment lengths of a planned sequence, as the packers give them ([CLS] counts with the first)."""
    lengths = [p.stop - p.start + p.sep for p in pieces]
    lengths[0] += 1
    return lengths


class StoreTooSmall(StoreError):
    """The store runs out before the steps asked of it."""


class SequencePlanner:
    """The global stream of planned sequences for one stage, from a store's document lengths.

    :param store: the opened store.
    :param weights: sampling weight per source name (empty: all equally), as a recipe's mixture.
    :param seed: seed of the mixture draws.
    :param packing: ``none``, ``naive`` or ``best_fit``.
    :param passes: how many times a source may be read through before the store is too small.
    """

    def __init__(self, store: Store, weights: dict[str, float], seed: int, packing: str, *, passes: int = 1,
                 window: int = DEFAULT_WINDOW) -> None:
        if packing not in ("none", "naive", "best_fit"):
            raise ValueError(f"unknown packing mode {packing!r}; known: none, naive, best_fit")
        self.store, self.packing, self.passes, self.window, self.seed = store, packing, passes, window, seed
        self.names = sorted(store.sources)
        unknown = sorted(set(weights) - set(self.names))
        if unknown:
            raise StoreError(f"the mixture names sources {unknown} that store {store.location} does not hold "
                             f"(it holds {self.names})")
        raw = np.array([1.0 if not weights else float(weights.get(n, 0.0)) for n in self.names])
        self.probabilities = raw / raw.sum()
        self.sources = [store.sources[n] for n in self.names]
        self.drawn = 0  # mixture draws made
        self.position = [0] * len(self.names)  # next document per source
        self.epochs = [0] * len(self.names)  # completed passes per source
        self.seq_len = 0
        self.pending: deque[list[Piece]] = deque()
        self._buffer: deque[list[int]] = deque()  # naive: [source, doc, start, stop] in extended coordinates
        self._buffered = 0
        # best_fit: chunks waiting for the window to fill, rows of (source, doc, start, stop), each with a [SEP]
        self._items = np.zeros((0, 4), dtype=np.int64)
        self._blocks: dict[int, np.ndarray] = {}  # mixture draws by block
        self._mean_length = 256  # naive: a guess of the document length, to size its look-ahead
        self._lengths: dict[int, tuple[int, np.ndarray]] = {}

    # -- documents in mixture order --------------------------------------------------

    def _draw(self) -> int:
        if len(self.names) == 1:
            return 0
        return int(self._mixture_block(self.drawn // BLOCK)[self.drawn % BLOCK])

    def _length(self, s: int, doc: int) -> int:
        start, lengths = self._lengths.get(s, (0, np.zeros(0, dtype=np.int64)))
        if not start <= doc < start + len(lengths):
            stop = min(doc + LENGTHS_AHEAD, self.sources[s].documents)
            lengths = self.sources[s].lengths(doc, stop)
            self._lengths[s] = (doc, lengths)
            start = doc
        return int(lengths[doc - start])

    def next_document(self) -> tuple[int, int, int]:
        """``(source, doc, length)`` of the next document of the stream."""
        s = self._draw()
        self.drawn += 1
        source = self.sources[s]
        if self.position[s] >= source.documents:
            if self.epochs[s] + 1 >= self.passes:
                raise StoreTooSmall(
                    f"store {self.store.location}: source {source.name!r} ran out after {source.documents:,} "
                    f"documents ({self.passes} pass{'es' if self.passes > 1 else ''}); prepare more data for it "
                    "or ask for fewer steps")
            self.epochs[s] += 1
            self.position[s] = 0
        doc = self.position[s]
        self.position[s] += 1
        return s, doc, self._length(s, doc)

    def _mixture_block(self, block: int) -> np.ndarray:
        if block not in self._blocks:
            if len(self._blocks) >= 4:
                self._blocks.clear()
            rng = np.random.default_rng([self.seed, block])
            self._blocks[block] = rng.choice(len(self.names), size=BLOCK, p=self.probabilities)
        return self._blocks[block]

    def _mixture(self, m: int) -> np.ndarray:
        """Sources of the next ``m`` draws."""
        if len(self.names) == 1 or m == 0:
            return np.zeros(m, dtype=np.int64)
        first, last = self.drawn // BLOCK, (self.drawn + m - 1) // BLOCK
        drawn = np.concatenate([self._mixture_block(b) for b in range(first, last + 1)])
        at = self.drawn - first * BLOCK
        return drawn[at : at + m]

    def _upcoming(self, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(sources, docs, lengths)`` of the next ``m`` documents, not yet drawn; fewer where a source runs out."""
        sources = self._mixture(m)
        docs = np.zeros(m, dtype=np.int64)
        lengths = np.zeros(m, dtype=np.int64)
        stop = m
        for s, source in enumerate(self.sources):
            at = np.flatnonzero(sources == s)
            if not len(at):
                continue
            count = source.documents
            first = self.epochs[s] * count + self.position[s]  # this source's reading, across its passes
            fit = max(0, min(len(at), self.passes * count - first))
            if fit < len(at):
                stop = min(stop, int(at[fit]))
            if fit:
                d = (first + np.arange(fit)) % count
                docs[at[:fit]] = d
                parts = np.split(d, np.flatnonzero(d[1:] == 0) + 1)  # runs of consecutive documents
                lengths[at[:fit]] = np.concatenate([source.lengths(int(r[0]), int(r[-1]) + 1) for r in parts])
        return sources[:stop], docs[:stop], lengths[:stop]

    def _advance(self, sources: np.ndarray) -> None:
        """Draw the documents :meth:`_upcoming` gave for these sources (a prefix of them)."""
        for s, c in enumerate(np.bincount(sources, minlength=len(self.names)).tolist()):
            if c:
                count = self.sources[s].documents
                last = self.epochs[s] * count + self.position[s] + c - 1
                # as next_document leaves it: a source read to its end waits at `documents` until drawn again
                self.epochs[s], self.position[s] = last // count, last % count + 1
        self.drawn += len(sources)

    # -- packing over lengths ----------------------------------------------------------

    def take(self, n: int, seq_len: int) -> list[list[Piece]]:
        """The next ``n`` sequences of the global stream at ``seq_len`` tokens."""
        if seq_len != self.seq_len:
            # as SequenceStream: sequences and buffers packed for another length are dropped
            self.seq_len = seq_len
            self.pending.clear()
            self._buffer.clear()
            self._buffered = 0
            self._items = np.zeros((0, 4), dtype=np.int64)
        # Every rank plans the whole global batch, so this runs over arrays of documents, not one at a time:
        # each mode finds how many documents the next sequences need (a cumulative sum), then draws exactly
        # those, so the stream and the state are those of adding documents one by one.
        add = {"none": self._add_none, "naive": self._add_naive, "best_fit": self._add_best_fit}[self.packing]
        while len(self.pending) < n:
            add(n - len(self.pending))
        return [self.pending.popleft() for _ in range(n)]

    def _add_none(self, wanted: int) -> None:
        sources, docs, lengths = self._upcoming(wanted)
        self._advance(sources)
        cap = self.seq_len - 2
        self.pending.extend([Piece(s, d, 0, min(length, cap), True)]
                            for s, d, length in zip(sources.tolist(), docs.tolist(), lengths.tolist()))
        if len(sources) < wanted:
            self.next_document()  # a source ran out: raises StoreTooSmall naming it

    def _add_naive(self, wanted: int) -> None:
        body = self.seq_len - 1
        need = wanted * body - self._buffered  # extended tokens still to buffer (at least 1)
        ask = min(need, max(64, 2 * need // self._mean_length))
        sources, docs, lengths = self._upcoming(ask)
        extended = lengths + 1  # a document's tokens and its closing [SEP]
        total = np.cumsum(extended)
        k = min(int(np.searchsorted(total, need)) + 1, len(sources))  # up to the document that completes them
        self._advance(sources[:k])
        self._buffer.extend([s, d, 0, e] for s, d, e in
                            zip(sources[:k].tolist(), docs[:k].tolist(), extended[:k].tolist()))
        self._buffered += int(total[k - 1]) if k else 0
        if k:
            # a running guess of the document length, so the next look-ahead is about as far as needed
            self._mean_length = max(1, (self._mean_length + int(lengths[:k].mean()) + 1) // 2)
        while self._buffered >= body:
            self.pending.append(self._cut(body))
        if len(sources) < ask and (not k or total[k - 1] < need):
            self.next_document()  # a source ran out: raises StoreTooSmall naming it

    def _add_best_fit(self, wanted: int) -> None:
        chunk = self.seq_len - 2
        room = self.window - len(self._items)
        # every document gives at least one chunk, so `room` documents always fill the window
        sources, docs, lengths = self._upcoming(room)
        counts = np.maximum(-(-lengths // chunk), 1)  # an empty document is still one (empty) chunk
        total = np.cumsum(counts)
        k = min(int(np.searchsorted(total, room)) + 1, len(sources))
        self._advance(sources[:k])
        if k:
            counts = counts[:k]
            owner = np.repeat(np.arange(k), counts)
            start = (np.arange(int(total[k - 1])) - (total[:k] - counts)[owner]) * chunk
            items = np.stack([sources[owner], docs[owner], start, np.minimum(start + chunk, lengths[owner])], axis=1)
            self._items = np.concatenate([self._items, items])
        if len(self._items) >= self.window:
            items, self._items = self._items, np.zeros((0, 4), dtype=np.int64)
            bins = best_fit_decreasing((items[:, 3] - items[:, 2] + 1).tolist(), self.seq_len - 1)
            rows = items.tolist()
            self.pending.extend([Piece(*rows[i], True) for i in b] for b in bins)
        elif k == len(sources):
            self.next_document()  # a source ran out: raises StoreTooSmall naming it

    def _cut(self, body: int) -> list[Piece]:
        pieces = []
        left = body
        while left:
            s, doc, a, b = self._buffer[0]
            take = min(left, b - a)
            length = b - 1  # the document's own tokens
            pieces.append(Piece(s, doc, a, min(a + take, length), a + take == b))
            left -= take
            if take == b - a:
                self._buffer.popleft()
            else:
                self._buffer[0][2] = a + take
        self._buffered -= body
        return pieces

    # -- state -----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "sources": self.names, "drawn": self.drawn, "position": list(self.position), "epochs": list(self.epochs),
            "seq_len": self.seq_len, "pending": [[list(p) for p in seq] for seq in self.pending],
            "buffer": [list(b) for b in self._buffer], "items": [[*row, True] for row in self._items.tolist()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["sources"] != self.names:
            raise StoreError(f"the saved data position is over sources {state['sources']}, "
                             f"the store holds {self.names}")
        self.drawn, self.seq_len = int(state["drawn"]), int(state["seq_len"])
        self.position, self.epochs = list(state["position"]), list(state["epochs"])
        self.pending = deque([Piece(*p) for p in seq] for seq in state["pending"])
        self._buffer = deque(list(b) for b in state["buffer"])
        self._buffered = sum(b[3] - b[2] for b in self._buffer)
        self._items = np.array([p[:4] for p in state["items"]], dtype=np.int64).reshape(-1, 4)
        self._blocks = {}

    def continue_from(self, other_state: dict[str, Any]) -> None:
        """Start a new stage where the previous stage's stream stopped: its documents, not its packing."""
        if other_state["sources"] != self.names:
            raise StoreError("the previous stage read other sources")
        self.drawn = int(other_state["drawn"])
        self.position, self.epochs = list(other_state["position"]), list(other_state["epochs"])


def check_enough(store: Store, *, packing: str, steps: list[tuple[int, int]], passes: int = 1,
                 state: dict[str, Any] | None = None) -> None:
    """Refuse up front a store that cannot hold the steps asked (a lower bound: it may still run out later).

    :param steps: ``(batch_size, seq_len)`` of every step to come.
    :param state: the plan's state at the first of them (what is already used).
    """
    documents = sum(s.documents for s in store.sources.values()) * passes
    tokens = sum(s.tokens for s in store.sources.values()) * passes
    used_docs = sum(e * store.sources[n].documents + p for n, p, e in
                    zip(state["sources"], state["position"], state["epochs"])) if state else 0
    if packing == "none":
        need = sum(b for b, _ in steps)
        if need > documents - used_docs:
            raise StoreTooSmall(f"store {store.location} holds {documents - used_docs:,} documents still to read "
                                f"({passes} pass{'es' if passes > 1 else ''}), but the steps asked need {need:,} "
                                "(one a sequence with packing: none); prepare more data or ask for fewer steps")
        return
    # a packed sequence holds at most seq_len - 1 tokens and [SEP]s after its [CLS]
    need = sum(b * (seq_len - 1) for b, seq_len in steps)
    have = tokens + documents
    if need > have:
        raise StoreTooSmall(f"store {store.location} holds {tokens:,} tokens in {documents:,} documents "
                            f"({passes} pass{'es' if passes > 1 else ''}), but the steps asked pack at least "
                            f"{need:,}; prepare more data or ask for fewer steps")
