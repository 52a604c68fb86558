"""Benchmark 6: time to a held-out loss, encoder-recipes against the ``transformers.Trainer`` path.

Tokens per second is not what a user waits for; a model good enough is. This
runs the two trainers of :mod:`bench.training` (the same tiny ModernBERT,
BPE tokenizer, sample-corpus text, masking rate, peak LR, optimiser and
global batch in sequences, each in a child process of its own) and scores
each model on the same held-out masked batches every few steps, with the
clock stopped while it is scored. Each side's curve is (wall time, held-out
loss); the **target** is the final loss of the side that ends worse, which
both therefore reach. The figure is the wall time from the start of the
run's setup (tokenisation included: the baseline's ``datasets.map``, our
data worker) to the first score at or below the target, and the ratio of
the two times.

Both sides train the same number of real (non-padding) tokens, in about the
same number of optimizer steps of about the same real tokens each: the
baseline's batch is ``batch_size`` line-by-line documents (about 190 real
tokens each for the English help, cut at ``seq_len``, the rest padding), so
ours is the number of packed ``seq_len`` rows that holds as many tokens
(16 × 190 ≈ 6 × 512). A batch counted in *sequences* would hand the packing
side 2.7× the tokens per step and so 2.7× fewer steps for the same text, and
at this size the step count decides the loss (session 4 measured that first:
ours ended 1.0 nats behind). ``"packing": "best_fit", "isolation": True`` in
:func:`run`'s config for ours trains the baseline's very sequences without their padding (best-fit packing of
whole cut documents, each attending only to itself, positions restarting);
``bench/RESULTS.md`` §6 has both. Each side runs once: on a shared machine a
neighbour's work slows a run, so the load at the start of each is recorded
beside it.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Figure, child_main, run_child, sample_path, tokenizer_dir
from bench.training import LR, MASK_RATE, MODEL, SEED, baseline_setup, eval_batches, recipe

MODULE = "bench.time_to_loss"
BENCH = "6 time to loss"
#: held-out sets scored along the way (both from the validation split), each side's own training shape
EVAL_SETS = {
    "documents": "one validation document a sequence, cut at the sequence length, as the baseline trains",
    "packed": "validation documents concatenated into full sequences, as encoder-recipes trains",
}


@dataclass(frozen=True)
class Sizes:
    lang: str = "en"
    vocab: int = 4096
    seq_len: int = 512
    batch_size: int = 16
    steps: int = 160  # encoder-recipes' steps; the token budget is steps × batch × seq_len
    evals: int = 16  # scores along each run
    eval_batches: int = 4


SIZES = {
    "full": Sizes(),
    "quick": Sizes(steps=80, evals=10, eval_batches=2),
    "smoke": Sizes(seq_len=64, batch_size=4, steps=6, evals=2, eval_batches=1),
}


def run(mode: str, work: Path) -> list[Figure]:
    sizes = SIZES[mode]
    tokenizer = tokenizer_dir(work, sizes.lang, sizes.vocab)
    evals = eval_batches(work, tokenizer, sizes.lang, sizes.seq_len, sizes.batch_size, sizes.eval_batches)
    budget = sizes.steps * sizes.batch_size * sizes.seq_len
    # ours: packed rows holding the baseline's real tokens per step, for the same budget
    rows = max(1, round(sizes.batch_size * document_tokens(tokenizer, sizes.lang, sizes.seq_len) / sizes.seq_len))
    steps = max(1, round(budget / (rows * sizes.seq_len)))
    common = {"tokenizer": str(tokenizer), "eval_file": str(evals), "lang": sizes.lang, "seq_len": sizes.seq_len,
              "batch_size": sizes.batch_size, "tokens": budget, "model": MODEL, "mask_rate": MASK_RATE, "lr": LR,
              "seed": SEED, "evals": sizes.evals}
    results = {
        "baseline": run_child(MODULE, {**common, "kind": "baseline", "output": str(work / "ttl-hf-run"),
                                       "train_file": str(sample_path(sizes.lang)),
                                       "cache_dir": str(work / "ttl-hf-datasets")}),
        "ours": run_child(MODULE, {**common, "kind": "ours", "output": str(work / "ttl-ours"), "steps": steps,
                                   "batch_size": rows, "packing": "naive", "data_workers": 1, "sparse": True}),
    }
    shutil.rmtree(work / "ttl-hf-datasets", ignore_errors=True)
    return figures(results)


def document_tokens(tokenizer: Path, lang: str, seq_len: int) -> float:
    """Mean tokens of a training document cut at ``seq_len`` (the baseline's line-by-line sequence)."""
    import json

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer)
    with open(sample_path(lang), encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle]
    lengths = [len(ids) for ids in tok(texts, truncation=True, max_length=seq_len)["input_ids"]]
    return sum(lengths) / len(lengths)


def time_to(curve: list[tuple[float, float]], target: float) -> float | None:
    """The first wall time at which the held-out loss is at or below ``target`` (None if never)."""
    return next((t for t, loss in curve if loss <= target + 1e-9), None)


def figures(results: dict[str, dict[str, Any]]) -> list[Figure]:
    out: list[Figure] = []
    for name in EVAL_SETS:
        out += _figures_on(results, name)
    return out


def _figures_on(results: dict[str, dict[str, Any]], eval_set: str) -> list[Figure]:
    """The figures on one held-out set: the loss both reach, each side's time to it, and the ratio."""
    base, ours = results["baseline"], results["ours"]
    base_curve, ours_curve = base["curves"][eval_set], ours["curves"][eval_set]
    target = max(base_curve[-1][1], ours_curve[-1][1])
    t_base, t_ours = time_to(base_curve, target), time_to(ours_curve, target)
    ratio = t_base / t_ours if t_base and t_ours else None
    out = [Figure(BENCH, f"{eval_set} set: held-out loss both reach (the worse final loss)", target, "nats",
                  f"{EVAL_SETS[eval_set]}; final losses: baseline {base_curve[-1][1]:.3f}, "
                  f"encoder-recipes {ours_curve[-1][1]:.3f}", base["load"])]
    for name, r, t in ((f"transformers Trainer (line by line, padded, batch {base['batch']})", base, t_base),
                       (f"encoder-recipes (naive packing, batch {ours['batch']} rows, data_workers 1)", ours, t_ours)):
        compare = (f"{ratio:.2f}× faster (target ≥ 3×)" if r is ours and ratio else
                   "1.00×" if r is base else "")
        out.append(Figure(BENCH, f"{eval_set} set: {name}: seconds to that loss", t, "s", compare, r["load"],
                          {k: v for k, v in r.items() if k not in ("load", "curves")}))
    out.append(Figure(BENCH, f"{eval_set} set: time-to-loss ratio, baseline / encoder-recipes", ratio, "×",
                      f"steps {base['steps']} vs {ours['steps']}, real tokens {base['tokens']:,} vs {ours['tokens']:,}",
                      ours["load"]))
    return out


# --- the children -------------------------------------------------------------------------------


class _Curve:
    """Held-out scores along a run, the clock stopped while scoring."""

    def __init__(self, eval_file: Path, every: int, started: float) -> None:
        self.eval_file, self.every, self.started = eval_file, max(1, every), started
        self.paused = 0.0
        self.points: dict[str, list[tuple[float, float]]] = {name: [] for name in EVAL_SETS}
        self.scored: set[int] = set()

    def maybe(self, model: Any, step: int, last: bool = False) -> None:
        from bench.steps import evaluate

        if (step % self.every and not last) or step in self.scored:
            return
        self.scored.add(step)
        now = time.perf_counter()
        was_training = model.training
        losses = evaluate(model, self.eval_file)
        model.train(was_training)
        for name in EVAL_SETS:
            self.points[name].append((round(self._now(now), 2), losses[name]))
        self.paused += time.perf_counter() - now

    def _now(self, at: float) -> float:
        return at - self.started - self.paused


def _baseline(cfg: dict[str, Any]) -> dict[str, Any]:
    """``transformers.Trainer`` as in :func:`bench.training._baseline`, scored every few steps by a callback."""
    import datasets  # noqa: F401  (imported before the clock starts, as for ours)
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback

    started = time.perf_counter()  # imports done: setup and training count from here, as for ours
    tok, train, steps, model, args = baseline_setup(cfg)
    curve = _Curve(Path(cfg["eval_file"]), steps // cfg["evals"], started)

    class Score(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201 (transformers' signature)
            curve.maybe(model, state.global_step, last=state.global_step == steps)

    trainer = Trainer(model=model, args=args, train_dataset=train, processing_class=tok, callbacks=[Score()],
                      data_collator=DataCollatorForLanguageModeling(tok, mlm_probability=cfg["mask_rate"]))
    clock = _token_counter(model)
    trainer.train()
    return {"steps": steps, "batch": cfg["batch_size"], "tokens": clock.total, "curves": curve.points}


def _ours(cfg: dict[str, Any]) -> dict[str, Any]:
    """The trainer of ``encoder-recipes run`` on :func:`bench.training.recipe`, scored every few steps."""
    from encoder_recipes.registry import default_registries
    from encoder_recipes.training.trainer import RunOptions, Trainer
    from encoder_recipes.validation import ResolvedRecipe, validate_data

    started = time.perf_counter()
    shutil.rmtree(cfg["output"], ignore_errors=True)
    registries = default_registries()
    resolved = ResolvedRecipe(validate_data(recipe(cfg), "<bench>", registries), "<bench>")
    curve = _Curve(Path(cfg["eval_file"]), cfg["steps"] // cfg["evals"], started)

    class Scored(Trainer):
        def _evaluate(self, stage, after_step):  # noqa: ANN001, ANN202 (called after every step)
            curve.maybe(self.model, after_step, last=after_step == cfg["steps"])

    trainer = Scored(resolved, registries, RunOptions(output=Path(cfg["output"]), progress=False))
    trainer.setup()
    clock = _token_counter(trainer.forward_model, trainer.tokenizer.pad_token_id)  # what the trainer calls
    trainer.train()
    trainer.metrics.close()
    return {"steps": cfg["steps"], "batch": cfg["batch_size"], "tokens": clock.total, "curves": curve.points}


class _token_counter:  # noqa: N801 (used like a function)
    """Non-padding tokens of the training forwards (scoring forwards run under no_grad and are skipped)."""

    def __init__(self, model: Any, pad_id: int | None = None) -> None:
        import torch

        self.total = 0

        def count(module: Any, args: tuple, kwargs: dict[str, Any]) -> None:
            if torch.is_grad_enabled():
                mask = kwargs["attention_mask"]
                # with documents isolated the mask is a mapping of 4-D masks: count the non-pad ids instead
                real = mask if isinstance(mask, torch.Tensor) else kwargs["input_ids"] != pad_id
                self.total += int(real.sum())

        model.register_forward_pre_hook(count, with_kwargs=True)


if __name__ == "__main__":
    child_main({"baseline": _baseline, "ours": _ours})
