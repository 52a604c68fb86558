"""Making batches in a worker process, a few steps ahead of the model.

Reading, tokenizing, segmenting words (fugashi, jieba), packing and masking
run in a separate process, so on a GPU node the data pipeline's time hides
behind the step time. The worker is told the whole stage's schedule — every
step's batch size, sequence length and mask rate are pure functions of the
step — and fills a bounded queue.

Checkpoints stay exact: after producing each batch the worker keeps a
snapshot of its stream state, taken by value (the packers' buffers are copied,
since they change in place as documents arrive), and when the trainer saves a
checkpoint after step N it asks the worker for the snapshot taken right after
batch N, however far ahead the worker has run. The worker answers between any
two batches, not only when its queue is full, so it never runs past the
snapshots it keeps.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
import traceback
from dataclasses import dataclass
from typing import Any

import torch.multiprocessing as mp

from encoder_recipes.training.batches import Batch, BatchMaker, DocumentTokenizer, SequenceStream


@dataclass
class PipelineSpec:
    """Everything the worker needs to build the stage's batch maker (all picklable)."""

    streams: dict[str, Any]  # DocumentStream by source name, at their start positions
    weights: dict[str, float]
    mixture_seed: int
    tokenizer: Any
    segmenter: Any
    packing: str
    masking: Any
    seed: int
    state: dict[str, Any] | None = None  # SequenceStream state to continue from (a resume inside the stage)
    positions: dict[str, dict] | None = None  # each source's start (the previous stage's end), when no state

    def build(self) -> BatchMaker:
        from encoder_recipes.data.mixture import MixtureStream

        mixture = MixtureStream(self.streams, self.weights, seed=self.mixture_seed)
        if self.positions is not None:
            mixture.start_at(self.positions)
        sequences = SequenceStream(mixture, DocumentTokenizer(self.tokenizer, self.segmenter), self.packing,
                                   self.tokenizer.cls_token_id, self.tokenizer.sep_token_id)
        if self.state is not None:
            sequences.load_state_dict(self.state)
        return BatchMaker(sequences, self.masking, self.tokenizer, seed=self.seed)


def _worker(spec: PipelineSpec, schedule: list[tuple[int, int, int, float]], out_q, req_q, resp_q, keep: int) -> None:
    import torch

    torch.set_num_threads(1)  # the cores belong to the model; masking is cheap
    # The trainer owns shutdown. A terminal's Ctrl-C and a scheduler's SIGTERM reach the whole process
    # group: the worker must keep serving until the trainer has written its stop checkpoint and ends it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()  # a SIGKILLed trainer tells no one: the worker watches it
    for q in (out_q, resp_q):
        q.cancel_join_thread()  # exit without flushing to a reader that is gone
    try:
        maker = spec.build()
    except BaseException:
        out_q.put(("error", traceback.format_exc()))
        return
    snapshots: dict[int, dict] = {}

    def serve() -> bool:
        """Answer state requests; False when asked to stop."""
        while True:
            try:
                kind, step = req_q.get_nowait()
            except queue.Empty:
                return True
            if kind == "stop":
                return False
            resp_q.put((step, snapshots.get(step)))

    for step, batch_size, seq_len, rate in schedule:
        try:
            batch = maker.next(step=step, batch_size=batch_size, seq_len=seq_len, rate=rate)
        except BaseException:
            out_q.put(("error", traceback.format_exc()))
            break
        snapshots[step] = maker.sequences.state_dict()
        for old in [s for s in snapshots if s < step - keep]:
            del snapshots[old]
        if not serve():
            return
        while True:
            try:
                out_q.put(("batch", step, batch), timeout=0.05)
                break
            except queue.Full:
                if not serve() or not parent.is_alive():
                    return
    while parent.is_alive():  # the schedule is done: keep answering until the trainer lets go
        try:
            kind, step = req_q.get(timeout=1.0)
        except queue.Empty:
            continue
        if kind == "stop":
            return
        resp_q.put((step, snapshots.get(step)))


class PrefetchedBatches:
    """The trainer's view: ``next()`` in step order, ``state_after(step)`` for checkpoints."""

    def __init__(self, spec: PipelineSpec, schedule: list[tuple[int, int, int, float]], depth: int = 4) -> None:
        ctx = mp.get_context("spawn")  # fork after torch/tokenizers threads have started is unsafe
        self.out_q, self.req_q, self.resp_q = ctx.Queue(maxsize=depth), ctx.Queue(), ctx.Queue()
        self.process = ctx.Process(target=_worker, args=(spec, schedule, self.out_q, self.req_q, self.resp_q, depth + 2),
                                   daemon=True, name="encoder-recipes-data")
        self.process.start()

    def next(self, *, step: int, batch_size: int, seq_len: int, rate: float) -> Batch:
        while True:
            try:
                item = self.out_q.get(timeout=5.0)
                break
            except queue.Empty:
                if not self.process.is_alive():
                    raise RuntimeError("the data worker died without a message (out of memory?)") from None
        if item[0] == "error":
            raise RuntimeError(f"the data worker failed:\n{item[1]}")
        _, produced, batch = item
        if produced != step:
            raise RuntimeError(f"data worker sent step {produced}, the trainer is at step {step}")
        return batch

    def state_after(self, step: int) -> dict[str, Any]:
        self.req_q.put(("state", step))
        answered, state = self.resp_q.get(timeout=300)
        if answered != step or state is None:
            raise RuntimeError(f"the data worker has no state for step {step}")
        return state

    def close(self) -> None:
        if self.process.is_alive():
            self.req_q.put(("stop", None))
            self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()  # it ignores SIGTERM (see _worker)
            self.process.join(timeout=5)
