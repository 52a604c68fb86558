"""The plan of a run: per stage its steps, sequences, tokens and FLOPs, and the clock.

``encoder-recipes plan`` prints it; the trainer follows it. A stage given in
``tokens`` lasts until the tokens seen reach them:
``ceil(tokens / (batch × mean sequence length))`` steps, or, with a batch
warmup, the exact count through its smaller batches
(:class:`~encoder_recipes.batch_warmup.TokenTimeline`). Tokens are counted as
the papers count them: sequences × length, padding included (llm-jp: 500,000
× 3,328 × 1,024 ≈ 1.7T). The plan's :class:`~encoder_recipes.timeline.RunTimeline`
gives each step its global batch and each clock its token counts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from encoder_recipes.batch_warmup import BatchWarmup, TokenTimeline
from encoder_recipes.clock import Clock
from encoder_recipes.registry import Registries
from encoder_recipes.schema import ModelConfig, Recipe, Stage
from encoder_recipes.timeline import RunTimeline

_PROBE_STEPS = 27_720  # lcm(1..12): equal shares of up to 12 extension steps are measured exactly


@dataclass
class StagePlan:
    name: str
    index: int
    start: int
    steps: int
    batch_size: int
    lengths: list[int]
    mean_seq_len: float
    tokens: float
    sequences: int
    lr: float
    lr_schedule: str
    masking: str
    mask_rate_start: float
    mask_rate_end: float
    packing: str
    global_rope_theta: float
    local_rope_theta: float
    flops: float
    epochs: float | None = None
    batch_sizes: list[int] = field(default_factory=list)  #: every global batch the stage uses, smallest first
    batch_warmup_steps: int = 0  #: steps before the batch reaches batch_size
    batch_warmup_tokens: float = 0.0  #: tokens those steps take
    lr_warmup_steps: int = 0  #: steps of the stage inside the LR schedule's warmup
    lr_warmup_tokens: float = 0.0  #: tokens those steps take


@dataclass
class Plan:
    stages: list[StagePlan]
    total_steps: int
    total_tokens: float
    total_flops: float
    params: dict[str, int] = field(default_factory=dict)
    timeline: RunTimeline | None = field(default=None, repr=False, compare=False)
    #: the vocabulary the counts use (the model's, else what the tokenizer plans); 0 when unknown before training
    vocab_size: int = 0

    def stage_at(self, step: int) -> StagePlan:
        for stage in self.stages:
            if step < stage.start + stage.steps:
                return stage
        return self.stages[-1]

    def clock(self, step: int) -> Clock:
        """The clock at global ``step`` (0-based); a pure function of the plan."""
        stage = self.stage_at(step)
        return Clock(
            step=step,
            total_steps=self.total_steps,
            stage=stage.name,
            stage_index=stage.index,
            stage_step=step - stage.start,
            stage_steps=stage.steps,
            stage_starts={s.name: s.start for s in self.stages},
            timeline=self.timeline,
        )

    def batch_at(self, step: int) -> int:
        """The global batch (sequences) of global ``step``: the stage's, or its batch warmup's."""
        return self.timeline.batch_at(step)

    def to_dict(self) -> dict:
        timeline, self.timeline = self.timeline, None  # not data: asdict would deep-copy it
        try:
            return asdict(self)
        finally:
            self.timeline = timeline


def count_params(model: ModelConfig, vocab_size: int) -> dict[str, int]:
    """Parameter counts of a ModernBERT (weights only, biases as configured; tied decoder)."""
    d, inter, layers = model.hidden_size, model.intermediate_size, model.num_hidden_layers
    norm = d * (2 if model.norm_bias and model.norm == "layernorm" else 1)
    attn = 3 * d * d + d * d + (4 * d if model.attention_bias else 0)
    mlp = d * 2 * inter + inter * d + ((2 * inter + d) if model.mlp_bias else 0)
    # layer 0 has no attention norm in ModernBERT (the embedding norm precedes it)
    per_layer = attn + mlp + 2 * norm
    body = layers * per_layer - norm
    embeddings = vocab_size * d + norm
    head = d * d + norm + (vocab_size if model.decoder_bias else 0)  # dense + norm + decoder bias (weight tied)
    final_norm = norm
    return {"embedding": embeddings, "layers": body + final_norm, "head": head,
            "total": embeddings + body + final_norm + head}


def stage_flops(model: ModelConfig, vocab_size: int, tokens: float, seq_len: float, mask_rate: float) -> float:
    """Training FLOPs ≈ 6 × (layer params) × tokens + attention + MLM head.

    Attention scores and values cost 12 × d × context per token per layer in
    training (2 matmuls × 2 FLOPs × 3 for forward+backward), with context =
    the window on local layers. With sparse prediction only masked tokens pay
    for the head's decoder.
    """
    params = count_params(model, vocab_size)
    d, layers = model.hidden_size, model.num_hidden_layers
    n_global = len(range(0, layers, model.global_attn_every_n_layers))
    n_local = layers - n_global
    attention = 12 * d * tokens * (n_global * seq_len + n_local * min(seq_len, model.local_attention))
    head_tokens = tokens * (mask_rate if model.sparse_prediction else 1.0)
    head = 6 * head_tokens * (d * d + d * vocab_size)
    return 6 * params["layers"] * tokens + attention + head


def build_plan(recipe: Recipe, registries: Registries, vocab_size: int | None = None) -> Plan:
    from encoder_recipes.validation import ResolvedRecipe

    resolved = ResolvedRecipe(recipe, "")
    tokenizer = resolved.component(registries, "tokenizer", recipe.tokenizer)
    vocab = vocab_size or recipe.model.vocab_size or tokenizer.planned_vocab_size() or 0
    stages: list[StagePlan] = []
    timelines: list[tuple[int, TokenTimeline]] = []
    start = 0
    for index, stage in enumerate(recipe.stages):
        context = resolved.component(registries, "context", stage.context)
        probe = Clock(0, _PROBE_STEPS, stage.name, index, 0, _PROBE_STEPS, {})
        mean_len = sum(context.seq_len(_at(probe, s)) for s in range(_PROBE_STEPS)) / _PROBE_STEPS
        timeline = stage_timeline(stage, mean_len)
        steps = stage.steps or timeline.step_at_tokens(stage.tokens)
        timelines.append((steps, timeline))
        warmup = timeline.warmup
        stages.append(StagePlan(
            name=stage.name, index=index, start=start, steps=steps, batch_size=stage.batch_size,
            lengths=context.lengths(), mean_seq_len=mean_len, tokens=timeline.tokens_before(steps),
            sequences=round(timeline.tokens_before(steps) / mean_len) if warmup else steps * stage.batch_size,
            lr=stage.lr, lr_schedule=stage.lr_schedule.name,
            masking=stage.masking.name, mask_rate_start=0.0, mask_rate_end=0.0, packing=stage.packing,
            global_rope_theta=stage.rope.global_theta or recipe.model.global_rope_theta,
            local_rope_theta=stage.rope.local_theta or recipe.model.local_rope_theta,
            flops=0.0, epochs=stage.epochs,
            batch_sizes=[*(warmup.sizes if warmup else ()), stage.batch_size],
            batch_warmup_steps=min(steps, timeline.warmup_steps),
            batch_warmup_tokens=timeline.tokens_before(min(steps, timeline.warmup_steps)),
        ))
        start += steps
    plan = Plan(stages, start, sum(s.tokens for s in stages), 0.0, count_params(recipe.model, vocab) if vocab else {},
                vocab_size=vocab, timeline=RunTimeline(timelines))
    # Mask rates and LR warmups need the run-wide clock (a curriculum may span stages), so fill them in after.
    for stage_plan, stage in zip(plan.stages, recipe.stages):
        masking = resolved.component(registries, "masking", stage.masking)
        schedule = resolved.component(registries, "lr_schedule", stage.lr_schedule)
        stage_plan.lr_warmup_steps = _warmup_steps_in(plan, stage_plan, schedule)
        stage_plan.lr_warmup_tokens = plan.timeline.stage_tokens_before(stage_plan.start + stage_plan.lr_warmup_steps) \
            if stage_plan.lr_warmup_steps < stage_plan.steps else stage_plan.tokens
        stage_plan.mask_rate_start = masking.rate(plan.clock(stage_plan.start))
        stage_plan.mask_rate_end = masking.rate(plan.clock(stage_plan.start + stage_plan.steps - 1))
        mean_rate = (stage_plan.mask_rate_start + stage_plan.mask_rate_end) / 2
        stage_plan.flops = stage_flops(recipe.model, vocab, stage_plan.tokens, stage_plan.mean_seq_len, mean_rate) if vocab else 0.0
    plan.total_flops = sum(s.flops for s in plan.stages)
    return plan


def stage_timeline(stage: Stage, mean_seq_len: float) -> TokenTimeline:
    """Steps ↔ tokens of ``stage``: its batch (warming up when it says so) × its mean sequence length."""
    # a whole length keeps the token counts integers, exact at any size
    length = int(mean_seq_len) if float(mean_seq_len).is_integer() else mean_seq_len
    spec = stage.batch_warmup
    warmup = None if spec is None else BatchWarmup(start=spec.start, end=stage.batch_size, tokens=spec.tokens,
                                                   increment=spec.increment)
    return TokenTimeline(stage.batch_size, length, warmup)


def _warmup_steps_in(plan: Plan, stage: StagePlan, schedule) -> int:
    """How many of the stage's steps fall in its LR schedule's warmup (0 for a schedule without one)."""
    warmup_end = getattr(schedule, "warmup_end", None)
    if warmup_end is None:
        return 0
    clock = plan.clock(stage.start)
    end = warmup_end(clock)
    if schedule.params.scope == "run":
        end -= stage.start  # a run-wide warmup is counted from the run's first step
    return max(0, min(stage.steps, end))


def _at(probe: Clock, stage_step: int) -> Clock:
    return Clock(stage_step, probe.total_steps, probe.stage, probe.stage_index, stage_step, probe.stage_steps, {})
