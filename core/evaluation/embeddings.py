"""Sentence embeddings by mean pooling, and their geometry: alignment, uniformity, similarity distributions.

Embeddings follow 001 §3.2 (Sentence-BERT mean pooling): the encoder's last
hidden state (after its final norm, what ``AutoModel`` returns) averaged over
the non-padding tokens, ``[CLS]``/``[SEP]`` included as Sentence-BERT does,
inputs longer than the model's maximum truncated, then L2-normalised.

Alignment and uniformity are SimCSE's (Gao et al. 2021; 001 §3.6, eqs. 1–2)
with t = 2, on normalised embeddings f::

    align   = E_(x, x+) ||f(x) - f(x+)||²
    uniform = log E_(x, y) exp(-t ||f(x) - f(y)||²)

Positive pairs give ``align``. ``uniform`` is taken, as in SimCSE and in
llm-jp's own code (llm-jp/llm-jp-modernbert, src/eval/alignment_and_uniformity.py
lines 20-30 and 112-114), over *all* pairs of distinct embeddings: the texts
of the random pairs are pooled (2,000 pairs → 4,000 embeddings) and every
off-diagonal entry of their distance matrix counts, not only the 2,000
pairings. 001 §3.6 uses 1,746 MIRACL positive pairs and 2,000 random
Wikipedia pairs. The cosine similarities of both kinds of pair are summarised
and kept as histograms (001 §3.7, Figure 4).
"""

from __future__ import annotations

import math
import random
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from encoder_recipes.components.base import Params
from encoder_recipes.components.kinds import Evaluator
from encoder_recipes.evaluation import offline_data
from encoder_recipes.evaluation.context import EvalContext


def encoder_of(model: Any) -> torch.nn.Module:
    """The bare encoder of a masked-LM (``model.model`` in ModernBERT, ``model.bert`` in BERT)."""
    return getattr(model, "base_model", model)


def max_positions(model: Any) -> int | None:
    """The longest input the model takes (``max_position_embeddings``), if its config says."""
    return getattr(getattr(model, "config", None), "max_position_embeddings", None)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of ``hidden`` (B, L, H) over the positions where ``attention_mask`` (B, L) is 1."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


@torch.no_grad()
def embed(model: Any, tokenizer: Any, texts: list[str], *, device: torch.device | str = "cpu",
          batch_size: int = 32, max_length: int | None = None) -> torch.Tensor:
    """L2-normalised mean-pooled embeddings (N, H) of ``texts``, in float32."""
    encoder = encoder_of(model)
    max_length = max_length or max_positions(model) or 512
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt", return_token_type_ids=False)
        mask = enc["attention_mask"].to(device)
        hidden = encoder(input_ids=enc["input_ids"].to(device), attention_mask=mask).last_hidden_state
        out.append(mean_pool(hidden.float(), mask))
    if not out:
        return torch.empty(0, 0)
    return torch.nn.functional.normalize(torch.cat(out), dim=-1).cpu()


def alignment(x: torch.Tensor, y: torch.Tensor) -> float:
    """SimCSE alignment: mean squared distance between row i of ``x`` and row i of ``y`` (positive pairs)."""
    return float((x - y).pow(2).sum(-1).mean())


def uniformity(embeddings: torch.Tensor, t: float = 2.0) -> float:
    """SimCSE uniformity of (N, H) L2-normalised embeddings: log mean exp(-t·squared distance)
    over all N(N-1) ordered pairs of distinct rows (the diagonal left out), as llm-jp computes it."""
    e = embeddings.double()
    n = e.shape[0]
    if n < 2:
        raise ValueError(f"uniformity needs at least two embeddings, got {n}")
    sq_norm = e.pow(2).sum(-1, keepdim=True)
    sq = (sq_norm + sq_norm.T - 2.0 * e @ e.T).clamp(min=0.0)
    off_diagonal = sq[~torch.eye(n, dtype=torch.bool)]
    # log-mean-exp, stable when every distance is large
    return float(torch.logsumexp(-t * off_diagonal, dim=0) - math.log(off_diagonal.numel()))


def cosine(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of two (N, H) tensors."""
    return torch.nn.functional.cosine_similarity(x, y, dim=-1)


def summary(values: torch.Tensor) -> dict[str, float]:
    """Mean, standard deviation, median and the 10th/90th percentiles."""
    v = values.double()
    q = torch.quantile(v, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64))
    return {"mean": float(v.mean()), "std": float(v.std()) if len(v) > 1 else 0.0,
            "p10": float(q[0]), "median": float(q[1]), "p90": float(q[2])}


def histogram(values: torch.Tensor, bins: int, low: float = -1.0, high: float = 1.0) -> dict[str, list]:
    """Counts of ``values`` in ``bins`` equal bins over [low, high]; ``edges`` has ``bins + 1`` entries."""
    counts = torch.histc(values.double().clamp(low, high), bins=bins, min=low, max=high)
    edges = torch.linspace(low, high, bins + 1, dtype=torch.float64)
    return {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}


class AlignmentUniformityEvaluator(Evaluator):
    """SimCSE alignment (positive pairs) and uniformity (random pairs) of mean-pooled embeddings, with cosine histograms."""

    name: ClassVar[str] = "alignment_uniformity"

    class Params(Params):
        pairs: Literal["paragraphs", "crosslingual", "miracl"] = Field(
            "paragraphs",
            description="positive pairs: paragraphs = consecutive paragraphs of one validation document; "
                        "crosslingual = a sample-corpus paragraph and its English original; "
                        "miracl = two positive passages of one instance of `dataset` (001 §3.6)")
        dataset: str = Field("miracl/miracl", description="with pairs: miracl, a datasets name or a local file")
        dataset_config: str | None = Field(None, description="datasets config (None: the language, e.g. ja)")
        split: str = Field("dev", description="datasets split for pairs: miracl")
        num_positive: int = Field(256, gt=0, description="positive pairs (001 §3.6: 1,746)")
        num_random: int = Field(
            256, gt=1, description="random pairs of validation paragraphs; uniformity uses all pairs of their "
            "2 × num_random texts (001 §3.6: 2,000)")
        t: float = Field(2.0, gt=0, description="uniformity temperature (SimCSE: 2)")
        histogram_bins: int = Field(40, gt=0, description="bins of the cosine-similarity histograms over [-1, 1]")
        batch_size: int = Field(32, gt=0)
        max_length: int | None = Field(None, gt=0, description="truncate inputs (None: the model's maximum)")
        max_documents: int = Field(10_000, gt=0, description="validation documents read")

    def evaluate(self, *, model: Any, tokenizer: Any, context: EvalContext) -> dict[str, Any]:
        p = self.params
        rng = random.Random(context.seed)
        docs = offline_data.read_documents(context.documents, p.max_documents)
        if p.pairs == "paragraphs":
            positive = offline_data.consecutive_pairs(docs, p.num_positive, rng)
        elif p.pairs == "crosslingual":
            positive = offline_data.crosslingual_pairs(context.language, p.num_positive, rng)
        else:
            rows = offline_data.load_rows(p.dataset, p.dataset_config or context.language, p.split)
            positive = offline_data.miracl_pairs(rows, p.num_positive)
        if not positive:
            raise ValueError(f"alignment_uniformity found no positive pairs ({p.pairs})")
        random_ = offline_data.random_pairs(docs, p.num_random, rng)

        def vectors(pairs: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
            e = embed(model, tokenizer, [a for a, _ in pairs] + [b for _, b in pairs], device=context.device,
                      batch_size=p.batch_size, max_length=p.max_length)
            return e[: len(pairs)], e[len(pairs):]

        pos_a, pos_b = vectors(positive)
        rnd_a, rnd_b = vectors(random_)
        pos_cos, rnd_cos = cosine(pos_a, pos_b), cosine(rnd_a, rnd_b)
        results: dict[str, Any] = {
            "alignment": alignment(pos_a, pos_b),
            "uniformity": uniformity(torch.cat([rnd_a, rnd_b]), p.t),
            "positive_pairs": len(positive),
            "random_pairs": len(random_),
        }
        results.update({f"positive_cos_{k}": v for k, v in summary(pos_cos).items()})
        results.update({f"random_cos_{k}": v for k, v in summary(rnd_cos).items()})
        details = {"pairs": p.pairs, "positive": histogram(pos_cos, p.histogram_bins),
                   "random": histogram(rnd_cos, p.histogram_bins)}
        context.save_details(self.name, details)
        return {**results, "details": details}
