"""Zero-shot retrieval: Recall@k and MRR@k with mean-pooled embeddings (001 §3.2, Appendix B, Table 4).

Each query has exactly one relevant passage among all the passages (the
other queries' passages are the distractors). Passages are ranked by the
cosine similarity of mean-pooled, L2-normalised embeddings; ties keep the
passages' order (a stable sort). For query q with its passage at rank r:
Recall@k is the share of queries with r <= k, MRR@k the mean of 1/r over
queries with r <= k (0 otherwise).

Two baselines that need no model, as in 001 Table 4, show whether the task
is meaningful (a model should beat them):

* **edit distance**: Levenshtein distance over characters, normalised by the
  longer string's length; smaller is closer.
* **Jaccard distance**: ``1 - |A ∩ B| / |A ∪ B|`` over the *sets of
  characters* of query and passage (``baseline_units: tokens``: the sets of
  the model tokenizer's tokens); smaller is closer. 001 does not say which
  units it used; characters need no tokenizer and suit unspaced Japanese.

Full scale (001 Appendix B): ``pairs: miracl`` with ``dataset: miracl/miracl``
(config ``ja``, split ``dev``): the first positive passage of every instance
with two or more is a query, the second its corpus entry.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from encoder_recipes.components.base import Params
from encoder_recipes.components.kinds import Evaluator
from encoder_recipes.evaluation import offline_data
from encoder_recipes.evaluation.context import EvalContext
from encoder_recipes.evaluation.embeddings import embed


def rank_metrics(similarity: torch.Tensor | np.ndarray, gold: list[int] | None = None, k: int = 10) -> dict[str, float]:
    """Recall@k and MRR@k of a (queries × passages) similarity matrix; larger is more similar.

    :param gold: the relevant passage of each query (None: the diagonal, query i ↔ passage i).
    """
    sim = torch.as_tensor(similarity, dtype=torch.float64)
    gold_t = torch.arange(len(sim)) if gold is None else torch.as_tensor(gold)
    target = sim[torch.arange(len(sim)), gold_t].unsqueeze(1)
    columns = torch.arange(sim.shape[1]).unsqueeze(0)
    # rank = 1 + passages scored higher + equal-scoring passages listed before the gold one
    ranks = 1 + (sim > target).sum(1) + ((sim == target) & (columns < gold_t.unsqueeze(1))).sum(1)
    hit = ranks <= k
    return {f"recall@{k}": float(hit.double().mean()),
            f"mrr@{k}": float(torch.where(hit, 1.0 / ranks.double(), torch.zeros(())).mean())}


def levenshtein_to_many(query: str, passages: list[str]) -> np.ndarray:
    """Levenshtein distances (insert, delete, substitute: cost 1) from ``query`` to every passage.

    The classic dynamic programme, one row per query character, run for all
    passages at once on a padded array. Within a row, insertions chain from
    left to right; ``D[j] = min_k≤j (E[k] + j - k)`` turns that chain into a
    running minimum, so each row is a few vectorised operations.
    """
    if not passages:
        return np.zeros(0, dtype=np.int64)
    lengths = np.array([len(p) for p in passages])
    width = int(lengths.max())
    codes = np.full((len(passages), width), -1, dtype=np.int64)
    for i, p in enumerate(passages):
        codes[i, : len(p)] = [ord(c) for c in p]
    cols = np.arange(width + 1)
    prev = np.tile(cols, (len(passages), 1))  # distance from the empty prefix of the query
    for i, ch in enumerate(query, start=1):
        row = np.empty_like(prev)
        row[:, 0] = i
        row[:, 1:] = np.minimum(prev[:, :-1] + (codes != ord(ch)), prev[:, 1:] + 1)
        prev = np.minimum.accumulate(row - cols, axis=1) + cols
    return prev[np.arange(len(passages)), lengths]


def edit_distance_matrix(queries: list[str], passages: list[str]) -> np.ndarray:
    """Levenshtein distances normalised by the longer string's length (0 = equal, 1 = nothing shared)."""
    plen = np.array([len(p) for p in passages])
    out = np.zeros((len(queries), len(passages)))
    for i, q in enumerate(queries):
        longest = np.maximum(plen, len(q))
        out[i] = levenshtein_to_many(q, passages) / np.maximum(longest, 1)
    return out


def jaccard_distance_matrix(queries: list[set], passages: list[set]) -> np.ndarray:
    """``1 - |A ∩ B| / |A ∪ B|`` for every (query set, passage set); two empty sets are at distance 0."""
    out = np.zeros((len(queries), len(passages)))
    for i, a in enumerate(queries):
        for j, b in enumerate(passages):
            union = len(a | b)
            out[i, j] = 1.0 - len(a & b) / union if union else 0.0
    return out


#: baseline scores by data: they do not depend on the model, so training computes them once
_BASELINE_CACHE: dict[tuple, dict[str, float]] = {}


def baseline_metrics(queries: list[str], passages: list[str], *, k: int, units: str = "chars",
                     tokenizer: Any = None) -> dict[str, float]:
    """Recall@k / MRR@k of the edit-distance and Jaccard-distance rankings (001 Table 4's baselines)."""
    key = (tuple(queries), tuple(passages), k, units, id(tokenizer) if units == "tokens" else None)
    if key not in _BASELINE_CACHE:
        out = {f"edit_distance/{m}": v for m, v in rank_metrics(-edit_distance_matrix(queries, passages), k=k).items()}
        if units == "chars":
            qs, ds = [set(x) for x in queries], [set(x) for x in passages]
        else:
            qs = [set(x) for x in tokenizer(queries, add_special_tokens=False)["input_ids"]]
            ds = [set(x) for x in tokenizer(passages, add_special_tokens=False)["input_ids"]]
        out.update({f"jaccard/{m}": v for m, v in rank_metrics(-jaccard_distance_matrix(qs, ds), k=k).items()})
        _BASELINE_CACHE[key] = out
    return dict(_BASELINE_CACHE[key])


class RetrievalEvaluator(Evaluator):
    """Zero-shot retrieval Recall@k / MRR@k with mean-pooled embeddings, plus edit-distance and Jaccard baselines."""

    name: ClassVar[str] = "retrieval"

    class Params(Params):
        k: int = Field(10, gt=0, description="cut-off of Recall@k and MRR@k (001: 10)")
        pairs: Literal["paragraphs", "crosslingual", "miracl"] = Field(
            "paragraphs",
            description="paragraphs: query = first paragraph of a validation document, passage = its second; "
                        "crosslingual: English query, target-language passage (sample pairs.jsonl); "
                        "miracl: 001 Appendix B on `dataset`")
        dataset: str = Field("miracl/miracl", description="with pairs: miracl, a datasets name or a local file")
        dataset_config: str | None = Field(None, description="datasets config (None: the language, e.g. ja)")
        split: str = Field("dev", description="datasets split for pairs: miracl")
        max_queries: int = Field(500, gt=1, description="queries (and passages) used at most")
        baselines: bool = Field(True, description="also score the edit-distance and Jaccard baselines")
        baseline_units: Literal["chars", "tokens"] = Field("chars", description="the sets the Jaccard baseline compares")
        batch_size: int = Field(32, gt=0)
        max_length: int | None = Field(None, gt=0, description="truncate inputs (None: the model's maximum)")
        max_documents: int = Field(10_000, gt=0, description="validation documents read")

    def evaluate(self, *, model: Any, tokenizer: Any, context: EvalContext) -> dict[str, Any]:
        p = self.params
        rng = random.Random(context.seed)
        if p.pairs == "paragraphs":
            pairs = offline_data.first_paragraph_pairs(offline_data.read_documents(context.documents, p.max_documents))
            pairs = pairs if len(pairs) <= p.max_queries else rng.sample(pairs, p.max_queries)
        elif p.pairs == "crosslingual":
            pairs = offline_data.crosslingual_pairs(context.language, p.max_queries, rng)
        else:
            rows = offline_data.load_rows(p.dataset, p.dataset_config or context.language, p.split)
            pairs = offline_data.miracl_pairs(rows, p.max_queries)
        if len(pairs) < 2:
            raise ValueError(f"retrieval needs at least two query/passage pairs, found {len(pairs)} ({p.pairs})")
        queries, passages = [q for q, _ in pairs], [d for _, d in pairs]
        q = embed(model, tokenizer, queries, device=context.device, batch_size=p.batch_size, max_length=p.max_length)
        d = embed(model, tokenizer, passages, device=context.device, batch_size=p.batch_size, max_length=p.max_length)
        results: dict[str, Any] = {**rank_metrics(q @ d.T, k=p.k), "queries": len(pairs)}
        if p.baselines:
            results.update(baseline_metrics(queries, passages, k=p.k, units=p.baseline_units, tokenizer=tokenizer))
        return results
