"""A plan on real hardware: per stage its step time, wall time and GPU-hours, memory per GPU, and the data rate it needs.

``encoder-recipes plan RECIPE --gpus 16 --gpu h100 [--mfu 0.4]`` prints it.
The arithmetic, for a stage of ``F`` model FLOPs over ``S`` steps
(:func:`encoder_recipes.plan.stage_flops`: 6 × layer parameters + attention
at the stage's sequence length + the MLM head) on ``G`` GPUs of bf16 dense
peak ``P`` (:mod:`encoder_recipes.hardware`) at model FLOPs utilisation ``M``:

* step time = F / S / (G × P × M); wall time = S × step time; GPU-hours = G × wall / 3600;
* tokens per second per GPU = the stage's token positions / S / G / step time.

``--days`` or ``--hours`` turns it round: given the time a stage took, the MFU
it implies is F / (G × P × time). That is how the papers' reported times are
read (``docs/full-scale.md``).

MFU counts the model's FLOPs only: activation checkpointing recomputes each
layer's forward pass (about a third more work), so at the same MFU the GPU
is busier; the step time here is that of the MFU given.

The data a rank must deliver each second is its share of the token
positions of a step divided by the step time, when it reads its rows from a
prepared store, and the whole global batch's when every rank makes the
global batch on the fly (``data.shard_by_rank: false``). It is held against
the per-core rates ``bench`` measured (:mod:`encoder_recipes.data_rates`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from encoder_recipes.data_rates import Rate, on_the_fly, store_read
from encoder_recipes.hardware import GPU, gpu as gpu_named

SECONDS_PER_DAY = 86_400


@dataclass
class StageHardware:
    name: str
    steps: int
    mfu: float
    flops_per_step: float
    step_s: float
    wall_s: float
    gpu_hours: float
    tokens_per_s_per_gpu: float
    share: int  # sequences per GPU per step
    seq_len: int
    divides: bool  # the global batch divides over the GPUs
    micro: int = 0
    peak_gb: float = 0.0
    micro_checkpointed: int = 0
    peak_checkpointed_gb: float = 0.0
    store_need: float = 0.0  # token positions/s each rank reads from a store
    store_rate: Rate | None = None
    fly_need: float = 0.0  # token positions/s each rank makes on the fly
    fly_rate: Rate | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def implied_mfu(flops: float, *, gpus: int, gpu: GPU, seconds: float) -> float:
    """The model FLOPs utilisation that trains ``flops`` on ``gpus`` × ``gpu`` in ``seconds``."""
    return flops / (gpus * gpu.peak_flops * seconds)


def stage_times(plan, *, gpus: int, gpu: GPU, mfu: list[float]) -> list[StageHardware]:
    """Step time, wall time, GPU-hours and tokens/s per GPU of each stage at its MFU."""
    out = []
    for stage, m in zip(plan.stages, mfu):
        per_step = stage.flops / stage.steps
        step_s = per_step / (gpus * gpu.peak_flops * m)
        positions = stage.tokens / stage.steps
        out.append(StageHardware(
            name=stage.name, steps=stage.steps, mfu=m, flops_per_step=per_step, step_s=step_s,
            wall_s=step_s * stage.steps, gpu_hours=gpus * step_s * stage.steps / 3600,
            tokens_per_s_per_gpu=positions / gpus / step_s, share=stage.batch_size // gpus,
            seq_len=max(stage.lengths), divides=stage.batch_size % gpus == 0))
    return out


def mfu_per_stage(plan, *, gpus: int, gpu: GPU, mfu: float | None = None, days: list[float] | None = None,
                  hours: list[float] | None = None) -> list[float]:
    """Each stage's MFU: the one given, or the one a reported time implies.

    A time per stage, or one time for the whole run (every stage then gets
    the same MFU, the run's).
    """
    times = [d * SECONDS_PER_DAY for d in days] if days else [h * 3600 for h in hours] if hours else None
    if times is None:
        return [mfu if mfu is not None else 0.4] * len(plan.stages)
    if len(times) == 1:
        return [implied_mfu(plan.total_flops, gpus=gpus, gpu=gpu, seconds=times[0])] * len(plan.stages)
    if len(times) != len(plan.stages):
        raise ValueError(f"{len(times)} times for {len(plan.stages)} stages: give one per stage or one in all")
    return [implied_mfu(s.flops, gpus=gpus, gpu=gpu, seconds=t) for s, t in zip(plan.stages, times)]


def hardware_plan(recipe, plan, registries, *, gpus: int, gpu: str, mfu: list[float]) -> list[StageHardware]:
    """Times, memory with and without activation checkpointing, and the data each rank needs, per stage."""
    from encoder_recipes.training.memory import stage_memory
    from encoder_recipes.validation import ResolvedRecipe

    card = gpu_named(gpu)
    stages = stage_times(plan, gpus=gpus, gpu=card, mfu=mfu)
    resolved = ResolvedRecipe(recipe, "")
    for hw, stage in zip(stages, plan.stages):
        if hw.divides:
            plain = stage_memory(recipe, stage, gpus=gpus, memory=card.memory_bytes, vocab_size=plan.vocab_size,
                                 checkpointing=False)
            kept = stage_memory(recipe, stage, gpus=gpus, memory=card.memory_bytes, vocab_size=plan.vocab_size,
                                checkpointing=True)
            hw.micro, hw.peak_gb = plain.micro, plain.peak / 1e9
            hw.micro_checkpointed, hw.peak_checkpointed_gb = kept.micro, kept.peak / 1e9
        rank_positions = stage.tokens / stage.steps / gpus
        hw.store_need = rank_positions / hw.step_s
        hw.fly_need = hw.store_need * (1 if recipe.data.shard_by_rank else gpus)
        hw.store_rate = store_read(stage.packing, recipe.data.store_mask_group)
        masking = resolved.component(registries, "masking", recipe.stages[stage.index].masking)
        segmenter = None
        if masking.needs_words:
            segmenter = masking.segmenter_name()
            if segmenter is None:
                default = registries.word_segmenter(recipe.metadata.language)
                segmenter = getattr(default, "name", None)
        hw.fly_rate = on_the_fly(segmenter)
    return stages


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * SECONDS_PER_DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / SECONDS_PER_DAY:.1f} days"


def _rate(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k" if x >= 1e4 else f"{x:,.0f}"


def _data_line(need: float, rate: Rate, cores: int) -> str:
    have = rate.tokens_per_s * cores
    verdict = ("keeps up" if need <= have else
               f"DATA-BOUND: {need / have:.2f}× short; {math.ceil(need / rate.tokens_per_s)} cores per rank would keep up")
    return (f"needs {_rate(need)}/s; {cores} core{'s' if cores > 1 else ''} give{'' if cores > 1 else 's'} "
            f"{_rate(have)}/s ({rate.what}, {rate.source}): {verdict}")


def hardware_lines(recipe, stages: list[StageHardware], *, gpus: int, gpu: str, data_workers: int,
                   reported: bool = False) -> list[str]:
    """What ``plan --gpus`` prints."""
    from encoder_recipes.training.memory import USABLE

    card = gpu_named(gpu)
    lines = [f"on {gpus} × {gpu} ({card.bf16_dense_tflops:g} TFLOP/s bf16 dense, {card.memory_gb:g} GB each), "
             + ("MFU implied by the times given:" if reported else f"at {stages[0].mfu:.0%} MFU:")]
    header = ["stage", "MFU", "step", "wall", "GPU-hours", "tokens/s per GPU"]
    rows = [[s.name, f"{s.mfu:.1%}", _duration(s.step_s), _duration(s.wall_s), f"{s.gpu_hours:,.0f}",
             f"{s.tokens_per_s_per_gpu:,.0f}"] for s in stages]
    wall = sum(s.wall_s for s in stages)
    rows.append(["total", "", "", _duration(wall), f"{sum(s.gpu_hours for s in stages):,.0f}", ""])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                                     enumerate(zip(row, widths))).rstrip())
    chunked = recipe.model.sparse_prediction and recipe.head_loss_chunk_rows
    lines.append(f"memory per GPU (bf16, SDPA, micro_batch_size "
                 f"{'/'.join(sorted({str(s.micro_batch_size) for s in recipe.stages}))}"
                 + (f", head loss in chunks of {recipe.head_loss_chunk_rows} rows" if chunked else "") + "; estimate, "
                 f"fits below {USABLE:.0%} of {card.memory_gb:g} GB):")
    limit = card.memory_gb * USABLE
    for s in stages:
        if not s.divides:
            lines.append(f"  {s.name}: the global batch does not divide over {gpus} GPUs")
            continue
        fits = lambda gb: "fits" if gb <= limit else "DOES NOT FIT"  # noqa: E731
        lines.append(f"  {s.name}: {s.share} × {s.seq_len} tokens per GPU; without activation checkpointing "
                     f"micro-batch {s.micro} ({math.ceil(s.share / s.micro)} a step), {s.peak_gb:.1f} GB, "
                     f"{fits(s.peak_gb)}; with it micro-batch {s.micro_checkpointed} "
                     f"({math.ceil(s.share / s.micro_checkpointed)} a step), {s.peak_checkpointed_gb:.1f} GB, "
                     f"{fits(s.peak_checkpointed_gb)}")
    lines.append("data per rank (token positions; measured per core by bench):")
    fly_cores = max(1, recipe.data_workers)
    for s in stages:
        lines.append(f"  {s.name}: from a prepared store (its {s.share} rows) "
                     + _data_line(s.store_need, s.store_rate, data_workers))
        whole = "its share" if recipe.data.shard_by_rank else "the whole global batch"
        lines.append(f"  {' ' * len(s.name)}  on the fly ({whole}) " + _data_line(s.fly_need, s.fly_rate, fly_cores))
    return lines
