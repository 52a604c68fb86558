"""Pseudo-perplexity by sequence length: llm-jp's protocol (001 §3.5), adapted from NeoBERT's.

NeoBERT masks every token of a sequence; the length bins and the ``positions``
sampled per sequence are llm-jp's adaptation (llm-jp/llm-jp-modernbert,
src/eval/pseudo_perplexity.py), which ``mode: sampled`` follows; ``mode: all`` is NeoBERT's.

Sequences are stratified into length bins; in each sequence ``positions``
token positions are drawn with replacement and each is masked *alone* — one
model input per masked position, several such single-mask copies of the
sequence batched into one forward pass. The loss at a position is the
cross-entropy of the true token there, and a bin's pseudo-perplexity is
``exp(mean loss)`` over all its (sequence, position) draws: with the same
number of draws per sequence, the geometric mean of the sequences' own
pseudo-perplexities. ``mode: all`` masks every position of every sequence in
turn instead (the classic pseudo-log-likelihood; one input per token).

Lengths count the model input, ``[CLS]`` and ``[SEP]`` included, so the top
bin of an 8192-token model holds sequences the model takes whole. A bin is
``[low, high]`` for the first and ``(low, high]`` for the others (001's last
bin is written ``(4096, 8192)``; an 8192-token input is kept there, as it is
the model's own maximum). Positions are drawn among the real tokens, never
``[CLS]``/``[SEP]``.
"""

from __future__ import annotations

import math
import random
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator

from encoder_recipes.components.base import Params
from encoder_recipes.components.kinds import Evaluator
from encoder_recipes.evaluation import offline_data
from encoder_recipes.evaluation.context import EvalContext
from encoder_recipes.evaluation.embeddings import max_positions

#: 001 §3.5's bins, as fractions of the model's maximum length (8192 for llm-jp-modernbert).
PAPER_BIN_FRACTIONS = ((0, 1 / 8), (1 / 8, 1 / 4), (1 / 4, 1 / 2), (1 / 2, 1))


def default_bins(max_length: int) -> list[tuple[int, int]]:
    """001 §3.5's bins scaled to a model: [0, m/8], (m/8, m/4], (m/4, m/2], (m/2, m].

    For an 8192-token model these are the paper's [0, 1024], (1024, 2048],
    (2048, 4096], (4096, 8192]; a smoke-scale model of 512 tokens gets
    [0, 64] … (256, 512], so the protocol still compares short and long inputs.
    """
    return [(int(lo * max_length), int(hi * max_length)) for lo, hi in PAPER_BIN_FRACTIONS]


def bin_label(low: int, high: int) -> str:
    return f"{low}-{high}"


def logits_at(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
              positions: torch.Tensor) -> torch.Tensor:
    """MLM logits (N, V) at one position per row: row i at ``positions[i]``.

    ModernBERT (and its RMSNorm variant) runs its prediction head on those
    positions only, as its own sparse prediction does: a full (N, L, V) logits
    tensor at L = 8192 and a 100k vocabulary would not fit in memory. Other
    masked-LMs go through their ordinary forward.
    """
    rows = torch.arange(len(positions), device=input_ids.device)
    if all(hasattr(model, a) for a in ("model", "head", "decoder")):
        hidden = model.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return model.decoder(model.head(hidden[rows, positions]))
    return model(input_ids=input_ids, attention_mask=attention_mask).logits[rows, positions]


@torch.no_grad()
def masked_position_losses(model: Any, ids: list[int], positions: list[int], *, mask_token_id: int,
                           batch_size: int = 16, device: torch.device | str = "cpu") -> list[float]:
    """Cross-entropy of the true token at each position of ``positions``, that position alone masked."""
    base = torch.tensor(ids, device=device)
    losses: list[float] = []
    for start in range(0, len(positions), batch_size):
        pos = torch.tensor(positions[start:start + batch_size], device=device)
        inputs = base.repeat(len(pos), 1)
        inputs[torch.arange(len(pos), device=device), pos] = mask_token_id
        logits = logits_at(model, inputs, torch.ones_like(inputs), pos)
        losses.extend(torch.nn.functional.cross_entropy(logits.float(), base[pos], reduction="none").tolist())
    return losses


class PseudoPerplexityEvaluator(Evaluator):
    """Pseudo-perplexity by length bin: single-token masking at sampled positions (001 §3.5, llm-jp's adaptation of NeoBERT)."""

    name: ClassVar[str] = "pppl"
    shardable: ClassVar[bool] = True

    class Params(Params):
        bins: list[tuple[int, int]] | None = Field(
            None, description="length bins [[low, high], ...] in tokens incl. [CLS]/[SEP]; first [low, high], "
                              "then (low, high]. None: 001's bins scaled to the model, [0, m/8] … (m/2, m] with m "
                              "= max_position_embeddings (= [[0,1024],[1024,2048],[2048,4096],[4096,8192]] for m = "
                              "8192). Bins above m are skipped")
        sequences_per_bin: int = Field(8, gt=0, description="sequences per bin (001 §3.5: 500)")
        positions: int = Field(100, gt=0, description="positions per sequence, drawn with replacement (001: 100)")
        mode: Literal["sampled", "all"] = Field("sampled", description="all: mask every position in turn")
        fill: Literal["concatenate", "natural"] = Field(
            "concatenate", description="concatenate consecutive documents to reach a drawn length (small corpora), "
                                       "or natural: whole documents whose length falls in the bin (001, Wikipedia)")
        batch_size: int = Field(16, gt=0, description="single-mask copies per forward pass")
        max_documents: int = Field(10_000, gt=0, description="validation documents read")

        @field_validator("bins")
        @classmethod
        def _ordered(cls, bins: list[tuple[int, int]] | None) -> list[tuple[int, int]] | None:
            for (lo, hi), nxt in zip(bins or [], [*(bins or [])[1:], None]):
                if not 0 <= lo < hi:
                    raise ValueError(f"bin [{lo}, {hi}] needs 0 <= low < high")
                if nxt is not None and nxt[0] < hi:
                    raise ValueError(f"bins must be ascending and not overlap: [{lo}, {hi}] then {list(nxt)}")
            return bins

    def evaluate(self, *, model: Any, tokenizer: Any, context: EvalContext) -> dict[str, Any]:
        p = self.params
        limit = max_positions(model)
        bins = p.bins or default_bins(limit or 512)
        docs = offline_data.read_documents(context.documents, p.max_documents)
        # Documents are cut to 8 characters per token of the top bin: concatenation never needs
        # more. Natural fill drops cut documents: their true length is unknown (and surely long).
        cap = max(hi for _, hi in bins) * 8
        token_docs = tokenizer([d[:cap] for d in docs], add_special_tokens=False,
                               return_attention_mask=False)["input_ids"]
        if p.fill == "natural":
            token_docs = [ids for ids, d in zip(token_docs, docs) if len(d) <= cap]
        rng = random.Random(context.seed)
        results: dict[str, Any] = {}
        per_sequence: dict[str, list[dict[str, float]]] = {}
        for i, (lo, hi) in enumerate(bins):
            label = bin_label(lo, hi)
            if limit is not None and hi > limit:
                results[f"{label}/note"] = f"skipped: longer than the model's {limit} positions"
                continue
            low = lo if i == 0 else lo + 1
            seqs = offline_data.binned_sequences(token_docs, low, hi, p.sequences_per_bin, rng,
                                                 cls_id=tokenizer.cls_token_id, sep_id=tokenizer.sep_token_id,
                                                 fill=p.fill)
            if not seqs:
                results[f"{label}/note"] = "skipped: no sequence of this length in the documents"
                continue
            # per sequence: its loss sum and number of positions, each rank filling its own share
            sums = torch.zeros(len(seqs), 2, dtype=torch.float64, device=context.device)
            mine = set(context.shard(len(seqs)))
            for j, ids in enumerate(seqs):
                inner = range(1, len(ids) - 1)
                # every rank draws every sequence's positions, so the random stream stays the same
                chosen = list(inner) if p.mode == "all" else [rng.choice(inner) for _ in range(p.positions)]
                if j not in mine:
                    continue
                seq_losses = masked_position_losses(model, ids, chosen, mask_token_id=tokenizer.mask_token_id,
                                                    batch_size=p.batch_size, device=context.device)
                sums[j, 0], sums[j, 1] = math.fsum(seq_losses), len(seq_losses)
            per_seq = context.all_sum(sums).tolist()
            rows = [{"length": len(ids), "pppl": _exp(total / count)} for ids, (total, count) in zip(seqs, per_seq)]
            results[label] = _exp(math.fsum(t for t, _ in per_seq) / sum(c for _, c in per_seq))
            results[f"{label}/sequences"] = len(seqs)
            results[f"{label}/mean_length"] = sum(r["length"] for r in rows) / len(rows)
            results[f"{label}/mean_sequence_pppl"] = sum(r["pppl"] for r in rows) / len(rows)
            per_sequence[label] = rows
        details = {"bins": [list(b) for b in bins], "mode": p.mode, "sequences": per_sequence}
        context.save_details(self.name, details)
        return {**results, "details": details}


def _exp(x: float) -> float:
    return math.exp(min(x, 700.0))  # keep an untrained model's score finite

