"""Fill-mask probes (001 §3.4, Table 3): does the model put an expected answer in its top k?

The probes come from the language plugins (hook
``encoder_recipes_fill_mask_probes``): ``{"text": "...{mask}...", "answers": [...]}``.
``{mask}`` becomes the tokenizer's single mask token, so the model predicts
one token there. A probe is a hit when one of the k most likely tokens,
decoded on its own and stripped of spaces, equals an answer (also stripped).

An answer the tokenizer has no single token for (``長江`` may be two tokens)
can never be hit this way; such answers are counted, and a probe none of
whose answers is a single token is *unreachable*. ``top{k}`` is over all
probes; ``top{k}_reachable`` over the reachable ones, which is what a model
can be blamed for.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from encoder_recipes.components.base import Params
from encoder_recipes.components.kinds import Evaluator
from encoder_recipes.evaluation.context import EvalContext

PLACEHOLDER = "{mask}"


def single_token_strings(tokenizer: Any) -> set[str]:
    """Every string a single token decodes to, stripped (what one masked position can produce)."""
    decoded = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return {text.strip() for text in decoded}


@torch.no_grad()
def score_probes(model: Any, tokenizer: Any, probes: list[dict], *, k: int = 5,
                 device: torch.device | str = "cpu") -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Score ``probes``; return the summary and, per probe, its top-k predictions and whether it hit."""
    producible = single_token_strings(tokenizer)
    rows: list[dict[str, Any]] = []
    for probe in probes:
        text = probe["text"]
        if text.count(PLACEHOLDER) != 1:
            raise ValueError(f"a fill-mask probe needs exactly one {PLACEHOLDER}: {text!r}")
        enc = tokenizer(text.replace(PLACEHOLDER, tokenizer.mask_token), return_tensors="pt",
                        return_token_type_ids=False)
        where = (enc["input_ids"][0] == tokenizer.mask_token_id).nonzero().flatten()
        if len(where) != 1:
            raise ValueError(f"the mask token appears {len(where)} times after tokenizing {text!r}")
        logits = model(input_ids=enc["input_ids"].to(device),
                       attention_mask=enc["attention_mask"].to(device)).logits[0, int(where[0])]
        top = logits.float().topk(min(k, logits.shape[-1])).indices.tolist()
        predictions = [tokenizer.decode([i]).strip() for i in top]
        answers = [a.strip() for a in probe["answers"]]
        reachable = [a for a in answers if a in producible]
        rank = next((r for r, pred in enumerate(predictions, 1) if pred in answers), None)
        rows.append({"text": text, "answers": answers, "predictions": predictions, "rank": rank,
                     "single_token_answers": reachable})
    n = len(rows)
    reachable_rows = [r for r in rows if r["single_token_answers"]]
    hits = lambda rs, cut: sum(1 for r in rs if r["rank"] is not None and r["rank"] <= cut)  # noqa: E731
    summary = {
        "probes": n,
        "top1": hits(rows, 1) / n if n else 0.0,
        f"top{k}": hits(rows, k) / n if n else 0.0,
        "reachable_probes": len(reachable_rows),
        f"top{k}_reachable": hits(reachable_rows, k) / len(reachable_rows) if reachable_rows else 0.0,
        "multi_token_answers": sum(len(r["answers"]) - len(r["single_token_answers"]) for r in rows),
    }
    return summary, rows


class FillMaskEvaluator(Evaluator):
    """Fill-mask probes from the language plugins: share of probes with an expected answer in the top k."""

    name: ClassVar[str] = "fill_mask"

    class Params(Params):
        k: int = Field(5, gt=0, description="a probe is a hit when an answer is among the k most likely tokens")

    def evaluate(self, *, model: Any, tokenizer: Any, context: EvalContext) -> dict[str, Any]:
        if context.registries is None:
            raise ValueError("the fill_mask evaluator asks the language plugins for probes: "
                             "its context needs the registries")
        probes = context.registries.fill_mask_probes(context.language)
        if not probes and not context.sample_probes:
            return {"probes": 0, "note": f"no plugin supplies fill-mask probes for {context.language!r}"}
        summary, rows = (score_probes(model, tokenizer, probes, k=self.params.k, device=context.device)
                         if probes else ({"probes": 0}, []))
        details = {"k": self.params.k, "probes": rows}
        if context.sample_probes:  # a run on sample corpora: their in-domain probes too, as domain_*
            domain, domain_rows = score_probes(model, tokenizer, context.sample_probes, k=self.params.k,
                                               device=context.device)
            summary.update({f"domain_{key}": value for key, value in domain.items()})
            details["domain_probes"] = domain_rows
        context.save_details(self.name, details)
        return {**summary, "details": details}
