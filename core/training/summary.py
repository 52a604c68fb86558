"""The end-of-run summary: what a user should see when a run ends.

Where the model is, how long the run took, the final validation MLM loss
against the unigram baseline of the same text (a model that only learned
token frequencies scores that baseline), the accuracy, and three fill-mask
probes with their top answers.

The numbers are computed once, at the end of training: the MLM numbers come
from the evaluation at the last step when the recipe has the ``mlm``
evaluator (otherwise it is run here with its defaults), the probes from the
sample corpora the run trained on (probes in their domain) or else the language
plugins. The same record goes to ``metrics.jsonl`` (``"event":
"summary"``), the model card and the terminal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: probes shown in the summary (the fill_mask evaluator scores them all)
SUMMARY_PROBES = 3
#: answers shown per probe
SUMMARY_TOP_K = 5


def summarize(trainer: Any, model_dir: Path, seconds: float) -> dict[str, Any]:
    """The summary record of a finished run (``trainer`` holds the model, tokenizer and metrics)."""
    from encoder_recipes.evaluation.fill_mask import score_probes
    from encoder_recipes.training.metrics import read_metrics

    step = trainer.step
    mlm = {}
    for record in read_metrics(trainer.out):
        if record.get("event") == "eval" and record.get("step") == step and "mlm/loss" in record:
            mlm = {k.removeprefix("mlm/"): v for k, v in record.items() if k.startswith("mlm/")}
    if not mlm:
        try:
            mlm = _evaluate_mlm(trainer)
        except ValueError:  # no validation text (e.g. validation_fraction 0): the summary goes without
            mlm = {}
    probes = summary_probes(trainer.recipe, trainer.registries)
    rows = []
    if probes:
        trainer.model.eval()
        try:
            _, scored = score_probes(trainer.model, trainer.tokenizer, probes, k=SUMMARY_TOP_K,
                                     device=trainer.device)
        except ValueError:  # a probe this tokenizer cannot hold one mask in; the fill_mask evaluator says which
            scored = []
        rows = [{"text": r["text"], "answers": r["answers"], "predictions": r["predictions"], "rank": r["rank"]}
                for r in scored]
    return {
        "event": "summary",
        "step": step,
        "model": str(model_dir),
        "seconds": round(seconds, 1),
        "mlm/loss": mlm.get("loss"),
        "mlm/unigram_loss": mlm.get("unigram_loss"),
        "mlm/gain": mlm.get("gain"),
        "mlm/accuracy": mlm.get("accuracy"),
        "probes": rows,
    }


def summary_probes(recipe: Any, registries: Any) -> list[dict]:
    """The probes the summary shows: the sample corpora's own (in the domain the run trained on) for a run on
    sample corpora, else the language plugins' (a paper's probes, which ask for world knowledge)."""
    from encoder_recipes.data.samples import sample_probes

    probes = sample_probes(recipe.data.sources, registries) or registries.fill_mask_probes(recipe.metadata.language)
    return probes[:SUMMARY_PROBES]


def _evaluate_mlm(trainer: Any) -> dict[str, Any]:
    """The mlm evaluator with its defaults at the last stage, for a recipe that does not list it."""
    from encoder_recipes.evaluation.mlm import MLMEvaluator
    from encoder_recipes.evaluation.runner import eval_context

    stage = trainer.plan.stages[-1]
    trainer.model.eval()
    context = eval_context(trainer, stage, trainer.step)
    return MLMEvaluator(MLMEvaluator.Params()).evaluate(model=trainer.model, tokenizer=trainer.tokenizer,
                                                        context=context)


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few lines for the terminal."""
    lines = [f"model:    {summary['model']}", f"time:     {_duration(summary['seconds'])}"]
    loss, unigram, accuracy = summary.get("mlm/loss"), summary.get("mlm/unigram_loss"), summary.get("mlm/accuracy")
    if loss is not None:
        versus = (f" vs {unigram:.2f} for token frequencies alone (unigram), {unigram - loss:+.2f} nats better"
                  if unigram is not None else "")
        lines.append(f"val loss: {loss:.2f}{versus}")
    if accuracy is not None:
        lines.append(f"accuracy: {accuracy:.1%} of masked tokens predicted exactly")
    for row in summary.get("probes") or []:
        answers = " | ".join(p or "''" for p in row["predictions"])
        verdict = (f"expected answer at rank {row['rank']}" if row.get("rank")
                   else f"expected one of: {', '.join(row['answers'])}")
        lines.append(f"probe:    {row['text']}  ->  {answers}   ({verdict})")
    return "\n".join(lines)


def summary_markdown(summary: dict[str, Any]) -> list[str]:
    """The summary as model-card lines."""
    lines = ["## Results at the end of training", "",
             f"- training time: {_duration(summary['seconds'])} (step {summary['step']})"]
    loss, unigram, accuracy = summary.get("mlm/loss"), summary.get("mlm/unigram_loss"), summary.get("mlm/accuracy")
    if loss is not None:
        lines.append(f"- validation MLM loss: {loss:.3f} nats/token"
                     + (f"; unigram baseline of the same text {unigram:.3f} (gain {unigram - loss:.3f})"
                        if unigram is not None else ""))
    if accuracy is not None:
        lines.append(f"- validation MLM accuracy: {accuracy:.1%}")
    rows = summary.get("probes") or []
    if rows:
        lines += ["", "| fill-mask probe | expected | top answers |", "| --- | --- | --- |"]
        lines += [f"| {r['text']} | {', '.join(r['answers'])} | {', '.join(p or chr(39) * 2 for p in r['predictions'])} |"
                  for r in rows]
    return lines


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The last summary record of a run's ``metrics.jsonl``, or None."""
    from encoder_recipes.training.metrics import read_metrics

    found = [r for r in read_metrics(run_dir) if r.get("event") == "summary"]
    return found[-1] if found else None


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
