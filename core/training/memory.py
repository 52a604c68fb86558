"""How many sequences fit on one device in a forward and backward pass: an estimate, not a measurement.

At full scale the parameters are not the limit: a 190M-parameter ModernBERT
with AdamW holds about 3 GB (fp32 weights, gradients and two moments, 16
bytes a parameter). Activations are: a recipe's share of the global batch
(ja-llmjp stage 1 on 16 GPUs: 208 × 1,024 tokens) needs several times an
80 GB GPU. ``micro_batch_size: auto`` therefore splits each rank's share into
micro-batches of the size this module picks from a per-token activation cost.

The cost counts the tensors autograd keeps for the backward pass of one
ModernBERT layer under bf16 autocast (fp32 residual stream and norm inputs,
bf16 matmul inputs and outputs, the GeGLU's halves), the MLM head on the
predicted tokens (bf16 logits, fp32 log-softmax for the loss and its
gradient), and with SDPA the dense attention masks transformers builds. It is
multiplied by :data:`SAFETY` for what it does not count (allocator
fragmentation, workspaces, casts). ``bench/gpu_check.py`` measures the real
peak against it on a GPU.

The head's logits are the one term that grows with the vocabulary: about 10
bytes per vocabulary entry per predicted token, so for ja-llmjp (99,574
tokens, 30% predicted) some 300 KB a token, 30% of its per-token cost and
about 20 GB at its micro-batch of 52 × 1,024. With ``head_loss_chunk_rows``
(the default, :mod:`encoder_recipes.modeling.chunked_loss`) no logits are kept
per token; one chunk's, :func:`head_chunk_bytes`, is counted once instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from encoder_recipes.hardware import GPUS, gpu as gpu_named

#: fp32 weights + fp32 gradients + AdamW's two fp32 moments, bytes per parameter
STATIC_BYTES_PER_PARAM = 16
#: what the count leaves out (fragmentation, kernel workspaces, dtype copies), as a factor
SAFETY = 1.25
#: share of the device's memory the estimate may plan for; the rest is the CUDA context and headroom
USABLE = 0.9
#: device memory by the ``plan --gpu`` name, bytes (the usable total torch reports is a little less)
GPU_MEMORY = {name: g.memory_bytes for name, g in GPUS.items()}


@dataclass(frozen=True)
class Shape:
    """The model facts the estimate needs (from a recipe's ``model`` section and vocabulary)."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    vocab_size: int
    parameters: int
    sparse_prediction: bool = True


def activation_bytes_per_token(shape: Shape, *, seq_len: int, mask_rate: float, bf16: bool = True,
                               flash_attention: bool = False, checkpointing: bool = False,
                               head_chunked: bool = False) -> float:
    """Bytes of activations kept for the backward pass, per token of a micro-batch (times :data:`SAFETY`).

    :param seq_len: the micro-batch's sequence length (SDPA's dense masks grow with it).
    :param mask_rate: share of tokens that go through the head when prediction is sparse.
    :param checkpointing: activation checkpointing: each layer keeps only its input, and
        one layer's activations exist at a time while it is recomputed.
    :param head_chunked: the head's loss runs in chunks of rows (``head_loss_chunk_rows``):
        no logits are kept per token; one chunk's cost is :func:`head_chunk_bytes`, once.
    """
    h, inter = shape.hidden_size, shape.intermediate_size
    low = 2 if bf16 else 4  # matmul inputs and outputs under autocast
    # attention block: fp32 residual in, normed input, qkv, rotated q/k, v, attention output, Wo input
    attention = 4 * h + low * (h + 3 * h + 3 * h + h + h)
    # MLP block: fp32 residual in, normed input, Wi output (2 halves), gelu(half), product (Wo input)
    mlp = 4 * h + low * (h + 2 * inter + inter + inter)
    layer = attention + mlp
    layers = 4 * h * shape.num_layers + layer if checkpointing else layer * shape.num_layers
    predicted = mask_rate if shape.sparse_prediction else 1.0
    # head: dense + norm on h, then logits (bf16) and fp32 log-softmax and its gradient for the loss
    logits = 0 if head_chunked else _logit_bytes(low) * shape.vocab_size
    head = predicted * (4 * h + low * h + logits)
    # SDPA gets two dense (L × L) masks per sequence (global and sliding window); FA2 gets none
    masks = 0 if flash_attention else 2 * low * seq_len
    embeddings = 4 * h * 2
    return SAFETY * (layers + head + masks + embeddings)


def _logit_bytes(low: int) -> int:
    """Bytes per vocabulary entry of one predicted row: its logit (bf16), the fp32 log-softmax and its gradient."""
    return low + 4 + 4


def head_chunk_bytes(shape: Shape, chunk_rows: int, *, bf16: bool = True) -> float:
    """Bytes of one chunk's logits while the chunked head loss computes or recomputes it (times :data:`SAFETY`).

    A fixed cost, whatever the micro-batch: ja-llmjp's 99,574-token vocabulary in
    chunks of 4,096 rows takes about 5 GB, where its micro-batch of 52 × 1,024
    tokens at a 30% rate would keep about 20 GB of logits unchunked.
    """
    return SAFETY * chunk_rows * _logit_bytes(2 if bf16 else 4) * shape.vocab_size


def static_bytes(shape: Shape) -> float:
    return STATIC_BYTES_PER_PARAM * shape.parameters


def pick_micro_batch(*, share: int, seq_len: int, per_token: float, static: float, memory: float) -> int:
    """Sequences per forward pass: the largest balanced split of ``share`` whose activations fit.

    The share is cut into ``ceil(share / fit)`` micro-batches of equal size (the
    last one may be smaller), so 208 sequences with room for 49 run as 5 × 42,
    not 4 × 49 + 12. At least one sequence, even when the estimate says none fits:
    the run then fails with CUDA's out-of-memory error naming the real figures.
    """
    budget = memory * USABLE - static
    fit = max(1, int(budget // (per_token * seq_len)))
    if fit >= share:
        return share
    parts = math.ceil(share / fit)
    return math.ceil(share / parts)


def estimated_peak(*, micro: int, seq_len: int, per_token: float, static: float) -> float:
    """Bytes the estimate expects at the peak of a step with ``micro`` sequences of ``seq_len``."""
    return static + micro * seq_len * per_token


@dataclass(frozen=True)
class MicroBatch:
    """The micro-batch ``auto`` picks for one stage on one rank, and what the estimate expects of it."""

    micro: int
    share: int
    seq_len: int
    peak: float  # bytes
    memory: float  # bytes of the device


def shape_of(model, vocab_size: int) -> Shape:
    """The estimate's :class:`Shape` of a recipe's ``model`` section with this vocabulary."""
    from encoder_recipes.plan import count_params

    return Shape(model.hidden_size, model.intermediate_size, model.num_hidden_layers, vocab_size,
                 count_params(model, vocab_size)["total"], model.sparse_prediction)


def step_costs(recipe, stage, shape: Shape, *, seq_len: int, bf16: bool = True,
               flash_attention: bool = False, checkpointing: bool | None = None) -> tuple[float, float]:
    """(bytes per token, fixed bytes) of a stage's step: activations at its highest mask rate, and
    weights with optimizer state plus, with the chunked head loss, one chunk's logits.

    ``checkpointing`` overrides the recipe's ``activation_checkpointing`` (``plan`` shows both)."""
    if checkpointing is None:
        checkpointing = recipe.activation_checkpointing
    chunk = recipe.head_loss_chunk_rows if shape.sparse_prediction else None
    per_token = activation_bytes_per_token(
        shape, seq_len=seq_len, mask_rate=max(stage.mask_rate_start, stage.mask_rate_end), bf16=bf16,
        flash_attention=flash_attention, checkpointing=checkpointing, head_chunked=bool(chunk))
    return per_token, static_bytes(shape) + (head_chunk_bytes(shape, chunk, bf16=bf16) if chunk else 0.0)


def micro_batch_for(recipe, stage, *, gpus: int, memory: float, vocab_size: int, bf16: bool = True,
                    flash_attention: bool = False, checkpointing: bool | None = None) -> MicroBatch:
    """The micro-batch for a stage (a :class:`~encoder_recipes.plan.StagePlan`) on ``gpus`` devices of ``memory`` bytes.

    Sized for the stage's longest sequence and highest mask rate, so it fits every step.
    ``checkpointing`` overrides the recipe's ``activation_checkpointing`` (``plan`` shows both).
    """
    if checkpointing is None:
        checkpointing = recipe.activation_checkpointing
    shape = shape_of(recipe.model, vocab_size)
    share = max(1, stage.batch_size // gpus)
    seq_len = max(stage.lengths)
    per_token, static = step_costs(recipe, stage, shape, seq_len=seq_len, bf16=bf16,
                                   flash_attention=flash_attention, checkpointing=checkpointing)
    micro = pick_micro_batch(share=share, seq_len=seq_len, per_token=per_token, static=static, memory=memory)
    return MicroBatch(micro, share, seq_len, estimated_peak(micro=micro, seq_len=seq_len, per_token=per_token,
                                                            static=static), memory)


def micro_batch_size(recipe, stage, *, gpus: int, memory: float | None, vocab_size: int,
                     flash_attention: bool = False, checkpointing: bool | None = None) -> MicroBatch:
    """What the trainer runs: the stage's ``micro_batch_size`` on one of ``gpus`` ranks.

    ``None`` is the rank's whole share, a number is capped at the share, and
    ``auto`` is :func:`micro_batch_for` on a device of ``memory`` bytes (the
    whole share where ``memory`` is None: a CPU run has no device figure).
    The returned ``peak`` is 0 when no estimate was made.
    """
    share = max(1, stage.batch_size // gpus)
    chosen = recipe.stages[stage.index].micro_batch_size
    if chosen == "auto" and memory is not None:
        return micro_batch_for(recipe, stage, gpus=gpus, memory=memory, vocab_size=vocab_size,
                               flash_attention=flash_attention, checkpointing=checkpointing)
    micro = share if chosen is None or chosen == "auto" else min(chosen, share)
    return MicroBatch(micro, share, max(stage.lengths), 0.0, memory or 0.0)


def stage_memory(recipe, stage, *, gpus: int, memory: float, vocab_size: int,
                 checkpointing: bool | None = None) -> MicroBatch:
    """The trainer's micro-batch for a stage (:func:`micro_batch_size`) and the estimated peak it reaches.

    ``plan --gpus`` shows it with ``checkpointing`` off and on, whatever the recipe says.
    """
    micro = micro_batch_size(recipe, stage, gpus=gpus, memory=memory, vocab_size=vocab_size,
                             checkpointing=checkpointing).micro
    shape = shape_of(recipe.model, vocab_size)
    share, seq_len = max(1, stage.batch_size // gpus), max(stage.lengths)
    per_token, static = step_costs(recipe, stage, shape, seq_len=seq_len, checkpointing=checkpointing)
    peak = estimated_peak(micro=micro, seq_len=seq_len, per_token=per_token, static=static)
    return MicroBatch(micro, share, seq_len, peak, memory)


def micro_batch_lines(recipe, plan, *, gpus: int, gpu: str) -> list[str]:
    """Each stage's micro-batch and estimated peak on ``gpus`` × ``gpu`` under the recipe's settings."""
    memory = gpu_named(gpu).memory_bytes
    chunked = recipe.model.sparse_prediction and recipe.head_loss_chunk_rows
    lines = [f"on {gpus} × {gpu} ({memory / 1e9:.0f} GB), bf16, SDPA"
             + (", activation checkpointing" if recipe.activation_checkpointing else "")
             + (f", head loss in chunks of {recipe.head_loss_chunk_rows} rows" if chunked else "") + ":"]
    for stage in plan.stages:
        chosen = recipe.stages[stage.index].micro_batch_size
        if stage.batch_size % gpus:
            lines.append(f"  {stage.name}: batch {stage.batch_size} does not divide over {gpus} GPUs")
            continue
        m = stage_memory(recipe, stage, gpus=gpus, memory=memory, vocab_size=plan.vocab_size)
        verdict = "fits" if m.peak <= memory * USABLE else "DOES NOT FIT"
        lines.append(f"  {stage.name}: {m.share} sequences × {m.seq_len} per GPU → micro-batch {m.micro} "
                     f"({'auto' if chosen == 'auto' else chosen or 'whole share'}), "
                     f"{math.ceil(m.share / m.micro)} per step, estimated peak {m.peak / 1e9:.1f} GB: {verdict}")
    return lines
