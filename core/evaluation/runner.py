"""Running evaluators during training: results to ``eval/step_N.json`` and ``metrics.jsonl``.

Evaluators see the model as training runs it: the same attention backend (the
model is the trainer's) and the same bf16 autocast when training uses it.
Every rank calls :func:`run_evaluators`: a ``shardable`` evaluator runs on
each, scoring its share of the examples and summing through the trainer's
:class:`~encoder_recipes.training.distributed.Dist`; any other runs on the main
rank alone. Only the main rank writes, and its results are the ones kept.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from encoder_recipes.data.samples import sample_probes
from encoder_recipes.data.sources import DocumentStream
from encoder_recipes.evaluation.context import EvalContext


def eval_context(trainer: Any, stage: Any, step: int) -> EvalContext:
    """What evaluators get after ``step`` of ``stage``: the stage's length, packing, masking, validation text."""
    recipe = trainer.recipe
    spec = recipe.stages[stage.index]
    clock = trainer.plan.clock(min(step, trainer.plan.total_steps - 1))
    context_schedule = trainer.resolved.component(trainer.registries, "context", spec.context)
    masking = trainer.resolved.component(trainer.registries, "masking", spec.masking)

    def documents():
        for source in recipe.data.sources:
            yield from DocumentStream(source, "validation", validation_fraction=recipe.data.validation_fraction)

    def train_documents():
        for source in recipe.data.sources:
            yield from DocumentStream(source, "train", validation_fraction=recipe.data.validation_fraction)

    return EvalContext(
        language=recipe.metadata.language, device=trainer.device, documents=documents,
        train_documents=train_documents,
        seq_len=context_schedule.seq_len(clock), packing=spec.packing, masking=masking,
        mask_rate=masking.rate(clock), segmenter=trainer.segmenter, seed=recipe.seed, step=step,
        out_dir=trainer.out if trainer.dist.main else None, registries=trainer.registries, dist=trainer.dist,
        sample_probes=sample_probes(recipe.data.sources, trainer.registries),
    )


def run_evaluators(refs: list, *, trainer: Any, stage: Any, step: int) -> dict[str, Any]:
    context = eval_context(trainer, stage, step)
    results: dict[str, Any] = {}
    # the precision training runs in: FlashAttention 2 takes only fp16/bf16, and fp32 would make a
    # full-scale evaluation several times slower than it need be
    autocast = torch.autocast(trainer.device.type, dtype=torch.bfloat16, enabled=trainer.bf16)
    for ref in refs:
        evaluator = trainer.resolved.component(trainer.registries, "evaluator", ref)
        if not (trainer.dist.main or evaluator.shardable):
            continue
        with autocast:
            scores = evaluator.evaluate(model=trainer.model, tokenizer=trainer.tokenizer, context=context)
        results.update({f"{ref.name}/{k}": v for k, v in scores.items() if isinstance(v, (int, float, str))})
    if not trainer.dist.main:
        return results
    folder = trainer.out / "eval"
    folder.mkdir(exist_ok=True)
    (folder / f"step_{step:08d}.json").write_text(
        json.dumps({"step": step, "stage": stage.name, "results": results}, indent=1, ensure_ascii=False),
        encoding="utf-8")
    return results
