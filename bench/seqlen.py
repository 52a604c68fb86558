"""Benchmark 4: the cost of a training step against sequence length, local/global attention against all-global.

A tiny-width ModernBERT (6 layers, so the global-local-local pattern has
two global layers and four local ones, as ModernBERT's one in three) takes
training steps of a fixed number of tokens at each length — the batch
shrinks as the sequences grow — once with ModernBERT's pattern
(``global_attn_every_n_layers: 3``, a 128-token window on local layers) and
once with every layer global (``global_attn_every_n_layers: 1``). Random
token ids stand in for text: the cost does not depend on which tokens they
are.

Beside each measured ratio stands the ratio of model FLOPs
(:func:`encoder_recipes.plan.stage_flops`, which counts a local layer's
attention over its window only). A kernel that skips the masked-out blocks
(FlashAttention 2's ``window_size`` on a GPU) can approach that ratio; PyTorch's
SDPA on a CPU is given the window as a dense mask and computes every score,
so here the local layers save little.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Figure, process_peak_rss_mib, child_main, run_child

MODULE = "bench.seqlen"
BENCH = "4 sequence length"
MODEL = {"hidden_size": 128, "intermediate_size": 192, "num_hidden_layers": 6, "num_attention_heads": 2,
         "local_attention": 128, "max_position_embeddings": 8192}
VOCAB = 4096
PATTERNS = {"local/global": 3, "all global": 1}


@dataclass(frozen=True)
class Sizes:
    lengths: tuple[int, ...] = (512, 1024, 2048, 4096, 8192)
    tokens_per_step: int = 8192
    steps: int = 2  # measured steps per length and pattern (the fastest counts), after one warm-up step
    long_steps: int = 1  # the same from 4096 tokens on, where one step takes seconds


SIZES = {
    "full": Sizes(),
    "quick": Sizes(lengths=(1024, 8192), steps=1),
    "smoke": Sizes(lengths=(64, 128), tokens_per_step=256, steps=1),
}


def run(mode: str, work: Path) -> list[Figure]:
    sizes = SIZES[mode]
    result = run_child(MODULE, {"kind": "steps", "lengths": list(sizes.lengths),
                                "tokens_per_step": sizes.tokens_per_step, "steps": sizes.steps,
                                "long_steps": sizes.long_steps})
    figures = []
    for length in sizes.lengths:
        row = result["lengths"][str(length)]
        a, b = row["local/global"], row["all global"]
        flops = _flops(1, length) / _flops(3, length)
        figures.append(Figure(
            BENCH, f"{length:>5} tokens × {row['batch']:>2}: step, local/global", 1000 * a, "ms",
            f"all-global {1000 * b:,.0f} ms: {b / a:.2f}× the time (model FLOPs {flops:.2f}×)", row["load"],
            {**row, "flops_ratio": flops}))
    return figures


def _flops(every: int, length: int) -> float:
    from encoder_recipes.plan import stage_flops
    from encoder_recipes.schema import ModelConfig

    return stage_flops(ModelConfig(**MODEL, global_attn_every_n_layers=every), VOCAB, 1.0, length, 0.3)


# --- the child ---------------------------------------------------------------------------------


def _steps(cfg: dict[str, Any]) -> dict[str, Any]:
    """The fastest of a few full training steps (forward, backward, AdamW) at each length, for both patterns.

    The two models take their steps in turn (local/global, all global,
    local/global, ...), so a burst of other load on the machine falls on
    both alike; the fastest step of each is the least disturbed one.
    """
    import os

    import torch

    from encoder_recipes.modeling.build import build_model
    from encoder_recipes.schema import ModelConfig

    models = {}
    for name, every in PATTERNS.items():
        model = build_model(ModelConfig(**MODEL, global_attn_every_n_layers=every), vocab_size=VOCAB,
                            special_ids={"pad": 3, "cls": 0, "sep": 1}, attn_implementation="sdpa", seed=0)
        models[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4))
    generator = torch.Generator().manual_seed(0)
    out: dict[str, Any] = {}
    for index, length in enumerate(cfg["lengths"]):
        load = os.getloadavg()[0]
        batch = max(1, cfg["tokens_per_step"] // length)
        ids = torch.randint(261, VOCAB, (batch, length), generator=generator)
        labels = torch.where(torch.rand(ids.shape, generator=generator) < 0.3, ids, torch.full_like(ids, -100))
        mask = torch.ones_like(ids)
        times: dict[str, list[float]] = {name: [] for name in models}
        steps = cfg["steps"] if length < 4096 else cfg["long_steps"]
        for i in range(steps + (1 if index == 0 else 0)):  # one warm-up step at the first length
            for name, (model, optimizer) in models.items():
                start = time.perf_counter()
                model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if index or i:
                    times[name].append(time.perf_counter() - start)
        out[str(length)] = {"batch": batch, "load": load, "times": times,
                            **{name: min(t) for name, t in times.items()},
                            "peak_rss_mib": process_peak_rss_mib()}
    return {"lengths": out}


if __name__ == "__main__":
    child_main({"steps": _steps})
