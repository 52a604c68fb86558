"""Each rank's share of every global batch, read from a prepared store, packed and masked at load time.

For step ``s`` the global batch is the next ``batch_size`` sequences of the
:class:`~encoder_recipes.data.store_plan.SequencePlanner` stream; rank ``r``
of ``N`` takes the contiguous rows ``[r·B/N, (r+1)·B/N)`` (the trainer's own
split) and reads only their documents. Masking is drawn per *group* of
``mask_group`` consecutive rows (1 by default: per row), from a generator
seeded by ``(seed, step, first global row of the group)``, so a row is masked
the same way whichever rank or data worker makes it: the global batch
assembled across ranks is identical to the one a single process makes, for
every number of processes whose share of the batch is whole groups. A masking
call costs a fixed few hundred microseconds, so groups of 8–16 rows are much
faster than single rows (``bench/store.py``).

Several data workers per rank: a ``torch.utils.data.DataLoader`` over
:class:`RankSteps`, worker ``w`` of ``W`` making the steps ``w, w+W, …`` of
the list (each runs the cheap length-only plan for every step, so each knows
where its steps' documents are); the loader hands the steps back in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from encoder_recipes.data.store import Store
from encoder_recipes.data.store_format import NO_WORD, WORD_STARTS
from encoder_recipes.data.store_plan import Piece, SequencePlanner, doc_lengths

#: 2**63: row seeds are reduced modulo this (torch generators take 64-bit seeds)
_SEED_MOD = 1 << 63


@dataclass
class RankBatch:
    """This rank's rows of a global batch: masked, padded to the longest of them."""

    step: int
    rows: tuple[int, int]  # [start, stop) of the global batch
    input_ids: torch.Tensor  # (rows, width)
    attention_mask: torch.Tensor
    labels: torch.Tensor  # -100 where nothing is predicted
    doc_lengths: list[list[int]] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())

    @property
    def masked(self) -> int:
        return int((self.labels != -100).sum())


@dataclass
class StoreSpec:
    """Everything a data worker needs to make a rank's batches (picklable: the store is reopened by location)."""

    store: str
    weights: dict[str, float]
    mixture_seed: int
    packing: str
    masking: Any  # a masking component
    seed: int
    cls_id: int
    sep_id: int
    pad_id: int
    mask_id: int
    vocab_size: int
    special_ids: list[int]
    rank: int = 0
    world: int = 1
    passes: int = 1
    state: dict[str, Any] | None = None  # the plan's state before the first step
    #: rows masked by one call from one generator. 1: a row's masking never depends on the number of
    #: processes; G > 1 is much faster and stays so for every process count whose share is a multiple of G
    mask_group: int = 1

    def planner(self, store: Store | None = None) -> SequencePlanner:
        planner = SequencePlanner(store or Store(self.store), self.weights, self.mixture_seed, self.packing,
                                  passes=self.passes)
        if self.state is not None:
            planner.load_state_dict(self.state)
        return planner

    def share(self, batch_size: int) -> tuple[int, int]:
        if batch_size % self.world:
            raise ValueError(f"global batch {batch_size} is not divisible by the {self.world} processes")
        per = batch_size // self.world
        return self.rank * per, (self.rank + 1) * per


def row_seed(seed: int, step: int, row: int) -> int:
    """The masking seed of one row of one step's global batch."""
    return ((seed * 1_000_003 + step) * 1_000_033 + row) % _SEED_MOD


def materialise(store: Store, names: list[str], pieces: list[Piece], cls_id: int, sep_id: int,
                with_words: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Token ids (and word ids, -1 for none) of one planned sequence: ``[CLS] piece [SEP] piece …``."""
    ids_parts: list[np.ndarray] = [np.array([cls_id], dtype=np.int64)]
    flag_parts: list[np.ndarray] = [np.array([NO_WORD], dtype=np.uint8)]
    sep = np.array([sep_id], dtype=np.int64)
    no_word = np.array([NO_WORD], dtype=np.uint8)
    for p in pieces:
        ids, flags = store.sources[names[p.source]].document(p.doc)
        ids_parts.append(ids[p.start : p.stop].astype(np.int64))
        if with_words:
            flag_parts.append(flags[p.start : p.stop])
        if p.sep:
            ids_parts.append(sep)
            flag_parts.append(no_word)
    ids = np.concatenate(ids_parts)
    if not with_words:
        return ids, None
    flags = np.concatenate(flag_parts)
    valid = flags != NO_WORD
    # a word starts at a start flag, or after a token of no word ([CLS], [SEP], a chunk cut mid-word)
    starts = valid & (flags == WORD_STARTS)
    starts[1:] |= valid[1:] & ~valid[:-1]
    words = np.cumsum(starts) - 1
    return ids, np.where(valid, words, -1)


def make_rank_batch(spec: StoreSpec, store: Store, names: list[str], step: int, sequences: list[list[Piece]],
                    rate: float, special: torch.Tensor) -> RankBatch:
    """Materialise, mask (per group of ``spec.mask_group`` rows) and pad this rank's rows of one global batch."""
    start, stop = spec.share(len(sequences))
    group = spec.mask_group
    if start % group or stop % group:
        raise ValueError(f"this rank's rows [{start}, {stop}) are not whole mask groups of {group} rows; "
                         f"use a mask_group that divides the global batch / processes ({stop - start})")
    with_words = bool(getattr(spec.masking, "needs_words", False))
    rows: list[tuple[torch.Tensor, torch.Tensor]] = []
    for first in range(start, stop, group):
        made = [materialise(store, names, sequences[row], spec.cls_id, spec.sep_id, with_words)
                for row in range(first, first + group)]
        width = max(len(ids) for ids, _ in made)
        ids_t = torch.full((group, width), spec.pad_id, dtype=torch.long)
        words_t = torch.full((group, width), -1, dtype=torch.long) if with_words else None
        for i, (ids, words) in enumerate(made):
            ids_t[i, : len(ids)] = torch.from_numpy(ids)
            if words_t is not None:
                words_t[i, : len(words)] = torch.from_numpy(words)
        real = torch.arange(width).unsqueeze(0) < torch.tensor([len(ids) for ids, _ in made]).unsqueeze(1)
        # the group's seed depends on its first global row only: any rank that holds the group masks it alike
        generator = torch.Generator().manual_seed(row_seed(spec.seed, step, first))
        inputs, labels = spec.masking.mask(
            ids_t, rate=rate, special_tokens_mask=torch.isin(ids_t, special) | ~real, mask_token_id=spec.mask_id,
            vocab_size=spec.vocab_size, generator=generator, word_ids=words_t, special_ids=special)
        rows.extend((inputs[i, : len(ids)], labels[i, : len(ids)]) for i, (ids, _) in enumerate(made))
    width = max(len(r[0]) for r in rows)
    input_ids = torch.full((len(rows), width), spec.pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (inp, lab) in enumerate(rows):
        input_ids[i, : len(inp)], labels[i, : len(lab)], attention[i, : len(inp)] = inp, lab, 1
    return RankBatch(step, (start, stop), input_ids, attention, labels,
                     [doc_lengths(sequences[r]) for r in range(start, stop)])


class RankSteps(torch.utils.data.IterableDataset):
    """This rank's batches for a list of ``(step, batch_size, seq_len, rate)``, split among data workers."""

    def __init__(self, spec: StoreSpec, steps: list[tuple[int, int, int, float]]) -> None:
        self.spec, self.steps = spec, steps

    def __iter__(self) -> Iterator[RankBatch]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        store = Store(self.spec.store)
        planner = self.spec.planner(store)
        special = torch.tensor(sorted(set(self.spec.special_ids)), dtype=torch.long)
        for i, (step, batch_size, seq_len, rate) in enumerate(self.steps):
            sequences = planner.take(batch_size, seq_len)  # every worker plans every step: lengths only
            if i % workers == worker:
                yield make_rank_batch(self.spec, store, planner.names, step, sequences, rate, special)


def _init_data_worker(worker: int) -> None:
    """A data worker leaves the cores to the model and shutdown to the trainer.

    A terminal's Ctrl-C and a scheduler's SIGTERM reach the whole process
    group: a worker that died of them would fail the trainer's step before it
    wrote its stop checkpoint. The loader's own watchdog ends a worker whose
    trainer is gone.
    """
    import signal

    torch.set_num_threads(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class StoreBatches:
    """The trainer-facing stream: ``next(step=…)`` gives this rank's batch, ``state_after`` the plan's state.

    :param workers: data worker processes for this rank (0: made in this process).
    """

    def __init__(self, spec: StoreSpec, steps: list[tuple[int, int, int, float]], *, workers: int = 2,
                 prefetch: int = 4) -> None:
        self.steps = steps
        # a length-only twin of the workers' plan, so this process knows the state after every step
        self._planner = spec.planner()
        self._states: dict[int, dict[str, Any]] = {}
        loader = torch.utils.data.DataLoader(RankSteps(spec, steps), batch_size=None, num_workers=workers,
                                             prefetch_factor=prefetch if workers else None,
                                             persistent_workers=False, multiprocessing_context="spawn" if workers else None,
                                             worker_init_fn=_init_data_worker if workers else None)
        self._iter = iter(loader)
        self._index = 0

    def next(self, *, step: int, batch_size: int, seq_len: int, rate: float) -> RankBatch:
        expected = self.steps[self._index]
        if (step, batch_size, seq_len) != expected[:3]:
            raise RuntimeError(f"asked for step {step} ({batch_size}×{seq_len}), planned {expected[:3]}")
        self._planner.take(batch_size, seq_len)
        self._states = {step: self._planner.state_dict()}
        self._index += 1
        batch = next(self._iter)
        assert batch.step == step
        return batch

    def state_after(self, step: int) -> dict[str, Any]:
        """The plan's state right after ``step`` (the last one handed out)."""
        return self._states[step]

    def close(self) -> None:
        self._iter = None
