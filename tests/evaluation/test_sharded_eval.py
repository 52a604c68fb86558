"""Sharded evaluation: two gloo processes, each scoring its share, give the one-process figures.

Real torch.distributed (gloo, two spawned processes), a real BPE tokenizer and
a tiny real ModernBERT, built from the same seed in every process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from encoder_recipes.evaluation.context import EvalContext
from encoder_recipes.evaluation.mlm import MLMEvaluator
from encoder_recipes.evaluation.pppl import PseudoPerplexityEvaluator
from encoder_recipes.training.distributed import Dist

from .conftest import help_pages, tiny_modernbert

#: 3 mlm batches (2 + 1 over two ranks) and 3 pppl sequences per bin: the shares are uneven on purpose
MLM = MLMEvaluator.Params(num_sequences=6, batch_size=2, seq_len=32, mask_rate=0.3)
PPPL = PseudoPerplexityEvaluator.Params(bins=[(0, 24), (24, 48)], sequences_per_bin=3, positions=5, batch_size=4)


def scores(tokenizer, dist: Dist) -> dict[str, dict]:
    docs = [p["text"] for p in help_pages()]
    context = EvalContext(language="en", documents=lambda: iter(docs), seed=3, dist=dist)
    model = tiny_modernbert(tokenizer, seed=0)
    got = {"mlm": MLMEvaluator(MLM).evaluate(model=model, tokenizer=tokenizer, context=context)}
    if dist.enabled or dist.world == 1:  # pppl's per-sequence figures need every rank's share
        got["pppl"] = {k: v for k, v in PseudoPerplexityEvaluator(PPPL).evaluate(
            model=model, tokenizer=tokenizer, context=context).items() if k != "details"}
    return got


def _rank(rank: int, world: int, init: str, tokenizer_dir: str, result: str) -> None:
    import torch.distributed as dist
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        got = scores(AutoTokenizer.from_pretrained(tokenizer_dir), Dist(rank, world, joined=True))
        if rank == 0:
            Path(result).write_text(json.dumps(got), encoding="utf-8")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_give_the_one_process_mlm_and_pppl_figures(tokenizer, tmp_path, monkeypatch):
    import torch.multiprocessing as tmp_mp

    # the spawned processes import this module as pytest named it (``evaluation.test_sharded_eval``)
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))
    assert MLMEvaluator.shardable and PseudoPerplexityEvaluator.shardable
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    result = tmp_path / "sharded.json"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tmp_mp.spawn(_rank, args=(2, f"file://{tmp_path / 'rendezvous'}", str(tmp_path / "tokenizer"), str(result)),
                 nprocs=2, join=True)
    sharded = json.loads(result.read_text(encoding="utf-8"))
    torch.set_num_threads(1)
    alone = json.loads(json.dumps(scores(tokenizer, Dist())))  # as JSON, like the sharded figures
    assert alone["mlm"]["masked_tokens"] > 0 and all(isinstance(v, float) for k, v in alone["pppl"].items()
                                                      if "/" not in k)
    assert sharded["mlm"]["masked_tokens"] == alone["mlm"]["masked_tokens"]
    assert sharded.keys() == alone.keys() and sharded["pppl"].keys() == alone["pppl"].keys()
    for name in alone:
        for key, value in alone[name].items():
            assert sharded[name][key] == (pytest.approx(value, rel=1e-6) if isinstance(value, float) else value), \
                (name, key)


def test_one_rank_scores_only_its_share(tokenizer):
    """Rank 1 of 2, alone (no group): it scores its slice, so its sums are a part of the whole."""
    alone = scores(tokenizer, Dist())
    part = scores(tokenizer, Dist(1, 2))  # not joined: all_sum is the identity, so the partial sums show
    assert 0 < part["mlm"]["masked_tokens"] < alone["mlm"]["masked_tokens"]
    assert "unigram_loss" in alone["mlm"] and "unigram_loss" not in part["mlm"]  # the main rank counts it
