"""Timing training steps from the model's side, the same way for every trainer.

A forward pre-hook notes when each forward began and how many non-padding
tokens it carried (the ``attention_mask`` sum); a forward hook keeps its
loss. Hooks on the model see exactly what the model was given, so
``transformers.Trainer`` and encoder-recipes are counted by one rule, with no
change to either trainer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch


class StepClock:
    """Per-forward start times, non-padding tokens, positions (padding included) and losses of a model."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.times: list[float] = []
        self.tokens: list[int] = []
        self.positions: list[int] = []
        self.losses: list[float] = []
        self._handles = [
            model.register_forward_pre_hook(self._before, with_kwargs=True),
            model.register_forward_hook(self._after, with_kwargs=True),
        ]

    def _before(self, module: torch.nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        mask = kwargs["attention_mask"]
        self.times.append(time.perf_counter())
        self.tokens.append(int(mask.sum()))
        self.positions.append(mask.numel())

    def _after(self, module: torch.nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        if getattr(output, "loss", None) is not None:
            self.losses.append(float(output.loss.detach()))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def summary(self, skip: int) -> dict[str, Any]:
        """Totals, and the rate after ``skip`` warm-up steps.

        The rate is the median of the per-step rates; see :func:`bench.common.steady_rate`.
        """
        from bench.common import steady_rate

        tail = max(1, len(self.losses) // 10)
        rate = steady_rate(self.times, self.tokens, skip)
        return {
            "steps": len(self.times),
            "tokens": sum(self.tokens),
            "positions": sum(self.positions),
            "steady_tokens_per_s": rate["median"],
            "mean_tokens_per_s": rate["mean"],
            "step_s": [b - a for a, b in zip(self.times, self.times[1:])],
            "train_loss_end": sum(self.losses[-tail:]) / tail if self.losses else None,
        }


def evaluate(model: torch.nn.Module, path: Path) -> dict[str, float]:
    """Mean MLM loss over the masked tokens of the held-out batches saved by :func:`bench.training.eval_batches`."""
    sets = torch.load(path)
    model.eval()
    losses = {}
    with torch.no_grad():
        for name, batches in sets.items():
            total, count = 0.0, 0
            for batch in batches:
                out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                            labels=batch["labels"])
                masked = int((batch["labels"] != -100).sum())
                total += float(out.loss) * masked
                count += masked
            losses[name] = total / count
    return losses
